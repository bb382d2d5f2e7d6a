/* The hottest float row loops, max and exp-sum, written with AVX2 and
 * AVX-512 intrinsics (x86-64).
 *
 * The portable `omp simd` loops of _xf_rows_impl.h are right on every level,
 * but gcc ends their reductions with a chain of scalar adds through memory
 * (one per lane: ~16 dependent adds per row and reduction) and runs their
 * last partial vector as scalar code.  For rows of ~100 classes that per-row
 * cost was most of the time.  Here a row is read in full vectors, the last
 * one masked (nothing outside the row is touched), the exp is the same
 * polynomial as xf_expf, and the final horizontal step is a few shuffles.  The order of every sum depends only on the row's
 * length, so results do not depend on the thread count.
 */
#ifndef XF_ROWS_X86_H
#define XF_ROWS_X86_H

#include "_xf_exp_x86.h"
#include "_xf_transpose.h"   /* xf_first_lanes_avx2, xf_first_lanes_avx512 */

#ifdef XF_X86

/* ---- AVX2: 8 floats a vector ---- */

/* [r0, r1, r2, r3] = the lanes of a[0..3] combined by OP (add, max) in
 * 128-bit lanes first: for OPs whose result does not depend on the order
 * (max; sums of whole numbers).  Defines name##_avx2 and name##_avx512. */
#define XF_DEFINE_COMBINE4(name, op)                                                    \
    XF_AVX2_FN __m128 name##_avx2(const __m256 a[4])                                    \
    {                                                                                   \
        __m256 a01 = _mm256_##op##_ps(_mm256_unpacklo_ps(a[0], a[1]),                   \
                                      _mm256_unpackhi_ps(a[0], a[1]));                  \
        __m256 a23 = _mm256_##op##_ps(_mm256_unpacklo_ps(a[2], a[3]),                   \
                                      _mm256_unpackhi_ps(a[2], a[3]));                  \
        __m256 q = _mm256_##op##_ps(                                                    \
            _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(a01), _mm256_castps_pd(a23))), \
            _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(a01), _mm256_castps_pd(a23)))); \
        return _mm_##op##_ps(_mm256_castps256_ps128(q), _mm256_extractf128_ps(q, 1));   \
    }                                                                                   \
    XF_AVX512_FN __m128 name##_avx512(const __m512 a[4])                                \
    {                                                                                   \
        __m512 a01 = _mm512_##op##_ps(_mm512_unpacklo_ps(a[0], a[1]),                   \
                                      _mm512_unpackhi_ps(a[0], a[1]));                  \
        __m512 a23 = _mm512_##op##_ps(_mm512_unpacklo_ps(a[2], a[3]),                   \
                                      _mm512_unpackhi_ps(a[2], a[3]));                  \
        __m512 q = _mm512_##op##_ps(   /* r0 r1 r2 r3 in every 128-bit lane */          \
            _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a01), _mm512_castps_pd(a23))), \
            _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a01), _mm512_castps_pd(a23)))); \
        __m256 h = _mm256_##op##_ps(_mm512_castps512_ps256(q), _mm512_extractf32x8_ps(q, 1)); \
        return _mm_##op##_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));   \
    }
XF_DEFINE_COMBINE4(xf_max4, max)
XF_DEFINE_COMBINE4(xf_sum4_counts, add)
#undef XF_DEFINE_COMBINE4

/* m[r] = the max of row r (at x + r * n) for `rows` <= 4 rows of n classes,
 * NaNs skipped; the rows' loads interleaved and their maxima reduced
 * together.  `rows` is a constant at every call. */
XF_AVX2_FN void xf_rows_max_avx2(const float *x, Py_ssize_t n, int rows, float *m)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 m0[4], m1[4];   /* max(v, m) keeps m where v is NaN */
    for (int r = 0; r < 4; r++)
        m0[r] = m1[r] = ninf;
    Py_ssize_t j = 0;
    for (; j + 16 <= n; j += 16)
        for (int r = 0; r < rows; r++) {
            m0[r] = _mm256_max_ps(_mm256_loadu_ps(x + r * n + j), m0[r]);
            m1[r] = _mm256_max_ps(_mm256_loadu_ps(x + r * n + j + 8), m1[r]);
        }
    for (; j + 8 <= n; j += 8)
        for (int r = 0; r < rows; r++)
            m0[r] = _mm256_max_ps(_mm256_loadu_ps(x + r * n + j), m0[r]);
    if (j < n) {
        __m256i k = xf_first_lanes_avx2(n - j);
        for (int r = 0; r < rows; r++)
            m1[r] = _mm256_max_ps(_mm256_blendv_ps(ninf, _mm256_maskload_ps(x + r * n + j, k),
                                                   _mm256_castsi256_ps(k)), m1[r]);
    }
    for (int r = 0; r < 4; r++)
        m0[r] = _mm256_max_ps(m0[r], m1[r]);
    float res[4];
    _mm_storeu_ps(res, xf_max4_avx2(m0));
    for (int r = 0; r < rows; r++)
        m[r] = res[r];
}

