# Kernels of the softmax family over C-contiguous (rows, classes) arrays.
#
# No validation or allocation here: softmax.py checks the inputs and
# allocates `out` and the per-thread `scratch` rows (the `*_scratch`
# functions give their shape; a kernel with scratch runs scratch.shape[0]
# threads, the thread rule of _openmp.pxd).  Entry points are named like the
# public functions and called by keyword.  A row is
# read from memory once.  Rows with few classes go through tiles of XF_LANES
# rows (see _rows.pxd) so that the vector loops run across rows.
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY

from ._openmp cimport threads_for
from ._rows cimport (tile_limit, TILE_SIZE, XF_LANES, rows_exp_sum, rows_max,
                     row_scale_sub, row_sub, rows_log1p, row_group, tile_exp, tile_load,
                     tile_store)


cdef enum Op:
    LOG_SOFTMAX, SOFTMAX


cdef void tile_rows(Op op, const floating *x, Py_ssize_t c, Py_ssize_t nr,
                    floating *out) noexcept nogil:
    """log_softmax or softmax of nr <= XF_LANES rows with c <= tile_limit()."""
    cdef floating tile[TILE_SIZE]
    cdef floating e[TILE_SIZE]
    cdef floating m[XF_LANES]
    cdef floating others[XF_LANES]
    cdef floating l1p[XF_LANES]
    cdef floating a[XF_LANES]
    cdef floating b[XF_LANES]
    cdef floating zero[XF_LANES]
    cdef Py_ssize_t k
    tile_load(x, c, nr, tile, m)
    tile_exp(tile, c, m, e, others, l1p)
    for k in range(XF_LANES):
        zero[k] = 0
        if op == LOG_SOFTMAX:   # (x - m) - log1p(others)
            a[k] = 1
            b[k] = l1p[k]
        else:                   # e / (1 + others)
            a[k] = <floating>(1.0 / (1.0 + others[k]))
            b[k] = 0
    if op == LOG_SOFTMAX:
        tile_store(tile, c, nr, a, m, b, NULL, out)
    else:
        tile_store(e, c, nr, a, zero, b, NULL, out)


cdef void tiled(Op op, const floating[:, ::1] x, floating[:, ::1] out) noexcept:
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], blk
    cdef Py_ssize_t n_blocks = (n + XF_LANES - 1) // XF_LANES
    cdef int threads = threads_for(n_blocks, n * c)
    for blk in prange(n_blocks, nogil=True, schedule="static", num_threads=threads,
                      use_threads_if=threads > 1):
        tile_rows(op, &x[blk * XF_LANES, 0], c, min(<Py_ssize_t>XF_LANES, n - blk * XF_LANES),
                  &out[blk * XF_LANES, 0])


