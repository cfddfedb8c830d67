"""Exact samplers in NumPy: bit-for-bit twins of ``kernels/sampling.cuh``.

The samplers a synapse uses are integer arithmetic on the sampler tables; the
exact functions that build the tables (:func:`pp_log`, :func:`norm_quantile`)
use only IEEE-754 double ``+ - * /`` and ``sqrt``, in the order the C code
writes them.  So every result equals the gcc- and nvcc-compiled header
(tests/test_sampling.py checks >= 1e6 draws of each).

Sampler tables
--------------
The kernels' hot samplers are integer arithmetic on three tables of increasing knots
held in one int32 array, :func:`sampler_tables` (``PP_TABLES_LEN`` = 13,570 int32,
53 KiB, built here once from the exact twins :func:`norm_quantile` and :func:`pp_log`,
and handed unchanged to the gcc shim and to the CUDA backend, which uploads it as the
device buffer ``sampler_tables``).  Each table is stored as intervals, pairs (knot,
next knot - knot), so that the kernels read an interval with one 8-byte load::

    Z[k] = round(norm_quantile(k / 4096) * 2^28), k = 1..4095; Z[0] = round(norm_quantile(2^-33)
           * 2^28), Z[4096] = -Z[0] (end points of the tails; layout only, not read):
           pairs k = 0..4095 at ZTAB_OFFSET = 0
    L[k] = round(pp_log(1 + k / 2048) / ln 2 * 2^30), k = 0..2048: pairs k = 0..2047 at
           LTAB_OFFSET = 8192
    T[t] = round(norm_quantile(2^n (1 + j / 32) / 2^32) * 2^28), t = 32 n + j = 0..737 (the
           lower tail, 32 knots per octave): pairs t = 0..736 at TTAB_OFFSET = 12288

:func:`sampler_knots` gives the three knot arrays (what the twins interpolate in).

:func:`quantile_fx` (piecewise linear on 4096 equal-probability intervals of a 32-bit
fixed-point probability; the 8 outermost intervals on either side, probability 2^-8
together, from the tail table, 32 intervals per octave of p, so the tails stay normal:
the sampled density is within a factor 1.06 of the normal's everywhere) is what
:func:`trunc_normal_fx` uses; the log2 table is what :func:`geometric_skip` uses.
The constants a projection's sampler needs come from :func:`trunc_normal_params` and
:func:`geometric_params` (host, once per projection; stored in the projection table).
"""
from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special, stats

__all__ = ["u01", "uniform_int", "pp_log", "norm_quantile", "sampler_tables",
           "quantile_fx", "prob_fx", "trunc_prob_fx", "trunc_normal_fx", "trunc_normal_params",
           "trunc_bounds", "neg_log2_fx", "geometric_skip", "geometric_params", "poisson_table",
           "poisson_count", "round_nonneg", "sampler_knots", "ZTAB_N", "ZTAB_TAIL", "LTAB_N", "ZTAB_OFFSET",
           "LTAB_OFFSET",
           "TTAB_N", "TTAB_OFFSET", "TABLES_LEN", "LN2", "Z_FRAC", "L_FRAC"]

_TWO_M32 = 2.3283064365386963e-10   # 2^-32

LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
LG1, LG2, LG3, LG4, LG5, LG6, LG7 = (
    6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
    2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
    1.479819860511658591e-01)
SQRT2 = 1.41421356237309514547

# Acklam (2003) inverse normal CDF coefficients.
AK_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
        1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
AK_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
        6.680131188771972e+01, -1.328068155288572e+01)
AK_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
        -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
AK_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
        3.754408661907416e+00)
AK_PLOW = 0.02425

# Sampler tables (PP_* in kernels/sampling.cuh).
ZTAB_N = 4096                    # equal-probability intervals of the normal quantile
LTAB_N = 2048                    # intervals of log on [1, 2]
TTAB_N = 737                     # intervals of the lower tail, knots T[0..737]
ZTAB_TAIL = 8                    # Z intervals i < 8 and > 4087 come from the tail table
ZTAB_OFFSET = 0                  # Z intervals k = 0..4095, two int32 each
LTAB_OFFSET = 2 * ZTAB_N         # L intervals k = 0..2047 (8192)
TTAB_OFFSET = LTAB_OFFSET + 2 * LTAB_N   # T intervals t = 0..736 (12288)
TABLES_LEN = TTAB_OFFSET + 2 * TTAB_N    # 13762
LN2 = 6.93147180559945286227e-01
Z_FRAC = 28                      # Z: quantiles in units of 2^-28
L_FRAC = 30                      # L: log2 in units of 2^-30
_U01_MIN = 2.0 ** -33            # pp_u01(0), the smallest uniform


