/* The float exp of _xf_simd.h (xf_expf) on AVX2 and AVX-512 vectors, for the
 * kernels written with intrinsics (_xf_rows_x86.h, and the exp pass of
 * _xf_elementwise_impl.h).  Same clamps and polynomial; at AVX-512, 2^n is
 * applied by scalef: 14 vector operations instead of 22.
 */
#ifndef XF_EXP_X86_H
#define XF_EXP_X86_H

#include "_xf_dispatch.h"

#ifdef XF_X86
#include <immintrin.h>

#define XF_AVX2_FN static inline __attribute__((always_inline)) XF_TARGET_L1
#define XF_AVX512_FN static inline __attribute__((always_inline)) XF_TARGET_L2

/* n = round(x / ln 2) and p = p(x - n ln 2), the polynomial of xf_expf, for
 * a vector x of the intrinsics family P (_mm256, _mm512): exp(x) = p * 2^n.
 * x is clamped first as there; NaN stays NaN (max/min return their second
 * operand, x, when it is NaN). */
#define XF_EXPF_PARTS(P, T, x, n, p)                                                    \
    do {                                                                                \
        const T magic_ = P##_set1_ps(12582912.0f);   /* 1.5 * 2^23: rounds */           \
        T xc_ = P##_min_ps(P##_set1_ps(89.0f), P##_max_ps(P##_set1_ps(-110.0f), x));    \
        n = P##_sub_ps(P##_fmadd_ps(xc_, P##_set1_ps(1.44269504088896341f), magic_),     \
                       magic_);                                                          \
        T r_ = P##_fnmadd_ps(n, P##_set1_ps(0.693359375f), xc_);                         \
        r_ = P##_fnmadd_ps(n, P##_set1_ps(-2.12194440e-4f), r_);                         \
        p = P##_set1_ps(1.9841270e-4f);                                                  \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(1.3888889e-3f));                             \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(8.3333333e-3f));                             \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(4.1666667e-2f));                             \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(1.6666667e-1f));                             \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(0.5f));                                      \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(1.0f));                                      \
        p = P##_fmadd_ps(p, r_, P##_set1_ps(1.0f));                                      \
    } while (0)

XF_AVX2_FN __m256 xf_expf_avx2(__m256 x)
{
    __m256 n, p;
    XF_EXPF_PARTS(_mm256, __m256, x, n, p);
    /* 2^n as two factors, so that subnormal results are right */
    __m256i ni = _mm256_cvtps_epi32(n);   /* exact: n is a whole number */
    __m256i k1 = _mm256_srai_epi32(ni, 1), k2 = _mm256_sub_epi32(ni, k1);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* The same, but 2^n applied by scalef, which rounds subnormal results
 * once, as the two factors do. */
XF_AVX512_FN __m512 xf_expf_avx512(__m512 x)
{
    __m512 n, p;
    XF_EXPF_PARTS(_mm512, __m512, x, n, p);
    return _mm512_scalef_ps(p, n);
}

#endif /* XF_X86 */
#endif
