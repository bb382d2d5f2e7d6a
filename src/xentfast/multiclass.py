"""Multiclass losses with fused gradients: cross_entropy, nll_loss,
softmax_focal_loss.

Each function validates everything (_validation.py) through a `Call`
(_call.py), runs the rows through the block API (_kernels.py, one kernel of
_multiclass.pyx), and reduces the per-row losses in a fixed order (so the
result does not depend on the number of threads).
"""
import numpy as np

from . import _buffers, _fast, _multiclass, _scan
from ._call import Call, by_dtype
from ._kernels import (cross_entropy_block, label_denominator, nll_block,
                       softmax_focal_block)
from ._typing import Any, ArrayLike, FloatArray, Reduction
from ._validation import (REDUCTIONS, as_float_array, check_class_vector, check_fits,
                          check_ignore_index, check_labels, check_real, check_reduction,
                          check_row_vector, check_rows)

_CROSS_ENTROPY_SMALL = by_dtype(_multiclass.cross_entropy_small)


def _reduce(loss_rows, reduction, denominator, dtype, row_shape):
    """The loss the caller asked for, in `dtype`, from the per-row losses
    (in double): for 'none' the rows in `row_shape`, else their sum (over
    the denominator for 'mean', NaN when it is 0)."""
    if reduction == "none":
        return loss_rows.astype(dtype).reshape(row_shape)
    return _reduced(_multiclass.row_losses_sum(loss_rows), reduction, denominator, dtype)


def _reduced(total, reduction, denominator, dtype):
    """The 'sum' or 'mean' loss in `dtype` from the rows' sum."""
    if reduction == "mean":
        total = total / denominator if denominator != 0 else np.nan
    return dtype.type(total)


def _finish(call, loss_rows, grad, reduction, denominator):
    """The loss the caller asked for, and the gradient in the caller's layout."""
    loss = _reduce(loss_rows, reduction, denominator, call.dtype, call.row_shape)
    return (loss, call.result(grad)) if call.wanted else loss


def _grad_scale(reduction, denominator):
    if reduction != "mean":
        return 1.0
    return 1.0 / denominator if denominator != 0 else 0.0


