"""Input checks shared by every public function (and sklearn.py).

Everything the compiled kernels assume (dtypes, contiguity, shapes, label
range, writeable outputs that do not overlap the inputs) is established here,
before any kernel runs, so a bad call raises without touching an output.
Each `check_*` raises a TypeError/ValueError naming the argument, or returns
the value as the kernels take it; the scans over labels and [0, 1] values
run compiled (_scan.pyx).
"""
import math
import operator

import numpy as np

from . import _scan

REDUCTIONS = ("mean", "sum", "none")


def compute_dtype(dtype, name):
    """The dtype a kernel runs in for input of `dtype` (float32 or float64)."""
    if dtype.kind == "f":
        return np.dtype(np.float32) if dtype.itemsize <= 4 else np.dtype(np.float64)
    if dtype.kind in "iub":
        return np.dtype(np.float64)
    raise TypeError(
        f"{name} must be a real numeric array (float, integer or bool); got dtype {dtype}"
    )


def as_float_array(x, name, dtype=None):
    """`x` as a C-contiguous array of its compute dtype (or `dtype`).

    A C-contiguous float32/float64 array of native byte order comes back as
    is (read-only allowed: kernels only read it); anything else is copied once.
    """
    arr = np.asarray(x)
    if dtype is None:
        dtype = compute_dtype(arr.dtype, name)
    elif arr.dtype.kind not in "fiub":
        raise TypeError(
            f"{name} must be a real numeric array; got dtype {arr.dtype}"
        )
    out = np.ascontiguousarray(arr, dtype=dtype)
    # ascontiguousarray makes 0-d input 1-d; keep the caller's shape (and the
    # caller's array itself when it needs no copy)
    return out if out.shape == arr.shape else out.reshape(arr.shape)


def check_linear_operands(x, W):
    """Check the operands of a fused linear cross-entropy, x (..., D) and
    W (V, D), arrays (NumPy or Dask; not read): their dtypes, then their
    shapes.  Returns the compute dtype, the wider of x's and W's."""
    dtype = np.promote_types(compute_dtype(x.dtype, "x"), compute_dtype(W.dtype, "W"))
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension (the feature axis); got a scalar")
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D, shape (V, D); got shape {W.shape}")
    if x.shape[-1] != W.shape[1]:
        raise ValueError(
            f"x's last axis and W's second axis must both be the feature size D; "
            f"got x of shape {x.shape} and W of shape {W.shape}")
    return dtype


def check_labels_only(target, function):
    """TypeError if `target`, an array (NumPy or Dask), is a float array of
    class probabilities: `function` takes integer labels only."""
    if target.dtype.kind == "f":
        raise TypeError(
            "target must hold integer class labels (probability targets are not "
            f"supported by {function}); got dtype {target.dtype}")


def check_reduction(reduction):
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(
            f"reduction must be one of 'mean', 'sum', 'none'; got {reduction!r}"
        )


def check_axis(axis, ndim, name="axis"):
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"{name} must be an integer; got {axis!r}") from None
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{name}={axis} is out of bounds for an array of {ndim} dimension(s)"
        )
    return axis % ndim


def check_rows(x, axis, name):
    """(rows, classes) C-contiguous view or copy of `x` with the class axis last.

    Returns (x2d, row_shape, axis) where row_shape is x's shape without the
    class axis.
    """
    if x.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the class axis); got a scalar")
    axis = check_axis(axis, x.ndim)
    row_shape = x.shape[:axis] + x.shape[axis + 1:]
    if axis != x.ndim - 1:
        x = np.ascontiguousarray(np.moveaxis(x, axis, -1))
    return x.reshape(math.prod(row_shape), x.shape[-1]), row_shape, axis


def check_out(out, shape, dtype, name, may_be=(), inputs=None):
    """Check a caller-supplied output array before anything is written.

    `out` must be a writeable C-contiguous ndarray of `shape` and `dtype`.
    It may be exactly the first argument (each array of `may_be`: the
    argument as given and as converted for the kernel) but must not overlap
    it otherwise, nor share memory with `inputs`: every other argument, as
    a dict name -> value, None or a tuple of them (as given, as converted).
    """
    if not isinstance(out, np.ndarray):
        raise ValueError(f"{name} must be a NumPy array; got {type(out).__name__}")
    if out.shape != tuple(shape) or out.dtype != dtype:
        raise ValueError(
            f"{name} must have shape {tuple(shape)} and dtype {dtype}; "
            f"got shape {out.shape} and dtype {out.dtype}"
        )
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable; got a read-only array")
    for first in _distinct(may_be):
        if np.may_share_memory(out, first) and not _same_memory(out, first):
            raise ValueError(
                f"{name} overlaps the input without being the input itself"
            )
    for other_name, arrays in (inputs or {}).items():
        for other in _distinct(arrays if isinstance(arrays, tuple) else (arrays,)):
            if np.may_share_memory(out, other):
                raise ValueError(f"{name} must not share memory with {other_name}")


def _distinct(values):
    """The arrays among `values` (as given_array makes them), each once."""
    arrays = []
    for v in values:
        a = given_array(v)
        if a is not None and not any(a is b for b in arrays):
            arrays.append(a)
    return arrays


