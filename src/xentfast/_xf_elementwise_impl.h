/* Instantiated by _xf_elementwise.h for XF_T = float and double (no include guard).
 *
 * The loss kernels take every per-element operand as a pointer to n values
 * (a weight that is absent is a block of ones) and write n losses and n
 * gradients; the caller points `loss` / `grad` at scratch when it does not
 * want them, so the loop has no branches.  `grad` may be the first input
 * itself: each element is read before it is written, at the same index. */

/* How many of v[0:n] are outside [0, 1]; NaN counts as outside. */
static XF_TARGET Py_ssize_t XF_NAME(xf_count_outside_unit)(const XF_T *v, Py_ssize_t n)
{
    Py_ssize_t bad = 0;
    XF_SIMD_REDUCE(+, bad)
    for (Py_ssize_t i = 0; i < n; i++)
        bad += ((v[i] >= 0) & (v[i] <= 1)) ? 0 : 1;
    return bad;
}

#if XF_F32
/* How many of labels[0:n] are outside [0, n_classes) and not ignore_index;
 * how many equal ignore_index in *ignored.  Without a branch, so that it
 * vectorises (the label scan of every call).  Labels have no float type:
 * only the float instantiation has it (xf_count_bad_labels). */
static XF_TARGET Py_ssize_t XF_NAME(xf_count_bad_labels)(const int64_t *labels, Py_ssize_t n,
                                                         int64_t n_classes, int64_t ignore_index,
                                                         Py_ssize_t *ignored)
{
    Py_ssize_t bad = 0, ign = 0;
    XF_SIMD_REDUCE(+, bad, ign)
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t v = labels[i];
        ign += v == ignore_index;
        bad += (v != ignore_index) & ((uint64_t)v >= (uint64_t)n_classes);
    }
    *ignored = ign;
    return bad;
}
#endif

/* sum of v[0:n] in double (in a loop of its own: gcc does not vectorise a
 * double reduction inside the float loss loops). */
static XF_TARGET double XF_NAME(xf_sum)(const XF_T *v, Py_ssize_t n)
{
    double total = 0.0;
    XF_SIMD_REDUCE(+, total)
    for (Py_ssize_t i = 0; i < n; i++)
        total += (double)v[i];
    return total;
}

/* Elements [k0, k0 + n) of an operand broadcast to the flat input, where flat
 * index k reads data[(k / inner) % period].  Returns data itself when those
 * values are contiguous there, else fills buf (n values) and returns it. */
static XF_TARGET const XF_T *XF_NAME(xf_broadcast_block)(const XF_T *data, Py_ssize_t inner,
                                               Py_ssize_t period, Py_ssize_t k0,
                                               Py_ssize_t n, XF_T *buf)
{
    if (inner == 1) {
        Py_ssize_t j = k0 % period;
        if (j + n <= period)
            return data + j;
        /* One period (wrapping at its end), then doubling copies: buf[i] ==
         * buf[i - period], so a multiple of the period can be copied whole. */
        Py_ssize_t first = period - j, have = n < period ? n : period;
        memcpy(buf, data + j, first * sizeof(XF_T));
        memcpy(buf + first, data, (have - first) * sizeof(XF_T));
        for (; have < n; have *= 2)
            memcpy(buf + have, buf, (have < n - have ? have : n - have) * sizeof(XF_T));
        return buf;
    }
    /* Runs of `inner` equal values. */
    Py_ssize_t q = k0 / inner, r = k0 - q * inner, j = q % period;
    for (Py_ssize_t pos = 0; pos < n;) {
        Py_ssize_t run = inner - r < n - pos ? inner - r : n - pos;
        XF_T v = data[j];
        XF_SIMD
        for (Py_ssize_t i = 0; i < run; i++)
            buf[pos + i] = v;
        pos += run;
        r = 0;
        j = j + 1 == period ? 0 : j + 1;
    }
    return buf;
}

/* The loss kernels below run each block in chunks of XF_CHUNK elements, and
 * each chunk in a few passes through stack temporaries (one transcendental
 * function a pass): fused into one loop, exp and log need more vector
 * registers than there are and form one long dependency chain per element,
 * which ran at less than half the speed.  A chunk's data stays in L1. */

/* torch's binary_cross_entropy on probabilities p in [0, 1]:
 *   loss = w ((t - 1) max(log(1 - p), -100) - t max(log p, -100)),
 *   grad = w (p - t) / max(p (1 - p), 1e-12) * scale. */
