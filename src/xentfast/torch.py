"""PyTorch front end: drop-in replacements for ``torch.nn.functional``'s losses.

``import xentfast.torch as xft`` gives functions with torch's names,
argument order and defaults (``size_average``/``reduce`` included), then
xentfast's own options as keyword-only arguments, and the modules
`CrossEntropyLoss`, `NLLLoss`, `BCELoss`, `BCEWithLogitsLoss`.

CPU float32/float64 tensors run the xentfast kernels through the custom ops
of `xentfast._torch_ops` (loss and gradient in one pass, no copies);
float16 and bfloat16 run them in float32 and come back in their own dtype.
Anything the kernels do not cover (another device, an argument other than
the input that requires grad, a tensor subclass) goes to torch's own
function, or to a plain torch version of the formula where torch has none.
"""
try:
    import torch
except ImportError as exc:   # this module is optional: say how to get it
    raise ImportError(
        "xentfast.torch needs PyTorch, which is not installed; "
        "install it with: pip install xentfast[torch]"
    ) from exc

from torch.nn import _reduction
from torch.overrides import has_torch_function

from . import _torch_ops as ops
from . import _torch_reference as reference

F = torch.nn.functional

__all__ = [
    "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "sigmoid_focal_loss", "softmax_focal_loss", "linear_cross_entropy",
    "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss",
]

_KERNEL_DTYPES = (torch.float32, torch.float64)
_VIA_FLOAT32 = (torch.float16, torch.bfloat16)   # no kernels (bfloat16: no NumPy dtype)


def _reduction_of(size_average, reduce, reduction):
    """torch's reading of the deprecated size_average/reduce (with its warning)."""
    if size_average is not None or reduce is not None:
        return _reduction.legacy_get_string(size_average, reduce)
    return reduction


def _kernels_take(input, *others, differentiable=()):
    """Whether the xentfast kernels can run this call: CPU tensors, a
    floating input, and no gradient wanted for anything but the input (and
    the tensors in `differentiable`)."""
    if input.device.type != "cpu" or input.dtype not in _KERNEL_DTYPES + _VIA_FLOAT32:
        return False
    tensors = tuple(t for t in (input,) + others + differentiable if t is not None)
    if has_torch_function(tensors):   # subclasses and modes: torch's own dispatch
        return False
    if any(t.device.type != "cpu" for t in tensors):
        return False
    return not (torch.is_grad_enabled()
                and any(t is not None and t.requires_grad for t in others))


def _numpy_ready(t):
    """`t`, or a float32 copy where NumPy has no dtype for it (bfloat16)."""
    return t.float() if t is not None and t.dtype == torch.bfloat16 else t


def _call(op, input, target, reduction, *options):
    """The loss from ``op``, computing the gradient only if autograd needs it."""
    low = input.dtype in _VIA_FLOAT32
    x = input.float() if low else input
    need_grad = x.requires_grad and torch.is_grad_enabled()
    loss = ops.loss(op, x, _numpy_ready(target), reduction, need_grad, *options)
    return loss.to(input.dtype) if low else loss


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0, *,
                  sample_weight=None, z_loss=0.0, softcap=None):
    """``torch.nn.functional.cross_entropy`` on the xentfast kernels.

    Parameters
    ----------
    input : Tensor, shape (C,), (N, C) or (N, C, d1, ...)
        Unnormalised scores; dimension 1 (0 for 1-D input) is the class axis.
    target : Tensor
        Class indices (any integer dtype) with input's shape without the
        class axis, or class probabilities with input's shape.
    weight, size_average, ignore_index, reduce, reduction, label_smoothing
        As in torch.
    sample_weight : Tensor of the row shape, optional
        Per-row weights; 'mean' divides by ``sum(sample_weight_i * weight[y_i])``
        over the kept rows (``sum(sample_weight)`` for probability targets).
    z_loss : float, default 0
        Adds ``z_loss * logsumexp(input_i)**2`` to each kept row's loss.
    softcap : float > 0, optional
        Replaces the logits by ``softcap * tanh(input / softcap)`` first.

    Returns
    -------
    Tensor
        0-d, or the row shape for ``reduction='none'``, in input's dtype.
    """
    reduction = _reduction_of(size_average, reduce, reduction)
    if not _kernels_take(input, target, weight, sample_weight):
        return reference.cross_entropy(input, target, weight, ignore_index, reduction,
                                       label_smoothing, sample_weight, z_loss, softcap)
    return _call(ops.cross_entropy_op, input, target, reduction, _numpy_ready(weight),
                 ignore_index, label_smoothing, _numpy_ready(sample_weight), z_loss, softcap)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100,
             reduce=None, reduction="mean"):
    """``torch.nn.functional.nll_loss`` on the xentfast kernels (same
    arguments; `target` may have any integer dtype)."""
    reduction = _reduction_of(size_average, reduce, reduction)
    if not _kernels_take(input, target, weight):
        return F.nll_loss(input, target, weight, ignore_index=ignore_index, reduction=reduction)
    return _call(ops.nll_loss_op, input, target, reduction, _numpy_ready(weight), ignore_index)