/* The exp-sums below add their terms in float lanes over blocks of
 * XF_SUM_BLOCK classes (at most 32 terms a lane: a relative error below
 * 2e-6), and the blocks' sums in double. */
#define XF_SUM_BLOCK 256

/* Index of the first x[j] == m, or n. */
XF_AVX2_FN Py_ssize_t xf_first_equal_avx2(const float *x, Py_ssize_t n, float m)
{
    const __m256 mv = _mm256_set1_ps(m);
    Py_ssize_t j = 0;
    for (; j + 8 <= n; j += 8) {
        int bits = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + j), mv, _CMP_EQ_OQ));
        if (bits)
            return j + __builtin_ctz((unsigned)bits);
    }
    for (; j < n && x[j] != m; j++)
        ;
    return j;
}

/* [r0, r1, r2, r3] = the sums of the four lanes of a[0..3], each in the
 * order of a one-row reduction: the halves, then the pair. */
XF_AVX2_FN __m256d xf_sum4_pd_avx2(const __m256d a[4])
{
    __m256d s01 = _mm256_add_pd(_mm256_permute2f128_pd(a[0], a[1], 0x20),
                                _mm256_permute2f128_pd(a[0], a[1], 0x31));
    __m256d s23 = _mm256_add_pd(_mm256_permute2f128_pd(a[2], a[3], 0x20),
                                _mm256_permute2f128_pd(a[2], a[3], 0x31));
    return _mm256_permute4x64_pd(_mm256_hadd_pd(s01, s23), 0xD8);   /* r0 r2 r1 r3 -> in order */
}

/* others[r] for `rows` <= 4 rows of n classes (row r at x + r * n, its max
 * m[r], its exps to e + r * n; e may be x), as xf_row_exp_sum: the sum of
 * the terms but one max term.  That term is found first (the row is in L1
 * after the max) and the loop just adds: counting the terms equal to 1 in
 * every vector cost 4 of its ~25 operations, and at AVX2 the loop is bound by
 * the two FMA ports.  Other terms equal to 1 (ties) are summed in float like
 * the rest (the sum is then >= 1, so its relative error stays float's).  A
 * row whose max is not finite leaves nothing out, and its sum is NaN (as
 * every term is).  The rows go through one loop, a vector of each in turn:
 * one row's exps are a latency chain the others' fill, and their sums are
 * reduced together.  `rows` is a constant at every call (the loops over it
 * unroll); a row's result does not depend on it. */