def log_softmax_scratch(const floating[:, ::1] x, *, bint in_place):
    """Shape of the `scratch` array `log_softmax` needs for `x`: room for a
    row group's exps only when `out` is `x` (otherwise they go to `out`
    first), and a row per thread in any case: the row count sets the row
    path's threads."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], group = row_group(c)
    cdef Py_ssize_t units = (n + group - 1) // group
    if c <= tile_limit(<floating>0) or not in_place:
        return threads_for(units, n * c), 0
    return threads_for(units, n * c), group * c


cdef void log_softmax_group(const floating *x, Py_ssize_t nr, Py_ssize_t c, floating *out,
                            floating *sp) noexcept nogil:
    """log_softmax of nr <= row_group(c) rows: the maxima, the exp sums and
    their log1p's of the group at once, then each row.  The exps only feed
    the sums: in the thread's scratch rows sp when out is x (x is still
    needed), else in out, which row_sub then overwrites."""
    cdef floating m[XF_LANES]
    cdef double others[XF_LANES]
    cdef double l1p[XF_LANES]
    cdef Py_ssize_t k
    rows_max(x, c, nr, m)
    rows_exp_sum(x, c, nr, m, sp if sp != NULL else out, others)
    rows_log1p(others, nr, l1p)
    for k in range(nr):
        row_sub(x + k * c, c, m[k], <floating>l1p[k], out + k * c)


def log_softmax(*,
                const floating[:, ::1] x,     # IN (N, C)
                floating[:, ::1] out,         # OUT (N, C), may be x
                floating[:, ::1] scratch):    # log_softmax_scratch(x, in_place=out is x)
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], i, group = row_group(c)
    cdef floating *s0 = &scratch[0, 0] if scratch.shape[1] > 0 else NULL
    cdef int threads = scratch.shape[0]   # one scratch row per thread
    if c <= tile_limit(<floating>0):
        tiled(LOG_SOFTMAX, x, out)
        return
    for i in prange((n + group - 1) // group, nogil=True, schedule="static",
                    num_threads=threads, use_threads_if=threads > 1):
        log_softmax_group(&x[i * group, 0], min(group, n - i * group), c, &out[i * group, 0],
                          s0 + threadid() * scratch.shape[1] if s0 != NULL else NULL)


def softmax(*,
            const floating[:, ::1] x,         # IN (N, C)
            floating[:, ::1] out):            # OUT (N, C), may be x
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], i, group = row_group(c)
    cdef int threads = threads_for((n + group - 1) // group, n * c)
    if c <= tile_limit(<floating>0):
        tiled(SOFTMAX, x, out)
        return
    for i in prange((n + group - 1) // group, nogil=True, schedule="static",
                    num_threads=threads, use_threads_if=threads > 1):
        softmax_group(&x[i * group, 0], min(group, n - i * group), c, &out[i * group, 0])


cdef void softmax_group(const floating *x, Py_ssize_t nr, Py_ssize_t c,
                        floating *out) noexcept nogil:
    """softmax of nr <= row_group(c) rows: the maxima and the exps of the
    group at once (into out), then each row scaled."""
    cdef floating m[XF_LANES]
    cdef double others[XF_LANES]
    cdef Py_ssize_t k
    rows_max(x, c, nr, m)
    rows_exp_sum(x, c, nr, m, out, others)
    for k in range(nr):
        row_scale_sub(out + k * c, c, <floating>(1.0 / (1.0 + others[k])), 0, NULL, NULL, 0, 0)


def logsumexp_scratch(const floating[:, ::1] x):
    """Shape of the `scratch` array `logsumexp` needs for `x`: room for a row
    group's exps, a row per thread."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], group = row_group(c)
    return threads_for((n + group - 1) // group, n * c), group * c


def logsumexp(*,
              const floating[:, ::1] x,       # IN (N, C)
              double[::1] out,                # OUT (N,)
              floating[:, ::1] scratch):      # logsumexp_scratch(x)
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], i, group = row_group(c)
    cdef int threads = scratch.shape[0]   # one scratch row per thread
    for i in prange((n + group - 1) // group, nogil=True, schedule="static",
                    num_threads=threads, use_threads_if=threads > 1):
        logsumexp_group(&x[i * group, 0], min(group, n - i * group), c, &out[i * group],
                        &scratch[threadid(), 0])


cdef void logsumexp_group(const floating *x, Py_ssize_t nr, Py_ssize_t c, double *out,
                          floating *sp) noexcept nogil:
    """logsumexp of nr <= row_group(c) rows: the maxima, the exps (into the
    thread's scratch rows sp) and their sums' log1p's of the group at once."""
    cdef floating m[XF_LANES]
    cdef double others[XF_LANES]
    cdef double l1p[XF_LANES]
    cdef Py_ssize_t k, j
    rows_max(x, c, nr, m)
    rows_exp_sum(x, c, nr, m, sp, others)
    rows_log1p(others, nr, l1p)
    for k in range(nr):
        out[k] = m[k] + l1p[k]
        if m[k] == -INFINITY or m[k] == INFINITY:
            # the sum is 0 (every entry -inf) or +inf: the max, unless a NaN
            # (which row_max skips) makes it NaN
            out[k] = m[k]
            for j in range(c):
                if x[k * c + j] != x[k * c + j]:
                    out[k] = x[k * c + j]
                    break
