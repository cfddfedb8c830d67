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


def test_sampler_tables_layout_and_knots(shim, tables):
    """One array [z (4097) | l (2049)], offsets as in sampling.cuh, knots equal to the
    gcc-compiled exact functions bit for bit."""
    S = sampling
    assert shim.shim_tables_len() == S.TABLES_LEN == tables.size == 6146
    assert shim.shim_ltab_offset() == S.LTAB_OFFSET == 4097 and S.ZTAB_OFFSET == 0
    assert tables.dtype == np.float64 and not tables.flags.writeable
    assert S.sampler_tables() is S.sampler_tables()                     # built once
    z = tables[S.ZTAB_OFFSET:S.ZTAB_OFFSET + S.ZTAB_N + 1]
    l = tables[S.LTAB_OFFSET:S.LTAB_OFFSET + S.LTAB_N + 1]
    pk = np.concatenate(([2.0 ** -33], np.arange(1, 4096) / 4096.0))
    zc = _call_f64(shim.shim_quantile, pk)
    np.testing.assert_array_equal(z[:4096].view(np.uint64), zc.view(np.uint64))
    assert z[4096] == -z[0] and z[2048] == 0.0 and np.all(np.diff(z) > 0)
    lc = _call_f64(shim.shim_log, 1.0 + np.arange(2049) / 2048.0)
    np.testing.assert_array_equal(l.view(np.uint64), lc.view(np.uint64))
    assert l[0] == 0.0 and l[2048] == S.LN2 == 6.93147180559945286227e-01


def _call_tab(fn, x, tab):
    x = np.ascontiguousarray(x, np.float64)
    out = np.full(x.shape, np.nan)
    fn(ctypes.c_size_t(x.size), ptr(x), ptr(tab), ptr(out))
    return out


def test_quantile_tab_bits_and_accuracy(shim, words, tables):
    p = np.concatenate([sampling.u01(words), np.arange(4097) / 4096.0,
                        [2.0 ** -33, 1.0 - 2.0 ** -33, 1e-300, 0.5, 1.0 + 2.0 ** -52]])
    c = _call_tab(shim.shim_quantile_tab, p, tables)
    np.testing.assert_array_equal(c.view(np.uint64), sampling.norm_quantile_tab(p).view(np.uint64))
    np.testing.assert_array_equal(c.view(np.uint64),
                                  sampling.norm_quantile_tab(p, tables).view(np.uint64))
    # the documented accuracy (sampling.cuh), on a fine grid and on the draws
    for lo, bound in ((2.0 ** -12, 1.6e-2), (2.0 ** -11, 5.5e-3), (0.01, 2.5e-5), (0.1, 3.2e-7)):
        q = np.concatenate([np.linspace(lo, 1.0 - lo, 1_000_001), p[(p >= lo) & (p <= 1 - lo)]])
        assert np.max(np.abs(sampling.norm_quantile_tab(q) - stats.norm.ppf(q))) < bound, lo
    # outermost intervals (p < 2^-12, p >= 1 - 2^-12): Acklam's quantile itself, bit for bit
    x = p * 4096.0
    tails = (x < 1.0) | (x >= 4095.0)
    assert tails[:N].sum() > 200
    np.testing.assert_array_equal(c[tails].view(np.uint64),
                                  _call_f64(shim.shim_quantile, p[tails]).view(np.uint64))
    assert np.all(np.abs(c[:N]) <= -tables[0])          # z[0] = Acklam(2^-33): the extreme
    # monotone in p
    q = np.sort(p[(p >= 0) & (p <= 1)])
    assert np.all(np.diff(sampling.norm_quantile_tab(q)) >= 0)


def test_log_tab_bits_and_accuracy(shim, words, tables):
    x = np.concatenate([sampling.u01(words), sampling.u01(np.arange(1 << 16, dtype=np.uint32)),
                        sampling.u01(np.uint32(2 ** 32 - 1) - np.arange(1 << 16, dtype=np.uint32)),
                        1.0 + np.arange(2049) / 2048.0, 0.5 + np.arange(2049) / 4096.0,
                        np.random.default_rng(2).random(1000) * 1e6 + 1e-3])
    c = _call_tab(shim.shim_log_tab, x, tables)
    np.testing.assert_array_equal(c.view(np.uint64), sampling.log_tab(x).view(np.uint64))
    err = c - np.log(x)
    # the chord lies below log: absolute error <= 2^-25 (3e-8), above only by rounding
    assert err.min() >= -2.0 ** -25 and err.max() < 1e-14
    u = sampling.u01(words)
    assert np.all(sampling.log_tab(u) < 0.0)


