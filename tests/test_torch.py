"""xentfast.torch against torch's own functions: values, gradients, errors,
layouts, dtypes, the custom-op machinery (opcheck, gradcheck, torch.compile)
and torch's own OpInfo sample inputs."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import xentfast  # noqa: E402
import xentfast.torch as xft  # noqa: E402
from xentfast import _torch_ops, _torch_reference  # noqa: E402

from grids import REDUCTIONS  # noqa: E402

DTYPES = (torch.float64, torch.float32)
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=2e-5, atol=2e-6),
       torch.float16: dict(rtol=2e-3, atol=1e-3), torch.bfloat16: dict(rtol=2e-2, atol=1e-2)}
SHAPES = ((7,), (9, 5), (4, 5, 3, 2))   # (C,), (N, C), (N, C, d1, d2)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _logits(shape, dtype, seed=0):
    return (3 * torch.randn(shape, generator=_gen(seed), dtype=torch.float64)).to(dtype)


def _labels(shape, ignore=None, seed=1):
    n_classes = shape[1] if len(shape) > 1 else shape[0]
    row_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    y = torch.randint(0, n_classes, row_shape, generator=_gen(seed))
    if ignore is not None and y.dim():
        y.view(-1)[::3] = ignore
    return y


def _probs(shape, dtype, seed=2):
    dim = 1 if len(shape) > 1 else 0
    return torch.rand(shape, generator=_gen(seed), dtype=torch.float64).softmax(dim).to(dtype)


def _compare(ours, theirs, inputs, dtype, grad_seed=3):
    """Same value and same gradients (w.r.t. each of `inputs`) for a random
    upstream gradient, so 'none' checks the row-by-row scaling."""
    a = ours(*inputs)
    b = theirs(*inputs)
    assert a.dtype == b.dtype and a.shape == b.shape
    torch.testing.assert_close(a, b, **TOL[dtype], equal_nan=True)
    upstream = torch.rand(a.shape, generator=_gen(grad_seed), dtype=torch.float64).to(a.dtype) + 0.5
    wrt = [t for t in inputs if t.requires_grad]
    ga = torch.autograd.grad(a, wrt, upstream)
    gb = torch.autograd.grad(b, wrt, upstream)
    for x, y in zip(ga, gb):
        assert x.dtype == y.dtype
        torch.testing.assert_close(x, y, **TOL[dtype], equal_nan=True)


# --- values and gradients against torch --------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [
    {}, {"weight": True}, {"ignore_index": 2}, {"label_smoothing": 0.2},
    {"weight": True, "ignore_index": 2, "label_smoothing": 0.1},
])
def test_cross_entropy_labels(dtype, shape, reduction, options):
    options = dict(options)
    n_classes = shape[1] if len(shape) > 1 else shape[0]
    if options.pop("weight", False):
        options["weight"] = torch.rand(n_classes, generator=_gen(4), dtype=dtype) + 0.2
    x = _logits(shape, dtype).requires_grad_()
    y = _labels(shape, ignore=options.get("ignore_index"))
    _compare(lambda x: xft.cross_entropy(x, y, reduction=reduction, **options),
             lambda x: F.cross_entropy(x, y, reduction=reduction, **options), (x,), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_probabilities(dtype, shape, reduction, label_smoothing, weighted):
    n_classes = shape[1] if len(shape) > 1 else shape[0]
    w = torch.rand(n_classes, generator=_gen(4), dtype=dtype) + 0.2 if weighted else None
    x = _logits(shape, dtype).requires_grad_()
    t = _probs(shape, dtype)
    kw = dict(weight=w, reduction=reduction, label_smoothing=label_smoothing)
    _compare(lambda x: xft.cross_entropy(x, t, **kw), lambda x: F.cross_entropy(x, t, **kw),
             (x,), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss(dtype, shape, reduction, weighted):
    n_classes = shape[1] if len(shape) > 1 else shape[0]
    w = torch.rand(n_classes, generator=_gen(4), dtype=dtype) + 0.2 if weighted else None
    x = _logits(shape, dtype).log_softmax(1 if len(shape) > 1 else 0).detach().requires_grad_()
    y = _labels(shape, ignore=1)
    kw = dict(weight=w, ignore_index=1, reduction=reduction)
    _compare(lambda x: xft.nll_loss(x, y, **kw), lambda x: F.nll_loss(x, y, **kw), (x,), dtype)


BINARY_SHAPES = ((), (6,), (5, 4), (3, 4, 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BINARY_SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy(dtype, shape, reduction, weighted):
    p = torch.rand(shape, generator=_gen(0), dtype=torch.float64).clamp(0.01, 0.99)
    p = p.to(dtype).requires_grad_()
    t = torch.rand(shape, generator=_gen(1), dtype=dtype)
    w = torch.rand(shape[-1:], generator=_gen(2), dtype=dtype) if weighted else None
    kw = dict(weight=w, reduction=reduction)
    _compare(lambda p: xft.binary_cross_entropy(p, t, **kw),
             lambda p: F.binary_cross_entropy(p, t, **kw), (p,), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BINARY_SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weights", ["none", "weight", "pos_weight", "both"])
def test_binary_cross_entropy_with_logits(dtype, shape, reduction, weights):
    x = _logits(shape, dtype).requires_grad_()
    t = (torch.rand(shape, generator=_gen(1), dtype=torch.float64) > 0.5).to(dtype)
    kw = dict(reduction=reduction)
    if weights in ("weight", "both"):
        kw["weight"] = torch.rand(shape[-1:], generator=_gen(2), dtype=dtype)
    if weights in ("pos_weight", "both"):
        kw["pos_weight"] = torch.rand(shape[-1:], generator=_gen(3), dtype=dtype) * 3
    _compare(lambda x: xft.binary_cross_entropy_with_logits(x, t, **kw),
             lambda x: F.binary_cross_entropy_with_logits(x, t, **kw), (x,), dtype)


def _torchvision_sigmoid_focal(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss, written out (torchvision is not a
    dependency)."""
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def _softmax_focal(input, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    """The contract's formula, written with torch.softmax (no log-space care)."""
    dim = 1 if input.dim() > 1 else 0
    kept = target != ignore_index
    y = torch.where(kept, target, 0).unsqueeze(dim)
    p_y = input.softmax(dim).gather(dim, y).squeeze(dim)
    rows = -(1 - p_y) ** gamma * torch.log(p_y)
    if alpha is not None:
        rows = rows * alpha[y.squeeze(dim)]
    rows = torch.where(kept, rows, 0.0)
    return {"none": rows, "sum": rows.sum(), "mean": rows.sum() / kept.sum()}[reduction]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (-1.0, 0.5), (0.75, 0.0)])
