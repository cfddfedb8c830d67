"""Exact samplers: gcc-compiled header == NumPy twin bit for bit (>= 1e6 draws each),
and each sampler's distribution against theory.

Significance: every statistical test below uses a fixed seed and rejects at
alpha = 1e-4, so a correct sampler fails one given test with probability 1e-4
(the seeds are fixed, so the outcome is deterministic; the level states how
unusual a failure would be, not a flake rate)."""
import ctypes

import numpy as np
import pytest
from scipy import stats

from pyproc import sampling
from conftest import ptr

N = 1_000_000
ALPHA = 1e-4


@pytest.fixture(scope="module")
def words():
    return np.random.default_rng(7).integers(0, 2 ** 32, size=N, dtype=np.uint32)


def _call_f64(fn, x):
    x = np.ascontiguousarray(x, np.float64)
    out = np.full(x.shape, np.nan)
    fn(ctypes.c_size_t(x.size), ptr(x), ptr(out))
    return out


def test_log_bits(shim, words):
    x = sampling.u01(words)
    x = np.concatenate([x, np.random.default_rng(1).random(1000) * 1e6 + 1e-3, [1.0, 0.5, 2.0]])
    c = _call_f64(shim.shim_log, x)
    np.testing.assert_array_equal(c.view(np.uint64), sampling.pp_log(x).view(np.uint64))
    # accuracy: within 1 ulp-ish of libm
    assert np.max(np.abs(c - np.log(x)) / np.maximum(np.abs(np.log(x)), 1e-300)) < 4e-16


def test_quantile_bits_and_accuracy(shim, words):
    p = sampling.u01(words)
    c = _call_f64(shim.shim_quantile, p)
    np.testing.assert_array_equal(c.view(np.uint64), sampling.norm_quantile(p).view(np.uint64))
    # Acklam: relative error < 1.15e-9 (absolute < 1e-8 over the 32-bit range)
    assert np.max(np.abs(c - stats.norm.ppf(p))) < 1e-8


@pytest.mark.parametrize("mean,sd,a", [(87.8, 8.78, 0.0), (1.5, 0.75, 0.1), (0.75, 0.375, 0.1)])
def test_trunc_normal_bits_and_distribution(shim, words, mean, sd, a):
    lo, width = sampling.trunc_bounds(mean, sd, a)
    out = np.full(N, np.nan)
    w = np.ascontiguousarray(words)
    shim.shim_trunc_normal(ctypes.c_size_t(N), ptr(w), ctypes.c_double(mean), ctypes.c_double(sd),
                           ctypes.c_double(lo), ctypes.c_double(width), ptr(out))
    ref = sampling.trunc_normal(words, mean, sd, lo, width)
    np.testing.assert_array_equal(out.view(np.uint64), ref.view(np.uint64))
    assert out.min() >= a
    d = stats.truncnorm((a - mean) / sd, np.inf, loc=mean, scale=sd)
    assert stats.kstest(out, d.cdf).pvalue > ALPHA


@pytest.mark.parametrize("p", [0.1, 0.01, 0.5, 1.0])
def test_geometric_bits_and_distribution(shim, words, p):
    log1mp = -np.inf if p == 1.0 else np.log1p(-p)
    cap = 1 << 20
    out = np.full(N, -1, np.int64)
    w = np.ascontiguousarray(words)
    shim.shim_geometric(ctypes.c_size_t(N), ptr(w), ctypes.c_double(log1mp), ctypes.c_uint32(cap),
                        ptr(out))
    np.testing.assert_array_equal(out, sampling.geometric_skip(words, log1mp, cap))
    if p == 1.0:
        assert (out == 0).all()
        return
    # chi-square against Geometric(p) failures (scipy's geom counts trials: k+1)
    kmax = int(stats.geom.ppf(1 - 1e-4, p))
    obs = np.bincount(np.minimum(out, kmax), minlength=kmax + 1)
    probs = stats.geom.pmf(np.arange(1, kmax + 1), p)
    probs = np.append(probs, 1 - probs.sum())
    assert stats.chisquare(obs, probs * N).pvalue > ALPHA


def test_geometric_p0_is_never():
    assert (sampling.geometric_skip(np.arange(10, dtype=np.uint32), 0.0, 128) == 128).all()


def test_uniform_int_bits_and_distribution(shim, words):
    n = 1000
    out = np.zeros(N, np.uint32)
    w = np.ascontiguousarray(words)
    shim.shim_uniform_int(ctypes.c_size_t(N), ptr(w), ctypes.c_uint32(n), ptr(out))
    np.testing.assert_array_equal(out, sampling.uniform_int(words, n))
    assert out.max() < n
    assert stats.chisquare(np.bincount(out, minlength=n)).pvalue > ALPHA


@pytest.mark.parametrize("mean", [0.03, 1.6, 17.5, 210.0])
def test_poisson_bits_and_distribution(shim, words, mean):
    T = np.ascontiguousarray(sampling.poisson_table(mean))
    assert (np.diff(T.astype(np.int64)) >= 0).all()
    out = np.full(N, -1, np.int64)
    w = np.ascontiguousarray(words)
    shim.shim_poisson(ctypes.c_size_t(N), ptr(w), ptr(T), ctypes.c_uint32(T.size), ptr(out))
    np.testing.assert_array_equal(out, sampling.poisson_count(words, T))
    lo, hi = int(stats.poisson.ppf(1e-5, mean)), int(stats.poisson.ppf(1 - 1e-5, mean))
    k = np.arange(lo, hi + 1)
    obs = np.array([np.sum(out <= lo)] + [np.sum(out == x) for x in k[1:-1]] + [np.sum(out >= hi)])
    probs = np.concatenate(([stats.poisson.cdf(lo, mean)], stats.poisson.pmf(k[1:-1], mean),
                            [stats.poisson.sf(hi - 1, mean)]))
    assert stats.chisquare(obs, probs / probs.sum() * N).pvalue > ALPHA
    assert abs(out.mean() - mean) < 5 * np.sqrt(mean / N)


def test_poisson_table_bad_mean():
    with pytest.raises(ValueError, match="Poisson mean"):
        sampling.poisson_table(float("nan"))
    assert sampling.poisson_table(0.0).size == 0


def test_u01_open_interval():
    u = sampling.u01(np.array([0, 2 ** 32 - 1], np.uint32))
    assert 0.0 < u[0] < 1e-9 and 1.0 - 1e-9 < u[1] < 1.0
