/* Instantiated by _xf_rows.h for XF_T = float and double (no include guard). */

/* Float rows at the AVX levels take the intrinsics of _xf_rows_x86.h
 * (XF_ROWS_X86_F32: 0 none, 1 AVX2, 2 AVX-512). */
#undef XF_ROWS_X86_F32
#if defined(XF_X86) && XF_F32 && XF_LEVEL_NUM >= 1
#  define XF_ROWS_X86_F32 XF_LEVEL_NUM
#else
#  define XF_ROWS_X86_F32 0
#endif

/* Largest entry; NaNs are skipped here and caught by the exp sum instead. */
static XF_TARGET XF_T XF_NAME(xf_row_max)(const XF_T *x, Py_ssize_t n)
{
    XF_T m = -INFINITY;
#if XF_ROWS_X86_F32 == 2
    xf_rows_max_avx512(x, n, 1, &m);
#elif XF_ROWS_X86_F32 == 1
    xf_rows_max_avx2(x, n, 1, &m);
#else
    XF_SIMD_REDUCE(max, m)
    for (Py_ssize_t j = 0; j < n; j++)
        m = x[j] > m ? x[j] : m;
#endif
    return m;
}

/* m[r] = xf_row_max of row r for `rows` consecutive rows of n classes (four
 * at a time for floats at the AVX levels). */
static XF_TARGET void XF_NAME(xf_rows_max)(const XF_T *x, Py_ssize_t n, Py_ssize_t rows, XF_T *m)
{
    Py_ssize_t r = 0;
#if XF_ROWS_X86_F32 == 2
    for (; r + 4 <= rows; r += 4)
        xf_rows_max_avx512(x + r * n, n, 4, m + r);
#elif XF_ROWS_X86_F32 == 1
    for (; r + 4 <= rows; r += 4)
        xf_rows_max_avx2(x + r * n, n, 4, m + r);
#endif
    for (; r < rows; r++)
        m[r] = XF_NAME(xf_row_max)(x + r * n, n);
}

/* e[j] = exp(x[j] - m), m the row's max; e may be x.  Returns the sum of
 * every term but one of the max terms (those equal to 1), so that
 * log p = x - m - log1p(result) has no cancellation for the dominant class,
 * and stores log1p(result) in *l1p unless l1p is NULL (here, where FMA is at
 * hand: its polynomial is a latency chain).  NaN if the row holds a NaN, or +inf (then
 * m = +inf), or is all -inf. */
static XF_TARGET double XF_NAME(xf_row_exp_sum)(const XF_T *x, Py_ssize_t n,
                                                     XF_T m, XF_T *e, double *l1p)
{
    double others;
#if XF_ROWS_X86_F32 == 2
    xf_rows_exp_sum_avx512(x, n, 1, &m, e, &others);
#elif XF_ROWS_X86_F32 == 1
    xf_rows_exp_sum_avx2(x, n, 1, &m, e, &others);
#else
    double rest = 0.0, ones = 0.0;
    XF_SIMD
    for (Py_ssize_t j = 0; j < n; j++)
        e[j] = XF_EXP(x[j] - m);
    /* a second loop over the row, now in L1: fusing it into the first makes
     * gcc 12 generate slower code */
    XF_SIMD_REDUCE(+, rest, ones)
    for (Py_ssize_t j = 0; j < n; j++) {
        int is_one = e[j] == (XF_T)1;
        rest += is_one ? 0.0 : (double)e[j];
        ones += is_one ? 1.0 : 0.0;
    }
    others = rest + (ones - 1.0);
#endif
    if (l1p != NULL)
        *l1p = xf_log1p_nonneg(others);
    return others;
}

/* xf_row_exp_sum (no log1p) of `rows` consecutive rows of n classes: row r
 * at x + r * n, its max m[r], its exps to e + r * n (e may be x), its sum in
 * others[r].  Float rows at the AVX levels go four at a time, with the same
 * results. */
static XF_TARGET void XF_NAME(xf_rows_exp_sum)(const XF_T *x, Py_ssize_t n, Py_ssize_t rows,
                                               const XF_T *m, XF_T *e, double *others)
{
    Py_ssize_t r = 0;
#if XF_ROWS_X86_F32 == 2
    for (; r + 4 <= rows; r += 4)
        xf_rows_exp_sum_avx512(x + r * n, n, 4, m + r, e + r * n, others + r);
#elif XF_ROWS_X86_F32 == 1
    for (; r + 4 <= rows; r += 4)
        xf_rows_exp_sum_avx2(x + r * n, n, 4, m + r, e + r * n, others + r);
#endif
    for (; r < rows; r++)
        others[r] = XF_NAME(xf_row_exp_sum)(x + r * n, n, m[r], e + r * n, NULL);
}

