# Kernels of the multiclass losses over C-contiguous (rows, classes) arrays.
#
# Three layers, as in scikit-learn's _loss: the C row primitives (_rows.pxd)
# loop over the classes of one row; the functions here loop over rows with
# prange and hold the per-row mathematics; multiclass.py validates, allocates
# and reduces (through _kernels.py, which callers with their own blocks use
# directly).  Nothing here checks its inputs: labels are already known to be
# in [0, C) or equal to ignore_index.
#
# One entry point per public function, named like it and called by keyword:
# cross_entropy_labels, cross_entropy_probs, softmax_focal_labels, nll_loss;
# and cross_entropy_small, the whole of a small plain call (positional: at
# (32, 10) the keyword parsing alone is a tenth of the call).
# Each writes one loss per row (in double) and, if `grad` is given, the
# gradient row, already multiplied by `grad_scale` (1 / the 'mean'
# denominator).  A row is read from memory once and its gradient written once:
# the exps go straight into the gradient row and are scaled there.  `grad` may
# be the logits themselves: every value a row needs from x is read before the
# exps overwrite it.  No sum crosses rows, so results do not depend on the
# number of threads.
#
# Layout: a kernel with per-thread `scratch` runs exactly scratch.shape[0]
# threads (the thread rule of _openmp.pxd), so threadid() always has a row
# even if another Python thread changes the thread count meanwhile.  Its
# `*_scratch` function gives the shape a call needs: no more rows than the
# call can use threads, and no columns where the gradient row can serve.
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport pow
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from ._memview cimport ptr_or_null
from ._openmp cimport threads_for
from ._scan cimport first_bad_label
from ._rows cimport (tile_limit, TILE_SIZE, XF_LANES, row_exp_sum, rows_exp_sum, row_max,
                     rows_max, row_mul, row_scale_sub, row_softcap, rows_log1p, row_group,
                     row_target_dot, tile_cross_entropy, tile_exp, tile_load, tile_store)


# ---------------------------------------------------------------- row maths

cdef struct RowStats:
    # What one sweep over a row of logits x (after the cap) gives the loss.
    double m         # max of the row
    double x_y       # x[y] - m
    double e_y       # exp(x[y] - m)
    double others    # sum of exp(x - m) but one max term
    double l1p       # log1p(others): the row's logsumexp is m + l1p
    double dot       # label smoothing only: sum_c w_c (x_c - m)
    double w_sum     # label smoothing only: sum_c w_c


cdef struct RowResult:
    # The loss of a row and its gradient: a * exp(x - m) - b * w, but g_y at y.
    double loss
    double a
    double b
    double g_y


cdef struct CrossEntropyOptions:
    double label_smoothing
    double z_loss
    double grad_scale


cdef inline RowResult cross_entropy_row(const CrossEntropyOptions *o, RowStats r,
                                        double w_y, double s, Py_ssize_t c) noexcept nogil:
    """Cross-entropy of one row with integer label y, class weight w_y and
    sample weight s, and its gradient coefficients."""
    cdef double eps = o.label_smoothing, z_loss = o.z_loss
    cdef double lse = r.m + r.l1p, eps_c = eps / c, s_g = s * o.grad_scale
    cdef RowResult out
    out.a = s_g * ((1 - eps) * w_y + eps_c * r.w_sum + 2 * z_loss * lse) / (1 + r.others)
    out.b = s_g * eps_c
    if r.e_y == 1:
        # target is the max: p_y - 1 = -others / (1 + others), no cancellation
        out.g_y = (s_g * (eps_c * r.w_sum + 2 * z_loss * lse - (1 - eps) * w_y * r.others)
                   / (1 + r.others) - out.b * w_y)
    else:
        out.g_y = out.a * r.e_y - out.b * w_y - s_g * (1 - eps) * w_y
    out.loss = s * ((1 - eps) * w_y * (r.l1p - r.x_y) + eps_c * (r.w_sum * r.l1p - r.dot)
                    + z_loss * lse * lse)
    return out