def u01(r):
    """(r + 0.5) / 2^32 as float64: exact, in (0, 1)."""
    return (np.asarray(r, dtype=np.uint32).astype(np.float64) + 0.5) * _TWO_M32


def uniform_int(r, n):
    """High word of r * n: uniform integer in [0, n) (n may be an array)."""
    r = np.asarray(r, dtype=np.uint32).astype(np.uint64)
    return ((r * np.asarray(n, dtype=np.uint64)) >> np.uint64(32)).astype(np.uint32)


def pp_log(x):
    """Natural log of positive normal doubles, fdlibm's algorithm (twin of pp_log)."""
    x = np.asarray(x, dtype=np.float64)
    bits = x.view(np.uint64)
    e = ((bits >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64) - 1023
    m = ((bits & np.uint64(0x000FFFFFFFFFFFFF)) | np.uint64(0x3FF0000000000000)).view(np.float64)
    big = m > SQRT2
    m = np.where(big, m * 0.5, m)
    e = np.where(big, e + 1, e)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (LG2 + w * (LG4 + w * LG6))
    t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)))
    r = t2 + t1
    hfsq = 0.5 * f * f
    dk = e.astype(np.float64)
    return dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f)


def _ak_tail(q):
    c1, c2, c3, c4, c5, c6 = AK_C
    d1, d2, d3, d4 = AK_D
    num = ((((c1 * q + c2) * q + c3) * q + c4) * q + c5) * q + c6
    den = (((d1 * q + d2) * q + d3) * q + d4) * q + 1.0
    return num / den