static XF_TARGET double XF_NAME(xf_bce_block)(
    const XF_T *p, const XF_T *t, const XF_T *w, Py_ssize_t n, XF_T scale,
    XF_T *loss, XF_T *grad)
{
    const XF_T eps = (XF_T)1e-12f; /* torch's EPSILON is a float, also for double */
    XF_T log_p[XF_CHUNK];
    for (Py_ssize_t c = 0; c < n; c += XF_CHUNK) {
        Py_ssize_t m = n - c < XF_CHUNK ? n - c : XF_CHUNK;
        const XF_T *pc = p + c, *tc = t + c, *wc = w + c;
        XF_T *lc = loss + c, *gc = grad + c;
        XF_SIMD
        for (Py_ssize_t i = 0; i < m; i++) {
            XF_T v = XF_LOG(pc[i]);
            log_p[i] = v > -100 ? v : -100;
        }
        XF_SIMD
        for (Py_ssize_t i = 0; i < m; i++) {
            XF_T pi = pc[i], ti = tc[i], wi = wc[i];
            XF_T log_q = XF_LOG1P(-pi);
            log_q = log_q > -100 ? log_q : -100;
            XF_T den = (1 - pi) * pi;
            den = den > eps ? den : eps;
            lc[i] = wi * ((ti - 1) * log_q - ti * log_p[i]);
            gc[i] = wi * ((pi - ti) / den) * scale;
        }
    }
    return XF_NAME(xf_sum)(loss, n);
}

/* Pass of the logit kernels: e[i] = exp(-|x[i]|) (NaN stays NaN). */
static inline __attribute__((always_inline)) XF_TARGET void XF_NAME(xf_exp_neg_abs)(
    const XF_T *x, Py_ssize_t m, XF_T *e)
{
#if defined(XF_X86) && XF_F32 && XF_LEVEL_NUM == 2
    /* the exp with scalef (_xf_exp_x86.h); the last vector under a mask */
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (Py_ssize_t i = 0; i < m; i += 16) {
        __mmask16 k = m - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (m - i)) - 1u);
        __m512 v = _mm512_or_ps(_mm512_maskz_loadu_ps(k, x + i), sign);   /* -|x| */
        _mm512_mask_storeu_ps(e + i, k, xf_expf_avx512(v));
    }
#else
    XF_SIMD
    for (Py_ssize_t i = 0; i < m; i++)
        e[i] = XF_EXP(-(x[i] < 0 ? -x[i] : x[i]));
#endif
}

/* Pass of the logit kernels: from e = exp(-|x|), softplus[i] = log1p(e)
 * (log of u = 1 + e plus what rounding 1 + e lost, reusing 1 / u) and, in
 * place of e, sigmoid(-|x|) = e / (1 + e). */
static inline __attribute__((always_inline)) void XF_NAME(xf_softplus_sigmoid)(
    XF_T *e, Py_ssize_t m, XF_T *softplus)
{
    XF_SIMD
    for (Py_ssize_t i = 0; i < m; i++) {
        XF_T ei = e[i], u = 1 + ei, d = 1 / u;
        softplus[i] = XF_LOG_PLUS_FROM_1(u, (ei - (u - 1)) * d);   /* u in [1, 2] */
        e[i] = ei * d;
    }
}

/* torch's binary_cross_entropy_with_logits, with lw = (pw - 1) t + 1:
 *   loss = w ((1 - t) max(x, 0) + pw t max(-x, 0) + lw log1p(exp(-|x|))),
 *   grad = w (lw sigmoid(x) - pw t) * scale.
 * The two linear terms never cancel (only one is non-zero), and a term with
 * coefficient 0 counts 0 at x = +-inf: sigmoid(+inf) = 1 exactly, so the
 * loss of x = +inf, t = 1 is 0, as it is in the limit.  The m elements of a
 * chunk, from sig = sigmoid(-|x|) and softplus; w and pw both NULL (no
 * weights: inlined with constants, the loop has no loads or products for
 * them) or both set. */
static inline __attribute__((always_inline)) void XF_NAME(xf_bce_logits_chunk)(
    const XF_T *x, const XF_T *t, const XF_T *w, const XF_T *pw, Py_ssize_t m,
    const XF_T *sig, const XF_T *softplus, XF_T scale, XF_T *loss, XF_T *grad)
{
    XF_SIMD
    for (Py_ssize_t i = 0; i < m; i++) {
        XF_T xi = x[i], ti = t[i], wi = w ? w[i] : 1;
        XF_T pos = xi > 0 ? xi : 0, neg = xi < 0 ? -xi : 0;
        XF_T a = 1 - ti, b = pw ? pw[i] * ti : ti, lw = pw ? (pw[i] - 1) * ti + 1 : 1;
        loss[i] = wi * ((a != 0 ? a * pos : 0) + (b != 0 ? b * neg : 0) + lw * softplus[i]);
        /* lw sigmoid(x) - b, with sigmoid(x) = 1 - sig for x >= 0 and
         * lw - b = 1 - t: no cancellation when t = 1 and x is large. */
        grad[i] = wi * (xi >= 0 ? a - lw * sig[i] : lw * sig[i] - b) * scale;
    }
}