cdef inline RowResult focal_row(RowStats r, double alpha_y, double gamma,
                                double grad_scale) noexcept nogil:
    """Focal loss -alpha_y (1 - p_y)^gamma log p_y of one row, in log space,
    and its gradient coefficients (b = 0).

    With lp = log p_y and q = 1 - p_y = -expm1(lp), the derivative
    dL/dlp = -alpha_y q^gamma (1 + gamma p_y lp / expm1(lp)) has no
    q^(gamma - 1) factor, so it stays finite for gamma < 1 as p_y -> 1.
    """
    # p = e_y / (1 + others) and q = 1 - p without libm: where the target is
    # a max term (e_y = 1), q = others / (1 + others) has no cancellation;
    # elsewhere p <= 1/2, so 1 - p has none either (expm1 and exp were
    # most of the row's algebra)
    cdef double lp = r.x_y - r.l1p, p = r.e_y / (1 + r.others)
    cdef double q = r.others / (1 + r.others) if r.e_y == 1 else 1 - p
    # q^gamma: the common integer gammas by multiplication (pow was a third
    # of the row's time at C = 1000)
    cdef double qg = (1.0 if gamma == 0 else q if gamma == 1 else q * q if gamma == 2
                      else q * q * q if gamma == 3 else pow(q, gamma))
    cdef double ratio, dl_dlp
    cdef RowResult out
    # p lp / expm1(lp): -> 1 as lp -> 0 and -> 0 as p -> 0
    if lp == 0:
        ratio = 1.0
    elif p == 0:
        ratio = 0.0
    else:
        ratio = p * lp / -q
    dl_dlp = -alpha_y * qg * (1 + gamma * ratio) * grad_scale
    out.a = -dl_dlp / (1 + r.others)      # dlp/dz_j = [j == y] - p_j
    out.b = 0.0
    out.g_y = dl_dlp * q                  # dL/dlp (1 - p_y), without cancellation
    out.loss = -alpha_y * qg * lp if qg != 0 else 0.0
    return out


cdef struct LabelLoss:
    # A loss of integer labels: the cross-entropy, or the focal loss.
    bint focal
    CrossEntropyOptions ce
    double gamma             # focal only
    bint capped              # softcap given (cross-entropy only)
    double softcap
    int64_t ignore_index


cdef inline RowResult label_row(const LabelLoss *o, RowStats r, double w_y, double s,
                                Py_ssize_t c) noexcept nogil:
    if o.focal:
        return focal_row(r, w_y, o.gamma, o.ce.grad_scale)
    return cross_entropy_row(&o.ce, r, w_y, s, c)


# ------------------------------------------------------------------ layout

cdef inline bint label_tiles(Py_ssize_t c, floating dtype_tag, double label_smoothing,
                             bint capped) noexcept nogil:
    """Whether a label loss runs in tiles (few classes, no smoothing or cap)."""
    return c <= tile_limit(dtype_tag, True) and label_smoothing == 0 and not capped


cdef inline Py_ssize_t row_scratch_columns(Py_ssize_t c, bint grad, bint capped) noexcept:
    """Scratch a thread needs on the row path: with gradient rows, only the
    cap's slope (the capped logits and the exps go into the gradient rows);
    without, room for the exps of a row group, or of one row (over its capped
    logits) and its slope."""
    if grad:
        return c if capped else 0
    return 2 * c if capped else row_group(c) * c


cdef inline Py_ssize_t label_row_group(Py_ssize_t c, bint capped) noexcept nogil:
    """Rows the row path of a label loss takes together: row_group(c), but
    one when capped (a capped row keeps its cap's slope in the thread's
    scratch row until its gradient is done)."""
    return 1 if capped else row_group(c)