def test_sigmoid_focal_loss(dtype, reduction, alpha, gamma):
    x = _logits((5, 4), dtype).requires_grad_()
    t = torch.rand((5, 4), generator=_gen(1), dtype=dtype)
    kw = dict(alpha=alpha, gamma=gamma, reduction=reduction)
    _compare(lambda x: xft.sigmoid_focal_loss(x, t, **kw),
             lambda x: _torchvision_sigmoid_focal(x, t, **kw), (x,), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_softmax_focal_loss(dtype, shape, reduction, gamma):
    n_classes = shape[1] if len(shape) > 1 else shape[0]
    alpha = torch.rand(n_classes, generator=_gen(4), dtype=dtype) + 0.2
    x = (_logits(shape, dtype) / 3).requires_grad_()
    y = _labels(shape, ignore=1)
    kw = dict(gamma=gamma, alpha=alpha, ignore_index=1, reduction=reduction)
    _compare(lambda x: xft.softmax_focal_loss(x, y, **kw),
             lambda x: _softmax_focal(x, y, **kw), (x,), dtype)


# --- xentfast's own options: kernels against the plain torch formulas --------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target_kind", ["labels", "probs"])
def test_cross_entropy_extras_match_plain_torch(dtype, reduction, target_kind):
    shape = (6, 5, 3)
    x = _logits(shape, dtype).requires_grad_()
    y = _labels(shape, ignore=2) if target_kind == "labels" else _probs(shape, dtype)
    kw = dict(weight=torch.rand(5, generator=_gen(4), dtype=dtype) + 0.2,
              label_smoothing=0.1, sample_weight=torch.rand((6, 3), generator=_gen(5), dtype=dtype),
              z_loss=1e-2, softcap=4.0, reduction=reduction)
    if target_kind == "labels":
        kw["ignore_index"] = 2
    _compare(lambda x: xft.cross_entropy(x, y, **kw),
             lambda x: _torch_reference.cross_entropy(x, y, **kw), (x,), dtype)


def test_extras_on_the_fallback_path_give_the_same_gradients():
    """An argument other than input that requires grad goes to the plain torch
    formulas, which differentiate it too."""
    x = _logits((6, 5), torch.float64).requires_grad_()
    y = _labels((6, 5))
    sw = torch.rand(6, generator=_gen(5), dtype=torch.float64).requires_grad_()
    loss = xft.cross_entropy(x, y, sample_weight=sw, z_loss=1e-2)
    rows = F.cross_entropy(x, y, reduction="none") + 1e-2 * torch.logsumexp(x, 1) ** 2
    expected = (rows * sw).sum() / sw.sum()
    torch.testing.assert_close(loss, expected)
    ga = torch.autograd.grad(loss, (x, sw))
    gb = torch.autograd.grad(expected, (x, sw))
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b)