@pytest.mark.parametrize("mean,sd,a", [(87.8, 8.78, 0.0), (1.5, 0.75, 0.1), (0.75, 0.375, 0.1)])
def test_trunc_normal_bits_and_distribution(shim, words, tables, mean, sd, a):
    lo, width = sampling.trunc_bounds(mean, sd, a)
    out = np.full(N, np.nan)
    w = np.ascontiguousarray(words)
    shim.shim_trunc_normal(ctypes.c_size_t(N), ptr(w), ctypes.c_double(mean), ctypes.c_double(sd),
                           ctypes.c_double(lo), ctypes.c_double(width), ptr(tables), ptr(out))
    ref = sampling.trunc_normal(words, mean, sd, lo, width)
    np.testing.assert_array_equal(out.view(np.uint64), ref.view(np.uint64))
    assert out.min() >= a
    d = stats.truncnorm((a - mean) / sd, np.inf, loc=mean, scale=sd)
    assert stats.kstest(out, d.cdf).pvalue > ALPHA


def _inv_log1mp(p):
    """As compile.py encodes it: 1 / log(1 - p), -inf for p = 0, -0 for p = 1."""
    return -np.inf if p == 0.0 else 1.0 / (-np.inf if p == 1.0 else np.log1p(-p))


@pytest.mark.parametrize("p", [0.1, 0.01, 0.001, 0.5, 1.0, 0.0])
def test_geometric_bits_and_distribution(shim, words, tables, p):
    inv = _inv_log1mp(p)
    cap = 1 << 20
    out = np.full(N, -1, np.int64)
    w = np.ascontiguousarray(words)
    shim.shim_geometric(ctypes.c_size_t(N), ptr(w), ctypes.c_double(inv), ctypes.c_uint32(cap),
                        ptr(tables), ptr(out))
    np.testing.assert_array_equal(out, sampling.geometric_skip(words, inv, cap))
    if p == 1.0:
        assert (out == 0).all()
        return
    if p == 0.0:
        assert (out == cap).all()
        return
    # chi-square against Geometric(p) failures (scipy's geom counts trials: k+1)
    kmax = int(stats.geom.ppf(1 - 1e-4, p))
    obs = np.bincount(np.minimum(out, kmax), minlength=kmax + 1)
    probs = stats.geom.pmf(np.arange(1, kmax + 1), p)
    probs = np.append(probs, 1 - probs.sum())
    assert stats.chisquare(obs, probs * N).pvalue > ALPHA


def test_geometric_p0_is_never():
    assert (sampling.geometric_skip(np.arange(10, dtype=np.uint32), -np.inf, 128) == 128).all()


@pytest.mark.parametrize("p", [0.1, 0.01, 0.001, 0.5, 0.05, 0.2])
def test_geometric_multiply_equals_division(words, p):
    """The skip multiplies by the host's 1 / log(1 - p) instead of dividing by log(1 - p)
    (one double division less per draw on the GPU).  The two round differently only
    when the quotient lies within a few ulp of an integer: on 1e6 draws per p, not once,
    i.e. the same synapses as the division gave."""
    q_div = sampling.log_tab(sampling.u01(words)) / np.log1p(-p)
    old = np.where(q_div < (1 << 20), np.floor(q_div), 1 << 20).astype(np.int64)
    np.testing.assert_array_equal(sampling.geometric_skip(words, _inv_log1mp(p), 1 << 20), old)


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


@pytest.mark.parametrize("mean,sd,dt", [(1.5, 0.75, 0.1), (0.75, 0.375, 0.1), (10.3, 5.15, 0.1),
                                        (1.5, 0.75, 0.025), (3.0, 1.5, 1.0)])
def test_delay_in_steps_equals_division(words, mean, sd, dt):
    """Delays are sampled in steps (mean / dt and sd / dt from the host) instead of
    dividing every sample by dt: on 1e6 draws per case the same number of steps as
    round(sample_ms / dt) (they can differ only within a few ulp of a half step)."""
    lo, width = sampling.trunc_bounds(mean, sd, dt)
    old = sampling.round_nonneg(sampling.trunc_normal(words, mean, sd, lo, width) / dt)
    new = sampling.round_nonneg(sampling.trunc_normal(words, mean / dt, sd / dt, lo, width))
    np.testing.assert_array_equal(new, old)
