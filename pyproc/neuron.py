"""NumPy twins of the per-neuron device code: ``pp_lif_step`` (kernels/lif.cuh)
and ``pp_poisson_draw`` (kernels/network.cuh)."""
from __future__ import annotations

import numpy as np

from . import sampling
from .rng import TAG_POISSON, philox_words

__all__ = ["lif_step", "poisson_counts"]

_F32 = np.float32


def lif_step(V, Iex, Iin, ref, acc_ex, acc_in, pop) -> np.ndarray:
    """Advance one step in place (float32, same operation order as pp_lif_step);
    returns the boolean spike mask."""
    active = ref == 0
    v = _F32(pop["P20"]) * _F32(pop["I_e"]) + _F32(pop["P22"]) * V
    v = v + _F32(pop["P21ex"]) * Iex
    v = v + _F32(pop["P21in"]) * Iin
    np.copyto(V, v, where=active)
    ref -= (~active).astype(ref.dtype)
    Iex *= _F32(pop["P11ex"])
    Iex += acc_ex.astype(np.float32) * _F32(pop["inv_scale_ex"])
    Iin *= _F32(pop["P11in"])
    Iin += acc_in.astype(np.float32) * _F32(pop["inv_scale_in"])
    spk = V >= _F32(pop["V_th"])
    V[spk] = _F32(pop["V_reset"])
    ref[spk] = pop["ref_steps"]
    return spk


def poisson_counts(pop, tables: np.ndarray, seed: int, step: int) -> np.ndarray:
    """Poisson counts of every neuron of ``pop`` at ``step`` (int64)."""
    n = int(pop["n"])
    r0 = philox_words(np.arange(n, dtype=np.uint32), np.uint32(step & 0xFFFFFFFF),
                      np.uint32(step >> 32), TAG_POISSON, seed, pop["stream"])[0]
    off, ln = int(pop["poisson_offset"]), int(pop["poisson_len"])
    return sampling.poisson_count(r0, tables[off:off + ln])