def test_probability_target_requiring_grad_goes_to_torch():
    x = _logits((4, 3), torch.float64).requires_grad_()
    t = _probs((4, 3), torch.float64).requires_grad_()
    _compare(xft.cross_entropy, F.cross_entropy, (x, t), torch.float64)
    tb = torch.rand(4, 3, dtype=torch.float64).requires_grad_()
    _compare(xft.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits,
             (x, tb), torch.float64)


@pytest.mark.parametrize("fn, args", [
    (xft.cross_entropy, lambda x: (_labels((4, 3)),)),
    (xft.softmax_focal_loss, lambda x: (_labels((4, 3)),)),
    (xft.sigmoid_focal_loss, lambda x: (torch.rand(4, 3),)),
    (xft.binary_cross_entropy_with_logits, lambda x: (torch.rand(4, 3),)),
])
def test_other_devices_run_torch_formulas(fn, args):
    """'meta' stands for any non-CPU device: the call must work there."""
    x = torch.empty(4, 3, device="meta", requires_grad=True)
    targets = tuple(a.to("meta") for a in args(x))
    loss = fn(x, *targets, reduction="sum")
    assert loss.device.type == "meta" and loss.shape == ()
    loss.backward()
    assert x.grad.shape == x.shape


def test_meta_cross_entropy_with_extras():
    x = torch.empty(4, 3, 2, device="meta")
    loss = xft.cross_entropy(x, torch.zeros(4, 2, dtype=torch.long, device="meta"),
                             sample_weight=torch.empty(4, 2, device="meta"), z_loss=1e-3,
                             softcap=5.0, reduction="none")
    assert loss.shape == (4, 2) and loss.device.type == "meta"


# --- dtypes, layouts, legacy arguments --------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_low_precision_inputs(dtype, reduction):
    x = _logits((8, 5), dtype).requires_grad_()
    y = _labels((8, 5))
    a = xft.cross_entropy(x, y, reduction=reduction)
    b = F.cross_entropy(x.float(), y, reduction=reduction)
    assert a.dtype == dtype
    torch.testing.assert_close(a.float(), b, **TOL[dtype])
    ga, = torch.autograd.grad(a.sum(), x)
    gb, = torch.autograd.grad(b.sum(), x)
    assert ga.dtype == dtype
    torch.testing.assert_close(ga.float(), gb.to(dtype).float(), **TOL[dtype])
    t = torch.rand(8, 5, dtype=dtype)
    a = xft.binary_cross_entropy_with_logits(x, t, reduction=reduction)
    b = F.binary_cross_entropy_with_logits(x.float(), t.float(), reduction=reduction)
    assert a.dtype == dtype
    torch.testing.assert_close(a.float(), b.to(dtype).float(), **TOL[dtype])


