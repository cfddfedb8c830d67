/* sampling.cuh -- exact samplers shared by host (gcc) and device (nvcc).
 *
 * Every function here has a NumPy twin in pyproc/sampling.py that returns the
 * same bits (tests/test_sampling.py, >= 1e6 draws each).  To make that
 * possible no libm / CUDA transcendental is used: the only float operations
 * are IEEE-754 double +, -, *, / and sqrt (correctly rounded everywhere),
 * evaluated in one written order.  Compile with -ffp-contract=off (gcc) and
 * -fmad=false (nvcc) so that no multiply-add is contracted.
 *
 * SAMPLER TABLES.  The hot samplers (truncated normal, geometric skip) read
 * one array of doubles, `tab`, passed explicitly to every function that needs
 * it (no hidden globals):
 *
 *   tab[PP_ZTAB_OFFSET + k], k = 0..4096   normal quantile knots z[k]
 *       z[k] = pp_norm_quantile(k / 4096) for k = 1..4095,
 *       z[0] = pp_norm_quantile(2^-33) (the smallest pp_u01), z[4096] = -z[0]
 *   tab[PP_LTAB_OFFSET + k], k = 0..2048   log knots l[k] = pp_log(1 + k / 2048)
 *
 * PP_TABLES_LEN = 4097 + 2049 doubles (48 KiB).  The host builds it once with
 * the NumPy twins of pp_norm_quantile and pp_log (pyproc.sampling.sampler_tables,
 * bit-identical to this header) and hands the same array to the gcc shim and
 * to the CUDA kernels (device buffer "sampler_tables", uploaded once).
 */
#ifndef PP_SAMPLING_CUH
#define PP_SAMPLING_CUH

#include "philox.cuh"
#ifndef __CUDACC__
#include <math.h>
#endif

/* ---- bit casts ----------------------------------------------------------- */
PP_HD uint64_t pp_f64_bits(double x) { union { double d; uint64_t u; } c; c.d = x; return c.u; }
PP_HD double pp_bits_f64(uint64_t u) { union { double d; uint64_t u; } c; c.u = u; return c.d; }

/* ---- uniforms ------------------------------------------------------------ */
/* (r + 0.5) / 2^32: an exact double in (0, 1); never 0, never 1. */
PP_HD double pp_u01(uint32_t r) { return ((double)r + 0.5) * 2.3283064365386963e-10; }

/* Uniform integer in [0, n): the high word of r * n (Lemire's multiply without
 * rejection; bias below n / 2^32, i.e. < 2.5e-5 for n = 1e5). */
PP_HD uint32_t pp_uniform_int(uint32_t r, uint32_t n) { return (uint32_t)(((uint64_t)r * n) >> 32); }

/* ---- natural logarithm ---------------------------------------------------- */
/* Argument reduction x = m 2^e, m in (sqrt(2)/2, sqrt(2)]; log(m) = 2 atanh(s)
 * with s = (m-1)/(m+1) and the minimax polynomial of fdlibm's e_log.c
 * (Sun Microsystems, 1993): error < 1 ulp.  Valid for positive normal x. */
#define PP_LN2_HI 6.93147180369123816490e-01
#define PP_LN2_LO 1.90821492927058770002e-10
#define PP_LG1 6.666666666666735130e-01
#define PP_LG2 3.999999999940941908e-01
#define PP_LG3 2.857142874366239149e-01
#define PP_LG4 2.222219843214978396e-01
#define PP_LG5 1.818357216161805012e-01
#define PP_LG6 1.531383769920937332e-01
#define PP_LG7 1.479819860511658591e-01
#define PP_SQRT2 1.41421356237309514547

