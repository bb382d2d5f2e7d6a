# Kernels of the multiclass losses over C-contiguous (rows, classes) arrays.
#
# Three layers, as in scikit-learn's _loss: the C row primitives (_rows.pxd)
# loop over the classes of one row; the functions here loop over rows with
# prange and hold the per-row mathematics; multiclass.py validates, allocates
# and reduces.  Nothing here checks its inputs: labels are already known to be
# in [0, C) or equal to ignore_index.
#
# Each kernel writes one loss per row (in double) and, if `grad` is given, the
# gradient row, already multiplied by `grad_scale` (1 / the 'mean'
# denominator).  A row is read from memory once and its gradient written once:
# the exps go straight into the gradient row and are scaled there.  `grad` may
# be the logits themselves: every value a row needs from x is read before the
# exps overwrite it.  No sum crosses rows, so results do not depend on the
# number of threads.
# A kernel with per-thread `scratch` rows runs exactly scratch.shape[0]
# threads, so threadid() always has a row even if another Python thread
# changes the thread count meanwhile.  The `*_scratch` functions give the
# shape a call needs: no more rows than the call can use threads
# (threads_for), and no columns where the gradient row can serve instead.
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport expm1, exp, pow
from libc.stdint cimport int64_t
from libc.string cimport memset

from ._openmp cimport n_threads
from ._memview cimport ptr_or_null
from ._parallel cimport PARALLEL_MIN_ELEMENTS, threads_for
from ._rows cimport (tile_limit, TILE_SIZE, XF_LANES, row_exp_sum, row_max,
                     row_mul, row_scale_sub, row_softcap,
                     row_target_dot, tile_exp, tile_load, tile_max, tile_store)


def scan_labels(const int64_t[::1] y, int64_t n_classes, int64_t ignore_index):
    """(index of the first label outside [0, n_classes) that is not
    ignore_index, or -1; number of ignored labels)."""
    cdef Py_ssize_t i, ignored = 0
    for i in range(y.shape[0]):
        if y[i] == ignore_index:
            ignored += 1
        elif y[i] < 0 or y[i] >= n_classes:
            return i, ignored
    return -1, ignored


cdef inline const floating *capped_row(const floating *x, Py_ssize_t c, double softcap,
                                      floating *capped, floating *slope) noexcept nogil:
    """The row the loss sees: x, or with softcap > 0 the capped logits, put in
    `capped` (which may be x) with the cap's slope in `slope` (for the chain
    rule)."""
    if softcap > 0:
        row_softcap(x, c, <floating>softcap, capped, slope)
        return capped
    return x


cdef inline Py_ssize_t row_scratch_columns(Py_ssize_t c, bint grad, double softcap) noexcept:
    """Scratch a row needs: with a gradient row, only the cap's slope (the
    capped logits and the exps go into the gradient row); without, room for
    the exps (over the capped logits) and the slope."""
    if grad:
        return c if softcap > 0 else 0
    return 2 * c if softcap > 0 else c


cdef inline floating *scratch_row(floating *scratch0, Py_ssize_t width,
                                  int thread) noexcept nogil:
    """This thread's row of a scratch array starting at `scratch0` (NULL when
    the call needs none) with rows of `width`."""
    return scratch0 + thread * width if scratch0 != NULL else NULL


def label_losses_scratch(const floating[:, ::1] x, bint grad, double label_smoothing,
                         double softcap):
    """Shape of the `scratch` array `label_losses` needs for logits `x`."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1]
    if c <= tile_limit(<floating>0) and label_smoothing == 0 and softcap == 0:
        return threads_for((n + XF_LANES - 1) // XF_LANES, n * c), 0
    return threads_for(n, n * c), row_scratch_columns(c, grad, softcap)


def cross_entropy_probs_scratch(const floating[:, ::1] x, bint grad, double softcap):
    """Shape of the `scratch` array `cross_entropy_probs` needs for logits `x`."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1]
    return threads_for(n, n * c), row_scratch_columns(c, grad, softcap)


