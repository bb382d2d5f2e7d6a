"""Elementwise (binary and multi-label) losses with fused gradients:
binary_cross_entropy, binary_cross_entropy_with_logits, sigmoid_focal_loss.

Each function validates everything, runs one kernel of _binary.pyx over
fixed-size blocks of the flattened input, and sums the per-block partial
sums in a fixed order, so the result does not depend on the number of
threads.  Targets must lie in [0, 1] (soft targets allowed); unlike torch,
which does not check them, values outside (or NaN) raise ValueError: the
losses are not defined there, and the focal loss is computed from
log-probabilities that need them.
"""
import math
from typing import NamedTuple

import numpy as np

from . import _binary, _buffers
from ._call import Call, by_dtype
from ._typing import Any, ArrayLike, FloatArray, Reduction
from ._validation import (as_float_array, check_fits, check_real, check_reduction,
                          check_unit_interval)


class _Operand(NamedTuple):
    """An argument broadcast to the input, as the kernels take it: flat
    element k reads data[(k // inner) % period]; data None when absent."""
    data: object
    inner: int
    period: int


def _elements(first, name, target, reduction, return_grad, grad_out):
    """The Call of an elementwise loss and its target, converted."""
    call = Call(first, name, out=grad_out, wanted=return_grad)
    check_reduction(reduction)
    target_arr = np.asarray(target)
    if target_arr.shape != call.x.shape:
        raise ValueError(
            f"target must have the shape of {name}, {call.x.shape}; got shape {target_arr.shape}"
        )
    return call, target_arr, as_float_array(target_arr, "target", call.dtype)


def _operand(v, name, call, first_name):
    """`v` broadcast to the input, as an _Operand.

    Shapes whose non-broadcast axes are contiguous (``(C,)``, ``(N, 1)``, a
    scalar, the full shape) are not expanded; others are copied to the full
    shape.
    """
    if v is None:
        return _Operand(None, 1, 1)
    shape, n = call.x.shape, call.x.size
    arr = np.asarray(v)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real numeric array; got dtype {arr.dtype}")
    fits = arr.ndim <= len(shape) and all(
        a in (1, s) for a, s in zip(arr.shape[::-1], shape[::-1]))
    if not fits:
        raise ValueError(
            f"{name} must be broadcastable to the shape of {first_name}, "
            f"{shape}; got shape {arr.shape}"
        )
    arr = arr.reshape((1,) * (len(shape) - arr.ndim) + arr.shape)
    real = [i for i, (a, s) in enumerate(zip(arr.shape, shape)) if a == s != 1]
    if not real:
        return _Operand(as_float_array(arr.reshape(1), name, call.dtype), max(n, 1), 1)
    first, last = real[0], real[-1]
    if any(arr.shape[i] != shape[i] for i in range(first, last + 1)):
        full = np.broadcast_to(arr, shape)
        return _Operand(as_float_array(full, name, call.dtype).reshape(-1), 1, max(n, 1))
    data = as_float_array(arr, name, call.dtype).reshape(-1)
    return _Operand(data, math.prod(shape[last + 1:]), data.size)


def _operand_args(name, op):
    """An _Operand as the kernels' keyword arguments."""
    return {name: op.data, f"{name}_inner": op.inner, f"{name}_period": op.period}


_BCE = by_dtype(_binary.binary_cross_entropy)
_BCE_WITH_LOGITS = by_dtype(_binary.binary_cross_entropy_with_logits)
_SIGMOID_FOCAL = by_dtype(_binary.sigmoid_focal_loss)


def _run(kernel, call, first_name, t, reduction, **options):
    """Run an elementwise kernel (a by_dtype table; keyword `options` besides
    the first argument, target and outputs) and return what the caller
    asked for."""
    n, mean = call.x.size, reduction == "mean"
    loss = _buffers.empty(call.x.shape, call.dtype) if reduction == "none" else None
    grad = call.buffer()
    partial = np.empty(_binary.block_count(n), dtype=np.float64)
    grad_scale = 1.0 / n if mean and n else (0.0 if mean else 1.0)
    if n:
        kernel[call.dtype](
            **{first_name: call.xk}, target=t.reshape(-1), grad_scale=grad_scale,
            loss=None if loss is None else loss.reshape(-1), partial=partial, grad=grad,
            scratch=np.empty(_binary.scratch_shape(n), call.dtype), **options)
    if loss is None:
        total = float(partial.sum())
        if mean:
            total = total / n if n else math.nan
        loss = call.dtype.type(total)
    return (loss, call.result(grad)) if call.wanted else loss


def binary_cross_entropy(probs: ArrayLike, target: ArrayLike, *,
                         weight: ArrayLike | None = None, reduction: Reduction = "mean",
                         return_grad: bool = False,
                         grad_out: FloatArray | None = None) -> Any:
    """Binary cross-entropy of probabilities, as ``torch.nn.functional.binary_cross_entropy``.

    ``loss = -weight * (t * log(p) + (1 - t) * log(1 - p))`` elementwise, each
    log clamped at -100 (so p = 0 or 1 gives a finite loss, as in torch).

    Parameters
    ----------
    probs : array_like, any shape
        Probabilities in [0, 1]; anything else (NaN included) is a ValueError.
    target : array_like, same shape as `probs`
        Target probabilities in [0, 1] (soft targets allowed).
    weight : array_like, optional
        Rescales each element's loss; broadcast to `probs`' shape.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        'mean' divides by the number of elements; 'none' keeps probs' shape.
    return_grad : bool, default False
        Also return the gradient with respect to `probs`,
        ``weight * (p - t) / max(p * (1 - p), 1e-12)`` (over the element
        count for 'mean'), as torch computes it.
    grad_out : ndarray, optional
        C-contiguous array of probs' shape and compute dtype to write the
        gradient into; may be `probs` itself.

    Returns
    -------
    loss : NumPy scalar or ndarray
        In the compute dtype (float32 for float16 input).
    grad : ndarray
        Only with ``return_grad=True``.
    """
    call, target_arr, t = _elements(probs, "probs", target, reduction, return_grad, grad_out)
    w = _operand(weight, "weight", call, "probs")
    check_unit_interval(call.x, "probs", "probabilities")
    check_unit_interval(t, "target", "values")
    call.check_out(target=(target_arr, t), weight=(weight, w.data))
    return _run(_BCE, call, "probs", t, reduction,
                **_operand_args("weight", w))