PP_HD double pp_log(double x)
{
    uint64_t bits = pp_f64_bits(x);
    int32_t e = (int32_t)((bits >> 52) & 0x7ffu) - 1023;
    double m = pp_bits_f64((bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
    double f, s, z, w, t1, t2, r, hfsq, dk;
    if (m > PP_SQRT2) { m = m * 0.5; e = e + 1; }
    f = m - 1.0;
    s = f / (2.0 + f);
    z = s * s;
    w = z * z;
    t1 = w * (PP_LG2 + w * (PP_LG4 + w * PP_LG6));
    t2 = z * (PP_LG1 + w * (PP_LG3 + w * (PP_LG5 + w * PP_LG7)));
    r = t2 + t1;
    hfsq = 0.5 * f * f;
    dk = (double)e;
    return dk * PP_LN2_HI - ((hfsq - (s * (hfsq + r) + dk * PP_LN2_LO)) - f);
}

/* ---- standard normal quantile --------------------------------------------- */
/* P. J. Acklam's rational approximation (2003), relative error < 1.15e-9 over
 * (0, 1) -- below the resolution of a 32-bit uniform.  Used to build the
 * quantile table (pp_norm_quantile_tab) and, on the host, for initial
 * membrane potentials; the kernels sample through the table.  Central region
 * |p - 0.5| <= 0.47575 rational in (p-0.5)^2, tails rational in
 * sqrt(-2 log p). */
#define PP_AK_A1 -3.969683028665376e+01
#define PP_AK_A2  2.209460984245205e+02
#define PP_AK_A3 -2.759285104469687e+02
#define PP_AK_A4  1.383577518672690e+02
#define PP_AK_A5 -3.066479806614716e+01
#define PP_AK_A6  2.506628277459239e+00
#define PP_AK_B1 -5.447609879822406e+01
#define PP_AK_B2  1.615858368580409e+02
#define PP_AK_B3 -1.556989798598866e+02
#define PP_AK_B4  6.680131188771972e+01
#define PP_AK_B5 -1.328068155288572e+01
#define PP_AK_C1 -7.784894002430293e-03
#define PP_AK_C2 -3.223964580411365e-01
#define PP_AK_C3 -2.400758277161838e+00
#define PP_AK_C4 -2.549732539343734e+00
#define PP_AK_C5  4.374664141464968e+00
#define PP_AK_C6  2.938163982698783e+00
#define PP_AK_D1  7.784695709041462e-03
#define PP_AK_D2  3.224671290700398e-01
#define PP_AK_D3  2.445134137142996e+00
#define PP_AK_D4  3.754408661907416e+00
#define PP_AK_PLOW 0.02425

PP_HD double pp_ak_tail(double q)
{
    double num = ((((PP_AK_C1 * q + PP_AK_C2) * q + PP_AK_C3) * q + PP_AK_C4) * q + PP_AK_C5) * q + PP_AK_C6;
    double den = (((PP_AK_D1 * q + PP_AK_D2) * q + PP_AK_D3) * q + PP_AK_D4) * q + 1.0;
    return num / den;
}

PP_HD double pp_norm_quantile(double p)
{
    if (p < PP_AK_PLOW)
        return pp_ak_tail(sqrt(-2.0 * pp_log(p)));
    if (p > 1.0 - PP_AK_PLOW)
        return -pp_ak_tail(sqrt(-2.0 * pp_log(1.0 - p)));
    {
        double q = p - 0.5;
        double r = q * q;
        double num = (((((PP_AK_A1 * r + PP_AK_A2) * r + PP_AK_A3) * r + PP_AK_A4) * r + PP_AK_A5) * r + PP_AK_A6) * q;
        double den = ((((PP_AK_B1 * r + PP_AK_B2) * r + PP_AK_B3) * r + PP_AK_B4) * r + PP_AK_B5) * r + 1.0;
        return num / den;
    }
}

/* ---- sampler tables --------------------------------------------------------- */
#define PP_ZTAB_N 4096                       /* equal-probability intervals of z */
#define PP_LTAB_N 2048                       /* intervals of log on [1, 2] */
#define PP_ZTAB_OFFSET 0                     /* z[0..4096] */
#define PP_LTAB_OFFSET 4097                  /* l[0..2048] */
#define PP_TABLES_LEN 6146                   /* 4097 + 2049 doubles */
#define PP_LN2 6.93147180559945286227e-01    /* ln 2 rounded to double */

/* Standard normal quantile, piecewise linear on PP_ZTAB_N equal-probability
 * intervals with knots z[k] from Acklam's approximation (see the table layout
 * above): x = p * 4096 (exact), i = (int)x, f = x - i (exact),
 * z = z[i] + f * (z[i+1] - z[i]) for 1 <= i <= 4094.  The two outermost
 * intervals (p < 2^-12 or p >= 1 - 2^-12, probability 2^-11 together) are
 * not interpolated: there the result is Acklam's tail formula itself, bit for
 * bit pp_norm_quantile(p).  (Linear interpolation to z[0] = -6.338 would make
 * the tails uniform in z: P(z > 5) would be 1.2e-4 instead of 2.9e-7, which the
 * delay-distribution test of tests/test_connectivity.py rejects.)  So z[0] and
 * z[4096] are layout only (the tails' end points), never read here.  The
 * branch is taken by 1.6 % of warps (32 lanes x 2^-11).  Absolute error in z
 * (checked by tests/test_sampling.py): <= 1.6e-2 on the next intervals (p in
 * [2^-12, 2^-11] and mirrored), <= 5.5e-3 for p in [2^-11, 1 - 2^-11],
 * <= 2.5e-5 for p in [0.01, 0.99], <= 3.2e-7 for p in [0.1, 0.9]; Acklam's
 * (< 1.2e-9 relative) in the outermost intervals. */
PP_HD double pp_norm_quantile_tab(double p, const double *tab)
{
    const double *z = tab + PP_ZTAB_OFFSET;
    const double x = p * 4096.0;
    const int i = (int)x;
    double f;
    if (i < 1 || i > PP_ZTAB_N - 2) {       /* p < 2^-12 or p >= 1 - 2^-12: as pp_norm_quantile */
        const double t = pp_ak_tail(sqrt(-2.0 * pp_log(i < 1 ? p : 1.0 - p)));
        return i < 1 ? t : -t;
    }
    f = x - (double)i;
    return z[i] + f * (z[i + 1] - z[i]);
}

/* Natural logarithm, piecewise linear on 2048 intervals of the mantissa:
 * x = m 2^e with m in [1, 2) (from the bits), y = (m - 1) * 2048 (exact),
 * i = (int)y, f = y - i (exact); log x = (e * PP_LN2 + l[i]) + f * (l[i+1] - l[i]).
 * The chord lies below log on each interval: absolute error <= 2^-25 = 3.0e-8
 * (at m near 1; h^2 / (8 m^2) with h = 2^-11).  Valid for positive normal x;
 * used by pp_geometric_skip only (pp_log stays exact for the tables). */
PP_HD double pp_log_tab(double x, const double *tab)
{
    const double *l = tab + PP_LTAB_OFFSET;
    uint64_t bits = pp_f64_bits(x);
    int32_t e = (int32_t)((bits >> 52) & 0x7ffu) - 1023;
    double m = pp_bits_f64((bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
    double y = (m - 1.0) * 2048.0;
    int i = (int)y;
    double f = y - (double)i;
    return ((double)e * PP_LN2 + l[i]) + f * (l[i + 1] - l[i]);
}

/* ---- truncated normal by inverse CDF -------------------------------------- */
/* z = Phi^-1(lo + u * width), u = pp_u01(r), with lo = Phi(a), width = Phi(b) - Phi(a)
 * computed once on the host; Phi^-1 is the table quantile pp_norm_quantile_tab.
 * No redraw: one 32-bit word, one value, so a warp never diverges on
 * rejection.  Returns mean + sd * z. */
PP_HD double pp_trunc_normal(uint32_t r, double mean, double sd, double lo, double width,
                             const double *tab)
{
    return mean + sd * pp_norm_quantile_tab(lo + pp_u01(r) * width, tab);
}

/* ---- geometric skip (pairwise_bernoulli) ---------------------------------- */
/* Number of failures before the next success, by inversion:
 * floor(log(u) * (1 / log(1 - p))) with log = pp_log_tab (absolute error <= 3e-8:
 * a draw moves to the neighbouring count with probability about 3e-8 / |log(1-p)|);
 * inv_log1mp = 1 / log(1 - p) from the host, so a draw multiplies instead of
 * dividing (a double division is a ~15-instruction Newton sequence with a
 * slow-path call on the GPU).  The encodings need no branch: p = 0 is
 * inv_log1mp = -inf (q = +inf: never, cap), p = 1 is -0 (q = 0: always).
 * Capped at cap. */
PP_HD uint32_t pp_geometric_skip(uint32_t r, double inv_log1mp, uint32_t cap, const double *tab)
{
    const double q = pp_log_tab(pp_u01(r), tab) * inv_log1mp;
    if (!(q < (double)cap)) return cap;
    return (uint32_t)q;
}

/* ---- Poisson count by integer thresholds ---------------------------------- */
/* T[k] = floor(CDF(k) * 2^32) for k < len, non-decreasing (built on the
 * host, pyproc/sampling.py).  The count is the number of T[k] <= r: exact
 * inversion with no float operation (tail beyond the table < 2^-32). */
PP_HD uint32_t pp_poisson_count(uint32_t r, const uint32_t *T, uint32_t len)
{
    uint32_t lo = 0, hi = len;        /* first k with T[k] > r, in [0, len] */
    while (lo < hi) {
        uint32_t mid = (lo + hi) >> 1;
        if (T[mid] <= r) lo = mid + 1; else hi = mid;
    }
    return lo;
}

/* ---- fixed point ----------------------------------------------------------- */
/* Round a non-negative double to the nearest integer (ties up). */
PP_HD int64_t pp_round_nonneg(double x) { return (int64_t)floor(x + 0.5); }

#endif /* PP_SAMPLING_CUH */
