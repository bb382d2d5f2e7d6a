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
# data.  An absent operand reads a block of ones.
#
# One entry point per public function, named like it and called by keyword.
# Layout: `block_count(n)` partial sums; a per-thread `scratch` of
# `scratch_shape(n)` (a kernel runs scratch.shape[0] threads, the thread rule
# of _openmp.pxd).
from cython cimport floating
from cython.parallel cimport prange, threadid

from ._elementwise cimport (XF_BLOCK, bce_block, bce_logits_block, broadcast_block,
                            sigmoid_focal_block)
from ._memview cimport out_ptr, ptr_or_null
from ._openmp cimport threads_for

BLOCK = XF_BLOCK
# Per-thread scratch: SCRATCH_SLOTS slots of min(n, XF_BLOCK) values for two
# broadcast operands, unwanted losses and unwanted gradients.
cdef enum:
    SCRATCH_SLOTS = 4

# What an absent weight reads.
cdef float ONES_F32[XF_BLOCK]
cdef double ONES_F64[XF_BLOCK]
cdef Py_ssize_t _k
for _k in range(XF_BLOCK):
    ONES_F32[_k] = 1
    ONES_F64[_k] = 1


def block_count(Py_ssize_t n):
    """Number of blocks (and partial sums) of n elements."""
    return (n + XF_BLOCK - 1) // XF_BLOCK


def scratch_shape(Py_ssize_t n):
    """Shape of the `scratch` array the kernels need for n elements: a row
    per thread the call uses (never more than its blocks)."""
    return (threads_for((n + XF_BLOCK - 1) // XF_BLOCK, n),
            SCRATCH_SLOTS * min(n, <Py_ssize_t>XF_BLOCK))


cdef inline const floating *operand(const floating *data, Py_ssize_t inner,
                                    Py_ssize_t period, Py_ssize_t k0, Py_ssize_t n,
                                    floating *buf) noexcept nogil:
    """The block's values of a broadcast operand, or ones when it is absent."""
    if data == NULL:
        if floating is float:
            return ONES_F32
        else:
            return ONES_F64
    return broadcast_block(data, inner, period, k0, n, buf)


cdef inline floating *block_out(floating *out, Py_ssize_t k0,
                                floating *spare) noexcept nogil:
    """Where a block writes an output: its place in `out`, or a spare scratch
    slot when the caller does not want that output."""
    return out + k0 if out != NULL else spare


def binary_cross_entropy(
        *,
        const floating[::1] probs,        # IN (n,) probabilities in [0, 1]
        const floating[::1] target,       # IN (n,)
        const floating[::1] weight,       # IN broadcast operand or None
        Py_ssize_t weight_inner, Py_ssize_t weight_period,
        double grad_scale,
        floating[::1] loss,               # OUT (n,) or None
        double[::1] partial,              # OUT (block_count(n),)
        floating[::1] grad,               # OUT (n,) or None; may be probs
        floating[:, ::1] scratch):        # scratch_shape(n)
    cdef:
        Py_ssize_t n = probs.shape[0], b, k0, m, slot = scratch.shape[1] // SCRATCH_SLOTS
        const floating *wd = ptr_or_null(weight)
        floating *lp = out_ptr(loss)
        floating *gp = out_ptr(grad)
        floating *buf
        const floating *wb
        int threads = scratch.shape[0]   # one scratch row per thread
    for b in prange(partial.shape[0], nogil=True, schedule="static", num_threads=threads,
                    use_threads_if=threads > 1):
        k0 = b * XF_BLOCK
        m = min(XF_BLOCK, n - k0)
        buf = &scratch[threadid(), 0]
        wb = operand(wd, weight_inner, weight_period, k0, m, buf)
        partial[b] = bce_block(&probs[k0], &target[k0], wb, m, grad_scale,
                               block_out(lp, k0, buf + 2 * slot),
                               block_out(gp, k0, buf + 3 * slot))


def binary_cross_entropy_with_logits(
        *,
        const floating[::1] logits,       # IN (n,)
        const floating[::1] target,       # IN (n,)
        const floating[::1] weight,       # IN broadcast operand or None
        Py_ssize_t weight_inner, Py_ssize_t weight_period,
        const floating[::1] pos_weight,   # IN broadcast operand or None
        Py_ssize_t pos_weight_inner, Py_ssize_t pos_weight_period,
        double grad_scale,
        floating[::1] loss,               # OUT (n,) or None
        double[::1] partial,              # OUT (block_count(n),)
        floating[::1] grad,               # OUT (n,) or None; may be logits
        floating[:, ::1] scratch):        # scratch_shape(n)
    cdef:
        Py_ssize_t n = logits.shape[0], b, k0, m, slot = scratch.shape[1] // SCRATCH_SLOTS
        const floating *wd = ptr_or_null(weight)
        const floating *pwd = ptr_or_null(pos_weight)
        floating *lp = out_ptr(loss)
        floating *gp = out_ptr(grad)
        floating *buf
        const floating *wb
        const floating *pwb
        int threads = scratch.shape[0]   # one scratch row per thread
    for b in prange(partial.shape[0], nogil=True, schedule="static", num_threads=threads,
                    use_threads_if=threads > 1):
        k0 = b * XF_BLOCK
        m = min(XF_BLOCK, n - k0)
        buf = &scratch[threadid(), 0]
        wb = pwb = NULL   # no weights at all: the kernel's loop without them
        if wd != NULL or pwd != NULL:
            wb = operand(wd, weight_inner, weight_period, k0, m, buf)
            pwb = operand(pwd, pos_weight_inner, pos_weight_period, k0, m, buf + slot)
        partial[b] = bce_logits_block(&logits[k0], &target[k0], wb, pwb, m, grad_scale,
                                      block_out(lp, k0, buf + 2 * slot),
                                      block_out(gp, k0, buf + 3 * slot))


def sigmoid_focal_loss(
        *,
        const floating[::1] logits,       # IN (n,)
        const floating[::1] target,       # IN (n,)
        double alpha,                     # as the public alpha: < 0 disables it
        double gamma,
        double grad_scale,
        floating[::1] loss,               # OUT (n,) or None
        double[::1] partial,              # OUT (block_count(n),)
        floating[::1] grad,               # OUT (n,) or None; may be logits
        floating[:, ::1] scratch):        # scratch_shape(n)
    cdef:
        Py_ssize_t n = logits.shape[0], b, k0, m, slot = scratch.shape[1] // SCRATCH_SLOTS
        floating *lp = out_ptr(loss)
        floating *gp = out_ptr(grad)
        floating *buf
        int threads = scratch.shape[0]   # one scratch row per thread
    for b in prange(partial.shape[0], nogil=True, schedule="static", num_threads=threads,
                    use_threads_if=threads > 1):
        k0 = b * XF_BLOCK
        m = min(XF_BLOCK, n - k0)
        buf = &scratch[threadid(), 0]
        partial[b] = sigmoid_focal_block(&logits[k0], &target[k0], m, alpha, gamma,
                                         grad_scale, block_out(lp, k0, buf + 2 * slot),
                                         block_out(gp, k0, buf + 3 * slot))