def test_non_contiguous_input_and_any_integer_labels():
    base = _logits((5, 8), torch.float64)
    x = base.t().requires_grad_()        # (8, 5), not contiguous
    y = _labels((8, 5))
    _compare(lambda x: xft.cross_entropy(x, y.to(torch.int32)), lambda x: F.cross_entropy(x, y),
             (x,), torch.float64)
    _compare(lambda x: xft.cross_entropy(x, y.to(torch.uint8)), lambda x: F.cross_entropy(x, y),
             (x,), torch.float64)


def _spy(monkeypatch, module, name, record):
    original = getattr(module, name)

    def spy(*args, **kwargs):
        record(*args, **kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)


def _address(a):
    return a.__array_interface__["data"][0]


@pytest.mark.parametrize("path", ["block", "public"])
def test_contiguous_input_is_not_copied(monkeypatch, path):
    """Both routes to the kernels (the common call straight to the block API,
    the rest through the public function) read the tensor's memory and write
    the gradient that becomes x.grad."""
    seen = {}

    def record(logits, *args, **kwargs):
        seen["data"], seen["grad"] = _address(logits), _address(kwargs["grad_out"])

    module, name = ((xentfast._kernels, "cross_entropy_block") if path == "block"
                    else (xentfast.multiclass, "cross_entropy"))
    _spy(monkeypatch, module, name, record)
    x = _logits((16, 10), torch.float32).requires_grad_()
    weight = None if path == "block" else torch.ones(10)
    xft.cross_entropy(x, _labels((16, 10)), weight).backward()
    assert seen["data"] == x.data_ptr()
    assert seen["grad"] == x.grad.data_ptr()


def test_kernels_use_torch_thread_count(monkeypatch):
    seen = []
    for module, name in [(xentfast._kernels, "cross_entropy_block"),
                         (xentfast.multiclass, "cross_entropy")]:
        _spy(monkeypatch, module, name, lambda *a, **k: seen.append(xentfast.get_num_threads()))
    before_torch, before_xf = torch.get_num_threads(), xentfast.get_num_threads()
    x = _logits((16, 10), torch.float32)
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            xft.cross_entropy(x, _labels((16, 10)))
            xft.cross_entropy(x, _labels((16, 10)), torch.ones(10))
    finally:
        torch.set_num_threads(before_torch)
    assert seen == [1, 1, 2, 2]
    assert xentfast.get_num_threads() == before_xf


@pytest.mark.parametrize("size_average, reduce, expected", [
    (None, False, "none"), (False, None, "sum"), (True, True, "mean"), (False, False, "none"),
])
def test_legacy_size_average_and_reduce(size_average, reduce, expected):
    x = _logits((6, 4), torch.float64)
    y = _labels((6, 4))
    t = torch.rand(6, 4, dtype=torch.float64)
    with pytest.warns(UserWarning):
        a = xft.cross_entropy(x, y, None, size_average, -100, reduce)
    torch.testing.assert_close(a, F.cross_entropy(x, y, reduction=expected))
    with pytest.warns(UserWarning):
        a = xft.nll_loss(x, y, None, size_average, -100, reduce)
    torch.testing.assert_close(a, F.nll_loss(x, y, reduction=expected))
    with pytest.warns(UserWarning):
        a = xft.binary_cross_entropy_with_logits(x, t, None, size_average, reduce)
    torch.testing.assert_close(a, F.binary_cross_entropy_with_logits(x, t, reduction=expected))
    with pytest.warns(UserWarning):
        a = xft.binary_cross_entropy(t, t, None, size_average, reduce)
    torch.testing.assert_close(a, F.binary_cross_entropy(t, t, reduction=expected))