def cross_entropy(logits: ArrayLike, target: ArrayLike, *, weight: ArrayLike | None = None,
                  ignore_index: int = -100, reduction: Reduction = "mean",
                  label_smoothing: float = 0.0, sample_weight: ArrayLike | None = None,
                  z_loss: float = 0.0, softcap: float | None = None, axis: int = -1,
                  return_grad: bool = False, grad_out: FloatArray | None = None) -> Any:
    """Cross-entropy between softmax(logits) and the target, as in
    ``torch.nn.functional.cross_entropy``, with a fused gradient.

    Parameters
    ----------
    logits : array_like, shape (..., C, ...)
        Unnormalised scores; `axis` is the class axis, every other axis a
        row axis.
    target : array_like
        Integer class labels (any integer dtype) with the logits' shape
        without the class axis, or class probabilities (float) with the
        logits' shape.
    weight : array_like of shape (C,), optional
        Per-class weights.
    ignore_index : int, default -100
        Label of rows that contribute nothing (integer targets).  With
        probability targets it must be negative, and has no effect.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        'mean' divides the sum by ``sum(sample_weight_i * weight[y_i])`` over
        the rows not ignored (integer targets) or by ``sum(sample_weight_i)``
        (probability targets; N without sample weights).  'none' returns one
        loss per row, shaped like the row axes.
    label_smoothing : float in [0, 1], default 0
        Mixes the target with the uniform distribution.
    sample_weight : array_like of the row shape, optional
        Per-row weights.
    z_loss : float, default 0
        Adds ``z_loss * logsumexp(logits_i)**2`` to each kept row's loss
        (scaled by sample_weight, not by weight).
    softcap : float > 0, optional
        Replaces logits by ``softcap * tanh(logits / softcap)`` first.
    axis : int, default -1
        The class axis.
    return_grad : bool, default False
        Also return the gradient of the returned loss (for 'none': of the sum
        of the row losses) with respect to `logits`.
    grad_out : ndarray, optional
        C-contiguous array of the logits' shape and compute dtype to write
        the gradient into; may be `logits` itself.

    Returns
    -------
    loss : NumPy scalar or ndarray
        In the compute dtype (float32 for float16 input).
    grad : ndarray
        Only with ``return_grad=True``.

    See Also
    --------
    xentfast.info.cross_entropy : ``H(p, q)`` of two given distributions.
    nll_loss : The same loss from log-probabilities.
    """
    if (softcap is None and sample_weight is None
            and type(label_smoothing) in (float, int) and label_smoothing == 0
            and type(z_loss) in (float, int) and z_loss == 0):   # see _fast.py
        result = _cross_entropy_fast(logits, target, weight, ignore_index, reduction,
                                     axis, return_grad, grad_out)
        if result is not None:
            return result
    call = Call(logits, "logits", axis=axis, out=grad_out, wanted=return_grad)
    check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    eps = check_real(label_smoothing, "label_smoothing", 0.0, 1.0)
    z_loss = check_real(z_loss, "z_loss")
    n_classes, dtype = call.xk.shape[1], call.dtype
    if softcap is not None:
        softcap = check_fits(check_real(softcap, "softcap", 0.0, low_open=True), "softcap",
                             dtype, "logits")
    w = check_class_vector(weight, n_classes, dtype, "weight")
    sw = check_row_vector(sample_weight, call.row_shape, dtype, "sample_weight")
    given = dict(weight=(weight, w),
                 sample_weight=(sample_weight, sw))

    target_arr = np.asarray(target)
    if target_arr.dtype.kind == "f":
        if target_arr.shape == call.row_shape and call.row_shape != call.x.shape:
            raise TypeError(
                "target must hold integer class labels, or class probabilities with "
                f"the logits' shape {call.x.shape}; got dtype {target_arr.dtype} "
                f"with the label shape {target_arr.shape}"
            )
        if target_arr.shape != call.x.shape:
            raise ValueError(
                "target of class probabilities (a float array) must have the logits' "
                f"shape {call.x.shape}; got shape {target_arr.shape}"
            )
        if ignore_index >= 0:
            raise ValueError(
                "ignore_index is not supported with probability targets; "
                f"got ignore_index={ignore_index}"
            )
        t2d, _, _ = check_rows(as_float_array(target_arr, "target", dtype), call.axis,
                               "target")
        call.check_out(target=(target, t2d), **given)
        denominator = call.xk.shape[0] if sw is None else float(np.sum(sw, dtype=np.float64))
    else:
        t2d, n_kept, ignore_index = check_labels(target_arr, call.row_shape, n_classes,
                                                 ignore_index)
        call.check_out(target=(target, t2d), **given)
        denominator = label_denominator(t2d, ignore_index=ignore_index, weight=w,
                                        sample_weight=sw, n_kept=n_kept)
    grad = call.buffer()
    loss_rows = cross_entropy_block(
        call.xk, t2d, weight=w, ignore_index=ignore_index, label_smoothing=eps,
        sample_weight=sw, z_loss=z_loss, softcap=softcap,
        grad_scale=_grad_scale(reduction, denominator), grad_out=grad)
    return _finish(call, loss_rows, grad, reduction, denominator)


def _cross_entropy_fast(x, target, weight, ignore_index, reduction, axis, return_grad,
                        grad_out):
    """`cross_entropy` of a (rows, C) block with labels and at most weight,
    ignore_index and reduction as options (_fast.py), or None when a check
    fails: the caller then takes the general path, which raises or handles it."""
    if not (_fast.plain_rows(x, axis) and x.ndim == 2 and _fast.plain_int(ignore_index)
            and type(reduction) is str and reduction in REDUCTIONS
            and (grad_out is None or return_grad)):
        return None
    n_rows, n_classes = x.shape
    y = _fast.plain_labels(target, n_rows)
    if (y is None or not _fast.plain_vector(weight, n_classes, x.dtype)
            or not _fast.plain_out(grad_out, x)
            or not _fast.apart(grad_out, target, None if y is target else y, weight)):
        return None
    if weight is None and reduction != "none" and x.size <= _multiclass.SMALL_CALL_ELEMENTS:
        # the rest in one compiled call
        grad = (np.empty(x.shape, x.dtype) if grad_out is None else grad_out) if return_grad else None
        result = _CROSS_ENTROPY_SMALL[x.dtype](x, y, grad, ignore_index, reduction == "mean")
        if result is None:
            return None
        loss = _reduced(result[0], reduction, result[1], x.dtype)
        return (loss, grad) if return_grad else loss
    bad, ignored = _scan.scan_labels(y, n_classes, ignore_index)
    if bad >= 0:
        return None
    denominator = float(n_rows - ignored) if weight is None else label_denominator(
        y, ignore_index=ignore_index, weight=weight, n_kept=n_rows - ignored)
    grad = (_buffers.empty(x.shape, x.dtype) if grad_out is None else grad_out) if return_grad else None
    loss_rows = cross_entropy_block(x, y, weight=weight, ignore_index=ignore_index,
                                    grad_scale=_grad_scale(reduction, denominator),
                                    grad_out=grad)
    loss = _reduce(loss_rows, reduction, denominator, x.dtype, (n_rows,))
    return (loss, grad) if return_grad else loss


