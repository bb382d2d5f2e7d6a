/* Vectorisable exp, log and log1p for the kernels.
 *
 * glibc only offers a vector exp under -ffast-math, which would also break
 * NaN/Inf semantics.  These branch-free polynomial versions auto-vectorise
 * inside `#pragma omp simd` loops, keep IEEE behaviour (NaN -> NaN,
 * exp(-inf) -> 0, overflow -> inf, log(0) -> -inf, gradual underflow) and are
 * accurate to ~1 ulp.  They are always inlined, so each instruction-set
 * level's kernels (_xf_levels.h) get their own vector code.
 */
#ifndef XF_SIMD_H
#define XF_SIMD_H

#include <stdint.h>
#include <math.h>
#include <string.h>

#define XF_PRAGMA(x) _Pragma(#x)
#define XF_SIMD XF_PRAGMA(omp simd)
#define XF_SIMD_REDUCE(op, ...) XF_PRAGMA(omp simd reduction(op : __VA_ARGS__))

/* exp(x) for float: 2^n * p(r), r = x - n ln2 in [-ln2/2, ln2/2]; a degree-6
 * polynomial (below).  2^n is applied as two factors so that results in the
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
    /* degree 6, fitted to exp on [-ln2/2, ln2/2] in float (0.89 ulp at most
     * in all: one operation less than the degree-7 Taylor polynomial, and
     * p(0) = 1 exactly, which the exp sums rely on) */
    float p = 1.3843839e-3f;
    p = p * r + 8.374182e-3f;
    p = p * r + 4.1668e-2f;
    p = p * r + 1.666645e-1f;
    p = p * r + 4.999999e-1f;
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

/* log(x) + c for float (c a correction much smaller than ulp(log x) allows),
 * branch-free so that it vectorises; log(x) is within 1 ulp.
 * x = 2^k m with m in [sqrt(1/2), sqrt(2)); with f = m - 1 and
 * s = f / (2 + f), log m = 2 atanh(s) = f - f^2/2 + s (f^2/2 + R(s^2)),
 * where R is the tail of the atanh series (every term small, so f and f^2/2
 * carry the precision).  Subnormals are scaled by 2^25 first.
 * 0 -> -inf, < 0 -> NaN, inf -> inf, NaN -> NaN. */
static inline __attribute__((always_inline)) float xf_logf_scaled(float u, int32_t k_offset,
                                                                  float c)
{
    /* the core, for a positive normal u = x 2^-k_offset */
    int32_t bits;
    memcpy(&bits, &u, 4);
    /* Adding 1.0 - sqrt(1/2) (as bits) carries into the exponent exactly
     * when the mantissa is >= sqrt(2), which selects m's binade. */
    uint32_t shifted = (uint32_t)bits + (0x3f800000u - 0x3f3504f3u);
    int32_t k = (int32_t)(shifted >> 23) - 127 - k_offset;
    int32_t mbits = (int32_t)(shifted & 0x007fffffu) + 0x3f3504f3;
    float m;
    memcpy(&m, &mbits, 4);
    float f = m - 1.0f;
    float s = f / (2.0f + f), z = s * s;
    float tail = z * (2.0f / 3 + z * (2.0f / 5 + z * (2.0f / 7 + z * (2.0f / 9))));
    float hf = 0.5f * f * f;
    float kf = (float)k;
    return kf * 0.693359375f + (f - (hf - (s * (hf + tail) + (kf * -2.12194440e-4f + c))));
}

static inline __attribute__((always_inline)) float xf_logf_plus(float x, float c)
{
    int tiny = x < 1.17549435e-38f;
    float r = xf_logf_scaled(tiny ? x * 33554432.0f : x, tiny ? 25 : 0, c);
    r = x == INFINITY ? INFINITY : r;
    r = x == 0.0f ? -INFINITY : r;
    /* Two selects, not `x < 0 || x != x`: gcc 12 does not vectorise that
     * mask combination when x comes from xf_expf. */
    r = x < 0.0f ? NAN : r;
    return x != x ? x : r;
}

