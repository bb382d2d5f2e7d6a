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

import numpy as np

from . import _binary
from ._buffers import scratch_rows
from ._validation import (as_float_array, check_grad_out, check_out, check_real,
                          check_reduction)



def _read_only_ones(dtype):
    ones = np.ones(_binary.BLOCK, dtype=dtype)
    ones.flags.writeable = False
    return ones


# What an absent weight reads (shared by every call).
_ONES = {np.dtype(dt): _read_only_ones(dt) for dt in (np.float32, np.float64)}


def _check_unit_interval(v, name, what):
    """ValueError naming the first entry of `v` outside [0, 1] (NaN included)."""
    flat = v.reshape(-1)
    n_blocks = -(-flat.size // _binary.BLOCK)
    counts = np.zeros(n_blocks, dtype=np.intp)
    _binary.count_outside_unit(flat, counts)
    if not counts.any():
        return
    start = np.flatnonzero(counts)[0] * _binary.BLOCK
    block = flat[start:start + _binary.BLOCK]
    k = start + np.flatnonzero(~((block >= 0) & (block <= 1)))[0]
    position = tuple(int(i) for i in np.unravel_index(k, v.shape)) if v.ndim else ()
    raise ValueError(f"{name} must hold {what} in [0, 1]; got {flat[k]} at position {position}")


class _Elements:
    """The first argument and target of one elementwise loss call, flattened,
    with the gradient buffer and the reduction."""

    def __init__(self, first, name, target, reduction, return_grad, grad_out):
        check_grad_out(grad_out, return_grad)
        check_reduction(reduction)
        self.original = first
        self.name = name
        first_arr = np.asarray(first)
        self.x = as_float_array(first_arr, name).reshape(first_arr.shape)  # keeps 0-d
        self.dtype, self.shape, self.n = self.x.dtype, self.x.shape, self.x.size
        target_arr = np.asarray(target)
        if target_arr.shape != self.shape:
            raise ValueError(
                f"target must have the shape of {name}, {self.shape}; got shape {target_arr.shape}"
            )
        self.t = as_float_array(target_arr, "target", self.dtype).reshape(self.shape)
        self.reduction = reduction
        self.return_grad = return_grad
        self.grad_out = grad_out

    def operand(self, v, name):
        """`v` broadcast to the input, as the (data, inner, period) triple of
        the kernels: flat element k reads data[(k // inner) % period].

        Shapes whose non-broadcast axes are contiguous (``(C,)``, ``(N, 1)``,
        a scalar, the full shape) are not expanded; others are copied to the
        full shape.
        """
        if v is None:
            return None, 1, 1
        arr = np.asarray(v)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"{name} must be a real numeric array; got dtype {arr.dtype}")
        fits = arr.ndim <= len(self.shape) and all(
            a in (1, s) for a, s in zip(arr.shape[::-1], self.shape[::-1]))
        if not fits:
            raise ValueError(
                f"{name} must be broadcastable to the shape of {self.name}, "
                f"{self.shape}; got shape {arr.shape}"
            )
        arr = arr.reshape((1,) * (len(self.shape) - arr.ndim) + arr.shape)
        real = [i for i, (a, s) in enumerate(zip(arr.shape, self.shape)) if a == s != 1]
        if not real:
            return as_float_array(arr.reshape(1), name, self.dtype), max(self.n, 1), 1
        first, last = real[0], real[-1]
        if any(arr.shape[i] != self.shape[i] for i in range(first, last + 1)):
            full = np.broadcast_to(arr, self.shape)
            return as_float_array(full, name, self.dtype).reshape(-1), 1, max(self.n, 1)
        data = as_float_array(arr, name, self.dtype).reshape(-1)
        return data, math.prod(self.shape[last + 1:]), data.size

    def check_grad_out(self, *inputs):
        if self.grad_out is not None:
            check_out(self.grad_out, self.shape, self.dtype, "grad_out", inputs=inputs,
                      may_be=self.original if isinstance(self.original, np.ndarray) else None)

    def scratch(self):
        """Per-thread work space of the kernels (one row when they run on one thread)."""
        width = _binary.SCRATCH_SLOTS * min(self.n, _binary.BLOCK)
        if self.n < _binary.PARALLEL_MIN:
            return np.empty((1, width), self.dtype)
        return scratch_rows(width, self.dtype)

    def run(self, kernel, before, after=()):
        """Run ``kernel(x, t, *before, grad_scale, loss, partial, grad,
        scratch, *after)`` and return what the caller asked for."""
        mean = self.reduction == "mean"
        loss = np.empty(self.shape, self.dtype) if self.reduction == "none" else None
        grad = None
        if self.return_grad:
            grad = self.grad_out if self.grad_out is not None else np.empty(self.shape, self.dtype)
        partial = np.empty(-(-self.n // _binary.BLOCK), dtype=np.float64)
        grad_scale = 1.0 / self.n if mean and self.n else (0.0 if mean else 1.0)
        if self.n:
            kernel(self.x.reshape(-1), self.t.reshape(-1), *before, grad_scale,
                   None if loss is None else loss.reshape(-1), partial,
                   None if grad is None else grad.reshape(-1),
                   self.scratch(),
                   *after)
        if loss is None:
            total = float(partial.sum())
            if mean:
                total = total / self.n if self.n else math.nan
            loss = self.dtype.type(total)
        return (loss, grad) if self.return_grad else loss


def binary_cross_entropy(probs, target, *, weight=None, reduction="mean",
                         return_grad=False, grad_out=None):
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
    el = _Elements(probs, "probs", target, reduction, return_grad, grad_out)
    w = el.operand(weight, "weight")
    _check_unit_interval(el.x, "probs", "probabilities")
    _check_unit_interval(el.t, "target", "values")
    el.check_grad_out(el.t, w[0])
    return el.run(_binary.binary_cross_entropy, w, (_ONES[el.dtype],))


def binary_cross_entropy_with_logits(logits, target, *, weight=None, pos_weight=None,
                                     reduction="mean", return_grad=False,
                                     grad_out=None):
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
    el = _Elements(logits, "logits", target, reduction, return_grad, grad_out)
    w = el.operand(weight, "weight")
    pw = el.operand(pos_weight, "pos_weight")
    _check_unit_interval(el.t, "target", "values")
    el.check_grad_out(el.t, w[0], pw[0])
    return el.run(_binary.binary_cross_entropy_with_logits, w + pw, (_ONES[el.dtype],))


def sigmoid_focal_loss(logits, target, *, alpha=0.25, gamma=2.0, reduction="none",
                       return_grad=False, grad_out=None):
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
    el = _Elements(logits, "logits", target, reduction, return_grad, grad_out)
    alpha = check_real(alpha, "alpha")
    gamma = check_real(gamma, "gamma", 0.0)
    _check_unit_interval(el.t, "target", "values")
    el.check_grad_out(el.t)
    return el.run(_binary.sigmoid_focal, (alpha, gamma), ())