def test_modules_are_their_torch_namesakes():
    w = torch.rand(4, dtype=torch.float64) + 0.1
    pairs = [
        (xft.CrossEntropyLoss(w, ignore_index=1, label_smoothing=0.1),
         torch.nn.CrossEntropyLoss(w, ignore_index=1, label_smoothing=0.1), "labels"),
        (xft.CrossEntropyLoss(reduction="sum"), torch.nn.CrossEntropyLoss(reduction="sum"),
         "labels"),
        (xft.NLLLoss(w, reduction="none"), torch.nn.NLLLoss(w, reduction="none"), "labels"),
        (xft.BCELoss(reduction="sum"), torch.nn.BCELoss(reduction="sum"), "probs"),
        (xft.BCEWithLogitsLoss(pos_weight=w), torch.nn.BCEWithLogitsLoss(pos_weight=w), "binary"),
    ]
    for ours, theirs, kind in pairs:
        assert isinstance(ours, type(theirs))
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        x = torch.rand(6, 4, generator=_gen(0), dtype=torch.float64).requires_grad_()
        t = (_labels((6, 4)) if kind == "labels" else torch.rand(6, 4, dtype=torch.float64))
        _compare(lambda x: ours(x, t), lambda x: theirs(x, t), (x,), torch.float64)


# --- errors: torch's exception types -----------------------------------------

def _same_exception(call_ours, call_torch):
    with pytest.raises(Exception) as theirs:
        call_torch()
    with pytest.raises(type(theirs.value)):
        call_ours()


@pytest.mark.parametrize("case", [
    "label_out_of_range", "negative_label", "batch_mismatch", "weight_length",
    "bad_reduction", "float_labels_wrong_shape", "probs_with_ignore_index", "scalar_input",
    "smoothing_out_of_range",
])
def test_cross_entropy_errors_as_torch(case):
    x = _logits((4, 3), torch.float32)
    y = _labels((4, 3))
    args, kw = {
        "label_out_of_range": ((x, torch.tensor([0, 1, 3, 0])), {}),
        "negative_label": ((x, torch.tensor([0, -2, 1, 0])), {}),
        "batch_mismatch": ((x, y[:3]), {}),
        "weight_length": ((x, y), {"weight": torch.ones(4)}),
        "bad_reduction": ((x, y), {"reduction": "avg"}),
        "float_labels_wrong_shape": ((x, y.float()), {}),
        "probs_with_ignore_index": ((x, torch.rand(4, 3)), {"ignore_index": 1}),
        "scalar_input": ((torch.tensor(1.0), torch.tensor(0)), {}),
        "smoothing_out_of_range": ((x, y), {"label_smoothing": 1.5}),
    }[case]
    _same_exception(lambda: xft.cross_entropy(*args, **kw), lambda: F.cross_entropy(*args, **kw))
    _same_exception(lambda: xft.CrossEntropyLoss(**kw)(*args),
                    lambda: torch.nn.CrossEntropyLoss(**kw)(*args))


@pytest.mark.parametrize("case", ["probs_above_one", "shape_mismatch", "bad_reduction"])
def test_binary_errors_as_torch(case):
    p = torch.rand(4, 3)
    args, kw = {
        "probs_above_one": ((p + 1, p), {}),
        "shape_mismatch": ((p, p[:2]), {}),
        "bad_reduction": ((p, p), {"reduction": "avg"}),
    }[case]
    _same_exception(lambda: xft.binary_cross_entropy(*args, **kw),
                    lambda: F.binary_cross_entropy(*args, **kw))
    if case != "probs_above_one":
        _same_exception(lambda: xft.binary_cross_entropy_with_logits(*args, **kw),
                        lambda: F.binary_cross_entropy_with_logits(*args, **kw))


def test_nll_loss_errors_as_torch():
    x = _logits((4, 3), torch.float64)
    _same_exception(lambda: xft.nll_loss(x, torch.tensor([0, 1, 5, 0])),
                    lambda: F.nll_loss(x, torch.tensor([0, 1, 5, 0])))


def test_only_xentfast_checks_targets_of_binary_losses():
    """torch does not check BCE targets; xentfast's ValueError comes through."""
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="target must hold values in"):
        xft.binary_cross_entropy_with_logits(x, torch.full((4, 3), 2.0))


