"""NumPy twins of the per-neuron device code: ``pp_lif_step`` (kernels/lif.cuh)
and ``pp_poisson_draw`` (kernels/network.cuh)."""
from __future__ import annotations

import numpy as np

from . import sampling
from .rng import TAG_POISSON, philox_words

__all__ = ["lif_step", "lif_params", "poisson_counts"]

_F32 = np.float32
_LIF_F32 = ("P20", "I_e", "P22", "P21ex", "P21in", "P11ex", "P11in", "inv_scale_ex",
            "inv_scale_in", "V_th", "V_reset")


def lif_params(pops: np.ndarray) -> dict:
    """The population table's LIF fields as one array per field with one entry per neuron
    (float32; ``ref_steps`` int32), so that one :func:`lif_step` call advances every
    population: the arithmetic per neuron is that of its population's scalars."""
    n = pops["n"].astype(np.int64)
    out = {f: np.repeat(pops[f].astype(np.float32), n) for f in _LIF_F32}
    out["ref_steps"] = np.repeat(pops["ref_steps"].astype(np.int32), n)
    return out


def lif_step(V, Iex, Iin, ref, acc_ex, acc_in, pop) -> np.ndarray:
    """Advance one step in place (float32, same operation order as pp_lif_step);
    returns the boolean spike mask.  ``pop``: one population's record, or the per-neuron
    arrays of :func:`lif_params`."""
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
    np.copyto(V, _F32(pop["V_reset"]), where=spk)
    np.copyto(ref, np.asarray(pop["ref_steps"], dtype=ref.dtype), where=spk)
    return spk


def poisson_counts(pop, tables: np.ndarray, seed: int, step) -> np.ndarray:
    """Poisson counts of every neuron of ``pop`` at ``step`` (int64, shape (n,)), or at
    each of a 1-D array of steps (shape (len(step), n): one Philox call for many steps)."""
    n = int(pop["n"])
    if np.ndim(step) == 0:
        step = int(step)
        lo, hi = np.uint32(step & 0xFFFFFFFF), np.uint32(step >> 32)
        c0 = np.arange(n, dtype=np.uint32)
    else:
        steps = np.asarray(step, dtype=np.uint64)[:, None]
        lo = (steps & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        hi = (steps >> np.uint64(32)).astype(np.uint32)
        c0 = np.arange(n, dtype=np.uint32)[None, :]
    r0 = philox_words(c0, lo, hi, TAG_POISSON, seed, pop["stream"])[0]
    off, ln = int(pop["poisson_offset"]), int(pop["poisson_len"])
    return sampling.poisson_count(r0, tables[off:off + ln])
