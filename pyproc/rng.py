"""Philox4x32-10 in NumPy: the bit-exact twin of ``kernels/philox.cuh``.

Counter layout (a file format: changing it changes every network; mirrored
from the header)::

    key     = (seed: uint32, stream id: uint32)
    counter = (c0, c1, c2, c3 = purpose tag)

    purpose              tag  c0            c1            c2        words used
    pairwise_bernoulli    1   pre neuron    segment       j // D    draw j: words (j % D) * W ..
                                                                  skip, [weight], [delay]
    fixed number rows     2   pre neuron    synapse j     0         w0 target, w1 weight, w2 delay
    Poisson input         3   post neuron   step (lo 32)  step hi   wk count of input k
    initial state         4   neuron        0             0         w0 V_m
    row lengths           5   (host only: NumPy Philox keyed by seed, stream id and tag 5)
    Poisson source        6   neuron        step (lo 32)  step hi   w0: spike iff w0 < p 2^32

pairwise_bernoulli: W = 1 + (weight random) + (delay random) words per draw and
D = 2 draws per call when W <= 2, else 1 (connectivity.bernoulli_words_per_draw);
W = 3 is one call per draw with w0 skip, w1 weight, w2 delay.  Neuron indices are local to their
population.  Stream ids come from names
(:func:`stream_id`) or explicit ids, never from launch layout or the order in
which projections were declared.
"""
from __future__ import annotations

import functools

import numpy as np

__all__ = ["philox4x32_10", "stream_id", "TAG_BERNOULLI", "TAG_FIXED", "TAG_POISSON",
           "TAG_INIT", "TAG_ROWLEN", "TAG_SOURCE", "host_generator"]

# Round multipliers (Salmon et al. 2011; Random123 philox.h).
PHILOX_M0 = np.uint64(0xD2511F53)
PHILOX_M1 = np.uint64(0xCD9E8D57)
# Weyl key bumps: golden ratio and sqrt(3) - 1.
PHILOX_W0 = np.uint32(0x9E3779B9)
PHILOX_W1 = np.uint32(0xBB67AE85)
PHILOX_ROUNDS = 10

TAG_BERNOULLI = 1
TAG_FIXED = 2
TAG_POISSON = 3
TAG_INIT = 4
TAG_ROWLEN = 5
TAG_SOURCE = 6

_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


def philox4x32_10(counter, key) -> np.ndarray:
    """Philox4x32-10 of ``counter`` (uint32, shape (..., 4)) under ``key``
    (uint32, shape (..., 2)); broadcasts; returns uint32 of shape (..., 4)."""
    counter = np.asarray(counter, dtype=np.uint32)
    key = np.asarray(key, dtype=np.uint32)
    if counter.shape[-1:] != (4,) or key.shape[-1:] != (2,):
        raise ValueError("philox4x32_10: counter must have shape (..., 4) and key (..., 2), "
                         f"got {counter.shape} and {key.shape}")
    c0, c1, c2, c3 = (counter[..., i] for i in range(4))
    k0, k1 = key[..., 0], key[..., 1]
    return np.stack(_philox(c0, c1, c2, c3, k0, k1), axis=-1)


@functools.lru_cache(maxsize=4096)
def _round_keys(k0: int, k1: int):
    """The ten round keys of one (seed, stream) key, as uint64 scalars."""
    return tuple((np.uint64((k0 + r * int(PHILOX_W0)) & 0xFFFFFFFF),
                  np.uint64((k1 + r * int(PHILOX_W1)) & 0xFFFFFFFF))
                 for r in range(PHILOX_ROUNDS))


def _philox(c0, c1, c2, c3, k0, k1):
    """Word-wise Philox on broadcastable uint32 arrays (the hot path): all four words in
    uint64 arrays updated in place (10 array operations per round, no temporaries), the
    round keys precomputed when the key is one (seed, stream) pair."""
    shape = np.broadcast_shapes(*(np.shape(a) for a in (c0, c1, c2, c3, k0, k1)))

    def words(a):                      # a fresh uint64 array of the broadcast shape
        if np.ndim(a) == 0:
            return np.full(shape, int(np.uint32(a)), dtype=np.uint64)
        return np.broadcast_to(np.asarray(a, dtype=np.uint32), shape).astype(np.uint64)

    c0, c1, c2, c3 = words(c0), words(c1), words(c2), words(c3)
    if np.ndim(k0) == 0 and np.ndim(k1) == 0:
        keys = _round_keys(int(np.uint32(k0)), int(np.uint32(k1)))
    else:
        K0, K1 = words(k0), words(k1)
        keys = [((K0 + np.uint64(r * int(PHILOX_W0))) & _MASK32,
                 (K1 + np.uint64(r * int(PHILOX_W1))) & _MASK32) for r in range(PHILOX_ROUNDS)]
    p0 = np.empty(shape, np.uint64)
    p1 = np.empty(shape, np.uint64)
    for kr0, kr1 in keys:
        np.multiply(c0, PHILOX_M0, out=p0)
        np.multiply(c2, PHILOX_M1, out=p1)
        np.right_shift(p1, _SHIFT32, out=c0)     # c0' = hi(M1 c2) ^ c1 ^ k0
        c0 ^= c1
        c0 ^= kr0
        np.bitwise_and(p1, _MASK32, out=c1)      # c1' = lo(M1 c2)
        np.right_shift(p0, _SHIFT32, out=c2)     # c2' = hi(M0 c0) ^ c3 ^ k1
        c2 ^= c3
        c2 ^= kr1
        np.bitwise_and(p0, _MASK32, out=c3)      # c3' = lo(M0 c0)
    return c0.astype(np.uint32), c1.astype(np.uint32), c2.astype(np.uint32), c3.astype(np.uint32)


def philox_words(c0, c1, c2, tag, seed, stream):
    """The four output words for counters (c0, c1, c2, tag) under key (seed, stream)."""
    return _philox(c0, c1, c2, np.uint32(tag), np.uint32(seed), np.uint32(stream))


def stream_id(name: str) -> int:
    """Stable 32-bit stream id of a name: FNV-1a over its UTF-8 bytes."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"stream_id: name must be a non-empty string, got {name!r}")
    h = 0x811C9DC5
    for b in name.encode("utf-8"):
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def host_generator(seed: int, stream: int, tag: int) -> np.random.Generator:
    """NumPy Generator for host-only draws (row lengths), keyed like the kernels' streams.

    Its output is fixed for a given NumPy version; the GPU never recomputes it
    (it reads the table), so CPU and GPU always agree."""
    key = np.array([(int(seed) & 0xFFFFFFFF) | ((int(stream) & 0xFFFFFFFF) << 32), int(tag)],
                   dtype=np.uint64)
    return np.random.Generator(np.random.Philox(key=key))