XF_AVX2_FN void xf_rows_exp_sum_avx2(const float *x, Py_ssize_t n, int rows, const float *m,
                                     float *e, double *others)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 mv[4];
    __m256d acc[4];
    Py_ssize_t skip[4];
    for (int r = 0; r < 4; r++) {
        acc[r] = _mm256_setzero_pd();
        if (r < rows) {
            mv[r] = _mm256_set1_ps(m[r]);
            skip[r] = m[r] - m[r] == 0 ? xf_first_equal_avx2(x + r * n, n, m[r]) : n;
        }
    }
    for (Py_ssize_t j0 = 0; j0 < n; j0 += XF_SUM_BLOCK) {
        Py_ssize_t j = j0, j1 = j0 + XF_SUM_BLOCK < n ? j0 + XF_SUM_BLOCK : n;
        __m256 s[4];
        for (int r = 0; r < rows; r++)
            s[r] = _mm256_setzero_ps();
        for (; j + 8 <= j1; j += 8)
            for (int r = 0; r < rows; r++) {
                __m256 v = xf_expf_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + r * n + j), mv[r]));
                _mm256_storeu_ps(e + r * n + j, v);
                if ((size_t)(skip[r] - j) < 8)   /* the max term: not summed */
                    v = _mm256_andnot_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(
                            _mm256_set1_epi32((int)(skip[r] - j)), lane)), v);
                s[r] = _mm256_add_ps(s[r], v);
            }
        if (j < j1) {
            __m256i k = xf_first_lanes_avx2(j1 - j);
            for (int r = 0; r < rows; r++) {
                __m256 v = xf_expf_avx2(_mm256_sub_ps(_mm256_maskload_ps(x + r * n + j, k), mv[r]));
                _mm256_maskstore_ps(e + r * n + j, k, v);
                __m256i kr = k;
                if ((size_t)(skip[r] - j) < 8)
                    kr = _mm256_andnot_si256(_mm256_cmpeq_epi32(
                        _mm256_set1_epi32((int)(skip[r] - j)), lane), k);
                s[r] = _mm256_add_ps(s[r], _mm256_and_ps(v, _mm256_castsi256_ps(kr)));
            }
        }
        for (int r = 0; r < rows; r++)
            acc[r] = _mm256_add_pd(acc[r], _mm256_add_pd(
                _mm256_cvtps_pd(_mm256_castps256_ps128(s[r])),
                _mm256_cvtps_pd(_mm256_extractf128_ps(s[r], 1))));
    }
    double rest[4];
    _mm256_storeu_pd(rest, xf_sum4_pd_avx2(acc));
    for (int r = 0; r < rows; r++)
        others[r] = rest[r] + ((skip[r] < n ? 1.0 : 0.0) - 1.0);
}

/* out[j] = EXPR over a row of n floats, where v is the vector of in[j..]:
 * full vectors, then the last one under a mask (the portable loops ran their
 * last partial vector as scalar code).  out may be in. */
#define XF_ROW_MAP_AVX2(in, out, n, v, expr)                                            \
    do {                                                                                \
        Py_ssize_t j_ = 0;                                                              \
        for (; j_ + 8 <= (n); j_ += 8) {                                                \
            __m256 v = _mm256_loadu_ps((in) + j_);                                      \
            _mm256_storeu_ps((out) + j_, (expr));                                       \
        }                                                                               \
        if (j_ < (n)) {                                                                 \
            __m256i k_ = xf_first_lanes_avx2((n) - j_);                                 \
            __m256 v = _mm256_maskload_ps((in) + j_, k_);                               \
            _mm256_maskstore_ps((out) + j_, k_, (expr));                                \
        }                                                                               \
    } while (0)

/* g[j] = a * g[j] - b (one rounding, an FMA): the gradient rows of the label
 * losses. */
XF_AVX2_FN void xf_row_scale_sub_avx2(float *g, Py_ssize_t n, float a, float b)
{
    const __m256 av = _mm256_set1_ps(a), bv = _mm256_set1_ps(b);
    XF_ROW_MAP_AVX2(g, g, n, v, _mm256_fmsub_ps(av, v, bv));
}

/* out[j] = (x[j] - s1) - s2: the rows of log_softmax. */
XF_AVX2_FN void xf_row_sub_avx2(const float *x, Py_ssize_t n, float s1, float s2, float *out)
{
    const __m256 v1 = _mm256_set1_ps(s1), v2 = _mm256_set1_ps(s2);
    XF_ROW_MAP_AVX2(x, out, n, v, _mm256_sub_ps(_mm256_sub_ps(v, v1), v2));
}

/* The exps of a float tile (_xf_rows_impl.h: 16 rows, class j of row k at
 * tile[j * 16 + k]), two vectors a class: out = exp(tile - m) (out may be
 * tile), and others[k] = the sum of lane k's terms but one of its ones.  A
 * lane's terms below 1 (or NaN) are summed in float, the even and the odd
 * classes apart (at most 64 terms a sum: within 4e-6 relative, as the row
 * sums), the two sums added in double; all its terms in a third float sum u,
 * which only serves to count the terms equal to 1 (u - s, rounded: as at
 * avx512, one compare and three adds a vector instead of five operations).
 * Both halves of the tile go through one loop, six short chains in all (the
 * halves one after the other made the exps wait on the chains' latency). */
