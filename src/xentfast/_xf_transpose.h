/* Tile transposes in registers, for the AVX2 and AVX-512 levels (x86-64).
 *
 * A tile holds XF_LANES = 16 rows of a (rows, C) block transposed:
 * tile[j * 16 + k] = row k, class j.  The portable loops of _xf_rows_impl.h
 * move it element by element (AVX2 has no strided load; gathers were slower
 * than these transposes even on Intel).  At AVX2, 8 rows x 8 classes go
 * through eight 256-bit registers and an 8x8 transpose (unpack, shuffle,
 * permute: 24 shuffles for 64 values); at AVX-512, 16 rows x 16 classes
 * through sixteen 512-bit registers (64 shuffles for 256 values: at C = 10
 * the tile's load took 35 % less time and its store 40 % less than in 8x8
 * blocks, measured on a Sapphire Rapids Xeon).  The last partial block of
 * classes is read and written with masked loads and stores, so nothing
 * outside the rows is touched.
 */
#ifndef XF_TRANSPOSE_H
#define XF_TRANSPOSE_H

#include "_xf_exp_x86.h"   /* XF_AVX2_FN, XF_AVX512_FN */

#ifdef XF_X86

/* Transposes the 8x8 matrix whose rows are r[0..7]. */
XF_AVX2_FN void xf_transpose8x8_ps(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Lanes [0, count) set, count in [0, 8]. */
XF_AVX2_FN __m256i xf_first_lanes_avx2(Py_ssize_t count)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* xf_tile_load for float: rows past nr are 0; m the lanes' maxima. */
XF_AVX2_FN void xf_tile_load8_f32(const float *x, Py_ssize_t c, Py_ssize_t nr,
                                  float *tile, float *m)
{
    for (Py_ssize_t k0 = 0; k0 < 16; k0 += 8) {
        Py_ssize_t rows = nr - k0;
        __m256 mk = _mm256_set1_ps(-INFINITY);   /* max(v, mk) keeps mk where v is NaN */
        for (Py_ssize_t j0 = 0; j0 < c; j0 += 8) {
            Py_ssize_t width = c - j0 < 8 ? c - j0 : 8;
            __m256i mask = xf_first_lanes_avx2(width);
            __m256 r[8];
            for (int i = 0; i < 8; i++) {
                const float *src = x + (k0 + i) * c + j0;
                r[i] = i >= rows ? _mm256_setzero_ps()
                     : width == 8 ? _mm256_loadu_ps(src) : _mm256_maskload_ps(src, mask);
            }
            xf_transpose8x8_ps(r);
            for (Py_ssize_t j = 0; j < width; j++) {
                _mm256_storeu_ps(tile + (j0 + j) * 16 + k0, r[j]);
                mk = _mm256_max_ps(r[j], mk);
            }
        }
        _mm256_storeu_ps(m + k0, mk);
    }
}

/* xf_tile_store for float: g[k * C + j] = (a[k] tile[j, k] - s[k]) - b[k] w[j]. */
XF_AVX2_FN void xf_tile_store8_f32(const float *tile, Py_ssize_t c, Py_ssize_t nr,
                                   const float *a, const float *s, const float *b,
                                   const float *w, float *g)
{
    for (Py_ssize_t k0 = 0; k0 < nr; k0 += 8) {
        Py_ssize_t rows = nr - k0 < 8 ? nr - k0 : 8;
        __m256 av = _mm256_loadu_ps(a + k0), sv = _mm256_loadu_ps(s + k0);
        __m256 bv = _mm256_loadu_ps(b + k0);
        for (Py_ssize_t j0 = 0; j0 < c; j0 += 8) {
            Py_ssize_t width = c - j0 < 8 ? c - j0 : 8;
            __m256 r[8];
            for (int j = 0; j < 8; j++) {
                if (j >= width) {
                    r[j] = _mm256_setzero_ps();
                    continue;
                }
                __m256 t = _mm256_loadu_ps(tile + (j0 + j) * 16 + k0);
                __m256 wj = _mm256_set1_ps(w ? w[j0 + j] : 1.0f);
                r[j] = _mm256_sub_ps(_mm256_fmsub_ps(av, t, sv), _mm256_mul_ps(bv, wj));
            }
            xf_transpose8x8_ps(r);
            __m256i mask = xf_first_lanes_avx2(width);
            for (Py_ssize_t i = 0; i < rows; i++) {
                float *dst = g + (k0 + i) * c + j0;
                if (width == 8)
                    _mm256_storeu_ps(dst, r[i]);
                else
                    _mm256_maskstore_ps(dst, mask, r[i]);
            }
        }
    }
}

/* Transposes the 16x16 matrix whose rows are r[0..15]. */
XF_AVX512_FN void xf_transpose16x16_ps(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    /* r[4a + b], 128-bit lane l: rows 4a..4a+3 of column 4l + b */
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
}

/* Lanes [0, count) set, count >= 0. */
XF_AVX512_FN __mmask16 xf_first_lanes_avx512(Py_ssize_t count)
{
    return count >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1u);
}

/* xf_tile_load8_f32 in 16x16 blocks. */
XF_AVX512_FN void xf_tile_load16_f32(const float *x, Py_ssize_t c, Py_ssize_t nr,
                                     float *tile, float *m)
{
    __m512 mk = _mm512_set1_ps(-INFINITY);   /* max(v, mk) keeps mk where v is NaN */
    for (Py_ssize_t j0 = 0; j0 < c; j0 += 16) {
        Py_ssize_t width = c - j0 < 16 ? c - j0 : 16;
        __mmask16 mask = xf_first_lanes_avx512(width);
        __m512 r[16];
        for (int i = 0; i < 16; i++)
            r[i] = i < nr ? _mm512_maskz_loadu_ps(mask, x + i * c + j0) : _mm512_setzero_ps();
        xf_transpose16x16_ps(r);
        for (Py_ssize_t j = 0; j < width; j++) {
            _mm512_storeu_ps(tile + (j0 + j) * 16, r[j]);
            mk = _mm512_max_ps(r[j], mk);
        }
    }
    _mm512_storeu_ps(m, mk);
}

/* xf_tile_store8_f32 in 16x16 blocks. */
XF_AVX512_FN void xf_tile_store16_f32(const float *tile, Py_ssize_t c, Py_ssize_t nr,
                                      const float *a, const float *s, const float *b,
                                      const float *w, float *g)
{
    __m512 av = _mm512_loadu_ps(a), sv = _mm512_loadu_ps(s), bv = _mm512_loadu_ps(b);
    for (Py_ssize_t j0 = 0; j0 < c; j0 += 16) {
        Py_ssize_t width = c - j0 < 16 ? c - j0 : 16;
        __m512 r[16];
        for (int j = 0; j < 16; j++) {
            if (j >= width) {
                r[j] = _mm512_setzero_ps();
                continue;
            }
            __m512 t = _mm512_loadu_ps(tile + (j0 + j) * 16);
            __m512 wj = _mm512_set1_ps(w ? w[j0 + j] : 1.0f);
            r[j] = _mm512_sub_ps(_mm512_fmsub_ps(av, t, sv), _mm512_mul_ps(bv, wj));
        }
        xf_transpose16x16_ps(r);
        __mmask16 mask = xf_first_lanes_avx512(width);
        for (Py_ssize_t i = 0; i < nr; i++)
            _mm512_mask_storeu_ps(g + i * c + j0, mask, r[i]);
    }
}

#endif
#endif