def nll_loss(log_probs: ArrayLike, target: ArrayLike, *, weight: ArrayLike | None = None,
             ignore_index: int = -100, reduction: Reduction = "mean",
             sample_weight: ArrayLike | None = None, axis: int = -1,
             return_grad: bool = False, grad_out: FloatArray | None = None) -> Any:
    """Negative log-likelihood of integer labels given log-probabilities, as in
    ``torch.nn.functional.nll_loss``.

    Parameters
    ----------
    log_probs : array_like, shape (..., C, ...)
        Log-probabilities (e.g. from `log_softmax`).  Only each row's target
        entry is read.
    target : array_like of integers
        Labels in [0, C) or `ignore_index`, with log_probs' shape without the
        class axis.
    weight, ignore_index, reduction, sample_weight, axis, return_grad, grad_out
        As in `cross_entropy`.

    Returns
    -------
    loss : NumPy scalar or ndarray
    grad : ndarray
        Only with ``return_grad=True``: ``-weight[y] * sample_weight`` (over
        the 'mean' denominator) at each row's target entry, 0 elsewhere.
    """
    call = Call(log_probs, "log_probs", axis=axis, out=grad_out, wanted=return_grad)
    check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    n_classes, dtype = call.xk.shape[1], call.dtype
    w = check_class_vector(weight, n_classes, dtype, "weight")
    sw = check_row_vector(sample_weight, call.row_shape, dtype, "sample_weight")
    y, n_kept, ignore_index = check_labels(target, call.row_shape, n_classes, ignore_index)
    call.check_out(target=(target, y), weight=(weight, w),
                   sample_weight=(sample_weight, sw))
    denominator = label_denominator(y, ignore_index=ignore_index, weight=w,
                                    sample_weight=sw, n_kept=n_kept)
    grad = call.buffer()
    loss_rows = nll_block(call.xk, y, weight=w, ignore_index=ignore_index, sample_weight=sw,
                          grad_scale=_grad_scale(reduction, denominator), grad_out=grad)
    return _finish(call, loss_rows, grad, reduction, denominator)


def softmax_focal_loss(logits: ArrayLike, target: ArrayLike, *, gamma: float = 2.0,
                       alpha: ArrayLike | None = None, ignore_index: int = -100,
                       reduction: Reduction = "mean", axis: int = -1,
                       return_grad: bool = False, grad_out: FloatArray | None = None) -> Any:
    """Multiclass focal loss ``-alpha[y] * (1 - p_y)**gamma * log(p_y)`` with
    ``p = softmax(logits)``, computed in log space.

    Parameters
    ----------
    logits : array_like, shape (..., C, ...)
        Unnormalised scores; `axis` is the class axis.
    target : array_like of integers
        Labels in [0, C) or `ignore_index`.
    gamma : float >= 0, default 2.0
        Focusing parameter; 0 gives (alpha-weighted) cross-entropy.
    alpha : array_like of shape (C,), optional
        Per-class weights (all ones when None).
    ignore_index : int, default -100
        Label of rows that contribute nothing.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        'mean' divides by the number of rows not ignored (NaN, with a zero
        gradient, when there are none).
    axis, return_grad, grad_out
        As in `cross_entropy`.

    Returns
    -------
    loss : NumPy scalar or ndarray
    grad : ndarray
        Only with ``return_grad=True``; finite for every gamma >= 0, saturated
        logits included.
    """
    call = Call(logits, "logits", axis=axis, out=grad_out, wanted=return_grad)
    check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    gamma = check_real(gamma, "gamma", 0.0)
    n_classes = call.xk.shape[1]
    a = check_class_vector(alpha, n_classes, call.dtype, "alpha")
    y, n_kept, ignore_index = check_labels(target, call.row_shape, n_classes, ignore_index)
    call.check_out(target=(target, y), alpha=(alpha, a))
    denominator = float(n_kept)
    grad = call.buffer()
    loss_rows = softmax_focal_block(call.xk, y, gamma=gamma, alpha=a,
                                    ignore_index=ignore_index,
                                    grad_scale=_grad_scale(reduction, denominator),
                                    grad_out=grad)
    return _finish(call, loss_rows, grad, reduction, denominator)