/* out[k] = log1p(x[k]) (x[k] >= 0): the log1p of a group of rows' sums at once, in
 * vectors (short rows call xf_row_exp_sum with l1p = NULL, since one scalar
 * log1p per row is a latency chain as long as their exps). */
static XF_TARGET void XF_NAME(xf_rows_log1p)(const double *x, Py_ssize_t n, double *out)
{
    XF_SIMD
    for (Py_ssize_t k = 0; k < n; k++)
        out[k] = xf_log1p_nonneg(x[k]);
}

/* Target coefficients of soft (or smoothed) targets:
 *   c[j] = (t ? t_scale * t[j] + t_add : t_add) * (w ? w[j] : 1).
 * The loops over them are inlined once for each presence of t and w (has_t,
 * has_w: constants there): gcc vectorizes no loop that may read through a
 * null pointer, and ran them one element at a time (half of a soft-target
 * cross-entropy's time). */
#define XF_TARGET_COEF(j) \
    ((has_t ? t_scale * t[j] + t_add : t_add) * (has_w ? w[j] : (XF_T)1))
#define XF_BY_PRESENCE(loop, t, w, ...)                \
    ((t) ? ((w) ? loop(__VA_ARGS__, 1, 1) : loop(__VA_ARGS__, 1, 0)) \
         : ((w) ? loop(__VA_ARGS__, 0, 1) : loop(__VA_ARGS__, 0, 0)))

static inline __attribute__((always_inline)) XF_TARGET double XF_NAME(xf_target_dot_loop)(
    const XF_T *x, Py_ssize_t n, XF_T shift, const XF_T *t, const XF_T *w,
    XF_T t_scale, XF_T t_add, double *c_sum, int has_t, int has_w)
{
    double dot = 0.0, csum = 0.0;
    XF_SIMD_REDUCE(+, dot, csum)
    for (Py_ssize_t j = 0; j < n; j++) {
        XF_T c = XF_TARGET_COEF(j);
        dot += c != 0 ? (double)c * (double)(x[j] - shift) : 0.0;
        csum += (double)c;
    }
    *c_sum = csum;
    return dot;
}

/* Returns sum_j c[j] * (x[j] - shift), a term with c[j] == 0 counting 0 even
 * where x[j] = -inf (0 log 0 = 0), and stores sum_j c[j] in *c_sum. */
static XF_TARGET double XF_NAME(xf_row_target_dot)(
    const XF_T *x, Py_ssize_t n, XF_T shift, const XF_T *t, const XF_T *w,
    XF_T t_scale, XF_T t_add, double *c_sum)
{
    return XF_BY_PRESENCE(XF_NAME(xf_target_dot_loop), t, w,
                          x, n, shift, t, w, t_scale, t_add, c_sum);
}

static inline __attribute__((always_inline)) XF_TARGET void XF_NAME(xf_scale_sub_loop)(
    XF_T *g, Py_ssize_t n, XF_T a, XF_T b, const XF_T *t, const XF_T *w,
    XF_T t_scale, XF_T t_add, int has_t, int has_w)
{
    XF_SIMD
    for (Py_ssize_t j = 0; j < n; j++)
        g[j] = a * g[j] - b * XF_TARGET_COEF(j);
}

/* g[j] = a * g[j] - b * c[j]. */
static XF_TARGET void XF_NAME(xf_row_scale_sub)(
    XF_T *g, Py_ssize_t n, XF_T a, XF_T b, const XF_T *t, const XF_T *w,
    XF_T t_scale, XF_T t_add)
{
#if XF_ROWS_X86_F32 == 2
    if (t == NULL && w == NULL) {
        xf_row_scale_sub_avx512(g, n, a, b * t_add);
        return;
    }
#elif XF_ROWS_X86_F32 == 1
    if (t == NULL && w == NULL) {
        xf_row_scale_sub_avx2(g, n, a, b * t_add);
        return;
    }
#endif
    XF_BY_PRESENCE(XF_NAME(xf_scale_sub_loop), t, w, g, n, a, b, t, w, t_scale, t_add);
}
#undef XF_TARGET_COEF
#undef XF_BY_PRESENCE

