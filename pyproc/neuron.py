"""NumPy twins of the per-neuron device code: ``pp_lif_step`` (kernels/lif.cuh)
and ``pp_poisson_input``, ``pp_source_spike``, ``pp_array_spike`` (kernels/network.cuh)."""
from __future__ import annotations

import numpy as np

from . import sampling
from .rng import TAG_POISSON, TAG_SOURCE, philox_words

__all__ = ["lif_step", "lif_params", "i_e_at", "poisson_counts", "poisson_input",
           "source_spikes", "array_spikes"]

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


def i_e_at(pop, step: int, stretch=None):
    """The constant current (pA, float32) of ``pop`` at ``step``: I_e, plus its step
    current inside its window, one float32 add (twin of pp_i_e).  ``stretch``: a record
    with the dc fields (pyproc.compile.DC_DTYPE) to use instead of ``pop``'s, as the
    backends switch them between a step current's stretches."""
    dc = pop if stretch is None else stretch
    if int(dc["dc_start"]) <= step < int(dc["dc_stop"]):
        return _F32(pop["I_e"]) + _F32(dc["dc_amp"])
    return _F32(pop["I_e"])


def lif_step(V, Iex, Iin, ref, acc_ex, acc_in, pop, i_e=None) -> np.ndarray:
    """Advance one step in place (float32, same operation order as pp_lif_step);
    returns the boolean spike mask.  ``pop``: one population's record, or the per-neuron
    arrays of :func:`lif_params`; ``i_e``: this step's constant current (float32, scalar
    or per neuron; default ``pop["I_e"]``, see :func:`i_e_at`)."""
    active = ref == 0
    i_e = _F32(pop["I_e"]) if i_e is None else i_e
    v = _F32(pop["P20"]) * i_e + _F32(pop["P22"]) * V
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


def _step_words(pop, seed: int, step, tag: int = TAG_POISSON):
    """The four Philox words of every neuron of ``pop`` at ``step`` (shape (4, n)), or at
    each of a 1-D array of steps (shape (4, len(step), n): one Philox call for many
    steps): counter (neuron, step lo, step hi, tag), key (seed, the population's stream)."""
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
    return philox_words(c0, lo, hi, tag, seed, pop["stream"])


def poisson_counts(pop, tables: np.ndarray, seed: int, step, k: int = 0) -> np.ndarray:
    """Counts of Poisson input ``k`` of ``pop`` for every neuron at ``step`` (int64, shape
    (n,)), or at each of a 1-D array of steps (shape (len(step), n))."""
    from .compile import poisson_slices
    lo, hi = poisson_slices(pop)[k]
    off = int(pop["poisson_offset"])
    return sampling.poisson_count(_step_words(pop, seed, step)[k], tables[off + lo:off + hi])


def poisson_input(pop, tables: np.ndarray, seed: int, step):
    """(ex, in): the Poisson input of every neuron of ``pop`` at ``step`` in fixed-point
    units by channel (int64, shape (n,), or (len(step), n) for a 1-D array of steps), the
    sum over its inputs of count x weight (twin of pp_poisson_input)."""
    from .compile import poisson_slices
    words = _step_words(pop, seed, step)
    shape = np.shape(words[0])
    acc = [np.zeros(shape, np.int64), np.zeros(shape, np.int64)]
    off = int(pop["poisson_offset"])
    for k, (lo, hi) in enumerate(poisson_slices(pop)):
        cnt = sampling.poisson_count(words[k], tables[off + lo:off + hi])
        acc[(int(pop["poisson_channels"]) >> k) & 1] += cnt * int(pop["poisson_w"][k])
    return acc[0], acc[1]


def source_spikes(pop, seed: int, step) -> np.ndarray:
    """Spikes of the Poisson source ``pop`` at ``step`` (bool, shape (n,)), or at each of a
    1-D array of steps (shape (len(step), n)) (twin of pp_source_spike)."""
    w0 = _step_words(pop, seed, step, TAG_SOURCE)[0]
    t = np.asarray(step, dtype=np.uint64)
    on = (t >= np.uint64(pop["src_start"])) & (t < np.uint64(pop["src_stop"]))
    return (w0 < np.uint32(pop["src_p"])) & (on if np.ndim(step) == 0 else on[:, None])


def array_spikes(pop, tables: np.ndarray, step: int, cursor: np.ndarray) -> np.ndarray:
    """Spikes of the spike-array population ``pop`` at ``step`` (bool, shape (n,));
    ``cursor`` (int32, shape (n,): each neuron's spikes so far, 0 at step 0) is advanced in
    place where a neuron spikes (twin of pp_array_spike)."""
    n, off = int(pop["n"]), int(pop["poisson_offset"])
    tab = tables[off:off + int(pop["poisson_len"])]          # a view (no copy per step)
    if int(pop["src_p"]):                 # one train all neurons share: row 0, steps at 2
        c, end, base = int(tab[0]) + cursor.astype(np.int64), int(tab[1]), 2
    else:
        c, end, base = tab[:n].astype(np.int64) + cursor, tab[1:n + 1], n + 1
    live = np.flatnonzero(c < end)
    spk = np.zeros(n, dtype=bool)
    spk[live] = tab[base + c[live]] == step
    cursor[spk] += 1
    return spk
