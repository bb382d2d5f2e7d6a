"""The fast path of a small call with ordinary arguments.

A call whose arguments are already what the kernels take (a C-contiguous,
aligned, native float32/float64 ndarray with the class axis last, int64-able
1-d labels, an output buffer of the right kind that overlaps nothing) needs
none of the conversions and few of the checks of the general path, which
cost more than the kernel on a (32, 10) block.  Each predicate here only
says yes or no: on no, the front end takes the general path, which raises
the same error it always did (or handles the case).  Overlap is first tested
by bounds (np.may_share_memory, cheap); any possible overlap goes to the
general path, which decides exactly.
"""
import numpy as np

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_INT64_MIN, _INT64_MAX = -2**63, 2**63 - 1


def plain_rows(x, axis):
    """Whether `x` is a C-contiguous aligned native float32/float64 ndarray
    of at least one element, ndim >= 1, and `axis` names its last axis."""
    return (type(x) is np.ndarray and x.dtype in _FLOATS and x.size > 0
            and type(axis) is int and (axis == -1 or axis == x.ndim - 1)
            and x.flags.c_contiguous and x.flags.aligned)


def plain_out(out, x):
    """Whether `out` is None, or a writeable aligned C-contiguous ndarray of
    x's shape and dtype that is `x` itself or lies outside x's bounds."""
    if out is None:
        return True
    return (type(out) is np.ndarray and out.shape == x.shape and out.dtype == x.dtype
            and out.flags.carray   # C-contiguous, aligned and writeable
            and (out is x or not np.may_share_memory(out, x)))


def plain_labels(y, n_rows):
    """`y` as int64 labels when it is a 1-d native signed-integer ndarray (or
    unsigned of at most 32 bits) of n_rows entries, else None."""
    if (type(y) is not np.ndarray or y.ndim != 1 or y.shape[0] != n_rows
            or not (y.dtype.kind == "i" or (y.dtype.kind == "u" and y.dtype.itemsize < 8))
            or not y.dtype.isnative):
        return None
    return y if y.dtype == np.int64 and y.flags.c_contiguous else y.astype(np.int64)


def plain_vector(v, n, dtype):
    """Whether `v` is None or a C-contiguous aligned (n,) ndarray of `dtype`."""
    return v is None or (type(v) is np.ndarray and v.shape == (n,) and v.dtype == dtype
                         and v.flags.c_contiguous and v.flags.aligned)


def apart(out, *arrays):
    """Whether `out` (None: nothing to write) is outside the bounds of every
    array given (None entries skipped)."""
    if out is not None:
        for a in arrays:
            if a is not None and np.may_share_memory(out, a):
                return False
    return True


def plain_int(value):
    """Whether `value` is a Python int (not bool) that fits in int64."""
    return type(value) is int and _INT64_MIN <= value <= _INT64_MAX