def test_retained_graph_backward_several_times():
    """backward hands out the saved gradient itself when the upstream
    gradient is 1: accumulating into x.grad must not change what is saved."""
    x = _logits((8, 5), torch.float64).requires_grad_()
    y = _labels((8, 5))
    for fn, ref in [(xft.cross_entropy, F.cross_entropy),
                    (xft.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits)]:
        t = y if fn is xft.cross_entropy else torch.rand(8, 5, dtype=torch.float64)
        grads = []
        for loss_fn in (fn, ref):
            x.grad = None
            loss = loss_fn(x, t)
            for _ in range(3):
                loss.backward(retain_graph=True)
            grads.append(x.grad.clone())
        torch.testing.assert_close(grads[0], grads[1])


def test_second_order_gradient_raises():
    x = _logits((5, 4), torch.float64).requires_grad_()
    loss = xft.cross_entropy(x, _labels((5, 4)))
    with pytest.raises(RuntimeError, match="second-order"):
        torch.autograd.grad(loss, x, create_graph=True)
    x2 = _logits((5, 4), torch.float64).requires_grad_()
    with pytest.raises(RuntimeError, match="second-order"):
        torch.autograd.gradgradcheck(
            lambda x: xft.binary_cross_entropy_with_logits(x, torch.rand(5, 4, dtype=x.dtype)),
            (x2,))


# --- the custom-op machinery -------------------------------------------------

def _op_cases():
    x = _logits((5, 4), torch.float64)
    y = _labels((5, 4), ignore=1)
    t = torch.rand(5, 4, dtype=torch.float64, generator=_gen(7))
    w = torch.rand(4, dtype=torch.float64, generator=_gen(8)) + 0.1
    x3, y3 = _logits((3, 4, 2), torch.float64), _labels((3, 4, 2))
    ops = _torch_ops
    return [
        (ops.cross_entropy_op, (x, y, "mean", True, w, 1, 0.1, None, 0.0, None)),
        (ops.cross_entropy_op, (x3, y3, "none", True, None, -100, 0.0, None, 1e-2, 3.0)),
        (ops.cross_entropy_op, (x, t.softmax(1), "sum", True, None, -100, 0.2, None, 0.0, None)),
        (ops.nll_loss_op, (x.log_softmax(1), y, "mean", True, w, 1)),
        (ops.softmax_focal_loss_op, (x, y, "none", True, 2.0, w, 1)),
        (ops.binary_cross_entropy_op, (t.clamp(0.05, 0.95), t, "mean", True, None)),
        (ops.binary_cross_entropy_with_logits_op, (x, t, "none", True, w, w)),
        (ops.sigmoid_focal_loss_op, (x, t, "sum", True, 0.25, 2.0)),
    ]


@pytest.mark.parametrize("case", range(8))
def test_opcheck(case):
    op, args = _op_cases()[case]
    args = (args[0].clone().requires_grad_(),) + args[1:]
    torch.library.opcheck(op, args)


@pytest.mark.parametrize("case", range(8))
def test_gradcheck(case):
    op, args = _op_cases()[case]
    rest = args[1:]
    x = args[0].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: op(x, *rest)[0], (x,))
    # the public path (eager fast path) too
    if case == 0:
        y = rest[0]
        assert torch.autograd.gradcheck(lambda x: xft.cross_entropy(x, y, reduction="none"), (x,))


def test_torch_compile_fullgraph():
    torch._dynamo.reset()
    model = torch.nn.Linear(6, 5).double()
    x = torch.randn(8, 6, dtype=torch.float64, generator=_gen(0))
    y = _labels((8, 5))
    t = torch.rand(8, 5, dtype=torch.float64, generator=_gen(1))

    def step(loss_ce, loss_bce):
        def f(x, y, t):
            z = model(x)
            return loss_ce(z, y, label_smoothing=0.1) + loss_bce(z, t, reduction="sum")
        return f

    compiled = torch.compile(step(xft.cross_entropy, xft.binary_cross_entropy_with_logits),
                             fullgraph=True)
    reference = step(F.cross_entropy, F.binary_cross_entropy_with_logits)
    a = compiled(x, y, t)
    ga = torch.autograd.grad(a, list(model.parameters()))
    b = reference(x, y, t)
    gb = torch.autograd.grad(b, list(model.parameters()))
    torch.testing.assert_close(a, b)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v)


