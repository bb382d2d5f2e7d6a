"""Multiclass losses with fused gradients: cross_entropy, nll_loss,
softmax_focal_loss.

Each function validates everything, allocates the outputs and the per-row
loss buffer, runs one kernel of _multiclass.pyx over the rows, and reduces the
per-row losses in a fixed order (so the result does not depend on the number
of threads).
"""
import numpy as np

from . import _multiclass
from ._buffers import scratch_rows
from ._validation import (as_float_array, check_grad_out, check_ignore_index,
                          check_out, check_real, check_reduction, class_rows,
                          class_vector, labels, row_vector)


class _Rows:
    """The logits of one call as (rows, classes), with the gradient buffer the
    kernel writes and the way back to the caller's layout."""

    def __init__(self, logits, axis, name, return_grad, grad_out):
        check_grad_out(grad_out, return_grad)
        self.original = logits
        self.x = as_float_array(logits, name)
        self.dtype = self.x.dtype
        self.x2d, self.row_shape, self.axis = class_rows(self.x, axis, name)
        self.n_rows, self.n_classes = self.x2d.shape
        self.return_grad = return_grad
        self.grad_out = grad_out
        self.last = self.axis == self.x.ndim - 1

    def check_grad_out(self, *inputs):
        if self.grad_out is not None:
            check_out(self.grad_out, self.x.shape, self.dtype, "grad_out", inputs=inputs,
                      may_be=self.original if isinstance(self.original, np.ndarray) else None)

    def grad_buffer(self):
        """The (rows, classes) array the kernel writes the gradient into."""
        if not self.return_grad:
            return None
        if self.grad_out is not None and self.last:
            return self.grad_out.reshape(self.x2d.shape)
        return np.empty(self.x2d.shape, dtype=self.dtype)

    def grad_result(self, grad2d):
        """The gradient in the caller's layout (grad_out if given)."""
        if self.last:
            return self.grad_out if self.grad_out is not None else grad2d.reshape(self.x.shape)
        moved_shape = self.row_shape + (self.n_classes,)
        grad = np.moveaxis(grad2d.reshape(moved_shape), -1, self.axis)
        if self.grad_out is None:
            return np.ascontiguousarray(grad)
        np.copyto(self.grad_out, grad)
        return self.grad_out


def _reduce(loss_rows, reduction, denominator, rows):
    """The loss the caller asked for, from the per-row losses (in double)."""
    if reduction == "none":
        return loss_rows.astype(rows.dtype).reshape(rows.row_shape)
    total = loss_rows.sum()
    if reduction == "mean":
        total = total / denominator if denominator != 0 else np.nan
    return rows.dtype.type(total)


def _grad_scale(reduction, denominator):
    if reduction != "mean":
        return 1.0
    return 1.0 / denominator if denominator != 0 else 0.0


def _label_denominator(y, n_kept, ignore_index, weight, sample_weight):
    """sum of sample_weight_i * weight[y_i] over the n_kept rows not ignored."""
    if weight is None and sample_weight is None:
        return float(n_kept)
    kept = y != ignore_index
    w = 1.0 if weight is None else np.where(kept, weight[np.where(kept, y, 0)], 0.0)
    s = 1.0 if sample_weight is None else sample_weight
    return float(np.sum(np.where(kept, w * s, 0.0), dtype=np.float64))


def _run(kernel, rows, *args, scratch_classes=None):
    """Run a row kernel on the logits, `args`, the per-row loss and gradient
    buffers it returns (losses in double), and `scratch_classes` scratch
    columns per thread if given."""
    loss_rows = np.zeros(rows.n_rows, dtype=np.float64)
    grad2d = rows.grad_buffer()
    if rows.x2d.size:   # no classes: every row is ignored (or has an empty sum)
        scratch = () if scratch_classes is None else (
            scratch_rows(scratch_classes, rows.dtype),)
        kernel(rows.x2d, *args, loss_rows, grad2d, *scratch)
    return loss_rows, grad2d


def _finish(rows, loss_rows, grad2d, reduction, denominator):
    loss = _reduce(loss_rows, reduction, denominator, rows)
    if rows.return_grad:
        return loss, rows.grad_result(grad2d)
    return loss


