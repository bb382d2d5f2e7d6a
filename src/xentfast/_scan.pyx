# Scans of the inputs that validation needs at kernel speed: integer labels
# against their range, and values against [0, 1].  _validation.py (and
# through it every front end) turns what they find into an error message.
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

from ._elementwise cimport XF_BLOCK, count_outside_unit
from ._openmp cimport threads_for


def scan_labels(const int64_t[::1] labels, int64_t n_classes, int64_t ignore_index):
    """(index of the first label outside [0, n_classes) that is not
    ignore_index, or -1; number of labels equal to ignore_index)."""
    cdef Py_ssize_t ignored = 0, bad = -1
    if labels.shape[0]:
        bad = first_bad_label(&labels[0], labels.shape[0], n_classes, ignore_index, &ignored)
    return bad, ignored


def first_outside_unit(const floating[::1] values):
    """Index of the first value outside [0, 1] (NaN included), or -1."""
    cdef Py_ssize_t n = values.shape[0], n_blocks = (n + XF_BLOCK - 1) // XF_BLOCK
    cdef Py_ssize_t b, i, k0, first = -1
    cdef Py_ssize_t *counts
    cdef const floating *v
    if n == 0:
        return -1
    v = &values[0]
    counts = <Py_ssize_t *>malloc(n_blocks * sizeof(Py_ssize_t))
    if counts == NULL:
        raise MemoryError()
    # count per block in parallel, then find the first bad value serially
    cdef int threads = threads_for(n_blocks, n)
    for b in prange(n_blocks, nogil=True, schedule="static", num_threads=threads,
                    use_threads_if=threads > 1):
        k0 = b * XF_BLOCK
        counts[b] = count_outside_unit(v + k0, min(<Py_ssize_t>XF_BLOCK, n - k0))
    for b in range(n_blocks):
        if counts[b]:
            for i in range(b * XF_BLOCK, min(n, (b + 1) * XF_BLOCK)):
                if not (v[i] >= 0 and v[i] <= 1):
                    first = i
                    break
            break
    free(counts)
    return first