/* The loss above over n elements; w and pw as in xf_bce_logits_chunk. */
static XF_TARGET double XF_NAME(xf_bce_logits_block)(
    const XF_T *x, const XF_T *t, const XF_T *w, const XF_T *pw, Py_ssize_t n,
    XF_T scale, XF_T *loss, XF_T *grad)
{
    XF_T sig[XF_CHUNK], softplus[XF_CHUNK];
    for (Py_ssize_t c = 0; c < n; c += XF_CHUNK) {
        Py_ssize_t m = n - c < XF_CHUNK ? n - c : XF_CHUNK;
        XF_NAME(xf_exp_neg_abs)(x + c, m, sig);
        XF_NAME(xf_softplus_sigmoid)(sig, m, softplus);   /* sig = sigmoid(-|x|) */
        if (w == NULL)
            XF_NAME(xf_bce_logits_chunk)(x + c, t + c, NULL, NULL, m, sig, softplus, scale,
                                         loss + c, grad + c);
        else
            XF_NAME(xf_bce_logits_chunk)(x + c, t + c, w + c, pw + c, m, sig, softplus,
                                         scale, loss + c, grad + c);
    }
    return XF_NAME(xf_sum)(loss, n);
}

/* torchvision's sigmoid_focal_loss, in log-sigmoid terms:
 *   loss = alpha_t ce q^gamma,  ce = BCE with logits,  q = 1 - p_t,
 * with alpha_t = alpha t + (1 - alpha)(1 - t) (1 when alpha < 0).  With
 * e = exp(-|x|), q (1 + e) = A + B e where (A, B) = (1 - t, t) for x >= 0
 * and (t, 1 - t) for x < 0, so log q = log(A + B e) - log1p(e) and
 * q^gamma = exp(gamma log q) never forms 1 - p_t by cancellation.  The
 * gradient is
 *   alpha_t q^gamma (sigmoid(x) - t + gamma ce r),  r = q'/q
 *     = (1 - 2t) e / (A + B e) / (1 + e),
 * which has no q^(gamma - 1) factor: finite for every gamma >= 0 even when q
 * underflows.  e / (A + B e) is 1 when A = 0 (then B = 1), not 0/0. */
static XF_TARGET double XF_NAME(xf_sigmoid_focal_block)(
    const XF_T *x, const XF_T *t, Py_ssize_t n, XF_T alpha, XF_T gamma,
    XF_T scale, XF_T *loss, XF_T *grad)
{
    XF_T e[XF_CHUNK], sig[XF_CHUNK], softplus[XF_CHUNK], qg[XF_CHUNK];
    for (Py_ssize_t c = 0; c < n; c += XF_CHUNK) {
        Py_ssize_t m = n - c < XF_CHUNK ? n - c : XF_CHUNK;
        const XF_T *xc = x + c, *tc = t + c;
        XF_T *lc = loss + c, *gc = grad + c;
        XF_NAME(xf_exp_neg_abs)(xc, m, e);
        XF_SIMD
        for (Py_ssize_t i = 0; i < m; i++)          /* a loop, not memcpy: gcc cannot */
            sig[i] = e[i];                           /* bound m and warns on memcpy */
        XF_NAME(xf_softplus_sigmoid)(sig, m, softplus);   /* sig = sigmoid(-|x|) */
        XF_SIMD
        for (Py_ssize_t i = 0; i < m; i++) {       /* log q */
            XF_T xi = xc[i], ti = tc[i];
            XF_T big = xi >= 0 ? 1 - ti : ti, small = xi >= 0 ? ti : 1 - ti;
            qg[i] = XF_LOG(big + small * e[i]) - softplus[i];
        }
        XF_SIMD
        for (Py_ssize_t i = 0; i < m; i++)        /* q^gamma */
            qg[i] = gamma == 0 ? 1 : XF_EXP(gamma * qg[i]);
        XF_SIMD
        for (Py_ssize_t i = 0; i < m; i++) {
            XF_T xi = xc[i], ti = tc[i], ei = e[i], si = sig[i];
            XF_T a = 1 - ti;
            XF_T big = xi >= 0 ? a : ti, small = xi >= 0 ? ti : a;
            XF_T sig_minus_t = xi >= 0 ? a - si : si - ti;  /* no cancellation */
            XF_T pos = xi > 0 ? xi : 0, neg = xi < 0 ? -xi : 0;
            XF_T ce = (a != 0 ? a * pos : 0) + (ti != 0 ? ti * neg : 0) + softplus[i];
            XF_T at = alpha >= 0 ? alpha * ti + (1 - alpha) * a : 1;
            /* 1 / (1 + e) = 1 - sigmoid(-|x|) */
            XF_T r = (1 - 2 * ti) * (big == 0 ? 1 : ei / (big + small * ei)) * (1 - si);
            lc[i] = at * ce * qg[i];
            gc[i] = at * qg[i] * (sig_minus_t + (r != 0 ? gamma * ce * r : 0)) * scale;
        }
    }
    return XF_NAME(xf_sum)(loss, n);
}
