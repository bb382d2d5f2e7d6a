/* Vectorisable exp and multi-versioning for the row kernels of xentfast.
 *
 * glibc only offers a vector exp under -ffast-math, which would also break
 * NaN/Inf semantics.  These branch-free polynomial exps auto-vectorise inside
 * `#pragma omp simd` loops, keep IEEE behaviour (NaN -> NaN, -inf -> 0,
 * overflow -> inf, gradual underflow) and are accurate to ~1 ulp.
 *
 * XF_MULTIVERSION makes gcc/clang compile a function for AVX-512, AVX2+FMA and
 * the baseline, and pick the best one once at load time, so a portable build
 * still uses the machine's widest vector unit.
 */
#ifndef XF_SIMD_H
#define XF_SIMD_H

#include <stdint.h>
#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_attribute)
#  if __has_attribute(target_clones)
#    define XF_MULTIVERSION \
        __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#  endif
#endif
#ifndef XF_MULTIVERSION
#  define XF_MULTIVERSION
#endif

#define XF_PRAGMA(x) _Pragma(#x)
#define XF_SIMD XF_PRAGMA(omp simd)
#define XF_SIMD_REDUCE(op, ...) XF_PRAGMA(omp simd reduction(op : __VA_ARGS__))

/* exp(x) for float: 2^n * p(r), r = x - n ln2 in [-ln2/2, ln2/2]; degree-7
 * Taylor polynomial.  2^n is applied as two factors so that results in the
 * subnormal range are still right. */
static inline __attribute__((always_inline)) float xf_expf(float x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23: rounds to an integer */
    float xc = x < -110.0f ? -110.0f : (x > 89.0f ? 89.0f : x); /* NaN stays */
    float t = xc * 1.44269504088896341f + magic;
    float n = t - magic;
    int32_t ti, mi;
    memcpy(&ti, &t, 4);
    memcpy(&mi, &magic, 4);
    int32_t ni = ti - mi;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9841270e-4f;
    p = p * r + 1.3888889e-3f;
    p = p * r + 8.3333333e-3f;
    p = p * r + 4.1666667e-2f;
    p = p * r + 1.6666667e-1f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t k1 = ni >> 1, k2 = ni - k1;
    int32_t b1 = (k1 + 127) << 23, b2 = (k2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, 4);
    memcpy(&s2, &b2, 4);
    return p * s1 * s2;
}

/* exp(x) for double: same scheme, degree-13 Taylor polynomial. */
static inline __attribute__((always_inline)) double xf_exp(double x)
{
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    double xc = x < -1000.0 ? -1000.0 : (x > 710.0 ? 710.0 : x);
    double t = xc * 1.4426950408889634074 + magic;
    double n = t - magic;
    int64_t ti, mi;
    memcpy(&ti, &t, 8);
    memcpy(&mi, &magic, 8);
    int64_t ni = ti - mi;
    double r = xc - n * 6.93147180369123816490e-01;
    r = r - n * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    int64_t k1 = ni >> 1, k2 = ni - k1;
    int64_t b1 = (k1 + 1023) << 52, b2 = (k2 + 1023) << 52;
    double s1, s2;
    memcpy(&s1, &b1, 8);
    memcpy(&s2, &b2, 8);
    return p * s1 * s2;
}

/* log1p(x) for double, branch-free so that it vectorises.  u = 1 + x is
 * split as 2^k * f with f in [sqrt(1/2), sqrt(2)); log f = 2 atanh(s),
 * s = (f - 1) / (f + 1), by its odd series; the rounding error of 1 + x is
 * added back as (x - (u - 1)) / u.  -1 -> -inf, < -1 -> NaN, inf -> inf. */
static inline __attribute__((always_inline)) double xf_log1p(double x)
{
    double u = 1.0 + x;
    int64_t bits;
    memcpy(&bits, &u, 8);
    int64_t k = ((bits >> 52) & 0x7ff) - 1023;
    int64_t mant = (bits & 0x000fffffffffffffLL) | 0x3ff0000000000000LL;
    double f;
    memcpy(&f, &mant, 8);
    int big = f > 1.4142135623730951;
    f = big ? 0.5 * f : f;
    k = big ? k + 1 : k;
    double s = (f - 1.0) / (f + 1.0), s2 = s * s;
    double p = 2.0 / 23;
    p = p * s2 + 2.0 / 21;
    p = p * s2 + 2.0 / 19;
    p = p * s2 + 2.0 / 17;
    p = p * s2 + 2.0 / 15;
    p = p * s2 + 2.0 / 13;
    p = p * s2 + 2.0 / 11;
    p = p * s2 + 2.0 / 9;
    p = p * s2 + 2.0 / 7;
    p = p * s2 + 2.0 / 5;
    p = p * s2 + 2.0 / 3;
    p = p * s2 + 2.0;
    double kd = (double)k;
    double r = kd * 6.93147180369123816490e-01
             + (s * p + (kd * 1.90821492927058770002e-10 + (x - (u - 1.0)) / u));
    r = u == INFINITY ? INFINITY : r;
    r = u == 0.0 ? -INFINITY : r;
    return u < 0.0 || x != x ? NAN : r;
}

/* log1p(x) for float: the same scheme in float, shorter series. */
static inline __attribute__((always_inline)) float xf_log1pf(float x)
{
    float u = 1.0f + x;
    int32_t bits;
    memcpy(&bits, &u, 4);
    int32_t k = ((bits >> 23) & 0xff) - 127;
    int32_t mant = (bits & 0x007fffff) | 0x3f800000;
    float f;
    memcpy(&f, &mant, 4);
    int big = f > 1.41421356f;
    f = big ? 0.5f * f : f;
    k = big ? k + 1 : k;
    float s = (f - 1.0f) / (f + 1.0f), s2 = s * s;
    float p = 2.0f / 11;
    p = p * s2 + 2.0f / 9;
    p = p * s2 + 2.0f / 7;
    p = p * s2 + 2.0f / 5;
    p = p * s2 + 2.0f / 3;
    p = p * s2 + 2.0f;
    float kf = (float)k;
    float r = kf * 0.693359375f + (s * p + (kf * -2.12194440e-4f + (x - (u - 1.0f)) / u));
    r = u == INFINITY ? INFINITY : r;
    r = u == 0.0f ? -INFINITY : r;
    return u < 0.0f || x != x ? NAN : r;
}

#endif