# --- torch's own OpInfo sample inputs ---------------------------------------

OPINFO = {
    "nn.functional.cross_entropy": xft.cross_entropy,
    "nn.functional.nll_loss": xft.nll_loss,
    "nn.functional.binary_cross_entropy": xft.binary_cross_entropy,
    "nn.functional.binary_cross_entropy_with_logits": xft.binary_cross_entropy_with_logits,
}


def _opinfos():
    pytest.importorskip("expecttest")   # torch.testing._internal needs it
    from torch.testing._internal.common_methods_invocations import op_db
    return [op for op in op_db if op.name in OPINFO]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("detach_targets", [False, True])
def test_opinfo_samples(dtype, detach_targets):
    """Every sample input torch tests these functions with, through the
    adapter: as given (targets that require grad go to torch), and with the
    targets detached (the kernels run)."""
    n_checked = 0
    for opinfo in _opinfos():
        ours = OPINFO[opinfo.name]
        for sample in opinfo.sample_inputs("cpu", dtype, requires_grad=True):
            args = [a.detach() if detach_targets and isinstance(a, torch.Tensor) else a
                    for a in sample.args]
            kwargs = sample.kwargs
            a = ours(sample.input, *args, **kwargs)
            b = opinfo.op(sample.input, *args, **kwargs)
            torch.testing.assert_close(a, b, **TOL[dtype], equal_nan=True)
            upstream = torch.ones_like(b) * 0.5 + torch.rand(b.shape, generator=_gen(0), dtype=dtype)
            ga, = torch.autograd.grad(a, sample.input, upstream)
            gb, = torch.autograd.grad(b, sample.input, upstream)
            torch.testing.assert_close(ga, gb, **TOL[dtype], equal_nan=True)
            n_checked += 1
    assert n_checked > 100


# --- the fused linear head ---------------------------------------------------

needs_linear = pytest.mark.skipif(
    not _torch_ops.has_linear_kernel(),
    reason="this xentfast build has no linear_cross_entropy (issue #10, branch 'linear'); "
           "xft.linear_cross_entropy runs the unfused torch formula meanwhile")


def _unfused_linear(x, W, y, linear_bias=None, weight=None, reduction="mean",
                    ignore_index=-100, label_smoothing=0.0):
    logits = F.linear(x, W, linear_bias)
    loss = F.cross_entropy(logits.reshape(-1, W.shape[0]), y.reshape(-1), weight,
                           ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=label_smoothing)
    return loss.reshape(y.shape) if reduction == "none" else loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("lead", [(12,), (3, 4)])
def test_linear_cross_entropy(dtype, reduction, bias, lead):
    """Against the unfused torch computation (the kernel where built in, the
    torch formula otherwise): values and gradients for input, weight, bias."""
    d, v = 6, 9
    x = torch.randn(lead + (d,), generator=_gen(0), dtype=dtype).requires_grad_()
    W = torch.randn((v, d), generator=_gen(1), dtype=dtype).requires_grad_()
    b = torch.randn(v, generator=_gen(2), dtype=dtype).requires_grad_() if bias else None
    y = torch.randint(0, v, lead, generator=_gen(3))
    y.view(-1)[::4] = -100
    w = torch.rand(v, generator=_gen(4), dtype=dtype) + 0.2
    inputs = (x, W) + ((b,) if bias else ())
    kw = dict(weight=w, reduction=reduction, label_smoothing=0.1)
    _compare(lambda x, W, b=None: xft.linear_cross_entropy(x, W, y, linear_bias=b, chunk_size=5,
                                                           **kw),
             lambda x, W, b=None: _unfused_linear(x, W, y, b, **kw), inputs, dtype)


