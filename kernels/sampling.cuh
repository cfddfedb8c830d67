/* sampling.cuh -- exact samplers shared by host (gcc) and device (nvcc).
 *
 * Every function here has a NumPy twin in pyproc/sampling.py that returns the
 * same bits (tests/test_sampling.py, >= 1e6 draws each).  To make that
 * possible no libm / CUDA transcendental is used: the only float operations
 * (the exact quantile and log from which the host builds the tables) are
 * IEEE-754 double +, -, *, / and sqrt (correctly rounded everywhere),
 * evaluated in one written order.  Compile with -ffp-contract=off
 * (gcc) and -fmad=false (nvcc) so that no multiply-add is contracted.
 *
 * The hot samplers (truncated normal, geometric skip) are integer arithmetic on
 * one table of int32, `tab`, passed explicitly to every function that needs it
 * (no hidden globals).  It holds three tables of increasing knots, each stored as
 * pairs (knot, distance to the next knot), so that an interpolation reads its
 * interval with one 8-byte load (pp_lerp_fx) instead of two 4-byte loads:
 *
 *   Z[k], k = 0..4096   Z[k] = round(z[k] * 2^28), normal quantile knots
 *       z[k] = pp_norm_quantile(k / 4096) for k = 1..4095, z[0] =
 *       pp_norm_quantile(2^-33) (the smallest probability), Z[4096] = -Z[0];
 *       pairs (Z[k], Z[k+1] - Z[k]), k = 0..4095, at tab[PP_ZTAB_OFFSET + 2k]
 *   L[k], k = 0..2048   L[k] = round(log2(1 + k / 2048) * 2^30) (log2 = pp_log(x) / ln 2);
 *       pairs k = 0..2047 at tab[PP_LTAB_OFFSET + 2k]
 *   T[t], t = 0..737    T[t] = round(z_t * 2^28), the lower tail:
 *       z_t = pp_norm_quantile(2^(t / 32 - 32) (1 + (t % 32) / 32)), t / 32 rounded down;
 *       pairs t = 0..736 at tab[PP_TTAB_OFFSET + 2t]
 *
 * PP_TABLES_LEN = 2 x (4096 + 2048 + 737) int32 (54 KiB; the offsets are even, so an
 * 8-byte aligned tab keeps every pair aligned).  The host builds it once with the
 * NumPy twins of pp_norm_quantile and pp_log (pyproc.sampling.sampler_tables)
 * and hands the same array to the gcc shim and to the CUDA kernels (device
 * buffer "sampler_tables", uploaded once).  A synapse's samplers are integer
 * arithmetic only, the same on any machine whatever the compiler's
 * floating-point options.
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
 * quantile tables (pyproc.sampling.sampler_tables) and, on the host, for initial
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

/* ---- sampler tables (integer) ------------------------------------------------ */
#define PP_ZTAB_N 4096                       /* equal-probability intervals of z */
#define PP_LTAB_N 2048                       /* intervals of log2 on [1, 2] */
#define PP_TTAB_N 737                        /* intervals of the lower tail (knots 0..737) */
#define PP_ZTAB_OFFSET 0                     /* Z pairs k = 0..4095 */
#define PP_LTAB_OFFSET 8192                  /* L pairs k = 0..2047 */
#define PP_TTAB_OFFSET 12288                 /* T pairs t = 0..736 */
#define PP_TABLES_LEN 13762                  /* 2 x (4096 + 2048 + 737) int32 */
#define PP_ZTAB_TAIL 8u                      /* Z intervals i < 8 and > 4087: the tail table */
#define PP_Z_FRAC 28                         /* Z: normal quantiles in units of 2^-28 */
#define PP_L_FRAC 30                         /* L: log2 in units of 2^-30 */

/* Leading zeros of a non-zero 32-bit word. */
PP_HD uint32_t pp_clz32(uint32_t x)
{
#if defined(__CUDA_ARCH__)
    return (uint32_t)__clz((int)x);
#else
    return (uint32_t)__builtin_clz(x);
#endif
}

/* One interval of a sampler table: its first knot and the distance to the next, 8 bytes
 * aligned to 8 (one load; the host writes them, pyproc.sampling.sampler_tables). */