cdef inline double label_row(double x_y, double e_y, double m, double others,
                             double l1p, double dot, double w_sum, double w_y, double s,
                             double eps, double z_loss, double grad_scale, Py_ssize_t c,
                             double *a, double *b, double *g_y) noexcept nogil:
    """Loss of one row with integer label y, and its gradient coefficients.

    Inputs: x_y = x[y] - m, e_y = exp(x_y), m = max of the row, others = sum
    of exp(x - m) but one max term, l1p = log1p(others), dot = sum_c w_c
    (x_c - m) and w_sum = sum_c w_c (only used with label smoothing),
    w_y = weight[y], s = sample weight.  The gradient row is
    a * exp(x - m) - b * w, but g_y at the target.
    """
    cdef double lse = m + l1p, eps_c = eps / c, s_g = s * grad_scale
    a[0] = s_g * ((1 - eps) * w_y + eps_c * w_sum + 2 * z_loss * lse) / (1 + others)
    b[0] = s_g * eps_c
    if e_y == 1:
        # target is the max: p_y - 1 = -others / (1 + others), no cancellation
        g_y[0] = (s_g * (eps_c * w_sum + 2 * z_loss * lse - (1 - eps) * w_y * others)
                  / (1 + others) - b[0] * w_y)
    else:
        g_y[0] = a[0] * e_y - b[0] * w_y - s_g * (1 - eps) * w_y
    return s * ((1 - eps) * w_y * (l1p - x_y) + eps_c * (w_sum * l1p - dot)
                + z_loss * lse * lse)


cdef inline double focal_row(double x_y, double others, double l1p, double alpha_y,
                             double gamma, double grad_scale, double *a,
                             double *g_y) noexcept nogil:
    """Focal loss -alpha_y (1 - p_y)^gamma log p_y of one row, in log space,
    and its gradient coefficients (the row is a * exp(x - m), but g_y at y).

    With lp = log p_y and q = 1 - p_y = -expm1(lp), the derivative
    dL/dlp = -alpha_y q^gamma (1 + gamma p_y lp / expm1(lp)) has no
    q^(gamma - 1) factor, so it stays finite for gamma < 1 as p_y -> 1.
    """
    cdef double lp = x_y - l1p, p = exp(lp), q = -expm1(lp), qg = pow(q, gamma)
    cdef double ratio, dl_dlp
    # p lp / expm1(lp): -> 1 as lp -> 0 and -> 0 as p -> 0
    if lp == 0:
        ratio = 1.0
    elif p == 0:
        ratio = 0.0
    else:
        ratio = p * lp / expm1(lp)
    dl_dlp = -alpha_y * qg * (1 + gamma * ratio) * grad_scale
    a[0] = -dl_dlp / (1 + others)      # dlp/dz_j = [j == y] - p_j
    g_y[0] = dl_dlp * q                # dL/dlp (1 - p_y), without cancellation
    return -alpha_y * qg * lp if qg != 0 else 0.0


cdef struct LabelLoss:
    bint focal               # focal loss with alpha = weight, else cross-entropy
    double gamma             # focal only
    double label_smoothing   # cross-entropy only, like the three below
    double z_loss
    double softcap           # 0: no cap
    double grad_scale
    int64_t ignore_index


cdef inline double row_loss(const LabelLoss *o, double x_y, double e_y, double m,
                            double others, double l1p, double dot, double w_sum,
                            double w_y, double s, Py_ssize_t c, double *a, double *b,
                            double *g_y) noexcept nogil:
    if o.focal:
        b[0] = 0.0
        return focal_row(x_y, others, l1p, w_y, o.gamma, o.grad_scale, a, g_y)
    return label_row(x_y, e_y, m, others, l1p, dot, w_sum, w_y, s, o.label_smoothing,
                     o.z_loss, o.grad_scale, c, a, b, g_y)


cdef void label_tile(const LabelLoss *o, const floating *x, const int64_t *y,
                     Py_ssize_t nr, Py_ssize_t c, const floating *w, const floating *sw,
                     double *loss, floating *g) noexcept nogil:
    """Rows [0, nr) of a tile, nr <= XF_LANES, c <= tile_limit(); no label
    smoothing or softcap.  g may be NULL (no gradient) or x."""
    cdef floating tile[TILE_SIZE]
    cdef floating m[XF_LANES]
    cdef floating others[XF_LANES]
    cdef floating l1p[XF_LANES]
    cdef floating a[XF_LANES]
    cdef floating b[XF_LANES]
    cdef floating zero[XF_LANES]
    cdef double x_y[XF_LANES]
    cdef double g_y[XF_LANES]
    cdef double ak, bk
    cdef Py_ssize_t k
    tile_load(x, c, nr, tile)
    tile_max(tile, c, m)
    for k in range(nr):
        if y[k] != o.ignore_index:
            x_y[k] = x[k * c + y[k]] - m[k]
    tile_exp(tile, c, m, tile, others, l1p)
    for k in range(XF_LANES):
        zero[k] = 0
        a[k] = 0
        b[k] = 0
    for k in range(nr):
        if y[k] == o.ignore_index:
            loss[k] = 0.0
            continue
        loss[k] = row_loss(o, x_y[k], tile[y[k] * XF_LANES + k], m[k], others[k], l1p[k],
                           0.0, 0.0, w[y[k]] if w != NULL else 1.0,
                           sw[k] if sw != NULL else 1.0, c, &ak, &bk, &g_y[k])
        a[k] = <floating>ak
    if g != NULL:
        tile_store(tile, c, nr, a, zero, b, NULL, g)
        for k in range(nr):
            if y[k] != o.ignore_index:
                g[k * c + y[k]] = <floating>g_y[k]
            else:   # 0, not 0 * NaN, whatever the row holds
                memset(g + k * c, 0, c * sizeof(floating))