def cross_entropy_labels_scratch(const floating[:, ::1] logits, *, bint grad,
                                 double label_smoothing=0.0, softcap=None):
    """Shape of the `scratch` array `cross_entropy_labels` needs."""
    cdef Py_ssize_t n = logits.shape[0], c = logits.shape[1]
    cdef Py_ssize_t group = label_row_group(c, softcap is not None)
    if label_tiles(c, <floating>0, label_smoothing, softcap is not None):
        return threads_for((n + XF_LANES - 1) // XF_LANES, n * c), 0
    return (threads_for((n + group - 1) // group, n * c),
            row_scratch_columns(c, grad, softcap is not None))


def softmax_focal_labels_scratch(const floating[:, ::1] logits, *, bint grad):
    """Shape of the `scratch` array `softmax_focal_labels` needs."""
    return cross_entropy_labels_scratch(logits, grad=grad)


def cross_entropy_probs_scratch(const floating[:, ::1] logits, *, bint grad, softcap=None):
    """Shape of the `scratch` array `cross_entropy_probs` needs."""
    cdef Py_ssize_t n = logits.shape[0], c = logits.shape[1]
    cdef Py_ssize_t group = label_row_group(c, softcap is not None)
    return (threads_for((n + group - 1) // group, n * c),
            row_scratch_columns(c, grad, softcap is not None))


# ------------------------------------------------------------- row sweeps

cdef inline const floating *capped_row(const floating *x, Py_ssize_t c, bint capped,
                                      double softcap, floating *out,
                                      floating *slope) noexcept nogil:
    """The row the loss sees: x, or when capped the capped logits, put in
    `out` (which may be x) with the cap's slope in `slope` (for the chain
    rule)."""
    if capped:
        row_softcap(x, c, <floating>softcap, out, slope)
        return out
    return x


cdef inline floating *scratch_row(floating *scratch0, Py_ssize_t width,
                                  int thread) noexcept nogil:
    """This thread's row of a scratch array starting at `scratch0` (NULL when
    the call needs none) with rows of `width`."""
    return scratch0 + thread * width if scratch0 != NULL else NULL


cdef void label_tile(const LabelLoss *o, const floating *x, const int64_t *y,
                     Py_ssize_t nr, Py_ssize_t c, const floating *w, const floating *sw,
                     double *loss, floating *g) noexcept nogil:
    """Rows [0, nr) of a tile, nr <= XF_LANES, c <= tile_limit(labels=True); no label
    smoothing or softcap.  g may be NULL (no gradient) or x.  The
    cross-entropy's per-row algebra runs across the lanes
    (tile_cross_entropy); the focal loss's, row by row."""
    cdef floating tile[TILE_SIZE]
    cdef floating m[XF_LANES]
    cdef floating others[XF_LANES]
    cdef floating l1p[XF_LANES]
    cdef floating a[XF_LANES]
    cdef floating zero[XF_LANES]
    # per lane, 0 in lanes past nr and in ignored rows (their results are
    # replaced below)
    cdef double x_y[XF_LANES]
    cdef double e_y[XF_LANES]
    cdef double w_y[XF_LANES]
    cdef double s[XF_LANES]
    cdef double lane_loss[XF_LANES]
    cdef double g_y[XF_LANES]
    cdef RowStats r
    cdef RowResult res
    cdef Py_ssize_t k
    cdef int64_t target[XF_LANES]   # the label, or -1 (ignored, or past nr)
    tile_load(x, c, nr, tile, m)
    # one loop, not a zeroing pass first: gcc makes those `rep stos`, slow
    # for arrays this small
    for k in range(XF_LANES):
        zero[k] = 0
        target[k] = y[k] if k < nr and y[k] != o.ignore_index else -1
        if target[k] >= 0:
            x_y[k] = x[k * c + target[k]] - m[k]
            w_y[k] = w[target[k]] if w != NULL else 1.0
            s[k] = sw[k] if sw != NULL else 1.0
        else:
            x_y[k] = w_y[k] = s[k] = 0.0
    tile_exp(tile, c, m, tile, others, l1p)
    for k in range(XF_LANES):
        e_y[k] = tile[target[k] * XF_LANES + k] if target[k] >= 0 else 0.0
    if o.focal:
        r.dot = r.w_sum = 0.0
        for k in range(XF_LANES):
            r.m, r.x_y, r.e_y, r.others, r.l1p = m[k], x_y[k], e_y[k], others[k], l1p[k]
            res = focal_row(r, w_y[k], o.gamma, o.ce.grad_scale)
            lane_loss[k], a[k], g_y[k] = res.loss, <floating>res.a, res.g_y
    else:
        tile_cross_entropy(m, others, l1p, x_y, e_y, w_y, s, o.ce.z_loss, o.ce.grad_scale,
                           lane_loss, a, g_y)
    for k in range(nr):
        loss[k] = lane_loss[k] if target[k] >= 0 else 0.0
    if g != NULL:
        tile_store(tile, c, nr, a, zero, zero, NULL, g)
        for k in range(nr):
            if target[k] >= 0:
                g[k * c + target[k]] = <floating>g_y[k]
            else:   # 0, not 0 * NaN, whatever the row holds
                memset(g + k * c, 0, c * sizeof(floating))


cdef void label_group(const LabelLoss *o, const floating *x, const int64_t *y,
                      Py_ssize_t nr, Py_ssize_t c, const floating *w, const floating *sw,
                      double *loss, floating *g, floating *sp) noexcept nogil:
    """Rows [0, nr) of a row group (label_row_group): the maxima and exps
    (of the group at once, or of its one capped row), the group's log1p's at
    once, then each row's loss and gradient.  g may be NULL (no gradient) or
    x; sp is the thread's scratch (row_scratch_columns)."""
    cdef RowStats r[XF_LANES]
    cdef floating m[XF_LANES]
    cdef double others[XF_LANES]
    cdef double l1p[XF_LANES]
    cdef RowResult res
    cdef const floating *src
    cdef floating *e
    cdef Py_ssize_t k
    cdef int64_t yk
    # the weights enter the gradient row only through label smoothing
    # (b = 0 otherwise, and 0 * inf would make an untargeted column NaN)
    cdef const floating *w_smoothed = w if o.ce.label_smoothing > 0 else NULL
    # with no cap, the maxima and exps of the group go at once (an ignored
    # row's too), the exps into the gradient rows (an ignored row's is zeroed
    # below) or the scratch rows
    cdef floating *exps = g if g != NULL else sp
    if not o.capped:
        rows_max(x, c, nr, m)
    for k in range(nr):
        others[k] = 0.0
        yk = y[k]
        if yk == o.ignore_index:
            continue
        r[k] = RowStats(m=0, x_y=0, e_y=0, others=0, l1p=0, dot=0, w_sum=0)
        if g != NULL:   # capped logits, exps and gradient in the gradient row
            e = g + k * c
            src = capped_row(x + k * c, c, o.capped, o.softcap, e, sp)
        else:           # capped logits then exps in scratch, the slope after
            e = sp
            src = capped_row(x + k * c, c, o.capped, o.softcap, sp, sp + c)
        if o.capped:
            m[k] = row_max(src, c)
        r[k].m = m[k]
        r[k].x_y = src[yk] - m[k]
        if o.ce.label_smoothing > 0:
            # sum_c w_c (x_c - m), read before the exps may overwrite x
            r[k].dot = row_target_dot(src, c, m[k], NULL, w, 0, 1, &r[k].w_sum)
        if o.capped:   # one row
            others[k] = row_exp_sum(src, c, m[k], e, NULL)
            r[k].e_y = e[yk]
    if not o.capped:
        rows_exp_sum(x, c, nr, m, exps, others)
        for k in range(nr):
            if y[k] == o.ignore_index:
                others[k] = 0.0
            else:
                r[k].e_y = exps[k * c + y[k]]
    rows_log1p(others, nr, l1p)
    for k in range(nr):
        yk = y[k]
        if yk == o.ignore_index:
            loss[k] = 0.0
            if g != NULL:   # 0, not 0 * NaN, whatever the row holds
                memset(g + k * c, 0, c * sizeof(floating))
            continue
        r[k].others, r[k].l1p = others[k], l1p[k]
        res = label_row(o, r[k], w[yk] if w != NULL else 1.0, sw[k] if sw != NULL else 1.0, c)
        loss[k] = res.loss
        if g != NULL:
            e = g + k * c
            row_scale_sub(e, c, <floating>res.a, <floating>res.b, NULL, w_smoothed, 0, 1)
            e[yk] = <floating>res.g_y
            if o.capped:
                row_mul(e, c, sp)


cdef void label_rows(const LabelLoss *o, const floating[:, ::1] x, const int64_t[::1] y,
                     const floating[::1] weight, const floating[::1] sample_weight,
                     double[::1] loss, floating[:, ::1] grad,
                     floating[:, ::1] scratch) noexcept:
    """The loss `o` of every row of x, in tiles or in row groups."""
    cdef:
        Py_ssize_t n = x.shape[0], c = x.shape[1], i, r0
        Py_ssize_t group = label_row_group(c, o.capped)
        const floating *w = ptr_or_null(weight)
        const floating *sw = ptr_or_null(sample_weight)
        floating *g0 = &grad[0, 0] if grad is not None and n > 0 else NULL
        floating *s0 = &scratch[0, 0] if scratch.shape[1] > 0 else NULL
        int threads = scratch.shape[0]   # one scratch row per thread
    if label_tiles(c, <floating>0, o.ce.label_smoothing, o.capped):
        for i in prange((n + XF_LANES - 1) // XF_LANES, nogil=True, schedule="static",
                        num_threads=threads,
                        use_threads_if=threads > 1):
            r0 = i * XF_LANES
            label_tile(o, &x[r0, 0], &y[r0], min(<Py_ssize_t>XF_LANES, n - r0), c, w,
                       sw + r0 if sw != NULL else NULL, &loss[r0],
                       g0 + r0 * c if g0 != NULL else NULL)
        return
    for i in prange((n + group - 1) // group, nogil=True, schedule="static",
                    num_threads=threads, use_threads_if=threads > 1):
        r0 = i * group
        label_group(o, &x[r0, 0], &y[r0], min(group, n - r0), c, w,
                    sw + r0 if sw != NULL else NULL, &loss[r0],
                    g0 + r0 * c if g0 != NULL else NULL,
                    scratch_row(s0, scratch.shape[1], threadid()))


# -------------------------------------------------------------- row sums

cdef double pairwise_sum(const double *x, Py_ssize_t n) noexcept nogil:
    """Sum of x[0:n]: 8 running sums up to 128 terms, halves above (within a
    few roundings of the exact sum for any n; the order depends on n only)."""
    cdef double r[8]
    cdef double total
    cdef Py_ssize_t i, j, half
    if n < 8:
        total = 0.0
        for i in range(n):
            total += x[i]
        return total
    if n <= 128:
        for j in range(8):
            r[j] = x[j]
        i = 8
        while i + 8 <= n:
            for j in range(8):
                r[j] += x[i + j]
            i += 8
        total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            total += x[i]
            i += 1
        return total
    half = (n // 2) & ~(<Py_ssize_t>7)
    return pairwise_sum(x, half) + pairwise_sum(x + half, n - half)


def row_losses_sum(const double[::1] loss):
    """The sum of per-row losses every front end reduces with (so that the
    compiled small-call path and the general one agree bitwise)."""
    return pairwise_sum(&loss[0], loss.shape[0]) if loss.shape[0] else 0.0


# ---------------------------------------------------------- entry points

# Most elements a small call (cross_entropy_small) takes: below the thread
# rule's threshold, so one thread, as the general path would run it.
SMALL_CALL_ELEMENTS = 32768 - 1


def cross_entropy_small(const floating[:, ::1] logits, const int64_t[::1] labels,
                        floating[:, ::1] grad, int64_t ignore_index, bint mean):
    """The whole of a small plain cross_entropy call with labels, no class
    weight and a 'mean' or 'sum' reduction, in one compiled call: the label
    scan, the loss (one thread: at most SMALL_CALL_ELEMENTS), the gradient
    into `grad` (None: none; may be logits), and the sum of the row losses.
    Returns (sum, denominator), or None, having written nothing, when a
    label is out of range (the general path then raises)."""
    cdef:
        Py_ssize_t n = logits.shape[0], c = logits.shape[1], r0, ignored = 0
        Py_ssize_t group = row_group(c)
        const floating *x
        const int64_t *y
        floating *g
        floating *sp = NULL
        double *loss
        double den, total
        bint tiles = label_tiles(c, <floating>0, 0.0, False)
        LabelLoss o
    if n == 0 or c == 0:
        return None
    x, y = &logits[0, 0], &labels[0]
    g = &grad[0, 0] if grad is not None else NULL
    if first_bad_label(y, n, c, ignore_index, &ignored) >= 0:
        return None
    den = <double>(n - ignored)
    o.focal = False
    o.ce = CrossEntropyOptions(label_smoothing=0.0, z_loss=0.0,
                               grad_scale=(1.0 / den if den != 0 else 0.0) if mean else 1.0)
    o.gamma = 0.0
    o.capped = False
    o.softcap = 0.0
    o.ignore_index = ignore_index
    loss = <double *>malloc(n * sizeof(double))
    if g == NULL and not tiles:
        sp = <floating *>malloc(group * c * sizeof(floating))   # the exps, with no gradient rows
    if loss == NULL or (g == NULL and not tiles and sp == NULL):
        free(loss)
        free(sp)
        raise MemoryError()
    with nogil:
        r0 = 0
        while r0 < n:
            if tiles:
                label_tile(&o, x + r0 * c, y + r0, min(<Py_ssize_t>XF_LANES, n - r0), c,
                           NULL, NULL, loss + r0, g + r0 * c if g != NULL else NULL)
                r0 += XF_LANES
            else:
                label_group(&o, x + r0 * c, y + r0, min(group, n - r0), c, NULL, NULL,
                            loss + r0, g + r0 * c if g != NULL else NULL, sp)
                r0 += group
        total = pairwise_sum(loss, n)
    free(loss)
    free(sp)
    return total, den



def cross_entropy_labels(
        *,
        const floating[:, ::1] logits,         # IN (N, C)
        const int64_t[::1] labels,             # IN (N,) in [0, C) or ignore_index
        const floating[::1] weight,            # IN (C,) class weights or None
        const floating[::1] sample_weight,     # IN (N,) or None
        int64_t ignore_index,
        double label_smoothing,
        double z_loss,
        softcap,                               # float > 0 or None
        double grad_scale,
        double[::1] loss,                      # OUT (N,)
        floating[:, ::1] grad,                 # OUT (N, C) or None; may be logits
        floating[:, ::1] scratch):             # cross_entropy_labels_scratch(...)
    """Cross-entropy of integer labels, every option."""
    cdef LabelLoss o
    o.focal = False
    o.ce = CrossEntropyOptions(label_smoothing=label_smoothing, z_loss=z_loss,
                               grad_scale=grad_scale)
    o.gamma = 0.0
    o.capped = softcap is not None
    o.softcap = softcap if o.capped else 0.0
    o.ignore_index = ignore_index
    label_rows(&o, logits, labels, weight, sample_weight, loss, grad, scratch)


def softmax_focal_labels(
        *,
        const floating[:, ::1] logits,         # IN (N, C)
        const int64_t[::1] labels,             # IN (N,) in [0, C) or ignore_index
        const floating[::1] alpha,             # IN (C,) class weights or None
        int64_t ignore_index,
        double gamma,
        double grad_scale,
        double[::1] loss,                      # OUT (N,)
        floating[:, ::1] grad,                 # OUT (N, C) or None; may be logits
        floating[:, ::1] scratch):             # softmax_focal_labels_scratch(...)
    """Softmax focal loss of integer labels."""
    cdef LabelLoss o
    cdef const floating[::1] no_sample_weight = None
    o.focal = True
    o.ce = CrossEntropyOptions(label_smoothing=0.0, z_loss=0.0, grad_scale=grad_scale)
    o.gamma = gamma
    o.capped = False
    o.softcap = 0.0
    o.ignore_index = ignore_index
    label_rows(&o, logits, labels, alpha, no_sample_weight, loss, grad, scratch)


cdef struct ProbsLoss:
    # The options of cross_entropy_probs (the smoothed target is
    # t_scale t + t_add).
    double t_scale
    double t_add
    double z_loss
    double grad_scale
    bint capped
    double softcap


cdef void probs_group(const ProbsLoss *o, const floating *x, const floating *t,
                      Py_ssize_t nr, Py_ssize_t c, const floating *w, const floating *sw,
                      double *loss, floating *g, floating *sp) noexcept nogil:
    """Rows [0, nr) of a row group of cross_entropy_probs (label_row_group):
    the maxima, each row's target dot, the exps and sums of the group at
    once, their log1p's, then each row's loss and gradient.  g may be NULL
    (no gradient) or x; sp is the thread's scratch (row_scratch_columns): the
    exps with no gradient rows, and the cap's slope (a capped group has one
    row)."""
    cdef floating m[XF_LANES]
    cdef double others[XF_LANES]
    cdef double l1p[XF_LANES]
    cdef double dot[XF_LANES]
    cdef double c_sum[XF_LANES]
    cdef floating t_scale = <floating>o.t_scale, t_add = <floating>o.t_add
    cdef floating *e = g if g != NULL else sp   # the exps (over the capped logits)
    cdef floating *slope = sp if g != NULL else sp + c
    cdef const floating *src = capped_row(x, c, o.capped, o.softcap, e, slope)
    cdef Py_ssize_t k
    cdef double lse, s
    rows_max(src, c, nr, m)
    for k in range(nr):
        # sum_c q_c (x_c - m) with q = smoothed, weighted target, read before
        # the exps may overwrite x
        dot[k] = row_target_dot(src + k * c, c, m[k], t + k * c, w, t_scale, t_add, &c_sum[k])
    rows_exp_sum(src, c, nr, m, e, others)
    rows_log1p(others, nr, l1p)
    for k in range(nr):
        lse = m[k] + l1p[k]
        s = sw[k] if sw != NULL else 1.0
        loss[k] = s * (c_sum[k] * l1p[k] - dot[k] + o.z_loss * lse * lse)
        if g != NULL:
            s = s * o.grad_scale
            row_scale_sub(e + k * c, c,
                          <floating>(s * (c_sum[k] + 2 * o.z_loss * lse) / (1 + others[k])),
                          <floating>s, t + k * c, w, t_scale, t_add)
            if o.capped:
                row_mul(e + k * c, c, slope)


def cross_entropy_probs(
        *,
        const floating[:, ::1] logits,         # IN (N, C)
        const floating[:, ::1] target,         # IN (N, C) class probabilities
        const floating[::1] weight,            # IN (C,) or None
        const floating[::1] sample_weight,     # IN (N,) or None
        double label_smoothing,
        double z_loss,
        softcap,                               # float > 0 or None
        double grad_scale,
        double[::1] loss,                      # OUT (N,)
        floating[:, ::1] grad,                 # OUT (N, C) or None; may be logits
        floating[:, ::1] scratch):             # cross_entropy_probs_scratch(...)
    """Cross-entropy of class probabilities, every option."""
    cdef:
        const floating[:, ::1] x = logits
        Py_ssize_t n = x.shape[0], c = x.shape[1], i, r0
        Py_ssize_t group = label_row_group(c, softcap is not None)
        const floating *w = ptr_or_null(weight)
        const floating *sw = ptr_or_null(sample_weight)
        floating *g0 = &grad[0, 0] if grad is not None and n > 0 else NULL
        floating *s0 = &scratch[0, 0] if scratch.shape[1] > 0 else NULL
        int threads = scratch.shape[0]   # one scratch row per thread
        ProbsLoss o = ProbsLoss(t_scale=1 - label_smoothing,
                                t_add=label_smoothing / c if c else 0.0,
                                z_loss=z_loss, grad_scale=grad_scale,
                                capped=softcap is not None,
                                softcap=softcap if softcap is not None else 0.0)
    for i in prange((n + group - 1) // group, nogil=True, schedule="static",
                    num_threads=threads, use_threads_if=threads > 1):
        r0 = i * group
        probs_group(&o, &x[r0, 0], &target[r0, 0], min(group, n - r0), c, w,
                    sw + r0 if sw != NULL else NULL, &loss[r0],
                    g0 + r0 * c if g0 != NULL else NULL,
                    scratch_row(s0, scratch.shape[1], threadid()))


def nll_loss(
        *,
        const floating[:, ::1] log_probs,      # IN (N, C)
        const int64_t[::1] labels,             # IN (N,) in [0, C) or ignore_index
        const floating[::1] weight,            # IN (C,) or None
        const floating[::1] sample_weight,     # IN (N,) or None
        int64_t ignore_index,
        double grad_scale,
        double[::1] loss,                      # OUT (N,)
        floating[:, ::1] grad):                # OUT (N, C) or None; may be log_probs
    """Reads only each row's target entry, as torch does."""
    cdef:
        const floating[:, ::1] x = log_probs
        const int64_t[::1] y = labels
        Py_ssize_t n = x.shape[0], c = x.shape[1], i
        int64_t yi
        const floating *w = ptr_or_null(weight)
        const floating *sw = ptr_or_null(sample_weight)
        floating *g0 = &grad[0, 0] if grad is not None and n > 0 else NULL
        double ws
        int threads = threads_for(n, n * c)
    for i in prange(n, nogil=True, schedule="static", num_threads=threads,
                    use_threads_if=threads > 1):
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
