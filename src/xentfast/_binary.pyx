# Kernels of the elementwise losses (binary, multi-label, sigmoid focal) over
# flat C-contiguous arrays.
#
# Three layers: the C block functions of _xf_elementwise_impl.h hold the
# per-element mathematics in one vector loop; the functions here run the
# blocks of XF_BLOCK elements with prange; binary.py validates, allocates and
# reduces.  Nothing here checks its inputs.
#
# Each block writes its loss sum (in double) to `partial[b]`, and, when asked,
# the per-element losses to `loss` and the gradient, already multiplied by
# `grad_scale`, to `grad` (which may be the first input itself).  Blocks have
# a fixed size, so the partial sums do not depend on the number of threads.
# Operands that broadcast (weight, pos_weight) arrive as (data, inner,
# period): flat element k reads data[(k // inner) % period]; the block's
# values are copied into per-thread scratch unless they are contiguous in
# data.  An absent operand reads `ones`.
from cython cimport floating
from cython.parallel cimport prange, threadid

from ._memview cimport out_ptr, ptr_or_null
from ._openmp cimport n_threads
from ._parallel cimport PARALLEL_MIN_ELEMENTS, threads_for

cdef extern from "_xf_elementwise.h" nogil:
    enum:
        XF_BLOCK
    Py_ssize_t xf_count_outside_unit_f32(const float *v, Py_ssize_t n)
    Py_ssize_t xf_count_outside_unit_f64(const double *v, Py_ssize_t n)
    const float *xf_broadcast_block_f32(const float *data, Py_ssize_t inner,
                                        Py_ssize_t period, Py_ssize_t k0,
                                        Py_ssize_t n, float *buf)
    const double *xf_broadcast_block_f64(const double *data, Py_ssize_t inner,
                                         Py_ssize_t period, Py_ssize_t k0,
                                         Py_ssize_t n, double *buf)
    double xf_bce_block_f32(const float *p, const float *t, const float *w,
                            Py_ssize_t n, float scale, float *loss, float *grad)
    double xf_bce_block_f64(const double *p, const double *t, const double *w,
                            Py_ssize_t n, double scale, double *loss, double *grad)
    double xf_bce_logits_block_f32(const float *x, const float *t, const float *w,
                                   const float *pw, Py_ssize_t n, float scale,
                                   float *loss, float *grad)
    double xf_bce_logits_block_f64(const double *x, const double *t, const double *w,
                                   const double *pw, Py_ssize_t n, double scale,
                                   double *loss, double *grad)
    double xf_sigmoid_focal_block_f32(const float *x, const float *t, Py_ssize_t n,
                                      float alpha, float gamma, float scale,
                                      float *loss, float *grad)
    double xf_sigmoid_focal_block_f64(const double *x, const double *t, Py_ssize_t n,
                                      double alpha, double gamma, double scale,
                                      double *loss, double *grad)

BLOCK = XF_BLOCK
PARALLEL_MIN = PARALLEL_MIN_ELEMENTS
# Per-thread scratch: SCRATCH_SLOTS slots of min(n, XF_BLOCK) values for two
# broadcast operands, unwanted losses and unwanted gradients.
SCRATCH_SLOTS = 4


def scratch_shape(Py_ssize_t n):
    """Shape of the `scratch` array the loss kernels need for n elements:
    a row per thread the call uses (never more than its blocks)."""
    cdef Py_ssize_t n_blocks = (n + XF_BLOCK - 1) // XF_BLOCK
    return threads_for(n_blocks, n), SCRATCH_SLOTS * min(n, <Py_ssize_t>XF_BLOCK)


cdef inline const floating *operand(const floating *data, Py_ssize_t inner,
                                    Py_ssize_t period, Py_ssize_t k0, Py_ssize_t n,
                                    floating *buf, const floating *ones) noexcept nogil:
    if data == NULL:
        return ones
    if floating is float:
        return xf_broadcast_block_f32(data, inner, period, k0, n, buf)
    else:
        return xf_broadcast_block_f64(data, inner, period, k0, n, buf)


cdef inline floating *block_out(floating *out, Py_ssize_t k0,
                                floating *spare) noexcept nogil:
    """Where a block writes an output: its place in `out`, or a spare scratch
    slot when the caller does not want that output."""
    return out + k0 if out != NULL else spare


cdef inline double bce_block(const floating *p, const floating *t, const floating *w,
                             Py_ssize_t n, double scale, floating *loss,
                             floating *grad) noexcept nogil:
    if floating is float:
        return xf_bce_block_f32(p, t, w, n, <float>scale, loss, grad)
    else:
        return xf_bce_block_f64(p, t, w, n, scale, loss, grad)


cdef inline double bce_logits_block(const floating *x, const floating *t,
                                    const floating *w, const floating *pw, Py_ssize_t n,
                                    double scale, floating *loss,
                                    floating *grad) noexcept nogil:
    if floating is float:
        return xf_bce_logits_block_f32(x, t, w, pw, n, <float>scale, loss, grad)
    else:
        return xf_bce_logits_block_f64(x, t, w, pw, n, scale, loss, grad)


cdef inline double sigmoid_focal_block(const floating *x, const floating *t, Py_ssize_t n,
                                       double alpha, double gamma, double scale,
                                       floating *loss, floating *grad) noexcept nogil:
    if floating is float:
        return xf_sigmoid_focal_block_f32(x, t, n, <float>alpha, <float>gamma,
                                          <float>scale, loss, grad)
    else:
        return xf_sigmoid_focal_block_f64(x, t, n, alpha, gamma, scale, loss, grad)