/* out[j] = (x[j] - shift1) - shift2, in that order so that the max entry
 * gets exactly -shift2 when shift1 is the max; out may be x. */
static XF_TARGET void XF_NAME(xf_row_sub)(const XF_T *x, Py_ssize_t n,
                                               XF_T shift1, XF_T shift2, XF_T *out)
{
#if XF_ROWS_X86_F32 == 2
    xf_row_sub_avx512(x, n, shift1, shift2, out);
#elif XF_ROWS_X86_F32 == 1
    xf_row_sub_avx2(x, n, shift1, shift2, out);
#else
    XF_SIMD
    for (Py_ssize_t j = 0; j < n; j++)
        out[j] = (x[j] - shift1) - shift2;
#endif
}

/* out[j] = cap * tanh(x[j] / cap) (Gemma-2 soft-capping) and its derivative
 * slope[j] = 1 / cosh(x[j] / cap)^2, in double: 1 - tanh^2 would cancel near
 * saturation.  out may be x; slope may not. */
static XF_TARGET void XF_NAME(xf_row_softcap)(const XF_T *x, Py_ssize_t n,
                                                   XF_T cap, XF_T *out, XF_T *slope)
{
    for (Py_ssize_t j = 0; j < n; j++) {
        double u = (double)x[j] / (double)cap, ch = cosh(u);
        slope[j] = (XF_T)(1.0 / (ch * ch));
        out[j] = (XF_T)((double)cap * tanh(u));
    }
}

/* g[j] *= slope[j] (the chain rule through the cap). */
static XF_TARGET void XF_NAME(xf_row_mul)(XF_T *g, Py_ssize_t n, const XF_T *slope)
{
    XF_SIMD
    for (Py_ssize_t j = 0; j < n; j++)
        g[j] = g[j] * slope[j];
}

/* e[j] = exp(x[j]): the exp alone, to measure its throughput (the floor of
 * the benchmarks). */
static XF_TARGET void XF_NAME(xf_exp_block)(const XF_T *x, Py_ssize_t n, XF_T *e)
{
    XF_SIMD
    for (Py_ssize_t j = 0; j < n; j++)
        e[j] = XF_EXP(x[j]);
}

/* ---- Tiles: a block of XF_LANES rows with few classes, row k in lane k ----
 * For small C a row is shorter than a vector, so the row loops above would
 * run their scalar remainder; instead the tile holds the block transposed
 * (tile[j * XF_LANES + k] = row k, class j) and every loop runs across rows.
 */

/* tile[j, k] = x[k * C + j] for the nr <= XF_LANES rows of x; lanes past nr
 * are filled with 0 so that every later loop runs over full vectors.  And
 * m[k] = max over the classes of lane k (NaNs skipped, as in xf_row_max).
 * Float tiles at the AVX levels are transposed in registers, the max taken
 * there (_xf_transpose.h). */
static XF_TARGET void XF_NAME(xf_tile_load)(const XF_T *x, Py_ssize_t c,
                                                 Py_ssize_t nr, XF_T *tile, XF_T *m)
{
#if XF_ROWS_X86_F32 == 2
    xf_tile_load16_f32(x, c, nr, tile, m);
#elif XF_ROWS_X86_F32 == 1
    xf_tile_load8_f32(x, c, nr, tile, m);
#else
    for (Py_ssize_t j = 0; j < c; j++)
        XF_SIMD
        for (Py_ssize_t k = 0; k < nr; k++)
            tile[j * XF_LANES + k] = x[k * c + j];
    for (Py_ssize_t k = nr; k < XF_LANES; k++)
        for (Py_ssize_t j = 0; j < c; j++)
            tile[j * XF_LANES + k] = 0;
    XF_SIMD
    for (Py_ssize_t k = 0; k < XF_LANES; k++)
        m[k] = -INFINITY;
    for (Py_ssize_t j = 0; j < c; j++) {
        XF_SIMD
        for (Py_ssize_t k = 0; k < XF_LANES; k++) {
            XF_T v = tile[j * XF_LANES + k];
            m[k] = v > m[k] ? v : m[k];
        }
    }
#endif
}