def _same_memory(a, b):
    """Whether `a` and `b` are the same elements in the same layout."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.strides == b.strides and a.shape == b.shape
            and a.dtype.itemsize == b.dtype.itemsize)


def given_array(value):
    """`value` as an array without copying when it exposes its memory (an
    ndarray, a tensor, a memoryview), to check outputs against it."""
    if value is None or isinstance(value, np.ndarray):
        return value
    return np.asarray(value)


def check_class_vector(v, n_classes, dtype, name):
    """A per-class vector of shape (n_classes,) in the compute dtype, or None."""
    if v is None:
        return None
    arr = as_float_array(v, name, dtype)
    if arr.shape != (n_classes,):
        raise ValueError(
            f"{name} must have shape ({n_classes},), one entry per class; got shape {arr.shape}"
        )
    return arr


def check_row_vector(v, row_shape, dtype, name):
    """A per-row vector shaped like the row axes, flattened, or None."""
    if v is None:
        return None
    arr = as_float_array(v, name, dtype)
    if arr.shape != tuple(row_shape):
        raise ValueError(
            f"{name} must have the row shape {tuple(row_shape)}; got shape {arr.shape}"
        )
    return arr.reshape(-1)


def check_labels(target, row_shape, n_classes, ignore_index, name="target"):
    """Integer labels as a flat int64 array, each in [0, n_classes) or
    ignore_index; the number of rows not ignored; and the int64 value that
    marks the ignored rows in that array (ignore_index itself, unless it is
    outside int64: then the nearest int64, held by exactly the ignored rows)."""
    y = np.asarray(target)
    if y.dtype == np.bool_:
        raise TypeError(f"{name} must hold integer class labels; got dtype bool")
    if y.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must hold integer class labels (any integer dtype); got dtype {y.dtype}"
        )
    if y.shape != tuple(row_shape):
        raise ValueError(
            f"{name} must have the logits' shape without the class axis, "
            f"{tuple(row_shape)}; got shape {y.shape}"
        )
    kernel_ignore = min(max(ignore_index, _INT64_MIN), _INT64_MAX)
    flat = y.reshape(-1)
    if y.dtype == np.uint64 and y.size and y.max() > _INT64_MAX:
        bad = (flat > _INT64_MAX) & (flat != ignore_index)
        if bad.any():
            raise _label_error(y, np.flatnonzero(bad)[0], n_classes, ignore_index, name)
    y64 = np.ascontiguousarray(flat, dtype=np.int64)
    if kernel_ignore != ignore_index:
        y64 = np.where(flat == ignore_index, kernel_ignore, y64)
    bad, ignored = _scan.scan_labels(y64, n_classes, kernel_ignore)
    if bad < 0 and ignored and kernel_ignore != ignore_index:
        # a label equal to the stand-in value that is not ignore_index
        wrong = (y64 == kernel_ignore) & (flat != ignore_index)
        bad = np.flatnonzero(wrong)[0] if wrong.any() else -1
    if bad >= 0:
        raise _label_error(y, bad, n_classes, ignore_index, name)
    return y64, y64.shape[0] - ignored, kernel_ignore


_INT64_MIN, _INT64_MAX = -2**63, 2**63 - 1


def _label_error(y, flat_index, n_classes, ignore_index, name):
    position = np.unravel_index(flat_index, y.shape) if y.ndim else ()
    position = tuple(int(p) for p in position)
    value = y.reshape(-1)[flat_index]
    return ValueError(
        f"{name} must hold labels in [0, {n_classes}) or ignore_index={ignore_index}; "
        f"got {value} at position {position}"
    )


def check_ignore_index(ignore_index):
    if isinstance(ignore_index, (bool, np.bool_)):
        raise TypeError("ignore_index must be an integer; got bool")
    try:
        return operator.index(ignore_index)
    except TypeError:
        raise TypeError(f"ignore_index must be an integer; got {ignore_index!r}") from None


def check_real(value, name, low=None, high=None, low_open=False):
    """A finite float option within [low, high] (or (low, high] with low_open)."""
    if type(value) is float or type(value) is int:   # the common case, cheaply
        v = float(value)
    else:
        arr = None if isinstance(value, (str, bytes)) else np.asarray(value)
        if arr is None or arr.ndim != 0 or arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a real number; got {value!r}")
        v = float(arr)
    too_low = low is not None and (v <= low if low_open else v < low)
    too_high = high is not None and v > high
    if not math.isfinite(v) or too_low or too_high:
        raise ValueError(f"{name} must be in {_interval(low, high, low_open)}; got {value!r}")
    return v


def check_fits(value, name, dtype, what):
    """`value`, a float option a kernel narrows to `dtype`: a ValueError if
    it overflows there, or if a nonzero value rounds to 0, instead of a NaN
    that float64 would not give.  `what` names the array it goes with."""
    if dtype == np.float32:
        with np.errstate(over="ignore"):
            narrowed = np.float32(value)
        if np.isinf(narrowed) or (narrowed == 0) != (value == 0):
            limit = np.finfo(np.float32)
            raise ValueError(
                f"{name} must be 0 or of magnitude in [{limit.smallest_subnormal}, "
                f"{limit.max}] for float32 {what}; got {value!r}"
            )
    return value


def _interval(low, high, low_open=False):
    """'[low, high]' with open ends where a bound is infinite or excluded."""
    lo = "(-inf" if low is None else f"{'(' if low_open else '['}{low}"
    hi = "inf)" if high is None else f"{high}]"
    return f"{lo}, {hi}"


def check_unit_interval(v, name, what):
    """ValueError naming the first entry of `v` (a C-contiguous float array)
    outside [0, 1], NaN included."""
    k = _scan.first_outside_unit(v.reshape(-1))
    if k >= 0:
        position = tuple(int(i) for i in np.unravel_index(k, v.shape)) if v.ndim else ()
        raise ValueError(
            f"{name} must hold {what} in [0, 1]; got {v.reshape(-1)[k]} at position {position}"
        )
