# Kernels of the softmax family over C-contiguous (rows, classes) arrays.
#
# No validation or allocation here: softmax.py checks the inputs and
# allocates `out` and the per-thread `scratch` rows ((threads, C)).  One row
# is handled at a time, so it is read from memory once.
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport log1p, INFINITY

from ._parallel cimport PARALLEL_MIN_ELEMENTS
from ._rows cimport row_exp, row_max, row_scale_sub, row_sub, row_sum_others


def log_softmax(const floating[:, ::1] x,     # IN (N, C)
                floating[:, ::1] out,         # OUT (N, C), may be x
                floating[:, ::1] scratch):    # (threads, C)
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], i
    cdef floating m
    cdef double others
    for i in prange(n, nogil=True, schedule="static",
                    use_threads_if=n * c >= PARALLEL_MIN_ELEMENTS):
        m = row_max(&x[i, 0], c)
        # exps go to scratch: out may be x, and x is still needed below
        row_exp(&x[i, 0], c, m, &scratch[threadid(), 0])
        others = row_sum_others(&scratch[threadid(), 0], c)
        row_sub(&x[i, 0], c, m, <floating>log1p(others), &out[i, 0])


def softmax(const floating[:, ::1] x,         # IN (N, C)
            floating[:, ::1] out):            # OUT (N, C), may be x
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], i
    cdef floating m
    cdef double others
    for i in prange(n, nogil=True, schedule="static",
                    use_threads_if=n * c >= PARALLEL_MIN_ELEMENTS):
        m = row_max(&x[i, 0], c)
        row_exp(&x[i, 0], c, m, &out[i, 0])
        others = row_sum_others(&out[i, 0], c)
        row_scale_sub(&out[i, 0], c, <floating>(1.0 / (1.0 + others)), 0,
                      NULL, NULL, 0, 0)


def logsumexp(const floating[:, ::1] x,       # IN (N, C)
              double[::1] out,                # OUT (N,)
              floating[:, ::1] scratch):      # (threads, C)
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], i, j
    cdef floating m
    cdef double others
    for i in prange(n, nogil=True, schedule="static",
                    use_threads_if=n * c >= PARALLEL_MIN_ELEMENTS):
        m = row_max(&x[i, 0], c)
        if m == -INFINITY:
            # every entry is -inf or NaN: -inf, or NaN if there is a NaN
            out[i] = m
            for j in range(c):
                out[i] = out[i] + x[i, j]
            continue
        row_exp(&x[i, 0], c, m, &scratch[threadid(), 0])
        others = row_sum_others(&scratch[threadid(), 0], c)
        out[i] = m + log1p(others)