/* out = exp(tile - m), lane by lane (out may be tile); others[k] as
 * xf_row_sum_others for lane k, and l1p[k] = log1p(others[k]). */
static XF_TARGET void XF_NAME(xf_tile_exp)(const XF_T *tile, Py_ssize_t c,
                                                const XF_T *m, XF_T *out,
                                                XF_T *others, XF_T *l1p)
{
#if XF_ROWS_X86_F32 == 2
    xf_tile_exp_avx512(tile, c, m, out, others);
#elif XF_ROWS_X86_F32 == 1
    xf_tile_exp_avx2(tile, c, m, out, others);
#else
    double rest[XF_LANES], ones[XF_LANES];
    XF_SIMD
    for (Py_ssize_t k = 0; k < XF_LANES; k++)
        rest[k] = ones[k] = 0.0;
    for (Py_ssize_t j = 0; j < c; j++) {
        XF_SIMD
        for (Py_ssize_t k = 0; k < XF_LANES; k++) {
            XF_T e = XF_EXP(tile[j * XF_LANES + k] - m[k]);
            int is_one = e == (XF_T)1;
            out[j * XF_LANES + k] = e;
            rest[k] += is_one ? 0.0 : (double)e;
            ones[k] += is_one ? 1.0 : 0.0;
        }
    }
    XF_SIMD
    for (Py_ssize_t k = 0; k < XF_LANES; k++)
        others[k] = (XF_T)(rest[k] + (ones[k] - 1.0));
#endif
    XF_SIMD
    for (Py_ssize_t k = 0; k < XF_LANES; k++)
        l1p[k] = XF_LOG1P(others[k]);
}

/* The cross-entropy of a tile's lanes (no label smoothing), from what
 * xf_tile_load and xf_tile_exp give (m, others, l1p) and each lane's target
 * logit minus m (x_y), its exp (e_y), class weight (w_y) and sample weight
 * (s): loss[k], and the gradient row's coefficients, a[k] exp(x - m) but
 * g_y[k] at the target.  The formulas of cross_entropy_row in _multiclass.pyx
 * with no smoothing, in double, across lanes instead of a scalar loop. */
static XF_TARGET void XF_NAME(xf_tile_cross_entropy)(
    const XF_T *m, const XF_T *others, const XF_T *l1p, const double *x_y,
    const double *e_y, const double *w_y, const double *s, double z_loss,
    double grad_scale, double *loss, XF_T *a, double *g_y)
{
    XF_SIMD
    for (Py_ssize_t k = 0; k < XF_LANES; k++) {
        double lse = (double)m[k] + (double)l1p[k], s_g = s[k] * grad_scale;
        double o = (double)others[k], inv = 1.0 / (1.0 + o);   /* one division */
        double ak = s_g * (w_y[k] + 2 * z_loss * lse) * inv;
        /* target is the max: p_y - 1 = -others / (1 + others), no cancellation */
        double gy_max = s_g * (2 * z_loss * lse - w_y[k] * o) * inv;
        g_y[k] = e_y[k] == 1.0 ? gy_max : ak * e_y[k] - s_g * w_y[k];
        a[k] = (XF_T)ak;
        loss[k] = s[k] * (w_y[k] * ((double)l1p[k] - x_y[k]) + z_loss * lse * lse);
    }
}

/* g[k * C + j] = (a[k] * tile[j, k] - s[k]) - b[k] * (w ? w[j] : 1) for the
 * rows k < nr (g row-major, so this transposes back). */
static XF_TARGET void XF_NAME(xf_tile_store)(const XF_T *tile, Py_ssize_t c,
                                                  Py_ssize_t nr, const XF_T *a,
                                                  const XF_T *s, const XF_T *b,
                                                  const XF_T *w, XF_T *g)
{
#if XF_ROWS_X86_F32 == 2
    xf_tile_store16_f32(tile, c, nr, a, s, b, w, g);
#elif XF_ROWS_X86_F32 == 1
    xf_tile_store8_f32(tile, c, nr, a, s, b, w, g);
#else
    for (Py_ssize_t j = 0; j < c; j++) {
        XF_T wj = w ? w[j] : (XF_T)1;
        XF_SIMD
        for (Py_ssize_t k = 0; k < nr; k++)
            g[k * c + j] = (a[k] * tile[j * XF_LANES + k] - s[k]) - b[k] * wj;
    }
#endif
}