/* xf_logf_plus for a finite x >= 1 (or NaN) only, as the kernels' 1 + e
 * with e = exp(-|z|) or a sum of exps: no special value to select but NaN
 * (5 of the ~35 vector operations of the softplus pass, and on the latency
 * chain from a tile's sums to its gradient). */
static inline __attribute__((always_inline)) float xf_logf_plus_from_1(float x, float c)
{
    float r = xf_logf_scaled(x, 0, c);
    return x != x ? x : r;
}

/* log(x) + c for double: the same scheme, longer series.  The exponent is turned
 * into a double through the 2^52 trick rather than an int64 conversion,
 * which AVX2 lacks. */
static inline __attribute__((always_inline)) double xf_log_scaled(double u, double k_offset,
                                                                  double c)
{
    /* the core, for a positive normal u = x 2^-k_offset */
    uint64_t bits;
    memcpy(&bits, &u, 8);
    uint64_t shifted = bits + (0x3ff0000000000000ull - 0x3fe6a09e667f3bcdull);
    uint64_t kbits = (shifted >> 52) | 0x4330000000000000ull; /* 2^52 + exponent */
    double kd;
    memcpy(&kd, &kbits, 8);
    kd = kd - (4503599627370496.0 + 1023.0) - k_offset;
    uint64_t mbits = (shifted & 0x000fffffffffffffull) + 0x3fe6a09e667f3bcdull;
    double m;
    memcpy(&m, &mbits, 8);
    double f = m - 1.0;
    double s = f / (2.0 + f), z = s * s;
    double p = 2.0 / 21;
    p = p * z + 2.0 / 19;
    p = p * z + 2.0 / 17;
    p = p * z + 2.0 / 15;
    p = p * z + 2.0 / 13;
    p = p * z + 2.0 / 11;
    p = p * z + 2.0 / 9;
    p = p * z + 2.0 / 7;
    p = p * z + 2.0 / 5;
    p = p * z + 2.0 / 3;
    double tail = z * p;
    double hf = 0.5 * f * f;
    return kd * 6.93147180369123816490e-01
         + (f - (hf - (s * (hf + tail) + (kd * 1.90821492927058770002e-10 + c))));
}

static inline __attribute__((always_inline)) double xf_log_plus(double x, double c)
{
    int tiny = x < 2.2250738585072014e-308;
    double r = xf_log_scaled(tiny ? x * 18014398509481984.0 : x, tiny ? 54.0 : 0.0, c); /* 2^54 */
    r = x == INFINITY ? INFINITY : r;
    r = x == 0.0 ? -INFINITY : r;
    r = x < 0.0 ? NAN : r;
    return x != x ? x : r;
}

static inline __attribute__((always_inline)) double xf_log_plus_from_1(double x, double c)
{
    double r = xf_log_scaled(x, 0.0, c);
    return x != x ? x : r;
}

static inline __attribute__((always_inline)) float xf_logf(float x)
{
    return xf_logf_plus(x, 0.0f);
}

static inline __attribute__((always_inline)) double xf_log(double x)
{
    return xf_log_plus(x, 0.0);
}

/* log1p(x) = log(u) + (x - (u - 1)) / u with u = 1 + x rounded: the second
 * term restores what the rounding of 1 + x lost.  Within 1 ulp, and it
 * vectorises after xf_expf. */
static inline __attribute__((always_inline)) float xf_log1pf(float x)
{
    float u = 1.0f + x;
    return xf_logf_plus(u, (x - (u - 1.0f)) / u);
}

static inline __attribute__((always_inline)) double xf_log1p(double x)
{
    double u = 1.0 + x;
    return xf_log_plus(u, (x - (u - 1.0)) / u);
}

/* log1p(x) for finite x >= 0 (or NaN) only, as the row kernels' sums of
 * exps: 1 + x is then >= 1 (xf_logf_plus_from_1). */
static inline __attribute__((always_inline)) float xf_log1pf_nonneg(float x)
{
    float u = 1.0f + x;
    return xf_logf_plus_from_1(u, (x - (u - 1.0f)) / u);
}

static inline __attribute__((always_inline)) double xf_log1p_nonneg(double x)
{
    double u = 1.0 + x;
    return xf_log_plus_from_1(u, (x - (u - 1.0)) / u);
}

#endif