XF_AVX2_FN void xf_tile_exp_avx2(const float *tile, Py_ssize_t c, const float *m,
                                 float *out, float *others)
{
    const __m256 m0 = _mm256_loadu_ps(m), m1 = _mm256_loadu_ps(m + 8), one = _mm256_set1_ps(1.0f);
    __m256 s[4], u[2];   /* s[half * 2 + class parity], u[half] */
    for (int i = 0; i < 4; i++)
        s[i] = _mm256_setzero_ps();
    u[0] = u[1] = _mm256_setzero_ps();
#define XF_TILE_EXP_HALF(v, half, parity)                                                \
    do {                                                                                 \
        __m256 below_ = _mm256_cmp_ps(v, one, _CMP_NGE_UQ);                              \
        s[2 * (half) + (parity)] = _mm256_add_ps(s[2 * (half) + (parity)],               \
                                                 _mm256_and_ps(below_, v));              \
        u[half] = _mm256_add_ps(u[half], v);                                             \
    } while (0)
#define XF_TILE_EXP_CLASS(j, parity)                                                     \
    do {                                                                                 \
        __m256 v0_ = xf_expf_avx2(_mm256_sub_ps(_mm256_loadu_ps(tile + (j) * 16), m0));  \
        __m256 v1_ = xf_expf_avx2(_mm256_sub_ps(_mm256_loadu_ps(tile + (j) * 16 + 8), m1)); \
        _mm256_storeu_ps(out + (j) * 16, v0_);                                           \
        _mm256_storeu_ps(out + (j) * 16 + 8, v1_);                                       \
        XF_TILE_EXP_HALF(v0_, 0, parity);                                                \
        XF_TILE_EXP_HALF(v1_, 1, parity);                                                \
    } while (0)
    Py_ssize_t j = 0;
    for (; j + 2 <= c; j += 2) {
        XF_TILE_EXP_CLASS(j, 0);
        XF_TILE_EXP_CLASS(j + 1, 1);
    }
    if (j < c)
        XF_TILE_EXP_CLASS(j, 0);
#undef XF_TILE_EXP_CLASS
#undef XF_TILE_EXP_HALF
    for (int h = 0; h < 2; h++) {
        __m256 a = s[2 * h], b = s[2 * h + 1];
        /* the count of ones less 1: exact (the sums' errors are below 2^-10) */
        __m256 lo = _mm256_sub_ps(_mm256_round_ps(_mm256_sub_ps(u[h], _mm256_add_ps(a, b)),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                  one);
        __m256d sum_lo = _mm256_add_pd(_mm256_add_pd(
            _mm256_cvtps_pd(_mm256_castps256_ps128(a)), _mm256_cvtps_pd(_mm256_castps256_ps128(b))),
            _mm256_cvtps_pd(_mm256_castps256_ps128(lo)));
        __m256d sum_hi = _mm256_add_pd(_mm256_add_pd(
            _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)), _mm256_cvtps_pd(_mm256_extractf128_ps(b, 1))),
            _mm256_cvtps_pd(_mm256_extractf128_ps(lo, 1)));
        /* one 256-bit store, which the log1p loop's 256-bit load can be
         * forwarded from (two 128-bit stores could not) */
        _mm256_storeu_ps(others + 8 * h, _mm256_insertf128_ps(
            _mm256_castps128_ps256(_mm256_cvtpd_ps(sum_lo)), _mm256_cvtpd_ps(sum_hi), 1));
    }
}

/* ---- AVX-512: 16 floats a vector, the last one under a mask ---- */

/* xf_rows_max_avx2 in 16 lanes, the last vector under a mask. */
XF_AVX512_FN void xf_rows_max_avx512(const float *x, Py_ssize_t n, int rows, float *m)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 m0[4], m1[4];   /* max(v, m) keeps m where v is NaN */
    for (int r = 0; r < 4; r++)
        m0[r] = m1[r] = ninf;
    Py_ssize_t j = 0;
    for (; j + 32 <= n; j += 32)
        for (int r = 0; r < rows; r++) {
            m0[r] = _mm512_max_ps(_mm512_loadu_ps(x + r * n + j), m0[r]);
            m1[r] = _mm512_max_ps(_mm512_loadu_ps(x + r * n + j + 16), m1[r]);
        }
    for (; j < n; j += 16) {
        __mmask16 k = xf_first_lanes_avx512(n - j);
        for (int r = 0; r < rows; r++)
            m0[r] = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, k, x + r * n + j), m0[r]);
    }
    for (int r = 0; r < 4; r++)
        m0[r] = _mm512_max_ps(m0[r], m1[r]);
    float res[4];
    _mm_storeu_ps(res, xf_max4_avx512(m0));
    for (int r = 0; r < rows; r++)
        m[r] = res[r];
}