def label_losses(
        const floating[:, ::1] x,              # IN (N, C) logits
        const int64_t[::1] y,                  # IN (N,) labels
        const floating[::1] weight,            # IN (C,) class weights (focal: alpha) or None
        const floating[::1] sample_weight,     # IN (N,) or None
        int64_t ignore_index,
        double label_smoothing,
        double z_loss,
        double softcap,                        # 0: no cap
        double focal_gamma,                    # < 0: cross-entropy, else focal loss
        double grad_scale,
        double[::1] loss,                      # OUT (N,)
        floating[:, ::1] grad,                 # OUT (N, C) or None; may be x
        floating[:, ::1] scratch):             # label_losses_scratch(...)
    """Cross-entropy (every option) or softmax focal loss of integer labels."""
    cdef:
        LabelLoss o = LabelLoss(focal=focal_gamma >= 0, gamma=focal_gamma,
                                label_smoothing=label_smoothing, z_loss=z_loss,
                                softcap=softcap, grad_scale=grad_scale,
                                ignore_index=ignore_index)
        Py_ssize_t n = x.shape[0], c = x.shape[1], i, r0
        int64_t yi
        const floating *w = ptr_or_null(weight)
        const floating *sw = ptr_or_null(sample_weight)
        # the weights enter the gradient row only through label smoothing
        # (b = 0 otherwise, and 0 * inf would make an untargeted column NaN)
        const floating *w_smoothed = w if label_smoothing > 0 else NULL
        floating *g0 = &grad[0, 0] if grad is not None and n > 0 else NULL
        const floating *src
        floating *e
        floating *s0 = &scratch[0, 0] if scratch.shape[1] > 0 else NULL
        floating *sp
        floating m
        double others, l1p, x_y, dot, w_sum, a, b, g_y
    cdef int threads = scratch.shape[0]   # one scratch row per thread
    if c <= tile_limit(<floating>0) and label_smoothing == 0 and softcap == 0:
        for i in prange((n + XF_LANES - 1) // XF_LANES, nogil=True, schedule="static",
                        num_threads=threads,
                        use_threads_if=n * c >= PARALLEL_MIN_ELEMENTS):
            r0 = i * XF_LANES
            label_tile(&o, &x[r0, 0], &y[r0], min(<Py_ssize_t>XF_LANES, n - r0), c, w,
                       sw + r0 if sw != NULL else NULL, &loss[r0],
                       g0 + r0 * c if g0 != NULL else NULL)
        return
    for i in prange(n, nogil=True, schedule="static", num_threads=threads,
                    use_threads_if=n * c >= PARALLEL_MIN_ELEMENTS):
        yi = y[i]
        if yi == ignore_index:
            loss[i] = 0.0
            if g0 != NULL:
                memset(g0 + i * c, 0, c * sizeof(floating))
            continue
        # assigned here so that prange makes them thread-private: they are
        # otherwise only written through pointers
        dot = w_sum = a = b = g_y = l1p = 0.0
        sp = scratch_row(s0, scratch.shape[1], threadid())
        if g0 != NULL:   # capped logits, exps and gradient in the gradient row
            e = g0 + i * c
            src = capped_row(&x[i, 0], c, softcap, e, sp)
        else:            # capped logits then exps in scratch, the slope after
            e = sp
            src = capped_row(&x[i, 0], c, softcap, sp, sp + c)
        m = row_max(src, c)
        x_y = src[yi] - m
        if label_smoothing > 0:
            # sum_c w_c (x_c - m), read before the exps may overwrite x
            dot = row_target_dot(src, c, m, NULL, w, 0, 1, &w_sum)
        others = row_exp_sum(src, c, m, e, &l1p)
        loss[i] = row_loss(&o, x_y, e[yi], m, others, l1p, dot, w_sum,
                           w[yi] if w != NULL else 1.0, sw[i] if sw != NULL else 1.0,
                           c, &a, &b, &g_y)
        if g0 != NULL:
            row_scale_sub(e, c, <floating>a, <floating>b, NULL, w_smoothed, 0, 1)
            e[yi] = <floating>g_y
            if softcap > 0:
                row_mul(e, c, sp)


