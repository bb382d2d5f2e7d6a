"""The xentfast kernels registered as PyTorch custom ops (namespace ``xentfast``).

Every op takes CPU float32/float64 tensors, runs one xentfast call that
computes the loss and, when ``need_grad``, the gradient in the same pass, and
returns ``(loss, grad)``.  The autograd formula saves that gradient and
backward only scales it by the incoming gradient (row by row for
``'none'``).  Each op has a fake implementation (shapes only), so
``torch.compile(fullgraph=True)`` traces through it.  Plain eager calls
(`loss`) run the same implementation and backward through a
``torch.autograd.Function`` instead, which skips the dispatcher's per-call
cost.  The fused linear head has its own pair of ops at the end.

Arrays cross the boundary without copies: ``Tensor.numpy()`` views the
inputs, the gradient is written into a fresh tensor's NumPy view
(``grad_out=``), and the loss comes back through ``torch.from_numpy``.
"""
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from . import _kernels, binary, multiclass
from . import _torch_reference as reference
from ._openmp import single_after_fork
from ._scan import scan_labels
from ._threads import num_threads

F = torch.nn.functional

SECOND_ORDER = ("xentfast.torch computes first-order gradients only: a second-order "
                "gradient (backward with create_graph=True, gradgradcheck, Hessians) "
                "is not supported; use torch.nn.functional's loss for that")


def _array(t):
    return None if t is None else t.numpy()


def _class_axis(input):
    return 1 if input.dim() > 1 else 0


def _thread_count():
    """torch's intra-op thread count, or one where xentfast's kernels run on
    one thread anyway (a child forked from a libgomp process: asking for more
    would only warn)."""
    return 1 if single_after_fork() else torch.get_num_threads()


def _run(kernel, torch_call, input, need_grad, *args, **kwargs):
    """``kernel(input, *args, **kwargs)`` with the gradient written into a new
    tensor; a ValueError/TypeError becomes torch's own error where torch raises
    one (``torch_call()`` reproduces the call with torch)."""
    grad = torch.empty(input.shape if need_grad else (0,), dtype=input.dtype)
    try:
        with num_threads(_thread_count()):
            if need_grad:
                loss, _ = kernel(input.numpy(), *args, return_grad=True,
                                 grad_out=grad.numpy(), **kwargs)
            else:
                loss = kernel(input.numpy(), *args, **kwargs)
    except (ValueError, TypeError):
        torch_call()   # raises torch's exception, where torch has a check
        raise          # only xentfast checks this
    return torch.from_numpy(np.asarray(loss)), grad


def _fake_rows(input, target, reduction, need_grad, *options):
    shape = input.shape[:1] + input.shape[2:] if input.dim() > 1 else ()
    return (input.new_empty(shape if reduction == "none" else ()),
            input.new_empty(input.shape if need_grad else (0,)))


def _fake_elements(input, target, reduction, need_grad, *options):
    return (input.new_empty(input.shape if reduction == "none" else ()),
            input.new_empty(input.shape if need_grad else (0,)))


def _save(ctx, rows, input, reduction, grad):
    ctx.unsqueeze = rows and reduction == "none" and input.dim() > 1
    ctx.mark_non_differentiable(grad)
    ctx.save_for_backward(grad)


def _input_grad(ctx, grad_loss, eager=False):
    """The saved gradient scaled by the loss's incoming gradient.  In `eager`
    calls a reduced loss's gradient of exactly 1 (``loss.backward()``) returns
    the saved gradient as it is: no N x C multiplication."""
    if torch.is_grad_enabled():
        raise RuntimeError(SECOND_ORDER)
    grad, = ctx.saved_tensors
    if ctx.unsqueeze:   # one loss per row: scale each row of the gradient
        return grad * grad_loss.unsqueeze(1)
    if eager and grad_loss.dim() == 0 and grad_loss.item() == 1.0:
        return grad
    return grad * grad_loss


def _register(fn, rows):
    """`fn` as the custom op ``xentfast::<its name>``, with a fake implementation
    and the autograd formula; its 'none' loss has one value per row (``rows``)
    or per element."""
    op = torch.library.custom_op(f"xentfast::{fn.__name__}", fn, mutates_args=())
    op.register_fake(_fake_rows if rows else _fake_elements)

    def setup_context(ctx, inputs, output):
        ctx.n_inputs = len(inputs)
        _save(ctx, rows, inputs[0], inputs[2], output[1])

    def backward(ctx, grad_loss, _):
        return (_input_grad(ctx, grad_loss),) + (None,) * (ctx.n_inputs - 1)

    op.register_autograd(backward, setup_context=setup_context)
    _KERNEL[op], _ROWS[op] = fn, rows
    return op


