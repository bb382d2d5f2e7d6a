/* The float exp of _xf_simd.h (xf_expf) on AVX2 and AVX-512 vectors, for the
 * kernels written with intrinsics (_xf_rows_x86.h, and the exp pass of
 * _xf_elementwise_impl.h).  Same polynomial and results; 2^n is applied in
 * fewer operations: at AVX2 for arguments <= 0 only (14 vector operations
 * instead of 20), at AVX-512 by scalef (12).
 */
#ifndef XF_EXP_X86_H
#define XF_EXP_X86_H

#include "_xf_dispatch.h"

#ifdef XF_X86
#include <immintrin.h>

#define XF_AVX2_FN static inline __attribute__((always_inline)) XF_TARGET_L1
#define XF_AVX512_FN static inline __attribute__((always_inline)) XF_TARGET_L2

/* n = round(x / ln 2) and p = S p(x - n ln 2), the polynomial of xf_expf
 * with every coefficient times S (a power of 2: the same roundings, scaled),
 * for a vector x <= 0 of the intrinsics family P (_mm256, _mm512): exp(x) =
 * (p / S) * 2^n.  Every caller has such arguments (x - the row's max, -|x|),
 * so x is only clamped below, at -110; NaN stays NaN (max returns its second
 * operand, x, when it is NaN).  t is n + 1.5 * 2^23, whose low bits are n as
 * an integer. */
#define XF_EXPF_PARTS(P, T, x, t, n, p, S)                                               \
    do {                                                                                \
        const T magic_ = P##_set1_ps(12582912.0f);   /* 1.5 * 2^23: rounds */           \
        T xc_ = P##_max_ps(P##_set1_ps(-110.0f), x);                                     \
        t = P##_fmadd_ps(xc_, P##_set1_ps(1.44269504088896341f), magic_);                \
        n = P##_sub_ps(t, magic_);                                                       \
        T r_ = P##_fnmadd_ps(n, P##_set1_ps(0.693359375f), xc_);                         \
        r_ = P##_fnmadd_ps(n, P##_set1_ps(-2.12194440e-4f), r_);                         \
        p = P##_set1_ps(1.3843839e-3f * (S));                                            \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(8.374182e-3f * (S)));                        \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(4.1668e-2f * (S)));                          \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(1.666645e-1f * (S)));                        \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(4.999999e-1f * (S)));                        \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(1.0f * (S)));                                \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(1.0f * (S)));                                \
    } while (0)

/* exp(x) for x <= 0 (or NaN).  Then n <= 0, and 2^(n + 64) is a normal
 * number, made from t's bits with one add and one shift; with the polynomial
 * scaled by 2^-64, one product p * 2^(n + 64) rounds a subnormal result once.
 * That is the correctly rounded p * 2^n, as xf_expf's two factors give, in 3
 * operations (an add, a shift, a product) instead of their 9. */
XF_AVX2_FN __m256 xf_expf_avx2(__m256 x)
{
    __m256 t, n, p;
    XF_EXPF_PARTS(_mm256, __m256, x, t, n, p, 5.42101086242752217e-20f);   /* 2^-64 */
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_castps_si256(t),
                                                      _mm256_set1_epi32(127 + 64)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

/* exp(x) for x <= 0 (or NaN), 2^n applied by scalef, which rounds subnormal
 * results once, as the two factors do. */
XF_AVX512_FN __m512 xf_expf_avx512(__m512 x)
{
    __m512 t, n, p;
    XF_EXPF_PARTS(_mm512, __m512, x, t, n, p, 1.0f);
    (void)t;
    return _mm512_scalef_ps(p, n);
}

#endif /* XF_X86 */
#endif