typedef struct __attribute__((aligned(8))) { int32_t knot, step; } pp_interval;

/* Linear interpolation in an increasing table of knots stored as intervals (t: its
 * first pair): knot[k] + floor(step[k] f / 2^32) for a position f in [0, 2^32) between
 * the knots k and k + 1 (a fraction in units of 2^-32), step[k] = knot[k+1] - knot[k];
 * one 8-byte load and one 32 x 32-bit multiply.  The knots of every sampler table
 * increase, so the step is a non-negative 32-bit number. */
PP_HD int32_t pp_lerp_fx(const int32_t *t, uint32_t k, uint32_t f)
{
    const pp_interval p = ((const pp_interval *)t)[k];
    return p.knot + (int32_t)(((uint64_t)(uint32_t)p.step * f) >> 32);
}
/* The same with two 4-byte loads: for the normal's tails (2^-8 of the draws), where the
 * 8-byte load's aligned register pair made the 64-register per-step kernel spill. */
PP_HD int32_t pp_lerp_fx_split(const int32_t *t, uint32_t k, uint32_t f)
{
    return t[2u * k] + (int32_t)(((uint64_t)(uint32_t)t[2u * k + 1u] * f) >> 32);
}

/* The lower tail of the standard normal quantile, z at P / 2^32 for 1 <= P <= 2^23
 * (p <= 2^-9), in units of 2^-28: piecewise linear in p on 32 equal intervals per
 * octave of P (knots T[t] at P = 2^n (1 + j / 32), t = 32 n + j), so the relative
 * resolution is the same from 2^-32 to 2^-9: n = 31 - clz(P), the 5 bits after the
 * leading one pick j, the rest is the position f in the interval (absolute error in z
 * <= 4e-5 from the chords; the tails stay normal, which equal-probability intervals
 * could not give: linear interpolation to the extreme knot would make P(z < -5)
 * 1.2e-4 instead of 2.9e-7). */
PP_HD int32_t pp_norm_tail_fx(uint32_t P, const int32_t *tab)
{
    const uint32_t c = pp_clz32(P), m = P << c;             /* the leading one at bit 31 */
    return pp_lerp_fx_split(tab + PP_TTAB_OFFSET, ((31u - c) << 5) | ((m >> 26) & 31u), m << 6);
}

/* Standard normal quantile at probability P / 2^32 (P: a 32-bit fixed-point
 * probability), in units of 2^-28 (|z| < 6.3), all integer: piecewise linear on
 * PP_ZTAB_N equal-probability intervals, i = P >> 20 (the interval), f = the low 20
 * bits (the position inside it), z = Z[i] + floor((Z[i+1] - Z[i]) f / 2^20) for
 * 8 <= i <= 4087; the 8 outermost intervals on either side (P < 2^23 or
 * P >= 4088 * 2^20, probability 2^-8 together) from the tail table, pp_norm_tail_fx
 * (P = 0 as P = 1; the upper tail mirrored: z(P) = -tail(2^32 - P)).  Equal-probability
 * intervals are too wide in z near the tails: the density sampled there is constant
 * per interval, and in the intervals 1..3 next to a tail of probability 2^-12 it was
 * 0.74-1.41 times the normal's (a delay step of the full-scale microcircuit 15 % too
 * frequent, a chi-square test of its 4.6e7 delays rejected); from 2^-9 on it is within
 * a factor 1.06 of the normal's, and within 1.02 on the tail table's 32 intervals per
 * octave.  Absolute error in z (tests/test_sampling.py): <= 5e-4 for p in [2^-9, 1 - 2^-9],
 * <= 2.5e-5 for p in [0.01, 0.99], <= 3.3e-7 for p in [0.1, 0.9], <= 4e-5 in the
 * tails. */
PP_HD int32_t pp_norm_quantile_fx(uint32_t P, const int32_t *tab)
{
    const uint32_t i = P >> 20;
    if (i < PP_ZTAB_TAIL) return pp_norm_tail_fx(P > 1u ? P : 1u, tab);
    if (i > PP_ZTAB_N - 1u - PP_ZTAB_TAIL) return -pp_norm_tail_fx(0u - P, tab);
    return pp_lerp_fx(tab + PP_ZTAB_OFFSET, i, P << 12);      /* the low 20 bits */
}