def binary_cross_entropy_with_logits(logits: ArrayLike, target: ArrayLike, *,
                                     weight: ArrayLike | None = None,
                                     pos_weight: ArrayLike | None = None,
                                     reduction: Reduction = "mean", return_grad: bool = False,
                                     grad_out: FloatArray | None = None) -> Any:
    """Binary cross-entropy of ``sigmoid(logits)``, computed stably, as
    ``torch.nn.functional.binary_cross_entropy_with_logits``.

    With ``lw = (pos_weight - 1) * t + 1`` the elementwise loss is
    ``weight * ((1 - t) * max(x, 0) + pos_weight * t * max(-x, 0)
    + lw * log1p(exp(-|x|)))``, which equals torch's and never overflows.
    At ``x = +-inf`` a term whose coefficient is 0 counts 0 (so ``x = +inf,
    t = 1`` has loss 0, as in the limit; torch gives NaN there).

    Parameters
    ----------
    logits : array_like, any shape
        Unnormalised scores (one independent binary problem per element).
    target : array_like, same shape as `logits`
        Target probabilities in [0, 1] (soft targets allowed; values outside
        or NaN are a ValueError).
    weight : array_like, optional
        Rescales each element's loss; broadcast to `logits`' shape.
    pos_weight : array_like, optional
        Weight of the positive term, broadcast to `logits`' shape: usually
        shape ``(C,)``, one per class along the last axis (multi-label).
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        'mean' divides by the number of elements; 'none' keeps logits' shape.
    return_grad : bool, default False
        Also return the gradient ``weight * (lw * sigmoid(x) - pos_weight *
        t)`` (over the element count for 'mean').
    grad_out : ndarray, optional
        C-contiguous array of logits' shape and compute dtype to write the
        gradient into; may be `logits` itself.

    Returns
    -------
    loss : NumPy scalar or ndarray
    grad : ndarray
        Only with ``return_grad=True``.
    """
    call, target_arr, t = _elements(logits, "logits", target, reduction, return_grad,
                                    grad_out)
    w = _operand(weight, "weight", call, "logits")
    pw = _operand(pos_weight, "pos_weight", call, "logits")
    check_unit_interval(t, "target", "values")
    call.check_out(target=(target_arr, t), weight=(weight, w.data),
                   pos_weight=(pos_weight, pw.data))
    return _run(_BCE_WITH_LOGITS, call, "logits", t, reduction,
                **_operand_args("weight", w), **_operand_args("pos_weight", pw))


def sigmoid_focal_loss(logits: ArrayLike, target: ArrayLike, *, alpha: float = 0.25,
                       gamma: float = 2.0, reduction: Reduction = "none",
                       return_grad: bool = False, grad_out: FloatArray | None = None) -> Any:
    """Focal loss of ``sigmoid(logits)`` (Lin et al. 2017), as torchvision's
    ``sigmoid_focal_loss``.

    ``loss = alpha_t * ce * (1 - p_t)**gamma`` elementwise, with ``p =
    sigmoid(x)``, ``ce`` the binary cross-entropy with logits, ``p_t = p t +
    (1 - p)(1 - t)`` and ``alpha_t = alpha t + (1 - alpha)(1 - t)``.  Computed
    from log-sigmoid terms: ``(1 - p_t)**gamma`` is ``exp(gamma * log(1 -
    p_t))`` without forming ``1 - p_t`` by cancellation, so the gradient is
    finite for every gamma >= 0, gamma < 1 and saturated logits included
    (torchvision's gives NaN there).

    Parameters
    ----------
    logits : array_like, any shape
        Unnormalised scores, one per element.
    target : array_like, same shape as `logits`
        Target probabilities in [0, 1] (usually 0 or 1; soft allowed).
    alpha : float, default 0.25
        Weight of the positive class; a negative alpha disables the term.
    gamma : float >= 0, default 2.0
        Focusing parameter; 0 gives the (alpha-weighted) BCE with logits.
    reduction : {'none', 'mean', 'sum'}, default 'none'
        As torchvision: 'none' keeps logits' shape; 'mean' divides by the
        number of elements.
    return_grad : bool, default False
        Also return the gradient with respect to `logits`.
    grad_out : ndarray, optional
        C-contiguous array of logits' shape and compute dtype to write the
        gradient into; may be `logits` itself.

    Returns
    -------
    loss : NumPy scalar or ndarray
    grad : ndarray
        Only with ``return_grad=True``.
    """
    call, target_arr, t = _elements(logits, "logits", target, reduction, return_grad,
                                    grad_out)
    # the kernels take alpha and gamma in the compute dtype
    alpha = check_fits(check_real(alpha, "alpha"), "alpha", call.dtype, "logits")
    gamma = check_fits(check_real(gamma, "gamma", 0.0), "gamma", call.dtype, "logits")
    check_unit_interval(t, "target", "values")
    call.check_out(target=(target_arr, t))
    return _run(_SIGMOID_FOCAL, call, "logits", t, reduction,
                alpha=alpha, gamma=gamma)
