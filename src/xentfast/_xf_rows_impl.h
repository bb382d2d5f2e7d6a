/* Instantiated by _xf_rows.h for XF_T = float and double (no include guard). */

/* Largest entry; NaNs are skipped here and caught by the exp sum instead. */
static XF_MULTIVERSION XF_T XF_NAME(xf_row_max)(const XF_T *x, Py_ssize_t n)
{
    XF_T m = -INFINITY;
    XF_SIMD_REDUCE(max, m)
    for (Py_ssize_t j = 0; j < n; j++)
        m = x[j] > m ? x[j] : m;
    return m;
}

/* out[j] = exp(x[j] - shift); out may be x. */
static XF_MULTIVERSION void XF_NAME(xf_row_exp)(const XF_T *x, Py_ssize_t n,
                                               XF_T shift, XF_T *out)
{
    XF_SIMD
    for (Py_ssize_t j = 0; j < n; j++)
        out[j] = XF_EXP(x[j] - shift);
}

/* Given e = exp(x - max), the sum of every term but one of the max terms
 * (those equal to 1): log p = x - max - log1p(result) then has no
 * cancellation for the dominant class.  NaN if e holds a NaN. */
static XF_MULTIVERSION double XF_NAME(xf_row_sum_others)(const XF_T *e, Py_ssize_t n)
{
    double rest = 0.0, ones = 0.0;
    XF_SIMD_REDUCE(+, rest, ones)
    for (Py_ssize_t j = 0; j < n; j++) {
        int is_one = e[j] == (XF_T)1;
        rest += is_one ? 0.0 : (double)e[j];
        ones += is_one ? 1.0 : 0.0;
    }
    return rest + (ones - 1.0);
}

/* Target coefficients of soft (or smoothed) targets:
 *   c[j] = (t ? t_scale * t[j] + t_add : t_add) * (w ? w[j] : 1).
 * Returns sum_j c[j] * (x[j] - shift), a term with c[j] == 0 counting 0 even
 * where x[j] = -inf (0 log 0 = 0), and stores sum_j c[j] in *c_sum. */
static XF_MULTIVERSION double XF_NAME(xf_row_target_dot)(
    const XF_T *x, Py_ssize_t n, XF_T shift, const XF_T *t, const XF_T *w,
    XF_T t_scale, XF_T t_add, double *c_sum)
{
    double dot = 0.0, csum = 0.0;
    XF_SIMD_REDUCE(+, dot, csum)
    for (Py_ssize_t j = 0; j < n; j++) {
        XF_T c = (t ? t_scale * t[j] + t_add : t_add) * (w ? w[j] : (XF_T)1);
        dot += c != 0 ? (double)c * (double)(x[j] - shift) : 0.0;
        csum += (double)c;
    }
    *c_sum = csum;
    return dot;
}

/* g[j] = a * g[j] - b * c[j], with c[j] as in xf_row_target_dot. */
static XF_MULTIVERSION void XF_NAME(xf_row_scale_sub)(
    XF_T *g, Py_ssize_t n, XF_T a, XF_T b, const XF_T *t, const XF_T *w,
    XF_T t_scale, XF_T t_add)
{
    XF_SIMD
    for (Py_ssize_t j = 0; j < n; j++) {
        XF_T c = (t ? t_scale * t[j] + t_add : t_add) * (w ? w[j] : (XF_T)1);
        g[j] = a * g[j] - b * c;
    }
}

/* out[j] = (x[j] - shift1) - shift2, in that order so that the max entry
 * gets exactly -shift2 when shift1 is the max; out may be x. */
static XF_MULTIVERSION void XF_NAME(xf_row_sub)(const XF_T *x, Py_ssize_t n,
                                               XF_T shift1, XF_T shift2, XF_T *out)
{
    XF_SIMD
    for (Py_ssize_t j = 0; j < n; j++)
        out[j] = (x[j] - shift1) - shift2;
}

/* out[j] = cap * tanh(x[j] / cap) (Gemma-2 soft-capping); out may be x. */
static XF_MULTIVERSION void XF_NAME(xf_row_softcap)(const XF_T *x, Py_ssize_t n,
                                                   XF_T cap, XF_T *out)
{
    for (Py_ssize_t j = 0; j < n; j++)
        out[j] = cap * (XF_T)tanh((double)(x[j] / cap));
}

/* Chain rule through the cap: g[j] *= 1 - (capped[j] / cap)^2. */
static XF_MULTIVERSION void XF_NAME(xf_row_softcap_grad)(
    XF_T *g, Py_ssize_t n, const XF_T *capped, XF_T cap)
{
    XF_SIMD
    for (Py_ssize_t j = 0; j < n; j++) {
        XF_T u = capped[j] / cap;
        g[j] = g[j] * ((XF_T)1 - u * u);
    }
}
