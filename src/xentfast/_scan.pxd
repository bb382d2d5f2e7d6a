# The label scan, shared by _scan.scan_labels and the kernels' small-call
# entry point (_multiclass.cross_entropy_small).
from libc.stdint cimport int64_t

from ._elementwise cimport xf_count_bad_labels


cdef inline Py_ssize_t first_bad_label(const int64_t *labels, Py_ssize_t n,
                                       int64_t n_classes, int64_t ignore_index,
                                       Py_ssize_t *ignored) noexcept nogil:
    """Index of the first label outside [0, n_classes) that is not
    ignore_index, or -1; the labels equal to ignore_index before it (all of
    them if none) counted in *ignored."""
    cdef Py_ssize_t i
    if xf_count_bad_labels(labels, n, n_classes, ignore_index, ignored) == 0:
        return -1   # the common case, in one vectorised pass
    ignored[0] = 0
    for i in range(n):
        if labels[i] == ignore_index:
            ignored[0] += 1
        elif labels[i] < 0 or labels[i] >= n_classes:
            return i
    return -1