def norm_quantile(p):
    """Standard normal quantile by Acklam's approximation (twin of pp_norm_quantile)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.empty_like(p)
    lo = p < AK_PLOW
    hi = p > 1.0 - AK_PLOW
    mid = ~(lo | hi)
    if lo.any():
        out[lo] = _ak_tail(np.sqrt(-2.0 * pp_log(p[lo])))
    if hi.any():
        out[hi] = -_ak_tail(np.sqrt(-2.0 * pp_log(1.0 - p[hi])))
    if mid.any():
        a1, a2, a3, a4, a5, a6 = AK_A
        b1, b2, b3, b4, b5 = AK_B
        q = p[mid] - 0.5
        r = q * q
        num = (((((a1 * r + a2) * r + a3) * r + a4) * r + a5) * r + a6) * q
        den = ((((b1 * r + b2) * r + b3) * r + b4) * r + b5) * r + 1.0
        out[mid] = num / den
    return out


@functools.lru_cache(maxsize=1)
def _default_knots():
    pk = np.concatenate(([_U01_MIN], np.arange(1, ZTAB_N, dtype=np.float64) / float(ZTAB_N)))
    z = round_nonneg(norm_quantile(pk) * float(1 << Z_FRAC))
    Z = np.concatenate((z, -z[:1])).astype(np.int64)
    kl = np.arange(LTAB_N + 1, dtype=np.float64)
    L = round_nonneg(pp_log(1.0 + kl / float(LTAB_N)) / LN2 * float(1 << L_FRAC)).astype(np.int64)
    t = np.arange(TTAB_N + 1)
    pt = np.ldexp(1.0 + (t % 32) / 32.0, t // 32 - 32)            # exact
    T = round_nonneg(norm_quantile(pt) * float(1 << Z_FRAC)).astype(np.int64)
    for a in (Z, L, T):
        a.setflags(write=False)
    return Z, L, T


@functools.lru_cache(maxsize=1)
def sampler_tables() -> np.ndarray:
    """The sampler tables as one read-only int32 array, each table as intervals (knot,
    next knot - knot) (see the module docstring); built once from the exact twins,
    equal to what the header functions expect."""
    tab = np.empty(TABLES_LEN, dtype=np.int32)
    for knots, off, n in zip(_default_knots(), (ZTAB_OFFSET, LTAB_OFFSET, TTAB_OFFSET),
                             (ZTAB_N, LTAB_N, TTAB_N)):
        tab[off:off + 2 * n:2] = knots[:n]
        tab[off + 1:off + 2 * n:2] = np.diff(knots)       # increasing: >= 0, < 2^31
    tab.setflags(write=False)
    return tab


def sampler_knots(tab=None):
    """(Z, L, T): the knots of the three sampler tables (int64, 4097, 2049 and 642 of
    them) of ``tab`` (default :func:`sampler_tables`), read back from its intervals."""
    if tab is None or tab is sampler_tables():
        return _default_knots()
    tab = np.asarray(tab, dtype=np.int32)
    out = []
    for off, n in ((ZTAB_OFFSET, ZTAB_N), (LTAB_OFFSET, LTAB_N), (TTAB_OFFSET, TTAB_N)):
        k = tab[off:off + 2 * n:2].astype(np.int64)
        out.append(np.concatenate((k, k[-1:] + tab[off + 2 * n - 1])))
    return tuple(out)


_U64 = np.uint64


def _lerp_fx(t, k, f):
    """t[k] + floor((t[k+1] - t[k]) f / 2^32) for int64 knots t (increasing), int64 k and a
    uint64 position f < 2^32 (twin of pp_lerp_fx)."""
    t0 = t[k]
    return t0 + (((t[k + 1] - t0).astype(_U64) * f) >> _U64(32)).astype(np.int64)


def _tail_fx(P, T):
    """The lower-tail quantile for 1 <= P <= 2^23 (twin of pp_norm_tail_fx)."""
    c = 32 - np.frexp(P.astype(np.float64))[1].astype(np.int64)        # clz(P), exact
    m = (P.astype(_U64) << c.astype(_U64)) & _U64(0xFFFFFFFF)
    t = ((31 - c) << 5) | ((m >> _U64(26)) & _U64(31)).astype(np.int64)
    return _lerp_fx(T, t, (m << _U64(6)) & _U64(0xFFFFFFFF))


def quantile_fx(P, tab=None):
    """Standard normal quantile at the 32-bit fixed-point probability P / 2^32, in units
    of 2^-28 (int64), integer arithmetic: piecewise linear on 4096 equal-probability
    intervals; the 8 outermost on either side (probability 2^-8 together) from the tail
    table, 32 intervals per octave of p (twin of pp_norm_quantile_fx; ``tab``: the
    sampler tables, default :func:`sampler_tables`)."""
    z, _, T = sampler_knots(tab)
    P = np.asarray(P, dtype=np.uint32)
    i = (P >> np.uint32(20)).astype(np.int64)
    inner = (i >= ZTAB_TAIL) & (i <= ZTAB_N - 1 - ZTAB_TAIL)
    ii = np.where(inner, i, ZTAB_TAIL)
    out = np.asarray(_lerp_fx(z, ii, (P.astype(_U64) << _U64(12)) & _U64(0xFFFFFFFF)))
    low = i < ZTAB_TAIL
    if low.any():
        out[low] = _tail_fx(np.maximum(P[low], np.uint32(1)), T)
    high = i > ZTAB_N - 1 - ZTAB_TAIL
    if high.any():
        out[high] = -_tail_fx((np.uint64(1 << 32) - P[high].astype(_U64)).astype(np.uint32), T)
    return out


def trunc_prob_fx(r, plo: int, pwidth: int):
    """plo + floor((r * pwidth + floor(pwidth / 2)) / 2^32): the probability lo + u * width,
    u = (r + 1/2) / 2^32, as a 32-bit fixed-point probability (uint32)."""
    r = np.asarray(r, dtype=np.uint32).astype(_U64)
    pw = np.asarray(pwidth, dtype=_U64)
    x = (r * pw + (pw >> _U64(1))) >> _U64(32)
    return (np.asarray(plo, dtype=_U64) + x).astype(np.uint32)


def trunc_normal_fx(r, plo: int, pwidth: int, c0: int, b: int, shift: int, tab=None):
    """floor((c0 + b * quantile_fx(P)) / 2^shift) with P = :func:`trunc_prob_fx`: the
    truncated normal rounded to an integer of the caller's unit, int64 (twin of
    pp_trunc_normal_fx; the constants from :func:`trunc_normal_params`)."""
    z = quantile_fx(trunc_prob_fx(r, plo, pwidth), tab)
    return (np.asarray(c0, dtype=np.int64) + np.asarray(b, dtype=np.int64) * z) \
        >> np.asarray(shift, dtype=np.int64)


def prob_fx(lo: float, width: float):
    """(plo, pwidth): the probability interval [lo, lo + width] in units of 2^-32,
    rounded, with plo + pwidth <= 2^32 - 1."""
    top = (1 << 32) - 1
    plo = min(max(int(round(lo * 2.0 ** 32)), 0), top)
    phi = min(max(int(round((lo + width) * 2.0 ** 32)), plo), top)
    return plo, phi - plo


def trunc_normal_params(mean: float, sd: float, lo: float, width: float):
    """(plo, pwidth, c0, b, shift) of :func:`trunc_normal_fx` for mean + sd * z with z
    standard normal truncated to the probabilities [lo, lo + width] (from
    :func:`trunc_bounds`), mean and sd in the unit of the result: plo = lo * 2^32,
    pwidth = width * 2^32 (plo + pwidth <= 2^32 - 1), c0 = mean * 2^shift + 2^(shift-1)
    (round half up), b = sd * 2^(shift - 28); shift the largest <= 62 with b < 2^31 and
    |c0| < 2^61 (so b * z and c0 + b * z fit int64)."""
    plo, pwidth = prob_fx(lo, width)
    for k in range(62 - Z_FRAC, -Z_FRAC, -1):
        shift = Z_FRAC + k
        bs, cs = sd * 2.0 ** k, mean * 2.0 ** shift
        if not (0.0 <= bs < 2.0 ** 31 - 1 and abs(cs) < 2.0 ** 60):    # also inf, nan
            continue
        return plo, pwidth, int(round(cs)) + (1 << (shift - 1)), int(round(bs)), shift
    raise ValueError(f"mean {mean!r} and sd {sd!r} are out of the fixed-point sampler's "
                     "range (|mean| < 2^59, 0 <= sd < 2^58 in the unit of the result)")


def trunc_bounds(mean: float, sd: float, a: float, b: float = np.inf):
    """(lo, width) = (Phi(za), Phi(zb) - Phi(za)) for truncation to [a, b], computed once on the host."""
    lo = float(special.ndtr((a - mean) / sd))      # = stats.norm.cdf, without its overhead
    hi = float(special.ndtr((b - mean) / sd)) if np.isfinite(b) else 1.0
    return lo, hi - lo


def geometric_params(p: float):
    """(gmul, gshift) of :func:`geometric_skip` for pairwise_bernoulli(p): G = -1 / log2(1 - p)
    as gmul / 2^(gshift - 30) with gmul in [2^27, 2^28) where it can be; p = 0 is
    (2^28 - 1, 0) (never: every skip >= 2^28 - 1), p = 1 is (0, 0) (always)."""
    if p == 0.0:
        return (1 << 28) - 1, 0
    if p == 1.0:
        return 0, 0
    G = -LN2 / math.log1p(-p)
    if not G < 2.0 ** 57:              # also inf (a subnormal p): every skip passes a segment
        return (1 << 28) - 1, 0
    g = 27 - math.floor(math.log2(G))
    while g < 33 and G * 2.0 ** g < 2.0 ** 27:
        g += 1
    while G * 2.0 ** g >= 2.0 ** 28:
        g -= 1
    g = min(g, 33)
    return min(int(round(G * 2.0 ** g)), (1 << 28) - 1), 30 + g


def neg_log2_fx(r, tab=None):
    """-log2(u) * 2^30 for u = (r | 1) / 2^32 from the log2 table (uint64, >= 1): the
    integer logarithm of :func:`geometric_skip` (pp_geometric_skip's nl)."""
    L = sampler_knots(tab)[1]
    x = np.asarray(r, dtype=np.uint32) | np.uint32(1)
    c = 32 - np.frexp(x.astype(np.float64))[1].astype(np.int64)      # clz(x), exact
    m = (x.astype(_U64) << c.astype(_U64)) & _U64(0xFFFFFFFF)
    lm = _lerp_fx(L, ((m >> _U64(20)) & _U64(2047)).astype(np.int64),
                  (m << _U64(12)) & _U64(0xFFFFFFFF))
    return (((1 + c) << 30) - lm).astype(_U64)


def geometric_skip(r, gmul: int, gshift: int, cap: int, tab=None):
    """floor(-log2(u) * G), u = (r | 1) / 2^32, in integers with the log2 table, capped
    at ``cap`` (twin of pp_geometric_skip; the constants from :func:`geometric_params`)."""
    q = (neg_log2_fx(r, tab) * _U64(gmul)) >> _U64(gshift)
    return np.minimum(q, _U64(cap)).astype(np.int64)


def poisson_table(mean: float) -> np.ndarray:
    """Integer thresholds T[k] = floor(CDF(k) * 2^32), non-decreasing, for a Poisson
    count of the given mean; the table ends where the CDF reaches 1 - 2^-32."""
    if not np.isfinite(mean) or mean < 0:
        raise ValueError(f"Poisson mean must be finite and >= 0, got {mean}")
    if mean == 0:
        return np.zeros(0, dtype=np.uint32)
    kmax = int(mean + 20.0 * np.sqrt(mean) + 40)
    cdf = stats.poisson.cdf(np.arange(kmax + 1), mean)
    t = np.floor(cdf * 4294967296.0)
    t = t[t < 4294967296.0]
    # non-decreasing; a repeated threshold gives its count probability 0 (far tails only)
    return t.astype(np.uint32)


def poisson_count(r, table: np.ndarray):
    """Number of thresholds <= r (twin of pp_poisson_count)."""
    return np.searchsorted(table, np.asarray(r, dtype=np.uint32), side="right").astype(np.int64)


def round_nonneg(x):
    """floor(x + 0.5) as int64: the nearest integer, ties up (for any sign, as the C
    code's floor(x + 0.5))."""
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5).astype(np.int64)
