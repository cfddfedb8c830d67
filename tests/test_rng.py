"""Philox4x32-10: known answers, NumPy twin == gcc-compiled header, stable stream ids."""
import ctypes
import os

import numpy as np
import pytest

from pyproc.rng import philox_words, philox4x32_10, stream_id
from conftest import ROOT, ptr


def _kat():
    rows = []
    with open(os.path.join(ROOT, "tests", "data", "philox_kat.txt")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                w = [int(x, 16) for x in line.split()]
                rows.append((w[:4], w[4:6], w[6:10]))
    return rows


KAT = _kat()


def test_kat_file_has_random123_vectors():
    assert len(KAT) == 3
    assert KAT[0][2] == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_numpy_known_answers(ctr, key, expected):
    out = philox4x32_10(np.array(ctr, np.uint32), np.array(key, np.uint32))
    assert out.tolist() == expected


def _shim_philox(shim, ctr, key):
    ctr = np.ascontiguousarray(ctr, dtype=np.uint32)
    key = np.ascontiguousarray(key, dtype=np.uint32)
    out = np.full(ctr.shape, 0xCACACACA, dtype=np.uint32)  # sentinel: unwritten is visible
    shim.shim_philox(ctypes.c_size_t(ctr.shape[0]), ptr(ctr), ptr(key), ptr(out))
    return out


def test_gcc_header_known_answers(shim):
    ctr = np.array([k[0] for k in KAT], np.uint32)
    key = np.array([k[1] for k in KAT], np.uint32)
    assert _shim_philox(shim, ctr, key).tolist() == [k[2] for k in KAT]


def test_gcc_equals_numpy_on_1e6_random_counters(shim):
    rng = np.random.default_rng(20261127)
    ctr = rng.integers(0, 2 ** 32, size=(1_000_000, 4), dtype=np.uint32)
    key = rng.integers(0, 2 ** 32, size=(1_000_000, 2), dtype=np.uint32)
    np.testing.assert_array_equal(_shim_philox(shim, ctr, key), philox4x32_10(ctr, key))


def test_gcc_equals_numpy_with_one_key(shim):
    """The hot path's precomputed round keys (one (seed, stream) key for many counters,
    scalar counter words broadcast) against the header."""
    rng = np.random.default_rng(5)
    c0 = rng.integers(0, 2 ** 32, size=100_000, dtype=np.uint32)
    key = np.array([0xDEADBEEF, 0x2162A226], np.uint32)
    ctr = np.stack([c0, np.full_like(c0, 7), np.full_like(c0, 0xFFFFFFFF), np.full_like(c0, 3)],
                   axis=-1)
    want = _shim_philox(shim, ctr, np.broadcast_to(key, (c0.size, 2)))
    got = np.stack(philox_words(c0, np.uint32(7), np.uint32(0xFFFFFFFF), 3, key[0], key[1]),
                   axis=-1)
    np.testing.assert_array_equal(got, want)


def test_broadcasting_and_shape_errors():
    out = philox4x32_10(np.zeros((5, 4), np.uint32), np.zeros(2, np.uint32))
    assert out.shape == (5, 4) and (out == out[0]).all()
    with pytest.raises(ValueError, match="counter must have shape"):
        philox4x32_10(np.zeros(3, np.uint32), np.zeros(2, np.uint32))


def test_stream_id_is_fnv1a_and_stable():
    # FNV-1a 32-bit reference values
    assert stream_id("a") == 0xE40C292C
    assert stream_id("foobar") == 0xBF9CF968
    assert stream_id("E->I") == 0x2162A226
    assert stream_id("E->I") != stream_id("I->E")
    with pytest.raises(ValueError):
        stream_id("")