def softmax_focal_loss(input, target, gamma=2.0, alpha=None, ignore_index=-100,
                       reduction="mean"):
    """Multiclass focal loss ``-alpha[y] * (1 - p_y)**gamma * log(p_y)``,
    ``p = softmax(input, dim=1)``, in torch's layout.

    Parameters
    ----------
    input : Tensor, shape (C,), (N, C) or (N, C, d1, ...)
    target : Tensor of class indices
        input's shape without the class axis.
    gamma : float >= 0, default 2.0
    alpha : Tensor of shape (C,), optional
        Per-class weights.
    ignore_index : int, default -100
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        'mean' divides by the number of rows not ignored.

    Returns
    -------
    Tensor
    """
    if not _kernels_take(input, target, alpha):
        return reference.softmax_focal_loss(input, target, gamma, alpha, ignore_index,
                                            reduction)
    return _call(ops.softmax_focal_loss_op, input, target, reduction, gamma,
                 _numpy_ready(alpha), ignore_index)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """``torch.nn.functional.binary_cross_entropy`` on the xentfast kernels
    (targets outside [0, 1] are a ValueError)."""
    reduction = _reduction_of(size_average, reduce, reduction)
    if not _kernels_take(input, target, weight):
        return F.binary_cross_entropy(input, target, weight, reduction=reduction)
    return _call(ops.binary_cross_entropy_op, input, target, reduction, _numpy_ready(weight))


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction="mean", pos_weight=None):
    """``torch.nn.functional.binary_cross_entropy_with_logits`` on the xentfast
    kernels (targets outside [0, 1] are a ValueError)."""
    reduction = _reduction_of(size_average, reduce, reduction)
    if not _kernels_take(input, target, weight, pos_weight):
        return F.binary_cross_entropy_with_logits(input, target, weight, reduction=reduction,
                                                  pos_weight=pos_weight)
    return _call(ops.binary_cross_entropy_with_logits_op, input, target, reduction,
                 _numpy_ready(weight), _numpy_ready(pos_weight))


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """``torchvision.ops.sigmoid_focal_loss`` on the xentfast kernels, with a
    gradient that stays finite on saturated logits for every gamma >= 0.

    Parameters
    ----------
    inputs : Tensor, any shape
        Logits.
    targets : Tensor, inputs' shape
        Probabilities in [0, 1].
    alpha : float, default 0.25
        Weight of the positive class; negative disables it.
    gamma : float >= 0, default 2.0
    reduction : {'none', 'mean', 'sum'}, default 'none'

    Returns
    -------
    Tensor
    """
    if not _kernels_take(inputs, targets):
        return reference.sigmoid_focal_loss(inputs, targets, alpha, gamma, reduction)
    return _call(ops.sigmoid_focal_loss_op, inputs, targets, reduction, float(alpha),
                 float(gamma))


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None,
                         reduction="mean", ignore_index=-100, label_smoothing=0.0,
                         z_loss=0.0, softcap=None, chunk_size=None):
    """``torch.nn.functional.linear_cross_entropy`` on xentfast's fused,
    chunked kernel: the loss of ``cross_entropy(input @ linear_weight.T +
    linear_bias, target)`` without ever holding the (N, V) logits.

    Parameters
    ----------
    input : Tensor, shape (..., D)
        Every leading axis is a row axis.
    linear_weight : Tensor, shape (V, D)
    target : Tensor of class indices, shape ``input.shape[:-1]``
        (Probability targets go to the unfused torch formula.)
    linear_bias : Tensor of shape (V,), optional
    weight, reduction, ignore_index, label_smoothing
        As in `cross_entropy` (``ignore_index`` defaults to -100).
    z_loss, softcap
        As in `cross_entropy`.
    chunk_size : int, optional
        Rows per chunk (None: chosen for speed, at most 32 MiB of logits).

    Returns
    -------
    Tensor
        0-d, or ``input.shape[:-1]`` for ``reduction='none'``.  Gradients flow
        to `input`, `linear_weight` and `linear_bias`.
    """
    fits = (ops.has_linear_kernel() and not target.is_floating_point()
            and input.dtype == linear_weight.dtype
            and _kernels_take(input, target, weight,
                              differentiable=(linear_weight, linear_bias)))
    if not fits:
        return reference.linear_cross_entropy(input, linear_weight, target, linear_bias, weight,
                                              reduction, ignore_index, label_smoothing,
                                              z_loss, softcap)
    low = input.dtype in _VIA_FLOAT32
    x, w, b = ((t.float() if low and t is not None else t)
               for t in (input, linear_weight, linear_bias))
    need_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, w, b))
    loss = ops.linear_cross_entropy_op(
        x, w, target, reduction, need_grad and reduction != "none", b,
        _numpy_ready(weight), ignore_index, float(label_smoothing), float(z_loss),
        None if softcap is None else float(softcap), chunk_size)[0]
    return loss.to(input.dtype) if low else loss


class CrossEntropyLoss(torch.nn.CrossEntropyLoss):
    """`torch.nn.CrossEntropyLoss` (same constructor) computed by `cross_entropy`."""

    def forward(self, input, target):
        return cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(torch.nn.NLLLoss):
    """`torch.nn.NLLLoss` (same constructor) computed by `nll_loss`."""

    def forward(self, input, target):
        return nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                        reduction=self.reduction)


class BCELoss(torch.nn.BCELoss):
    """`torch.nn.BCELoss` (same constructor) computed by `binary_cross_entropy`."""

    def forward(self, input, target):
        return binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(torch.nn.BCEWithLogitsLoss):
    """`torch.nn.BCEWithLogitsLoss` (same constructor) computed by
    `binary_cross_entropy_with_logits`."""

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(input, target, self.weight,
                                                reduction=self.reduction,
                                                pos_weight=self.pos_weight)