/* ---- truncated normal by inverse CDF, in fixed point ------------------------ */
/* One 32-bit word r, one value, no redraw (a warp never diverges on rejection):
 *   P = plo + floor((r * pwidth + floor(pwidth / 2)) / 2^32)
 * is lo + u * width with u = (r + 1/2) / 2^32, as a 32-bit fixed-point probability
 * (plo = lo * 2^32, pwidth = width * 2^32, rounded, plo + pwidth <= 2^32 - 1: the
 * truncation [Phi(za), Phi(zb)] of the target distribution), z = pp_norm_quantile_fx(P),
 * and the result is floor((c0 + b * z) / 2^shift) with the host's constants
 *   c0 = mean * 2^shift + 2^(shift - 1),  b = sd * 2^(shift - 28)
 * (rounded to integers; shift the largest keeping b < 2^31 and c0 < 2^61), i.e.
 * round(mean + sd * z), ties up, in the caller's unit (fixed-point weight units, or
 * steps for delays): no floating-point operation, two 32 x 32-bit multiplies.
 * Twin: pyproc.sampling.trunc_normal_fx; constants: trunc_normal_params. */
PP_HD int64_t pp_trunc_normal_fx(uint32_t r, uint32_t plo, uint32_t pwidth, int64_t c0, int32_t b,
                                 uint32_t shift, const int32_t *tab)
{
    const uint32_t P = plo + (uint32_t)(((uint64_t)r * pwidth + (pwidth >> 1)) >> 32);
    return (c0 + (int64_t)b * pp_norm_quantile_fx(P, tab)) >> shift;
}

/* ---- geometric skip (pairwise_bernoulli) ---------------------------------- */
/* Number of failures before the next success, by inversion, in integers:
 * floor(-log2(u) * G) with G = -1 / log2(1 - p) and u = x / 2^32, x = r | 1 (the odd
 * numerators: u = (k + 1/2) / 2^31 for k = r >> 1 uniform, never 0 or 1).
 * log2(x) = n + log2(m / 2^31) with n = 31 - clz(x) and m = x << clz(x) (the leading
 * one at bit 31): its next 11 bits pick the interval k of the table
 * L[k] = log2(1 + k / 2048) * 2^30, the last 20 the position f in it, and
 * log2(m / 2^31) ~ L[k] + floor((L[k+1] - L[k]) f / 2^32) (the chord: absolute
 * error <= 4.5e-8).  nl = -log2(u) * 2^30 = (32 - n) * 2^30 - that, in [1, 2^35], and
 * the skip is floor(nl * gmul / 2^gshift) with gmul = G * 2^(gshift - 30) rounded, in
 * [2^27, 2^28) (nl * gmul < 2^63): 32-bit integer work and one 64-bit multiply, no
 * floating point.  The largest skip, 32 G > 22 / p, passes any segment (width <= 16 / p).
 * The encodings need no branch: p = 0 is gmul = 2^28 - 1, gshift = 0 (skip >= 2^28 - 1:
 * never), p = 1 is gmul = 0 (skip 0: always).  Capped at cap.  Twin:
 * pyproc.sampling.geometric_skip; constants: geometric_params. */
PP_HD uint32_t pp_geometric_skip(uint32_t r, uint32_t gmul, uint32_t gshift, uint32_t cap,
                                 const int32_t *tab)
{
    const uint32_t x = r | 1u, c = pp_clz32(x);
    const uint32_t m = x << c;                              /* the leading one at bit 31 */
    const uint32_t lm = (uint32_t)pp_lerp_fx(tab + PP_LTAB_OFFSET, (m >> 20) & 2047u, m << 12);
    const uint64_t nl = ((uint64_t)(1u + c) << 30) - lm;    /* (32 - n) 2^30 - lm */
    const uint64_t q = (nl * gmul) >> gshift;
    return q < (uint64_t)cap ? (uint32_t)q : cap;
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

#endif /* PP_SAMPLING_CUH */
