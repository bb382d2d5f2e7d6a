/* Elementwise kernels of the binary and multi-label losses of xentfast.
 *
 * Each kernel handles one block of a flattened input: it computes every
 * element's loss and gradient in one vector loop (`omp simd`, multi-versioned
 * like the row primitives) and returns the block's loss sum in double.  The
 * Cython layer (_binary.pyx) runs the blocks in parallel; binary.py validates
 * and reduces.  Written once in _xf_elementwise_impl.h and instantiated here
 * for float (_f32) and double (_f64).
 */
#ifndef XF_ELEMENTWISE_H
#define XF_ELEMENTWISE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "_xf_simd.h"

/* Elements per block: the unit of parallel work and of the partial sums, so
 * the sums (and hence the results) do not depend on the number of threads. */
#define XF_BLOCK 4096
/* Elements per chunk of a block: a chunk's arrays and temporaries fit in L1. */
#define XF_CHUNK 512

/* log(x) + c for float (c a correction much smaller than ulp(log x) allows),
 * branch-free so that it vectorises; log(x) is within 1 ulp.
 * x = 2^k m with m in [sqrt(1/2), sqrt(2)); with f = m - 1 and
 * s = f / (2 + f), log m = 2 atanh(s) = f - f^2/2 + s (f^2/2 + R(s^2)),
 * where R is the tail of the atanh series (every term small, so f and f^2/2
 * carry the precision).  Subnormals are scaled by 2^25 first.
 * 0 -> -inf, < 0 -> NaN, inf -> inf, NaN -> NaN. */
static inline __attribute__((always_inline)) float xf_logf_plus(float x, float c)
{
    int tiny = x < 1.17549435e-38f;
    float u = tiny ? x * 33554432.0f : x;
    int32_t bits;
    memcpy(&bits, &u, 4);
    /* Adding 1.0 - sqrt(1/2) (as bits) carries into the exponent exactly
     * when the mantissa is >= sqrt(2), which selects m's binade. */
    uint32_t shifted = (uint32_t)bits + (0x3f800000u - 0x3f3504f3u);
    int32_t k = (int32_t)(shifted >> 23) - 127 - (tiny ? 25 : 0);
    int32_t mbits = (int32_t)(shifted & 0x007fffffu) + 0x3f3504f3;
    float m;
    memcpy(&m, &mbits, 4);
    float f = m - 1.0f;
    float s = f / (2.0f + f), z = s * s;
    float tail = z * (2.0f / 3 + z * (2.0f / 5 + z * (2.0f / 7 + z * (2.0f / 9))));
    float hf = 0.5f * f * f;
    float kf = (float)k;
    float r = kf * 0.693359375f + (f - (hf - (s * (hf + tail) + (kf * -2.12194440e-4f + c))));
    r = x == INFINITY ? INFINITY : r;
    r = x == 0.0f ? -INFINITY : r;
    /* Two selects, not `x < 0 || x != x`: gcc 12 does not vectorise that
     * mask combination when x comes from xf_expf. */
    r = x < 0.0f ? NAN : r;
    return x != x ? x : r;
}

/* log(x) + c for double: the same scheme, longer series.  The exponent is turned
 * into a double through the 2^52 trick rather than an int64 conversion,
 * which AVX2 lacks. */
static inline __attribute__((always_inline)) double xf_log_plus(double x, double c)
{
    int tiny = x < 2.2250738585072014e-308;
    double u = tiny ? x * 18014398509481984.0 : x; /* 2^54 */
    uint64_t bits;
    memcpy(&bits, &u, 8);
    uint64_t shifted = bits + (0x3ff0000000000000ull - 0x3fe6a09e667f3bcdull);
    uint64_t kbits = (shifted >> 52) | 0x4330000000000000ull; /* 2^52 + exponent */
    double kd;
    memcpy(&kd, &kbits, 8);
    kd = kd - (4503599627370496.0 + 1023.0) - (tiny ? 54.0 : 0.0);
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
    double r = kd * 6.93147180369123816490e-01
             + (f - (hf - (s * (hf + tail) + (kd * 1.90821492927058770002e-10 + c))));
    r = x == INFINITY ? INFINITY : r;
    r = x == 0.0 ? -INFINITY : r;
    r = x < 0.0 ? NAN : r;
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
 * vectorises after xf_expf (xf_log1pf of _xf_simd.h does not, with gcc 12). */
static inline __attribute__((always_inline)) float xf_log1pf_el(float x)
{
    float u = 1.0f + x;
    return xf_logf_plus(u, (x - (u - 1.0f)) / u);
}

static inline __attribute__((always_inline)) double xf_log1p_el(double x)
{
    double u = 1.0 + x;
    return xf_log_plus(u, (x - (u - 1.0)) / u);
}

#define XF_T float
#define XF_NAME(f) f##_f32
#define XF_EXP xf_expf
#define XF_LOG xf_logf
#define XF_LOG_PLUS xf_logf_plus
#define XF_LOG1P xf_log1pf_el
#include "_xf_elementwise_impl.h"
#undef XF_T
#undef XF_NAME
#undef XF_EXP
#undef XF_LOG
#undef XF_LOG_PLUS
#undef XF_LOG1P

#define XF_T double
#define XF_NAME(f) f##_f64
#define XF_EXP xf_exp
#define XF_LOG xf_log
#define XF_LOG_PLUS xf_log_plus
#define XF_LOG1P xf_log1p_el
#include "_xf_elementwise_impl.h"
#undef XF_T
#undef XF_NAME
#undef XF_EXP
#undef XF_LOG
#undef XF_LOG_PLUS
#undef XF_LOG1P

#endif
