"""The softmax family: log_softmax, softmax, logsumexp over any axis."""
import numpy as np

from . import _buffers, _fast, _softmax
from ._call import Call, by_dtype
from ._typing import Any, ArrayLike, FloatArray
from ._validation import as_float_array, check_rows


_LOG_SOFTMAX = by_dtype(_softmax.log_softmax)
_LOG_SOFTMAX_SCRATCH = by_dtype(_softmax.log_softmax_scratch)
_SOFTMAX = by_dtype(_softmax.softmax)
_LOGSUMEXP = by_dtype(_softmax.logsumexp)
_LOGSUMEXP_SCRATCH = by_dtype(_softmax.logsumexp_scratch)


def _map_rows(kernel, x, axis, out, scratch_shape=None):
    """Apply a row kernel that maps x to an array of x's shape (kernel and
    scratch_shape: by_dtype tables)."""
    if _fast.plain_rows(x, axis) and _fast.plain_out(out, x):   # see _fast.py
        xk = x.reshape(-1, x.shape[-1])
        result = _buffers.empty(x.shape, x.dtype) if out is None else out
        scratch = {} if scratch_shape is None else {"scratch": np.empty(
            scratch_shape[x.dtype](xk, in_place=result is x), x.dtype)}
        kernel[x.dtype](x=xk, out=result.reshape(xk.shape), **scratch)
        return result
    call = Call(x, "x", axis=axis, out=out, out_name="out")
    call.check_out()
    result = call.buffer()
    if call.xk.size:
        scratch = {} if scratch_shape is None else {"scratch": np.empty(
            scratch_shape[call.dtype](call.xk,
                                      in_place=np.may_share_memory(call.xk, result)),
            call.dtype)}
        kernel[call.dtype](x=call.xk, out=result, **scratch)
    return call.result(result)


def log_softmax(x: ArrayLike, axis: int = -1, *, out: FloatArray | None = None) -> FloatArray:
    """Logarithm of the softmax along `axis`, computed stably.

    Parameters
    ----------
    x : array_like
        Logits; float32/float64 run natively, float16 in float32, integers
        and bools in float64.
    axis : int, default -1
        The class axis.
    out : ndarray, optional
        C-contiguous array of x's shape and compute dtype to write into; may
        be `x` itself.

    Returns
    -------
    ndarray
        ``x - logsumexp(x, axis)``, with the largest entry of each row
        computed as ``-log1p(sum of the other exps)`` so that it does not
        cancel to 0.  A row with NaN or +inf is NaN; -inf entries are
        classes of probability 0.
    """
    return _map_rows(_LOG_SOFTMAX, x, axis, out, scratch_shape=_LOG_SOFTMAX_SCRATCH)


def softmax(x: ArrayLike, axis: int = -1, *, out: FloatArray | None = None) -> FloatArray:
    """Softmax along `axis`: ``exp(x - logsumexp(x))``, stable for any finite x.

    Parameters
    ----------
    x : array_like
        Logits (see `log_softmax` for dtypes).
    axis : int, default -1
        The class axis.
    out : ndarray, optional
        C-contiguous array of x's shape and compute dtype; may be `x`.

    Returns
    -------
    ndarray
        Probabilities summing to 1 along `axis`.  A row with NaN or +inf, or
        with every entry -inf, is NaN.
    """
    return _map_rows(_SOFTMAX, x, axis, out)


def logsumexp(x: ArrayLike, axis: int = -1) -> Any:
    """``log(sum(exp(x), axis))``, computed stably.

    Parameters
    ----------
    x : array_like
        Logits (see `log_softmax` for dtypes).
    axis : int, default -1
        The axis to reduce.

    Returns
    -------
    ndarray or scalar
        x's shape without `axis`, in the compute dtype.  A row of only -inf
        gives -inf; a row with NaN gives NaN.
    """
    x = as_float_array(x, "x")
    x2d, row_shape, _ = check_rows(x, axis, "x")
    result = np.full(x2d.shape[0], -np.inf)   # the log of an empty sum
    if x2d.size:
        _LOGSUMEXP[x.dtype](x=x2d, out=result,
                            scratch=np.empty(_LOGSUMEXP_SCRATCH[x.dtype](x2d), x.dtype))
    result = result.astype(x.dtype).reshape(row_shape)
    return result[()] if result.ndim == 0 else result