@needs_linear
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_linear_opcheck_and_gradcheck(reduction):
    x = torch.randn(5, 4, generator=_gen(0), dtype=torch.float64).requires_grad_()
    W = torch.randn(7, 4, generator=_gen(1), dtype=torch.float64).requires_grad_()
    b = torch.randn(7, generator=_gen(2), dtype=torch.float64).requires_grad_()
    y = torch.randint(0, 7, (5,), generator=_gen(3))
    args = (x, W, y, reduction, reduction != "none", b, None, -100, 0.1, 1e-2, None, 2)
    torch.library.opcheck(_torch_ops.linear_cross_entropy_op, args)
    assert torch.autograd.gradcheck(
        lambda x, W, b: xft.linear_cross_entropy(x, W, y, linear_bias=b, reduction=reduction,
                                                 z_loss=1e-2, chunk_size=2), (x, W, b))


def test_linear_cross_entropy_extras_match_plain_torch():
    x = torch.randn(8, 5, generator=_gen(0), dtype=torch.float64).requires_grad_()
    W = torch.randn(6, 5, generator=_gen(1), dtype=torch.float64).requires_grad_()
    y = torch.randint(0, 6, (8,), generator=_gen(3))
    kw = dict(z_loss=1e-2, softcap=3.0, reduction="sum")
    _compare(lambda x, W: xft.linear_cross_entropy(x, W, y, **kw),
             lambda x, W: _torch_reference.cross_entropy(F.linear(x, W), y, **kw),
             (x, W), torch.float64)


# --- packaging and processes ---------------------------------------------------

def _python(code, timeout=120, env=None):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_import_xentfast_does_not_import_torch():
    r = _python("""
        import sys, xentfast
        xentfast.cross_entropy([[1.0, 2.0]], [0])
        assert "torch" not in sys.modules, "xentfast imported torch"
    """)
    assert r.returncode == 0, r.stderr


def test_import_without_torch_says_how_to_install():
    r = _python("""
        import sys
        sys.modules["torch"] = None      # as if torch were not installed
        try:
            import xentfast.torch
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("no ImportError")
    """)
    assert r.returncode == 0, r.stderr
    assert "pip install xentfast[torch]" in r.stdout


def test_dataloader_fork_workers_do_not_hang():
    """GNU OpenMP is not fork-safe: a forked child that enters a parallel
    region its parent's thread pool served can hang.  Losses computed in
    DataLoader workers (fork start method) after the parent used the kernels
    with several threads must finish."""
    r = _python("""
        import torch, xentfast, xentfast.torch as xft
        torch.set_num_threads(2)
        x = torch.randn(4096, 1000)
        y = torch.randint(0, 1000, (4096,))
        for _ in range(3):                      # parent: warm both thread pools
            xft.cross_entropy(x, y); x.sum()

        class Losses(torch.utils.data.Dataset):
            def __len__(self):
                return 8
            def __getitem__(self, i):
                g = torch.Generator().manual_seed(i)
                z = torch.randn(2048, 1000, generator=g)
                return xft.cross_entropy(z, torch.randint(0, 1000, (2048,), generator=g))

        loader = torch.utils.data.DataLoader(Losses(), batch_size=2, num_workers=2,
                                             multiprocessing_context="fork")
        got = torch.cat(list(loader))
        want = torch.stack([Losses()[i] for i in range(8)])   # in the parent
        assert torch.allclose(got, want), (got, want)
        print("ok")
    """, timeout=180)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("ok")


def test_forked_child_with_torch_threads_does_not_hang():
    """A plain os.fork child that keeps torch's two threads: the adapter runs
    its kernels on one thread there (GNU OpenMP's pool did not survive the
    fork), so the call finishes."""
    r = _python("""
        import os, torch, xentfast.torch as xft
        torch.set_num_threads(2)
        x = torch.randn(4096, 1000)
        y = torch.randint(0, 1000, (4096,))
        parent = xft.cross_entropy(x, y)          # the parent's pool is warm
        pid = os.fork()
        if pid == 0:
            os._exit(0 if torch.equal(xft.cross_entropy(x, y), parent) else 3)
        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status))
    """, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "child exit 0" in r.stdout
