"""Procedural connectivity in NumPy: the twin of ``pp_bernoulli_draw`` /
``pp_fixed_draw`` in ``kernels/network.cuh`` (pairwise_bernoulli draws share Philox
calls: :func:`bernoulli_words_per_draw`).

``rows(cnet, k, pre)`` regenerates, vectorised, every synapse of the given
presynaptic neurons (local indices) of projection k and returns
``(row, target, weight, delay)``: the position of the source in ``pre``,
target (local to the target population), weight in fixed-point units and
delay in steps.  Materialising all rows gives the stored (SciPy) form.
Truncated-normal weights / delays and the geometric skip are integer samplers
on the sampler tables (:func:`pyproc.sampling.sampler_tables`), the same array
the kernels receive.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import scipy.sparse as sp

from . import sampling
from .compile import DIST_CONST, RULE_BERNOULLI, RULE_DECODER, CompiledNetwork, ring_index
from .rng import TAG_BERNOULLI, TAG_FIXED, philox_words

__all__ = ["rows", "fixed_rows_many", "ring_after", "weights_fixed", "delays_steps", "to_sparse", "Synapses",
           "bernoulli_words_per_draw"]

Synapses = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def weights_fixed(pj, r1: np.ndarray, tab=None) -> np.ndarray:
    """Fixed-point weights from word 1 (twin of pp_weight_fixed; ``tab``: the sampler
    tables, default :func:`pyproc.sampling.sampler_tables`)."""
    return _weights_of(_one(pj), np.zeros(np.shape(r1), np.intp), r1, tab)


def delays_steps(pj, r2: np.ndarray, tab=None) -> np.ndarray:
    """Delays in steps from word 2 (twin of pp_delay_steps; ``tab`` as weights_fixed)."""
    return _delays_of(_one(pj), np.zeros(np.shape(r2), np.intp), r2, tab)


def _one(pj) -> np.ndarray:
    """A projection record as a 1-element table."""
    return np.asarray(pj).reshape(1)


def _per_draw(pjs, name: str, q):
    """Field ``name`` of projection pjs[q] per draw: a scalar when there is one projection
    (no per-draw copy), else an array like q."""
    return pjs[name][0].item() if len(pjs) == 1 else pjs[name][q]


def _sampled(pjs, q, r, x: str, tab, finish):
    """Per draw r of projection pjs[q]: field ``x``_const where x (w: weight, d: delay) is
    constant, else ``finish(qr, z)`` of the truncated normal z of the draws that are not
    (one array pass whatever mix of constant and normal projections)."""
    r = np.asarray(r, dtype=np.uint32)
    out = np.empty(r.shape, np.int32)
    out[...] = _per_draw(pjs, x + "_const", q)
    rand = np.broadcast_to(_per_draw(pjs, x + "_kind", q) != DIST_CONST, r.shape)
    if rand.any():
        qr = q[rand]
        out[rand] = finish(qr, _trunc_normal(pjs, x, qr, r[rand], tab))
    return out


def _weights_of(pjs, q, r1, tab):
    """Fixed-point weights of draws r1 of projections pjs[q] (twin of pp_weight_fixed)."""
    return _sampled(pjs, q, r1, "w", tab, lambda qr, z: (
        np.asarray(_per_draw(pjs, "w_sign", qr), np.int64) * np.maximum(z, 0)).astype(np.int32))


def _delays_of(pjs, q, r2, tab):
    """Delays in steps of draws r2 of projections pjs[q] (twin of pp_delay_steps)."""
    return _sampled(pjs, q, r2, "d", tab, lambda qr, z: np.clip(
        z, 1, np.asarray(_per_draw(pjs, "d_max", qr), np.int64)).astype(np.int32))


def _trunc_normal(pjs, x: str, q, r, tab):
    return sampling.trunc_normal_fx(r, *(_per_draw(pjs, f"{x}_{f}", q)
                                         for f in ("plo", "pwidth", "c0", "b", "shift")), tab)


def rows(cnet: CompiledNetwork, k: int, pre, ordered: bool = True) -> Synapses:
    """All synapses of the rows ``pre`` (local source indices) of projection k, in the
    stored matrix's order (row, then target); ``ordered=False`` skips sorting the
    pairwise_bernoulli draws where the order does not matter (a simulation step's input
    is an integer sum)."""
    pj = cnet.projs[k]
    pre = np.asarray(pre, dtype=np.uint32).ravel()
    tab = sampling.sampler_tables()
    if pj["rule"] == RULE_BERNOULLI:
        return _bernoulli_rows(cnet.seed, pj, pre, tab, ordered)
    if pj["rule"] == RULE_DECODER:
        return _decoder_rows(cnet.seed, pj, pre, tab)
    return _fixed_rows(cnet.seed, pj, pre, cnet.rowlen_of(k)[pre], tab)


def bernoulli_words_per_draw(pj) -> int:
    """W: the 32-bit words a pairwise_bernoulli draw uses (skip, then the weight's and the
    delay's when they are random); one Philox call serves 2 draws when W <= 2, else 1
    (twin of pp_bernoulli_width / pp_bernoulli_shift)."""
    return 1 + int(pj["w_kind"] != DIST_CONST) + int(pj["d_kind"] != DIST_CONST)


def _bernoulli_rows(seed, pj, pre, tab, ordered: bool = True) -> Synapses:
    n_seg, width, n_post = int(pj["n_seg"]), int(pj["seg_width"]), int(pj["n_post"])
    if pj["log1mp"] == 0.0 or pre.size == 0:
        return (np.zeros(0, np.int64), np.zeros(0, np.uint32), np.zeros(0, np.int32),
                np.zeros(0, np.int32))
    # draw j of a segment: words (j % D) * W .. of Philox call (pre, seg, j // D)
    W = bernoulli_words_per_draw(pj)
    D = 2 if W <= 2 else 1
    # one lane per (row, segment); draws are taken in blocks of B per lane (the
    # expected count plus a margin, a multiple of D).  With few lanes the per-call
    # overhead rules, and a margin of 3 sd lets most lanes finish in one block; with
    # many (>= 1,024) the draws beyond a segment's end do, and a block of the mean + 3
    # leaves the rest to a second block (measured on the 2-core VM, p = 0.1, width 128:
    # 2 rows 0.44 vs 0.65 ms, 8 rows equal, 64 rows 10.6 vs 7.5 ms, 640 rows 0.30 vs
    # 0.22 s).  The synapses do not depend on B.
    lane_row = np.repeat(np.arange(pre.size, dtype=np.int64), n_seg)
    lane_seg = np.tile(np.arange(n_seg, dtype=np.int64), pre.size)
    seg_len = np.minimum(width, n_post - lane_seg * width)
    p = -np.expm1(float(pj["log1mp"]))
    mean = p * width
    sds = 3.0 if lane_row.size < 1024 else 0.0
    B = int(min(width + 1, mean + sds * np.sqrt(mean) + 3))
    B = -(-B // D) * D
    pos = np.full(lane_row.size, -1, dtype=np.int64)
    out = []
    j0 = 0
    alive = np.arange(lane_row.size)
    calls = np.arange(B // D, dtype=np.int64)
    while alive.size:
        src = pre[lane_row[alive]]
        words = np.stack(philox_words(src[:, None], lane_seg[alive].astype(np.uint32)[:, None],
                                      (j0 // D + calls).astype(np.uint32)[None, :],
                                      TAG_BERNOULLI, seed, pj["stream"]), axis=-1)
        # (lanes, calls, 4) -> (lanes, draws, W): the first D * W words of every call
        words = words[:, :, :D * W].reshape(alive.size, B, W)
        r0, rw, rd = words[:, :, 0], words[:, :, min(1, W - 1)], words[:, :, W - 1]
        step = 1 + sampling.geometric_skip(r0, int(pj["gmul"]), int(pj["gshift"]), width, tab)
        cpos = pos[alive][:, None] + np.cumsum(step, axis=1)
        hit = cpos < seg_len[alive][:, None]
        li, jb = np.nonzero(hit)
        a = alive[li]
        tgt = lane_seg[a] * width + cpos[li, jb]
        keep = np.ones(a.size, bool) if pj["autapses"] else tgt != pre[lane_row[a]]
        out.append((lane_row[a][keep], tgt[keep].astype(np.uint32),
                    weights_fixed(pj, rw[li, jb][keep], tab),
                    delays_steps(pj, rd[li, jb][keep], tab)))
        more = hit[:, -1]                  # still inside the segment after B draws
        pos[alive] = cpos[:, -1]
        alive = alive[more]
        j0 += B
    row, tgt, w, d = (np.concatenate([o[i] for o in out]) for i in range(4))
    if not ordered:
        return row, tgt, w, d
    order = np.lexsort((tgt, row))         # the order the stored matrix keeps
    return row[order], tgt[order], w[order], d[order]


def _decoder_rows(seed, pj, pre, tab) -> Synapses:
    nj = min(32, int(pj["n_post"]))
    bits = ((pre.astype(np.uint64)[:, None] + np.uint64(1)) >> np.arange(nj, dtype=np.uint64)[None, :]
            ) & np.uint64(1)
    row, j = np.nonzero(bits)
    r0, r1, r2, _ = philox_words(pre[row], j.astype(np.uint32), np.uint32(0), TAG_FIXED, seed,
                                 pj["stream"])
    return (row.astype(np.int64), j.astype(np.uint32), weights_fixed(pj, r1, tab),
            delays_steps(pj, r2, tab))


def _fixed_rows(seed, pj, pre, lens, tab) -> Synapses:
    _, row, tgt, w, d = fixed_rows_many(seed, _one(pj), pre, lens[None, :], tab)
    return row, tgt, w, d


def fixed_rows_many(seed: int, pjs: np.ndarray, pre, lens, tab=None):
    """All synapses of the rows ``pre`` of several fixed-number projections at once (one
    Philox call; the CPU backend's step): ``pjs`` their records (K,), ``lens`` their row
    lengths (K, pre.size).  Returns ``(proj, row, target, weight, delay)``, ``proj`` the
    position in ``pjs``; synapses in (proj, row, draw index) order."""
    pre = np.asarray(pre, dtype=np.uint32).ravel()
    lens = np.asarray(lens, dtype=np.int64).reshape(len(pjs), pre.size).ravel()
    total = int(lens.sum())
    qrow = np.repeat(np.arange(lens.size, dtype=np.int64), lens)
    q, row = np.divmod(qrow, max(pre.size, 1))
    start = np.cumsum(lens) - lens
    j = (np.arange(total, dtype=np.int64) - np.repeat(start, lens)).astype(np.uint32)
    src = pre[row]
    r0, r1, r2, _ = philox_words(src, j, np.uint32(0), TAG_FIXED, seed,
                                 _per_draw(pjs, "stream", q))
    no_aut = pjs["autapses"][q] == 0
    tgt = sampling.uniform_int(r0, pjs["n_post"][q].astype(np.int64) - no_aut)
    tgt = tgt + (no_aut & (tgt >= src)).astype(np.uint32)
    return q, row, tgt, _weights_of(pjs, q, r1, tab), _delays_of(pjs, q, r2, tab)


def ring_after(cnet: CompiledNetwork, spikes):
    """(delay ring, synapses): the NumPy twin of one propagation at step 0 -- every
    synapse of ``spikes`` ((population, local index) pairs) added into a zeroed delay ring
    (int64, ``cnet.ring_size`` entries, each population's [slot][channel][neuron] block at
    its ring_offset, slot = delay steps % ring_slots) -- and the number of synapses.  What
    a propagation kernel leaves in its int32 ring (the pyproc.kernels example)."""
    ring = np.zeros(cnet.ring_size, np.int64)
    layout = cnet.ring_layout()
    n = 0
    for pop, pre in np.asarray(spikes, dtype=np.int64).reshape(-1, 2):
        for k in np.flatnonzero(cnet.projs["src_pop"] == pop):
            _, tgt, w, d = rows(cnet, int(k), [int(pre)], ordered=False)
            np.add.at(ring, ring_index(layout, int(k), 0, tgt, d), w)
            n += tgt.size
    return ring, n


def to_sparse(cnet: CompiledNetwork, projection, chunk: Optional[int] = None):
    """Projection as ``(W, D)``: two ``scipy.sparse.csr_matrix`` of shape (n_pre, n_post)
    with identical structure, weights in pA and delays in ms.  Multapses stay separate
    entries (the matrices are not canonical: do not sum duplicates if you need them)."""
    k = projection if isinstance(projection, (int, np.integer)) else cnet.proj_index(projection)
    pj = cnet.projs[k]
    indptr, tgt, w, d = materialise(cnet, k, chunk)
    shape = (int(pj["n_pre"]), int(pj["n_post"]))
    W = sp.csr_matrix((w / pj["w_scale"], tgt, indptr), shape=shape)
    D = sp.csr_matrix((d * cnet.dt, tgt.copy(), indptr.copy()), shape=shape)
    return W, D


# synapses generated per call while a projection is materialised: rows() keeps ~100 bytes
# of temporaries per synapse, so a chunk of 4,096 rows of 1,600 synapses (the balanced
# network's E->E at 2e4 neurons) once needed 0.65 GB on top of the CSR
MATERIALISE_CHUNK_SYNAPSES = 2 ** 20


def materialise(cnet: CompiledNetwork, k: int, chunk: Optional[int] = None):
    """CSR arrays (indptr int64, targets uint32, weights int32, delays int32) of projection
    k, generated ``chunk`` rows at a time (default: about MATERIALISE_CHUNK_SYNAPSES
    synapses per chunk, at most 4,096 rows; the arrays do not depend on it)."""
    n_pre = int(cnet.projs[k]["n_pre"])
    if chunk is None:
        per_row = cnet.expected_synapses(k) / max(n_pre, 1)
        chunk = int(max(1, min(4096, MATERIALISE_CHUNK_SYNAPSES // max(per_row, 1.0))))
    counts = np.zeros(n_pre, dtype=np.int64)
    parts = []
    for a in range(0, n_pre, chunk):
        pre = np.arange(a, min(a + chunk, n_pre), dtype=np.uint32)
        row, t, w, d = rows(cnet, k, pre)
        counts[a:a + pre.size] = np.bincount(row, minlength=pre.size)
        parts.append((t, w, d))
    indptr = np.concatenate(([0], np.cumsum(counts)))
    cat = (lambda i, dt: np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, dt))
    return indptr, cat(0, np.uint32), cat(1, np.int32), cat(2, np.int32)