/* [r0, r1, r2, r3] = the sums of the eight lanes of a[0..3], each in the
 * order of _mm512_reduce_add_pd: the halves, the quarters, then the pair. */
XF_AVX512_FN __m256d xf_sum4_pd_avx512(const __m512d a[4])
{
    __m512d a01 = _mm512_add_pd(_mm512_shuffle_f64x2(a[0], a[1], 0x44),
                                _mm512_shuffle_f64x2(a[0], a[1], 0xEE));
    __m512d a23 = _mm512_add_pd(_mm512_shuffle_f64x2(a[2], a[3], 0x44),
                                _mm512_shuffle_f64x2(a[2], a[3], 0xEE));
    __m512d q = _mm512_add_pd(_mm512_shuffle_f64x2(a01, a23, 0x88),
                              _mm512_shuffle_f64x2(a01, a23, 0xDD));   /* r0 r0 r1 r1 .. */
    q = _mm512_add_pd(q, _mm512_permute_pd(q, 0x55));
    return _mm512_castpd512_pd256(_mm512_permutexvar_pd(_mm512_setr_epi64(0, 2, 4, 6, 0, 2, 4, 6), q));
}

/* xf_rows_exp_sum_avx2 in 16 lanes, without a search for the max term (its
 * mispredicted exit, once a row, cost more than it saved here): the terms
 * below 1 (or NaN) are summed under the mask of one compare, and every term
 * in a second float sum u, which only serves to count the terms equal to 1:
 * a lane's u - s, rounded, is its count (their errors are below 2^-15 in a
 * block).  Full vectors unmasked, the last one under a mask. */
XF_AVX512_FN void xf_rows_exp_sum_avx512(const float *x, Py_ssize_t n, int rows,
                                         const float *m, float *e, double *others)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 mv[4], count[4];
    __m512d acc[4];
    for (int r = 0; r < 4; r++) {
        acc[r] = _mm512_setzero_pd();
        count[r] = _mm512_setzero_ps();
        if (r < rows)
            mv[r] = _mm512_set1_ps(m[r]);
    }
    for (Py_ssize_t j0 = 0; j0 < n; j0 += XF_SUM_BLOCK) {
        Py_ssize_t j = j0, j1 = j0 + XF_SUM_BLOCK < n ? j0 + XF_SUM_BLOCK : n;
        __m512 s[4], u[4];
        for (int r = 0; r < rows; r++)
            s[r] = u[r] = _mm512_setzero_ps();
        for (; j + 16 <= j1; j += 16)
            for (int r = 0; r < rows; r++) {
                __m512 v = xf_expf_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + r * n + j), mv[r]));
                _mm512_storeu_ps(e + r * n + j, v);
                s[r] = _mm512_mask_add_ps(s[r], _mm512_cmp_ps_mask(v, one, _CMP_NGE_UQ), s[r], v);
                u[r] = _mm512_add_ps(u[r], v);
            }
        if (j < j1) {
            __mmask16 k = xf_first_lanes_avx512(j1 - j);
            for (int r = 0; r < rows; r++) {
                __m512 v = xf_expf_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + r * n + j),
                                                        mv[r]));
                _mm512_mask_storeu_ps(e + r * n + j, k, v);
                s[r] = _mm512_mask_add_ps(s[r], _mm512_mask_cmp_ps_mask(k, v, one, _CMP_NGE_UQ),
                                          s[r], v);
                u[r] = _mm512_mask_add_ps(u[r], k, u[r], v);
            }
        }
        for (int r = 0; r < rows; r++) {
            acc[r] = _mm512_add_pd(acc[r], _mm512_add_pd(
                _mm512_cvtps_pd(_mm512_castps512_ps256(s[r])),
                _mm512_cvtps_pd(_mm512_extractf32x8_ps(s[r], 1))));
            count[r] = _mm512_add_ps(count[r], _mm512_roundscale_ps(
                _mm512_sub_ps(u[r], s[r]), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        }
    }
    /* exact; NaN in a NaN row, as its sum */
    __m256d ones_less_1 = _mm256_sub_pd(_mm256_cvtps_pd(xf_sum4_counts_avx512(count)),
                                        _mm256_set1_pd(1.0));
    double res[4];
    _mm256_storeu_pd(res, _mm256_add_pd(xf_sum4_pd_avx512(acc), ones_less_1));
    for (int r = 0; r < rows; r++)
        others[r] = res[r];
}