_KERNEL = {}   # op -> its implementation, for calls that skip the dispatcher
_ROWS = {}     # op -> whether its 'none' loss has one value per row


class _EagerLoss(torch.autograd.Function):
    """The ops' autograd formula for eager calls that need no dispatch: the
    same kernel call and backward without the custom op's fixed cost (schema
    checks and defaults on every call), and only the loss as an output."""

    @staticmethod
    def forward(ctx, op, input, target, reduction, options):
        # options in one tuple: apply() inspects every argument, at a cost
        loss, grad = _KERNEL[op](input.detach(), target, reduction, True, *options)
        ctx.unsqueeze = _ROWS[op] and reduction == "none" and input.dim() > 1
        ctx.save_for_backward(grad)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        return None, _input_grad(ctx, grad_loss, eager=True), None, None, None


# Private probes of torch's dispatch state; without them, always dispatch.
_transforms_active = getattr(torch._C, "_are_functorch_transforms_active", None)
_dispatch_modes = getattr(torch._C, "_len_torch_dispatch_stack", None)


def _plain_eager():
    """True when nothing but autograd would see the op: not compiling or
    exporting, no functorch transform, no dispatch mode (fake tensors, meta
    tracing, ...).  Torch-function modes never get here (see xentfast.torch)."""
    return (_transforms_active is not None and _dispatch_modes is not None
            and not torch.compiler.is_compiling() and not _transforms_active()
            and not _dispatch_modes())


def loss(op, input, target, reduction, need_grad, *options):
    """The loss of custom op `op` on these arguments, computing the gradient
    only if `need_grad`.  Plain eager calls skip the dispatcher."""
    if _plain_eager():
        if need_grad:
            return _EagerLoss.apply(op, input, target, reduction, options)
        return _KERNEL[op](input, target, reduction, False, *options)[0]
    return op(input, target, reduction, need_grad, *options)[0]


def _plain_labels(input, target, reduction, weight, sample_weight, z_loss, softcap,
                  label_smoothing):
    """Whether a cross_entropy call is the common one the block API takes
    directly: (N, C) contiguous logits, contiguous int64 labels, no extra
    arrays, and options the checks below cover."""
    return (input.dim() == 2 and input.is_contiguous() and target.dtype == torch.int64
            and target.dim() == 1 and target.is_contiguous() and weight is None
            and sample_weight is None and not z_loss and softcap is None
            and reduction in ("mean", "sum", "none") and 0.0 <= label_smoothing <= 1.0)


def _cross_entropy_block(input, target, reduction, need_grad, ignore_index, label_smoothing):
    """The common call through `xentfast._kernels` without the public
    function's generic checks; None if a label is out of range (the full path
    then raises the error)."""
    x, y = input.numpy(), target.numpy()
    if y.shape[0] != x.shape[0]:
        return None
    bad, ignored = scan_labels(y, x.shape[1], ignore_index)
    if bad >= 0:
        return None
    denominator = float(y.shape[0] - ignored)
    scale = 1.0 if reduction != "mean" else (1.0 / denominator if denominator else 0.0)
    grad = torch.empty(input.shape if need_grad else (0,), dtype=input.dtype)
    with num_threads(_thread_count()):
        rows = _kernels.cross_entropy_block(
            x, y, ignore_index=ignore_index, label_smoothing=label_smoothing,
            grad_scale=scale, grad_out=grad.numpy() if need_grad else None)
    loss = multiclass._reduce(rows, reduction, denominator, x.dtype, rows.shape)
    if reduction == "none":
        return torch.from_numpy(loss), grad
    return torch.tensor(loss, dtype=input.dtype), grad


def cross_entropy(input: Tensor, target: Tensor, reduction: str, need_grad: bool,
                  weight: Optional[Tensor], ignore_index: int, label_smoothing: float,
                  sample_weight: Optional[Tensor], z_loss: float,
                  softcap: Optional[float]) -> tuple[Tensor, Tensor]:
    if _plain_labels(input, target, reduction, weight, sample_weight, z_loss, softcap,
                     label_smoothing):
        result = _cross_entropy_block(input, target, reduction, need_grad, ignore_index,
                                      label_smoothing)
        if result is not None:
            return result

    def with_torch():
        return reference.cross_entropy(input, target, weight, ignore_index, reduction,
                                       label_smoothing, sample_weight, z_loss, softcap)

    return _run(multiclass.cross_entropy, with_torch, input, need_grad, target.numpy(),
                weight=_array(weight), ignore_index=ignore_index, reduction=reduction,
                label_smoothing=label_smoothing, sample_weight=_array(sample_weight),
                z_loss=z_loss, softcap=softcap, axis=_class_axis(input))