def count_outside_unit(const floating[::1] v,   # IN (n,)
                       Py_ssize_t[::1] counts):   # OUT (n_blocks,)
    """counts[b] = how many values of block b are outside [0, 1] (NaN included)."""
    cdef Py_ssize_t n = v.shape[0], b, k0, m
    for b in prange(counts.shape[0], nogil=True, schedule="static",
                    num_threads=n_threads(), use_threads_if=n >= PARALLEL_MIN_ELEMENTS):
        k0 = b * XF_BLOCK
        m = min(XF_BLOCK, n - k0)
        if floating is float:
            counts[b] = xf_count_outside_unit_f32(&v[k0], m)
        else:
            counts[b] = xf_count_outside_unit_f64(&v[k0], m)


def binary_cross_entropy(
        const floating[::1] p,            # IN (n,) probabilities in [0, 1]
        const floating[::1] t,            # IN (n,) targets
        const floating[::1] w_data,       # IN weight operand or None
        Py_ssize_t w_inner, Py_ssize_t w_period,
        double grad_scale,
        floating[::1] loss,               # OUT (n,) or None
        double[::1] partial,              # OUT (n_blocks,)
        floating[::1] grad,               # OUT (n,) or None; may be p
        floating[:, ::1] scratch,         # (threads, SCRATCH_SLOTS * slot)
        const floating[::1] ones):        # (XF_BLOCK,) of 1
    cdef:
        Py_ssize_t n = p.shape[0], b, k0, m, slot = scratch.shape[1] // SCRATCH_SLOTS
        const floating *wd = ptr_or_null(w_data)
        floating *lp = out_ptr(loss)
        floating *gp = out_ptr(grad)
        floating *buf
        const floating *wb
        int threads = scratch.shape[0]
    # As many threads as scratch rows, whatever the OpenMP setting is now.
    for b in prange(partial.shape[0], nogil=True, schedule="static", num_threads=threads,
                    use_threads_if=n >= PARALLEL_MIN_ELEMENTS):
        k0 = b * XF_BLOCK
        m = min(XF_BLOCK, n - k0)
        buf = &scratch[threadid(), 0]
        wb = operand(wd, w_inner, w_period, k0, m, buf, &ones[0])
        partial[b] = bce_block(&p[k0], &t[k0], wb, m, grad_scale,
                               block_out(lp, k0, buf + 2 * slot),
                               block_out(gp, k0, buf + 3 * slot))


def binary_cross_entropy_with_logits(
        const floating[::1] x,            # IN (n,) logits
        const floating[::1] t,            # IN (n,) targets
        const floating[::1] w_data,       # IN weight operand or None
        Py_ssize_t w_inner, Py_ssize_t w_period,
        const floating[::1] pw_data,      # IN pos_weight operand or None
        Py_ssize_t pw_inner, Py_ssize_t pw_period,
        double grad_scale,
        floating[::1] loss,               # OUT (n,) or None
        double[::1] partial,              # OUT (n_blocks,)
        floating[::1] grad,               # OUT (n,) or None; may be x
        floating[:, ::1] scratch,         # (threads, SCRATCH_SLOTS * slot)
        const floating[::1] ones):        # (XF_BLOCK,) of 1
    cdef:
        Py_ssize_t n = x.shape[0], b, k0, m, slot = scratch.shape[1] // SCRATCH_SLOTS
        const floating *wd = ptr_or_null(w_data)
        const floating *pwd = ptr_or_null(pw_data)
        floating *lp = out_ptr(loss)
        floating *gp = out_ptr(grad)
        floating *buf
        const floating *wb
        const floating *pwb
        int threads = scratch.shape[0]
    # As many threads as scratch rows, whatever the OpenMP setting is now.
    for b in prange(partial.shape[0], nogil=True, schedule="static", num_threads=threads,
                    use_threads_if=n >= PARALLEL_MIN_ELEMENTS):
        k0 = b * XF_BLOCK
        m = min(XF_BLOCK, n - k0)
        buf = &scratch[threadid(), 0]
        wb = operand(wd, w_inner, w_period, k0, m, buf, &ones[0])
        pwb = operand(pwd, pw_inner, pw_period, k0, m, buf + slot, &ones[0])
        partial[b] = bce_logits_block(&x[k0], &t[k0], wb, pwb, m, grad_scale,
                                      block_out(lp, k0, buf + 2 * slot),
                                      block_out(gp, k0, buf + 3 * slot))


def sigmoid_focal(
        const floating[::1] x,            # IN (n,) logits
        const floating[::1] t,            # IN (n,) targets
        double alpha,                     # < 0: no alpha term
        double gamma,
        double grad_scale,
        floating[::1] loss,               # OUT (n,) or None
        double[::1] partial,              # OUT (n_blocks,)
        floating[::1] grad,               # OUT (n,) or None; may be x
        floating[:, ::1] scratch):        # (threads, SCRATCH_SLOTS * slot)
    cdef:
        Py_ssize_t n = x.shape[0], b, k0, m, slot = scratch.shape[1] // SCRATCH_SLOTS
        floating *lp = out_ptr(loss)
        floating *gp = out_ptr(grad)
        floating *buf
        int threads = scratch.shape[0]
    # As many threads as scratch rows, whatever the OpenMP setting is now.
    for b in prange(partial.shape[0], nogil=True, schedule="static", num_threads=threads,
                    use_threads_if=n >= PARALLEL_MIN_ELEMENTS):
        k0 = b * XF_BLOCK
        m = min(XF_BLOCK, n - k0)
        buf = &scratch[threadid(), 0]
        partial[b] = sigmoid_focal_block(&x[k0], &t[k0], m, alpha, gamma, grad_scale,
                                         block_out(lp, k0, buf + 2 * slot),
                                         block_out(gp, k0, buf + 3 * slot))
