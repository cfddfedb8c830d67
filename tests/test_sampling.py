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
    """One int32 array of intervals (knot, next knot - knot): Z (4096 of them, knots
    0..4096), L (2048, knots 0..2048), T (737, knots 0..737), at the even offsets of
    sampling.cuh; knots equal to the gcc-compiled exact functions, rounded to 2^-28 (z)
    and 2^-30 (log2); sampler_knots reads the same knots back."""
    S = sampling
    assert shim.shim_tables_len() == S.TABLES_LEN == tables.size == 2 * (4096 + 2048 + 737)
    assert shim.shim_ltab_offset() == S.LTAB_OFFSET == 8192 and S.ZTAB_OFFSET == 0
    assert S.TTAB_OFFSET == 12288 and S.TTAB_N == 737
    assert tables.dtype == np.int32 and not tables.flags.writeable
    assert tables.ctypes.data % 8 == 0                  # every interval 8-byte aligned
    assert S.sampler_tables() is S.sampler_tables()                     # built once

    def knots(off, n):                                  # straight from the intervals
        iv = tables[off:off + 2 * n].astype(np.int64).reshape(n, 2)
        assert np.all(iv[:, 1] > 0)                     # increasing knots
        return np.concatenate((iv[:, 0], iv[-1:, 0] + iv[-1:, 1]))
    Z = knots(S.ZTAB_OFFSET, S.ZTAB_N)
    L = knots(S.LTAB_OFFSET, S.LTAB_N)
    T = knots(S.TTAB_OFFSET, S.TTAB_N)
    for got, want in zip(S.sampler_knots(np.array(tables)), (Z, L, T)):
        np.testing.assert_array_equal(got, want)
    assert all(a is b for a, b in zip(S.sampler_knots(), S.sampler_knots(tables)))
    pk = np.concatenate(([2.0 ** -33], np.arange(1, 4096) / 4096.0))
    zc = _call_f64(shim.shim_quantile, pk)
    np.testing.assert_array_equal(Z[:4096], np.floor(zc * 2.0 ** 28 + 0.5).astype(np.int64))
    assert Z[4096] == -Z[0] and Z[2048] == 0 and np.all(np.diff(Z) > 0)
    lc = _call_f64(shim.shim_log, 1.0 + np.arange(2049) / 2048.0) / S.LN2
    np.testing.assert_array_equal(L, np.floor(lc * 2.0 ** 30 + 0.5).astype(np.int64))
    assert L[0] == 0 and L[2048] == 2 ** 30 and np.all(np.diff(L) > 0)
    t = np.arange(S.TTAB_N + 1)
    tc = _call_f64(shim.shim_quantile, np.ldexp(1.0 + (t % 32) / 32.0, t // 32 - 32))
    np.testing.assert_array_equal(T, np.floor(tc * 2.0 ** 28 + 0.5).astype(np.int64))
    assert T[640] == Z[1] and np.all(np.diff(T) > 0)       # p = 2^-12 in both tables


def _quantile_c(shim, P, tables):
    P = np.ascontiguousarray(P, np.uint32)
    out = np.zeros(P.size, np.int32)
    shim.shim_quantile_fx(ctypes.c_size_t(P.size), ptr(P), ptr(tables), ptr(out))
    return out


def test_quantile_fx_bits_and_accuracy(shim, words, tables):
    edges = np.array([0, 1, 2, 31, 32, 33, 2 ** 20 - 1, 2 ** 20, 2 ** 31, 4095 * 2 ** 20 - 1,
                      4095 * 2 ** 20, 2 ** 32 - 2, 2 ** 32 - 1], dtype=np.uint64)
    P = np.concatenate([words, (np.arange(4096, dtype=np.uint64) << np.uint64(20)).astype(np.uint32),
                        np.arange(1 << 16, dtype=np.uint32), np.uint32(2 ** 32 - 1)
                        - np.arange(1 << 16, dtype=np.uint32), edges.astype(np.uint32)])
    c = _quantile_c(shim, P, tables)
    np.testing.assert_array_equal(c, sampling.quantile_fx(P))
    np.testing.assert_array_equal(c, sampling.quantile_fx(P, tables))
    # the documented accuracy (sampling.cuh), on the draws and a fine grid of probabilities
    grid = np.unique(np.concatenate([P[P > 0], np.linspace(1, 2 ** 32 - 1, 1_000_001)
                                     .astype(np.uint32)]))
    p = grid.astype(np.float64) / 2.0 ** 32
    err = np.abs(sampling.quantile_fx(grid) / 2.0 ** 28 - stats.norm.ppf(p))
    for lo, bound in ((2.0 ** -9, 5e-4), (0.01, 2.5e-5), (0.1, 3.3e-7)):
        assert err[(p >= lo) & (p <= 1.0 - lo)].max() < bound, lo
    tails = (p < 2.0 ** -9) | (p >= 1.0 - 2.0 ** -9)
    assert tails[:N].sum() > 200 and err[tails].max() < 4e-5
    # monotone in P, symmetric tails, P = 0 as P = 1
    q = np.sort(P)
    assert np.all(np.diff(sampling.quantile_fx(q)) >= 0)
    low = np.arange(1, 2 ** 20 + 1, dtype=np.uint64)
    np.testing.assert_array_equal(sampling.quantile_fx(low.astype(np.uint32)),
                                  -sampling.quantile_fx((2 ** 32 - low).astype(np.uint32)))
    assert c[-13] == c[-12] == tables[sampling.TTAB_OFFSET]       # P = 0 and 1: z(2^-32)


def test_quantile_density_near_the_tails():
    """The density the table quantile samples is constant on each interval; it stays
    within a factor 1.06 of the normal's on every equal-probability interval used
    (8..4087) and within 1.02 on the tail table's, and the full-scale microcircuit's
    delays (1.5 +- 0.75 ms, dt 0.1 ms, its largest projection's 4.55e7 synapses) pass a
    chi-square test against the truncated normal: the expected excess of the statistic
    over its degrees of freedom is < 3 (the sampled distribution exactly: the sampler is
    monotone in its 32-bit word, so the words giving at most k steps are found by
    bisection).  With the tail table below 2^-12 only, intervals 1..3 sampled
    0.74-1.41 times the density, one delay step was 15 % too frequent and the excess was
    158 (a certain rejection at the validation's alpha of ~5e-5)."""
    S = sampling
    z, _, T = S.sampler_knots()
    zs, ts = z / 2.0 ** 28, T / 2.0 ** 28

    def ratio(a, b, mass):
        dens = mass / (b - a)
        fa, fb = stats.norm.pdf(a), stats.norm.pdf(b)
        return np.max(np.maximum.reduce([dens / fa, dens / fb, fa / dens, fb / dens]))
    i = np.arange(S.ZTAB_TAIL, S.ZTAB_N - S.ZTAB_TAIL)
    assert ratio(zs[i], zs[i + 1], 1.0 / S.ZTAB_N) < 1.06
    t = np.arange(S.TTAB_N - 1)
    pk = np.ldexp(1.0 + (np.arange(S.TTAB_N) % 32) / 32.0, np.arange(S.TTAB_N) // 32 - 32)
    assert ratio(ts[t], ts[t + 1], np.diff(pk)) < 1.02
    lo, width = S.trunc_bounds(1.5, 0.75, 0.1)
    params = S.trunc_normal_params(15.0, 7.5, lo, width)
    k_max = int(S.trunc_normal_fx(np.uint32(2 ** 32 - 1), *params))
    k = np.arange(1, k_max + 1)
    first, end = np.zeros(k.size, np.int64), np.full(k.size, 2 ** 32, np.int64)
    while np.any(first < end):                 # first word with more than k steps
        mid = (first + end) // 2
        more = np.maximum(1, S.trunc_normal_fx(np.minimum(mid, 2 ** 32 - 1).astype(np.uint32),
                                               *params)) > k
        end, first = np.where(more, mid, end), np.where(more, first, mid + 1)
    pmf = np.diff(np.concatenate(([0], first))) / 2.0 ** 32
    tn = stats.truncnorm((0.1 - 1.5) / 0.75, np.inf, loc=1.5, scale=0.75)
    th = np.diff(np.concatenate(([0.0], np.where(k >= k[-1], 1.0, tn.cdf((k + 0.5) * 0.1)))))
    n = 4.55e7
    m = th * n >= 5
    assert n * np.sum((pmf[m] - th[m]) ** 2 / th[m]) < 3.0


def _tn_c(shim, words, params, tables):
    plo, pw, c0, b, shift = params
    out = np.zeros(N, np.int64)
    w = np.ascontiguousarray(words)
    shim.shim_trunc_normal_fx(ctypes.c_size_t(N), ptr(w), ctypes.c_uint32(plo),
                              ctypes.c_uint32(pw), ctypes.c_int64(c0), ctypes.c_int32(b),
                              ctypes.c_uint32(shift), ptr(tables), ptr(out))
    return out


@pytest.mark.parametrize("mean,sd,a", [(87.8 * 2 ** 16, 8.78 * 2 ** 16, 0.0),
                                       (1.5 * 1024, 0.75 * 1024, 0.1 * 1024),
                                       (351.2 * 2 ** 12, 35.12 * 2 ** 12, 0.0)])
def test_trunc_normal_fx_bits_and_distribution(shim, words, tables, mean, sd, a):
    """Fine units (weights in fixed point): the integers follow the truncated normal."""
    params = sampling.trunc_normal_params(mean, sd, *sampling.trunc_bounds(mean, sd, a))
    out = _tn_c(shim, words, params, tables)
    np.testing.assert_array_equal(out, sampling.trunc_normal_fx(words, *params))
    assert out.min() >= np.floor(a)
    d = stats.truncnorm((a - mean) / sd, np.inf, loc=mean, scale=sd)
    assert stats.kstest(out, d.cdf).pvalue > ALPHA


@pytest.mark.parametrize("mean,sd,a", [(15.0, 7.5, 1.0), (7.5, 3.75, 1.0), (1.5, 0.75, 1.0)])
def test_trunc_normal_fx_rounds_to_steps(shim, words, tables, mean, sd, a):
    """Coarse units (delays in steps): P(k) = P(k - 1/2 <= X < k + 1/2) for the truncated
    normal X (round half up), chi-square."""
    params = sampling.trunc_normal_params(mean, sd, *sampling.trunc_bounds(mean, sd, a))
    out = _tn_c(shim, words, params, tables)
    np.testing.assert_array_equal(out, sampling.trunc_normal_fx(words, *params))
    assert out.min() >= 1
    d = stats.truncnorm((a - mean) / sd, np.inf, loc=mean, scale=sd)
    k = np.arange(1, int(mean + 5 * sd))
    probs = np.diff(d.cdf(np.concatenate(([a], k[1:] - 0.5, [np.inf]))))
    obs = np.bincount(np.minimum(out, k[-1]), minlength=k[-1] + 1)[1:]
    assert stats.chisquare(obs, probs / probs.sum() * N).pvalue > ALPHA


def test_trunc_normal_params_represent_mean_and_sd():
    for mean, sd in ((87.8 * 2 ** 16, 8.78 * 2 ** 16), (15.0, 7.5), (1e9, 1e8), (0.5, 0.0)):
        plo, pw, c0, b, shift = sampling.trunc_normal_params(mean, sd, 0.25, 0.5)
        assert (plo, pw) == (2 ** 30, 2 ** 31) and 0 <= b < 2 ** 31 and abs(c0) < 2 ** 61
        assert shift <= 62
        assert abs((c0 - 2 ** (shift - 1)) / 2.0 ** shift - mean) <= 2.0 ** -shift * (1 + mean)
        assert abs(b / 2.0 ** (shift - 28) - sd) <= 2.0 ** (28 - shift)
    # ties round up; z = 0 gives round(mean)
    plo, pw, c0, b, shift = sampling.trunc_normal_params(2.5, 1.0, 0.0, 1.0)
    assert (c0 + b * 0) >> shift == 3
    assert sampling.prob_fx(0.0, 1.0) == (0, 2 ** 32 - 1)


def test_neg_log2_accuracy(words):
    """-log2((r | 1) / 2^32) from the integer log2 table: the chord lies below log2, so the
    result is at least the exact value (less a rounding of 2^-30) and at most 4.5e-8
    above it; never below 1 in units of 2^-30."""
    r = np.concatenate([words, np.arange(1 << 12, dtype=np.uint32),
                        np.uint32(2 ** 32 - 1) - np.arange(1 << 12, dtype=np.uint32)])
    nl = sampling.neg_log2_fx(r).astype(np.float64) / 2.0 ** 30
    exact = -np.log2((r | np.uint32(1)).astype(np.float64) / 2.0 ** 32)
    err = nl - exact
    assert err.min() >= -2.0 ** -30 and err.max() <= 4.5e-8
    assert sampling.neg_log2_fx(np.array([2 ** 32 - 1], np.uint32))[0] >= 1


@pytest.mark.parametrize("p", [0.1, 0.01, 0.001, 0.5, 1.0, 0.0])
def test_geometric_bits_and_distribution(shim, words, tables, p):
    gmul, gshift = sampling.geometric_params(p)
    cap = 1 << 20
    out = np.full(N, -1, np.int64)
    w = np.ascontiguousarray(words)
    shim.shim_geometric(ctypes.c_size_t(N), ptr(w), ctypes.c_uint32(gmul), ctypes.c_uint32(gshift),
                        ctypes.c_uint32(cap), ptr(tables), ptr(out))
    np.testing.assert_array_equal(out, sampling.geometric_skip(words, gmul, gshift, cap))
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


@pytest.mark.parametrize("p", [0.1, 0.01, 0.001, 0.5, 0.05, 0.2, 1e-6])
def test_geometric_equals_float_inversion(words, p):
    """The integer skip equals floor(log(u) / log(1 - p)) in double for u = (r | 1) / 2^32
    except where the quotient lies within the log2 table's error (<= 4.5e-8 G, G =
    -1 / log2(1 - p)) of an integer: on 1e6 draws per p, at most that fraction (plus
    1e-5) differ, and then by one (1e-6: about 1 %; 0.1: none)."""
    gmul, gshift = sampling.geometric_params(p)
    u = (words | np.uint32(1)).astype(np.float64) / 2.0 ** 32
    ref = np.minimum(np.floor(np.log(u) / np.log1p(-p)), 1 << 30).astype(np.int64)
    out = sampling.geometric_skip(words, gmul, gshift, 1 << 30)
    G = -np.log(2.0) / np.log1p(-p)
    assert (out != ref).mean() <= 4.5e-8 * G + 1e-5 and np.abs(out - ref).max() <= 1


def test_geometric_params_encoding():
    for p in (0.5, 0.1, 1e-3, 1e-6, 1e-9, 0.999999, 1 - 1e-12):
        gmul, gshift = sampling.geometric_params(p)
        G = -np.log(2.0) / np.log1p(-p)
        assert 0 <= gshift <= 63 and gmul < 2 ** 28
        assert abs(gmul / 2.0 ** (gshift - 30) - G) <= G * 2.0 ** -26 + 2.0 ** (29 - gshift), p
    assert sampling.geometric_params(0.0) == (2 ** 28 - 1, 0)
    assert sampling.geometric_params(1.0) == (0, 0)
    # a p so small that every skip passes every segment: encoded as p = 0
    assert sampling.geometric_params(1e-300) == (2 ** 28 - 1, 0)
    assert sampling.geometric_params(5e-324) == (2 ** 28 - 1, 0)       # G = inf
    assert (sampling.geometric_skip(np.arange(10, dtype=np.uint32), 2 ** 28 - 1, 0, 128) == 128).all()


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