def nll_loss(input: Tensor, target: Tensor, reduction: str, need_grad: bool,
             weight: Optional[Tensor], ignore_index: int) -> tuple[Tensor, Tensor]:
    def with_torch():
        return F.nll_loss(input, target, weight, ignore_index=ignore_index, reduction=reduction)

    return _run(multiclass.nll_loss, with_torch, input, need_grad, target.numpy(),
                weight=_array(weight), ignore_index=ignore_index, reduction=reduction,
                axis=_class_axis(input))


def softmax_focal_loss(input: Tensor, target: Tensor, reduction: str, need_grad: bool,
                       gamma: float, alpha: Optional[Tensor],
                       ignore_index: int) -> tuple[Tensor, Tensor]:
    def with_torch():
        return reference.softmax_focal_loss(input, target, gamma, alpha, ignore_index,
                                            reduction)

    return _run(multiclass.softmax_focal_loss, with_torch, input, need_grad, target.numpy(),
                gamma=gamma, alpha=_array(alpha), ignore_index=ignore_index,
                reduction=reduction, axis=_class_axis(input))


def binary_cross_entropy(input: Tensor, target: Tensor, reduction: str, need_grad: bool,
                         weight: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    def with_torch():
        return F.binary_cross_entropy(input, target, weight, reduction=reduction)

    return _run(binary.binary_cross_entropy, with_torch, input, need_grad, target.numpy(),
                weight=_array(weight), reduction=reduction)


def binary_cross_entropy_with_logits(
        input: Tensor, target: Tensor, reduction: str, need_grad: bool,
        weight: Optional[Tensor], pos_weight: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    def with_torch():
        return F.binary_cross_entropy_with_logits(input, target, weight, reduction=reduction,
                                                  pos_weight=pos_weight)

    return _run(binary.binary_cross_entropy_with_logits, with_torch, input, need_grad,
                target.numpy(), weight=_array(weight), pos_weight=_array(pos_weight),
                reduction=reduction)


def sigmoid_focal_loss(input: Tensor, target: Tensor, reduction: str, need_grad: bool,
                       alpha: float, gamma: float) -> tuple[Tensor, Tensor]:
    def with_torch():
        return reference.sigmoid_focal_loss(input, target, alpha, gamma, reduction)

    return _run(binary.sigmoid_focal_loss, with_torch, input, need_grad, target.numpy(),
                alpha=alpha, gamma=gamma, reduction=reduction)


cross_entropy_op = _register(cross_entropy, rows=True)
nll_loss_op = _register(nll_loss, rows=True)
softmax_focal_loss_op = _register(softmax_focal_loss, rows=True)
binary_cross_entropy_op = _register(binary_cross_entropy, rows=False)
binary_cross_entropy_with_logits_op = _register(binary_cross_entropy_with_logits, rows=False)
sigmoid_focal_loss_op = _register(sigmoid_focal_loss, rows=False)


# --- the fused linear head: xentfast.linear_cross_entropy (when built in) ---

def _linear_kernel():
    from . import linear_cross_entropy
    return linear_cross_entropy


def has_linear_kernel():
    """Whether this build of xentfast has linear_cross_entropy."""
    try:
        _linear_kernel()
    except ImportError:
        return False
    return True


def _linear_grads(grads, input, bias):
    """The kernel's gradients as tensors; an empty one for a missing bias."""
    return (torch.from_numpy(grads.x), torch.from_numpy(grads.W),
            input.new_empty(0) if bias is None else torch.from_numpy(grads.bias))


def linear_cross_entropy(input: Tensor, linear_weight: Tensor, target: Tensor, reduction: str,
                         need_grad: bool, linear_bias: Optional[Tensor],
                         weight: Optional[Tensor], ignore_index: int, label_smoothing: float,
                         z_loss: float, softcap: Optional[float],
                         chunk_size: Optional[int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Loss and, with `need_grad`, the gradients (input, weight, bias) of the
    fused linear + cross-entropy; no bias gives an empty bias gradient."""
    options = dict(bias=_array(linear_bias), weight=_array(weight), ignore_index=ignore_index,
                   reduction=reduction, label_smoothing=label_smoothing, z_loss=z_loss,
                   softcap=softcap, chunk_size=chunk_size)
    try:
        with num_threads(_thread_count()):
            result = _linear_kernel()(input.numpy(), linear_weight.numpy(), target.numpy(),
                                      return_grad=need_grad, **options)
    except (ValueError, TypeError):
        reference.linear_cross_entropy(input, linear_weight, target, linear_bias, weight,
                                       reduction, ignore_index, label_smoothing, z_loss,
                                       softcap)
        raise
    if not need_grad:
        empty = input.new_empty(0)
        return torch.from_numpy(np.asarray(result)), empty, empty.clone(), empty.clone()
    loss, grads = result
    return (torch.from_numpy(np.asarray(loss)),) + _linear_grads(grads, input, linear_bias)


def linear_cross_entropy_backward(
        input: Tensor, linear_weight: Tensor, target: Tensor, grad_rows: Tensor,
        linear_bias: Optional[Tensor], weight: Optional[Tensor], ignore_index: int,
        label_smoothing: float, z_loss: float, softcap: Optional[float],
        chunk_size: Optional[int]) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of ``sum_i grad_rows_i * loss_i`` (reduction 'none'): the
    per-row upstream gradient enters as the rows' sample weights."""
    with num_threads(_thread_count()):
        _, grads = _linear_kernel()(
            input.numpy(), linear_weight.numpy(), target.numpy(), bias=_array(linear_bias),
            weight=_array(weight), ignore_index=ignore_index, reduction="sum",
            label_smoothing=label_smoothing, sample_weight=grad_rows.numpy(), z_loss=z_loss,
            softcap=softcap, chunk_size=chunk_size, return_grad=True)
    return _linear_grads(grads, input, linear_bias)


def _linear_fake(input, linear_weight, target, reduction, need_grad, linear_bias, *options):
    loss = input.new_empty(input.shape[:-1] if reduction == "none" else ())
    if not need_grad:
        return loss, input.new_empty(0), input.new_empty(0), input.new_empty(0)
    bias = input.new_empty(0) if linear_bias is None else torch.empty_like(linear_bias)
    return loss, torch.empty_like(input), torch.empty_like(linear_weight), bias


def _linear_backward_fake(input, linear_weight, target, grad_rows, linear_bias, *options):
    bias = input.new_empty(0) if linear_bias is None else torch.empty_like(linear_bias)
    return torch.empty_like(input), torch.empty_like(linear_weight), bias


def _linear_setup(ctx, inputs, output):
    input, linear_weight, target, reduction, need_grad, linear_bias, weight = inputs[:7]
    ctx.per_row = reduction == "none"
    ctx.has_bias = linear_bias is not None
    ctx.options = inputs[7:]
    ctx.mark_non_differentiable(*output[1:])
    if ctx.per_row:      # gradients depend on the upstream row gradients: later
        ctx.save_for_backward(input, linear_weight, target, linear_bias, weight)
    else:
        ctx.save_for_backward(*output[1:])


def _linear_backward(ctx, grad_loss, *_):
    if torch.is_grad_enabled():
        raise RuntimeError(SECOND_ORDER)
    if ctx.per_row:
        input, linear_weight, target, linear_bias, weight = ctx.saved_tensors
        grads = linear_cross_entropy_backward_op(
            input, linear_weight, target, grad_loss.to(input.dtype).contiguous(),
            linear_bias, weight, *ctx.options)
    else:
        grads = tuple(g * grad_loss for g in ctx.saved_tensors)
    dx, dW, db = grads
    return dx, dW, None, None, None, db if ctx.has_bias else None, None, None, None, None, \
        None, None


linear_cross_entropy_op = torch.library.custom_op(
    "xentfast::linear_cross_entropy", linear_cross_entropy, mutates_args=())
linear_cross_entropy_op.register_fake(_linear_fake)
linear_cross_entropy_op.register_autograd(_linear_backward, setup_context=_linear_setup)
linear_cross_entropy_backward_op = torch.library.custom_op(
    "xentfast::linear_cross_entropy_backward", linear_cross_entropy_backward, mutates_args=())
linear_cross_entropy_backward_op.register_fake(_linear_backward_fake)
