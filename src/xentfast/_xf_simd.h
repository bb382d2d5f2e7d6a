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

#endif