def cross_entropy(logits, target, *, weight=None, ignore_index=-100,
                  reduction="mean", label_smoothing=0.0, sample_weight=None,
                  z_loss=0.0, softcap=None, axis=-1, return_grad=False,
                  grad_out=None):
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
    rows = _Rows(logits, axis, "logits", return_grad, grad_out)
    check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    eps = check_real(label_smoothing, "label_smoothing", 0.0, 1.0)
    z_loss = check_real(z_loss, "z_loss")
    cap = 0.0 if softcap is None else check_real(softcap, "softcap", 0.0, low_open=True)
    n_classes, dtype = rows.n_classes, rows.dtype
    w = class_vector(weight, n_classes, dtype, "weight")
    sw = row_vector(sample_weight, rows.row_shape, dtype, "sample_weight")

    target_arr = np.asarray(target)
    if target_arr.dtype.kind == "f":
        if target_arr.shape == rows.row_shape and rows.row_shape != rows.x.shape:
            raise TypeError(
                "target must hold integer class labels, or class probabilities with "
                f"the logits' shape {rows.x.shape}; got dtype {target_arr.dtype} "
                f"with the label shape {target_arr.shape}"
            )
        if target_arr.shape != rows.x.shape:
            raise ValueError(
                "target of class probabilities (a float array) must have the logits' "
                f"shape {rows.x.shape}; got shape {target_arr.shape}"
            )
        if ignore_index >= 0:
            raise ValueError(
                "ignore_index is not supported with probability targets; "
                f"got ignore_index={ignore_index}"
            )
        t2d, _, _ = class_rows(as_float_array(target_arr, "target", dtype), rows.axis, "target")
        rows.check_grad_out(t2d, w, sw)
        denominator = rows.n_rows if sw is None else float(np.sum(sw, dtype=np.float64))
        kernel_args = (t2d, w, sw, eps, z_loss, cap)
        kernel = _multiclass.cross_entropy_probs
    else:
        y, n_kept = labels(target_arr, rows.row_shape, n_classes, ignore_index)
        rows.check_grad_out(w, sw)
        denominator = _label_denominator(y, n_kept, ignore_index, w, sw)
        kernel_args = (y, w, sw, ignore_index, eps, z_loss, cap, -1.0)
        kernel = _multiclass.label_losses

    # scratch: capped logits and the cap's slope, or exps without a gradient
    loss_rows, grad2d = _run(kernel, rows, *kernel_args, _grad_scale(reduction, denominator),
                             scratch_classes=2 * n_classes)
    return _finish(rows, loss_rows, grad2d, reduction, denominator)


def nll_loss(log_probs, target, *, weight=None, ignore_index=-100,
             reduction="mean", sample_weight=None, axis=-1, return_grad=False,
             grad_out=None):
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
    rows = _Rows(log_probs, axis, "log_probs", return_grad, grad_out)
    check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    w = class_vector(weight, rows.n_classes, rows.dtype, "weight")
    sw = row_vector(sample_weight, rows.row_shape, rows.dtype, "sample_weight")
    y, n_kept = labels(target, rows.row_shape, rows.n_classes, ignore_index)
    rows.check_grad_out(w, sw)
    denominator = _label_denominator(y, n_kept, ignore_index, w, sw)
    loss_rows, grad2d = _run(_multiclass.nll, rows, y, w, sw, ignore_index,
                             _grad_scale(reduction, denominator))
    return _finish(rows, loss_rows, grad2d, reduction, denominator)


def softmax_focal_loss(logits, target, *, gamma=2.0, alpha=None, ignore_index=-100,
                       reduction="mean", axis=-1, return_grad=False, grad_out=None):
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
    rows = _Rows(logits, axis, "logits", return_grad, grad_out)
    check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    gamma = check_real(gamma, "gamma", 0.0)
    a = class_vector(alpha, rows.n_classes, rows.dtype, "alpha")
    y, n_kept = labels(target, rows.row_shape, rows.n_classes, ignore_index)
    rows.check_grad_out(a)
    denominator = float(n_kept)
    loss_rows, grad2d = _run(_multiclass.label_losses, rows, y, a, None, ignore_index,
                             0.0, 0.0, 0.0, gamma, _grad_scale(reduction, denominator),
                             scratch_classes=2 * rows.n_classes)
    return _finish(rows, loss_rows, grad2d, reduction, denominator)
