"""Plain torch-ops versions of the losses torch lacks (focal losses,
``sample_weight``, ``z_loss``, ``softcap``, the fused linear head).

`xentfast.torch` hands a call here when the xentfast kernels cannot take it
(a tensor on another device, an extra argument that requires grad, ...), so
that code keeps working anywhere torch runs, under autograd and
``torch.compile``.  The formulas are the contract's, written with ordinary
differentiable torch functions; speed is not the point here.
"""
import torch
import torch.nn.functional as F

REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _class_dim(input):
    return 1 if input.dim() > 1 else 0


def _reduce(rows, reduction, denominator):
    if reduction == "none":
        return rows
    total = rows.sum()
    return total if reduction == "sum" else total / denominator


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, sample_weight=None, z_loss=0.0, softcap=None):
    """``F.cross_entropy`` plus xentfast's sample_weight, z_loss and softcap."""
    if sample_weight is None and not z_loss and softcap is None:
        return F.cross_entropy(input, target, weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    _check_reduction(reduction)
    if softcap is not None:
        if not softcap > 0:
            raise ValueError(f"softcap must be in (0.0, inf]; got {softcap!r}")
        input = softcap * torch.tanh(input / softcap)
    rows = F.cross_entropy(input, target, weight, ignore_index=ignore_index,
                           reduction="none", label_smoothing=label_smoothing)
    probs = target.is_floating_point()
    kept = torch.ones_like(rows, dtype=torch.bool) if probs else target != ignore_index
    if z_loss:
        lse = torch.logsumexp(input, _class_dim(input))
        rows = rows + torch.where(kept, z_loss * lse * lse, 0.0)
    if sample_weight is not None:
        rows = rows * sample_weight
    if reduction != "mean":
        return _reduce(rows, reduction, None)
    if probs:
        denominator = rows.numel() if sample_weight is None else sample_weight.sum()
    else:
        per_row = kept.to(rows.dtype)
        if weight is not None:
            per_row = torch.where(kept, weight[torch.where(kept, target, 0)], 0.0)
        if sample_weight is not None:
            per_row = per_row * sample_weight
        denominator = per_row.sum()
    return _reduce(rows, reduction, denominator)


def softmax_focal_loss(input, target, gamma=2.0, alpha=None, ignore_index=-100,
                       reduction="mean"):
    """``-alpha[y] * (1 - p_y)**gamma * log(p_y)``, mean over the kept rows."""
    _check_reduction(reduction)
    if gamma < 0:
        raise ValueError(f"gamma must be in [0.0, inf]; got {gamma!r}")
    dim = _class_dim(input)
    log_p = torch.log_softmax(input, dim)
    kept = target != ignore_index
    y = torch.where(kept, target, 0).unsqueeze(dim)
    log_p_y = log_p.gather(dim, y).squeeze(dim)
    rows = -log_p_y
    if gamma:
        # log(1 - p_y) as the log-sum of the other classes: no cancellation
        log_rest = log_p.scatter(dim, y, float("-inf")).logsumexp(dim)
        rows = rows * torch.exp(gamma * log_rest)
    if alpha is not None:
        rows = rows * alpha[y.squeeze(dim)]
    rows = torch.where(kept, rows, 0.0)
    return _reduce(rows, reduction, kept.sum())


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision's ``sigmoid_focal_loss``, from log-sigmoid terms."""
    _check_reduction(reduction)
    if gamma < 0:
        raise ValueError(f"gamma must be in [0.0, inf]; got {gamma!r}")
    log_p, log_q = F.logsigmoid(inputs), F.logsigmoid(-inputs)
    loss = -(targets * log_p + (1 - targets) * log_q)
    if gamma:
        # 1 - p_t = p (1 - t) + (1 - p) t
        log_1m_pt = torch.logaddexp(log_p + torch.log1p(-targets), log_q + torch.log(targets))
        loss = loss * torch.exp(gamma * log_1m_pt)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return _reduce(loss, reduction, loss.numel())


def linear_cross_entropy(input, linear_weight, target, linear_bias=None, weight=None,
                         reduction="mean", ignore_index=-100, label_smoothing=0.0,
                         z_loss=0.0, softcap=None):
    """``cross_entropy(input @ linear_weight.T + linear_bias, target)``, class axis last."""
    logits = F.linear(input, linear_weight, linear_bias)
    rows = cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), weight,
                         ignore_index, reduction, label_smoothing, z_loss=z_loss,
                         softcap=softcap)
    return rows.reshape(target.shape) if reduction == "none" else rows
