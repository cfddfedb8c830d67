"""Exact samplers in NumPy: bit-for-bit twins of ``kernels/sampling.cuh``.

Only IEEE-754 double ``+ - * /`` and ``sqrt`` are used, in the order the C
code writes them, so every result equals the gcc- and nvcc-compiled header
(tests/test_sampling.py checks >= 1e6 draws of each).

Sampler tables
--------------
The kernels' hot samplers interpolate two tables held in one float64 array,
:func:`sampler_tables` (``PP_TABLES_LEN`` = 6146 doubles, built here once from
the exact twins :func:`norm_quantile` and :func:`pp_log`, and handed unchanged
to the gcc shim and to the CUDA backend, which uploads it as the device buffer
``sampler_tables``)::

    [ZTAB_OFFSET = 0    .. 4096]  z[k] = norm_quantile(k / 4096), k = 1..4095;
                                  z[0] = norm_quantile(2^-33), z[4096] = -z[0]
                                  (end points of the tails; layout only, not read)
    [LTAB_OFFSET = 4097 .. 6145]  l[k] = pp_log(1 + k / 2048), k = 0..2048

:func:`norm_quantile_tab` (piecewise linear on 4096 equal-probability
intervals; the two outermost intervals, probability 2^-11 together, are
Acklam's tail formula itself, so the tails stay normal) is what
:func:`trunc_normal` uses; :func:`log_tab` (absolute error <= 3e-8) is what
:func:`geometric_skip` uses.
"""
from __future__ import annotations

import functools

import numpy as np
from scipy import special, stats

__all__ = ["u01", "uniform_int", "pp_log", "norm_quantile", "sampler_tables",
           "norm_quantile_tab", "log_tab", "trunc_normal", "geometric_skip", "poisson_table",
           "poisson_count", "round_nonneg", "ZTAB_N", "LTAB_N", "ZTAB_OFFSET", "LTAB_OFFSET",
           "TABLES_LEN", "LN2"]

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
ZTAB_OFFSET = 0                  # z[0..4096]
LTAB_OFFSET = ZTAB_N + 1         # l[0..2048] (4097)
TABLES_LEN = ZTAB_N + 1 + LTAB_N + 1   # 6146
LN2 = 6.93147180559945286227e-01
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
def sampler_tables() -> np.ndarray:
    """The sampler tables [z (4097) | l (2049)] as one read-only float64 array (see the
    module docstring); built once from the exact twins, equal to what the header
    functions expect bit for bit."""
    tab = np.empty(TABLES_LEN, dtype=np.float64)
    k = np.arange(1, ZTAB_N, dtype=np.float64)
    z = tab[ZTAB_OFFSET:ZTAB_OFFSET + ZTAB_N + 1]
    z[1:ZTAB_N] = norm_quantile(k / float(ZTAB_N))
    z[0] = norm_quantile(np.array([_U01_MIN]))[0]
    z[ZTAB_N] = -z[0]
    kl = np.arange(LTAB_N + 1, dtype=np.float64)
    tab[LTAB_OFFSET:LTAB_OFFSET + LTAB_N + 1] = pp_log(1.0 + kl / float(LTAB_N))
    tab.setflags(write=False)
    return tab


def _tab(tab):
    return sampler_tables() if tab is None else np.asarray(tab, dtype=np.float64)


def norm_quantile_tab(p, tab=None):
    """Normal quantile, piecewise linear on 4096 equal-probability intervals with
    knots from Acklam's approximation; the two outermost intervals (probability
    2^-11 together) are Acklam's tail formula itself, equal to :func:`norm_quantile`
    (twin of pp_norm_quantile_tab; ``tab``: the sampler tables, default
    :func:`sampler_tables`)."""
    z = _tab(tab)[ZTAB_OFFSET:]
    p = np.asarray(p, dtype=np.float64)
    x = p * 4096.0
    i = x.astype(np.int64)
    inner = (i >= 1) & (i <= ZTAB_N - 2)
    ii = np.where(inner, i, 1)
    f = x - ii.astype(np.float64)
    zi = z[ii]
    out = np.asarray(zi + f * (z[ii + 1] - zi))
    tails = ~inner
    if tails.any():
        out[tails] = norm_quantile(p[tails])
    return out


def log_tab(x, tab=None):
    """Natural log by linear interpolation on 2048 intervals of the mantissa, absolute
    error <= 3e-8 (twin of pp_log_tab; positive normal x)."""
    l = _tab(tab)[LTAB_OFFSET:]
    x = np.asarray(x, dtype=np.float64)
    bits = x.view(np.uint64)
    e = ((bits >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64) - 1023
    m = ((bits & np.uint64(0x000FFFFFFFFFFFFF)) | np.uint64(0x3FF0000000000000)).view(np.float64)
    y = (m - 1.0) * 2048.0
    i = y.astype(np.int64)
    f = y - i.astype(np.float64)
    li = l[i]
    return (e.astype(np.float64) * LN2 + li) + f * (l[i + 1] - li)


def trunc_normal(r, mean, sd, lo, width, tab=None):
    """mean + sd * Phi^-1(lo + u01(r) * width): truncated normal by inverse CDF, with the
    table quantile :func:`norm_quantile_tab` (twin of pp_trunc_normal)."""
    return mean + sd * norm_quantile_tab(lo + u01(r) * width, tab)


def trunc_bounds(mean: float, sd: float, a: float, b: float = np.inf):
    """(lo, width) = (Phi(za), Phi(zb) - Phi(za)) for truncation to [a, b], computed once on the host."""
    lo = float(special.ndtr((a - mean) / sd))      # = stats.norm.cdf, without its overhead
    hi = float(special.ndtr((b - mean) / sd)) if np.isfinite(b) else 1.0
    return lo, hi - lo


def geometric_skip(r, inv_log1mp: float, cap: int, tab=None):
    """floor(log(u) * (1 / log(1 - p))) capped at ``cap``, log by :func:`log_tab` (twin of
    pp_geometric_skip).  ``inv_log1mp``: 1 / log(1 - p); -inf encodes p = 0 (always
    ``cap``), -0 encodes p = 1 (always 0)."""
    r = np.asarray(r, dtype=np.uint32)
    with np.errstate(invalid="ignore"):          # 0 * -inf = nan: capped like the kernel
        q = log_tab(u01(r), tab) * inv_log1mp
    out = np.full(r.shape, cap, dtype=np.int64)
    ok = q < float(cap)
    out[ok] = q[ok].astype(np.int64)
    return out


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
    """floor(x + 0.5) as int64 (twin of pp_round_nonneg)."""
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5).astype(np.int64)