def cross_entropy_probs(
        const floating[:, ::1] x,              # IN (N, C) logits
        const floating[:, ::1] target,         # IN (N, C) class probabilities
        const floating[::1] weight,            # IN (C,) or None
        const floating[::1] sample_weight,     # IN (N,) or None
        double label_smoothing,
        double z_loss,
        double softcap,
        double grad_scale,
        double[::1] loss,                      # OUT (N,)
        floating[:, ::1] grad,                 # OUT (N, C) or None; may be x
        floating[:, ::1] scratch):             # cross_entropy_probs_scratch(...)
    cdef:
        Py_ssize_t n = x.shape[0], c = x.shape[1], i
        const floating *w = ptr_or_null(weight)
        const floating *sw = ptr_or_null(sample_weight)
        floating *g0 = &grad[0, 0] if grad is not None and n > 0 else NULL
        const floating *src
        floating *e
        floating *s0 = &scratch[0, 0] if scratch.shape[1] > 0 else NULL
        floating *sp
        floating m
        floating t_scale = <floating>(1 - label_smoothing)
        floating t_add = <floating>(label_smoothing / c if c else 0.0)
        double others, l1p, lse, s, dot, c_sum
    cdef int threads = scratch.shape[0]   # one scratch row per thread
    for i in prange(n, nogil=True, schedule="static", num_threads=threads,
                    use_threads_if=n * c >= PARALLEL_MIN_ELEMENTS):
        c_sum = l1p = 0.0   # thread-private (see label_losses)
        sp = scratch_row(s0, scratch.shape[1], threadid())
        if g0 != NULL:   # as in label_losses
            e = g0 + i * c
            src = capped_row(&x[i, 0], c, softcap, e, sp)
        else:
            e = sp
            src = capped_row(&x[i, 0], c, softcap, sp, sp + c)
        m = row_max(src, c)
        # sum_c q_c (x_c - m) with q = smoothed, weighted target
        dot = row_target_dot(src, c, m, &target[i, 0], w, t_scale, t_add, &c_sum)
        others = row_exp_sum(src, c, m, e, &l1p)
        lse = m + l1p
        s = sw[i] if sw != NULL else 1.0
        loss[i] = s * (c_sum * l1p - dot + z_loss * lse * lse)
        if g0 != NULL:
            s = s * grad_scale
            row_scale_sub(e, c, <floating>(s * (c_sum + 2 * z_loss * lse) / (1 + others)),
                          <floating>s, &target[i, 0], w, t_scale, t_add)
            if softcap > 0:
                row_mul(e, c, sp)


def nll(const floating[:, ::1] x,              # IN (N, C) log-probabilities
        const int64_t[::1] y,                  # IN (N,) labels
        const floating[::1] weight,            # IN (C,) or None
        const floating[::1] sample_weight,     # IN (N,) or None
        int64_t ignore_index,
        double grad_scale,
        double[::1] loss,                      # OUT (N,)
        floating[:, ::1] grad):                # OUT (N, C) or None; may be x
    """Reads only each row's target entry, as torch does."""
    cdef:
        Py_ssize_t n = x.shape[0], c = x.shape[1], i
        int64_t yi
        const floating *w = ptr_or_null(weight)
        const floating *sw = ptr_or_null(sample_weight)
        floating *g0 = &grad[0, 0] if grad is not None and n > 0 else NULL
        double ws
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads(),
                    use_threads_if=n * c >= PARALLEL_MIN_ELEMENTS):
        yi = y[i]
        if yi == ignore_index:
            loss[i] = 0.0
            ws = 0.0
        else:
            ws = (w[yi] if w != NULL else 1.0) * (sw[i] if sw != NULL else 1.0)
            loss[i] = -ws * x[i, yi]
        if g0 != NULL:
            memset(g0 + i * c, 0, c * sizeof(floating))
            if ws != 0:
                g0[i * c + yi] = <floating>(-ws * grad_scale)