/* XF_ROW_MAP_AVX2 in 16 lanes. */
#define XF_ROW_MAP_AVX512(in, out, n, v, expr)                                          \
    do {                                                                                \
        Py_ssize_t j_ = 0;                                                              \
        for (; j_ + 16 <= (n); j_ += 16) {                                              \
            __m512 v = _mm512_loadu_ps((in) + j_);                                      \
            _mm512_storeu_ps((out) + j_, (expr));                                       \
        }                                                                               \
        if (j_ < (n)) {                                                                 \
            __mmask16 k_ = xf_first_lanes_avx512((n) - j_);                             \
            __m512 v = _mm512_maskz_loadu_ps(k_, (in) + j_);                            \
            _mm512_mask_storeu_ps((out) + j_, k_, (expr));                              \
        }                                                                               \
    } while (0)

XF_AVX512_FN void xf_row_scale_sub_avx512(float *g, Py_ssize_t n, float a, float b)
{
    const __m512 av = _mm512_set1_ps(a), bv = _mm512_set1_ps(b);
    XF_ROW_MAP_AVX512(g, g, n, v, _mm512_fmsub_ps(av, v, bv));
}

XF_AVX512_FN void xf_row_sub_avx512(const float *x, Py_ssize_t n, float s1, float s2,
                                    float *out)
{
    const __m512 v1 = _mm512_set1_ps(s1), v2 = _mm512_set1_ps(s2);
    XF_ROW_MAP_AVX512(x, out, n, v, _mm512_sub_ps(_mm512_sub_ps(v, v1), v2));
}

/* xf_tile_exp_avx2 in one vector a class, the exp's 2^n by scalef. */
XF_AVX512_FN void xf_tile_exp_avx512(const float *tile, Py_ssize_t c, const float *m,
                                     float *out, float *others)
{
    const __m512 mv = _mm512_loadu_ps(m), one = _mm512_set1_ps(1.0f);
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, ones = s0;
#define XF_TILE_EXP_CLASS(j, s)                                                              \
    do {                                                                                     \
        __m512 v_ = xf_expf_avx512(_mm512_sub_ps(_mm512_loadu_ps(tile + (j) * 16), mv)); \
        _mm512_storeu_ps(out + (j) * 16, v_);                                                \
        __mmask16 is_one_ = _mm512_cmp_ps_mask(v_, one, _CMP_EQ_OQ);                         \
        ones = _mm512_mask_add_ps(ones, is_one_, ones, one);                                 \
        s = _mm512_mask_add_ps(s, (__mmask16)~is_one_, s, v_);                               \
    } while (0)
    Py_ssize_t j = 0;
    for (; j + 2 <= c; j += 2) {
        XF_TILE_EXP_CLASS(j, s0);
        XF_TILE_EXP_CLASS(j + 1, s1);
    }
    if (j < c)
        XF_TILE_EXP_CLASS(j, s0);
#undef XF_TILE_EXP_CLASS
    __m512 lo = _mm512_add_ps(ones, _mm512_set1_ps(-1.0f));   /* exact */
    __m512d sum_lo = _mm512_add_pd(_mm512_add_pd(
        _mm512_cvtps_pd(_mm512_castps512_ps256(s0)), _mm512_cvtps_pd(_mm512_castps512_ps256(s1))),
        _mm512_cvtps_pd(_mm512_castps512_ps256(lo)));
    __m512d sum_hi = _mm512_add_pd(_mm512_add_pd(
        _mm512_cvtps_pd(_mm512_extractf32x8_ps(s0, 1)), _mm512_cvtps_pd(_mm512_extractf32x8_ps(s1, 1))),
        _mm512_cvtps_pd(_mm512_extractf32x8_ps(lo, 1)));
    /* one 512-bit store: the log1p loop next reads `others` as one vector,
     * which two 256-bit stores could not forward */
    _mm512_storeu_ps(others, _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(sum_lo)),
                                                _mm512_cvtpd_ps(sum_hi), 1));
}

#endif /* XF_X86 */
#endif
