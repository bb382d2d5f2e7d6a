"""cross_entropy against torch float64 autograd, NumPy formulas and finite
differences.

The main oracle is ``ref_ce``: torch's own ``cross_entropy`` where torch has
the feature, and a torch autograd expression of the documented formula where
it does not (``sample_weight``, ``z_loss``, ``softcap``).
"""

import numpy as np
import pytest

import xentfast as xf
from grids import LABEL_CASES, REDUCTIONS, dtype_id

torch = pytest.importorskip("torch")
F = torch.nn.functional



# ----------------------------------------------------------------- references

def ref_ce(x, target, *, weight=None, ignore_index=-100, reduction="mean",
           label_smoothing=0.0, sample_weight=None, z_loss=0.0, softcap=None,
           axis=-1):
    """float64 torch autograd reference: returns (loss, grad) as NumPy."""
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    z = xt if softcap is None else softcap * torch.tanh(xt / softcap)
    z = torch.movedim(z, axis, 1)
    tgt = np.asarray(target)
    prob = tgt.dtype.kind == "f"
    if prob:
        tt = torch.movedim(torch.tensor(tgt.astype(np.float64)), axis, 1)
    else:
        tt = torch.tensor(tgt.astype(np.int64))
    wt = None if weight is None else torch.tensor(
        np.asarray(weight, dtype=np.float64))
    kw = dict(weight=wt, label_smoothing=label_smoothing)
    if not prob:
        kw["ignore_index"] = ignore_index
    if sample_weight is None and z_loss == 0.0:
        loss = F.cross_entropy(z, tt, reduction=reduction, **kw)
    else:
        per = F.cross_entropy(z, tt, reduction="none", **kw)
        sw = (torch.ones_like(per) if sample_weight is None else
              torch.tensor(np.asarray(sample_weight, dtype=np.float64)))
        if prob:
            keep = torch.ones_like(per, dtype=torch.bool)
            denom = sw
        else:
            keep = tt != ignore_index
            wy = (torch.ones_like(per) if wt is None
                  else wt[torch.where(keep, tt, 0)])
            denom = torch.where(keep, sw * wy, 0.0)
        lse = torch.logsumexp(z, dim=1)
        per = sw * per + sw * torch.where(keep, z_loss * lse**2, 0.0)
        loss = per if reduction == "none" else per.sum()
        if reduction == "mean":
            loss = loss / denom.sum()
    (loss.sum() if reduction == "none" else loss).backward()
    return loss.detach().numpy(), xt.grad.numpy()


def np_ce(x, y, *, weight=None, sample_weight=None, z_loss=0.0,
          ignore_index=-100, reduction="mean"):
    """Plain float64 NumPy formula for (N, C) logits and integer labels."""
    x = np.asarray(x, dtype=np.float64)
    n, c = x.shape
    m = x.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(x - m).sum(axis=1))
    p = np.exp(x - lse[:, None])
    keep = y != ignore_index
    yc = np.where(keep, y, 0).astype(np.int64)
    w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    wy = w[yc] * keep
    sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight)
    onehot = np.eye(c)[yc]
    per = sw * (wy * (lse - x[np.arange(n), yc]) + z_loss * keep * lse**2)
    g = sw[:, None] * (wy[:, None] * (p - onehot)
                       + 2 * z_loss * (keep * lse)[:, None] * p)
    if reduction == "none":
        return per, g
    if reduction == "sum":
        return per.sum(), g
    d = np.sum(sw * wy)
    return per.sum() / d, g / d


def check(loss, grad, ref, x, reduction, h, *, cdt=None, gscale=None):
    """Compare (loss, grad) from xentfast with a reference pair.

    ``gscale`` is the natural size of gradient entries when it exceeds
    max |grad| (e.g. weight * sample_weight when every row is confident:
    p - 1 then cancels to ~eps * weight in any float32 code).
    """
    cdt = h.compute_dtype(np.asarray(x)) if cdt is None else cdt
    rloss, rgrad = ref
    if reduction == "none":
        assert isinstance(loss, np.ndarray) and loss.dtype == cdt
    else:
        h.assert_reduced_scalar(loss, cdt)
    h.assert_close(loss, rloss, cdt, what="loss")
    assert isinstance(grad, np.ndarray) and grad.dtype == cdt
    assert grad.shape == np.shape(x)
    if gscale is not None:
        gscale = max(gscale, np.max(np.abs(rgrad[np.isfinite(rgrad)]),
                                    initial=0))
    h.assert_close(grad, rgrad, cdt, what="grad", scale=gscale)


def labels(rng, shape, c, dtype=np.int64):
    return rng.integers(0, c, size=shape).astype(dtype)


def probs(rng, shape, axis=-1):
    t = rng.random(shape) ** 3
    return t / t.sum(axis=axis, keepdims=True)


def logits(rng, shape, dtype=np.float64):
    return (2.5 * rng.standard_normal(shape)).astype(dtype)


# ------------------------------------------------------- sizes and widths

@pytest.mark.parametrize("options", ["plain", "weighted", "smoothed"])
@pytest.mark.parametrize("n", [1, 5, 23])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("c", [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 256, 257,
                               127, 517])
def test_class_count_sweep(c, dtype, n, options, rng, h):
    # Every vector-width remainder of classes and of rows (groups of 16 rows
    # up to 256 classes, then one row at a time); target and max in
    # the tail; in place.  Options switch between kernel variants.
    x = logits(rng, (n, c), dtype)
    y = labels(rng, (n,), c)
    y[0] = c - 1
    # Max in the tail; not so confident that torch's own x - lse (our
    # reference) loses the loss's digits to cancellation.
    x[0, -1] = x[0].max() + 1.5
    y[-1] = -100 if n > 1 else y[-1]
    t = probs(rng, (n, c)).astype(dtype)
    kw = dict(reduction="sum")
    if options != "plain":
        kw.update(weight=rng.random(c) + 0.5, z_loss=1e-3,
                  sample_weight=rng.random(n) + 0.5)
    if options == "smoothed":
        kw.update(label_smoothing=0.1)
    # 'sum': a gradient entry's natural size is weight * sample_weight.
    gscale = (np.max(kw.get("weight", 1.0))
              * np.max(kw.get("sample_weight", 1.0)))
    for tgt in (y, t):
        ref = ref_ce(x, tgt, **kw)
        check(*xf.cross_entropy(x, tgt, return_grad=True, **kw), ref, x,
              "sum", h, gscale=gscale)
        xx = x.copy()
        check(*xf.cross_entropy(xx, tgt, return_grad=True, grad_out=xx,
                                **kw), ref, x, "sum", h, gscale=gscale)


@pytest.mark.parametrize("kind", ["int", "prob"])
@pytest.mark.parametrize("shape", [(3000, 517), (4, 70001)],
                         ids=["many_rows", "many_classes"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_large_inputs_threaded_path(dtype, shape, kind, rng, h):
    x = logits(rng, shape, dtype)
    t = (labels(rng, shape[:1], shape[1]) if kind == "int"
         else probs(rng, shape).astype(dtype))
    kw = dict(weight=rng.random(shape[1]) + 0.5, label_smoothing=0.05)
    with xf.num_threads(2):
        res = xf.cross_entropy(x, t, return_grad=True, **kw)
    check(*res, ref_ce(x, t, **kw), x, "mean", h)


# ------------------------------------------------------------- integer labels

@pytest.mark.parametrize("weighted", [False, True], ids=["w0", "w1"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ldtype,ignore", LABEL_CASES)
def test_int_labels_vs_torch(ldtype, reduction, weighted, ignore, rng, h):
    n, c = 9, 5
    x = logits(rng, (n, c))
    y = labels(rng, (n,), c)
    kw = {}
    if ignore == "default":
        y[[1, 5]] = -100
    elif ignore == "custom":
        y[[0, 6]] = 3
        kw["ignore_index"] = 3
    y = y.astype(ldtype)
    if weighted:
        kw["weight"] = rng.random(c) + 0.1
    loss = xf.cross_entropy(x, y, reduction=reduction, **kw)
    loss2, grad = xf.cross_entropy(x, y, reduction=reduction,
                                   return_grad=True, **kw)
    ref = ref_ce(x, y, reduction=reduction, **kw)
    check(loss2, grad, ref, x, reduction, h)
    h.assert_close(loss, ref[0], np.float64)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16,
                                   np.int32], ids=dtype_id)
def test_logits_dtype_and_layout(dtype, reduction, layout, rng, h):
    n, c = 6, 7
    if np.dtype(dtype).kind == "i":
        x = rng.integers(-5, 6, size=(n, c)).astype(dtype)
    else:
        x = logits(rng, (n, c), dtype)
    y = labels(rng, (n,), c)
    y[2] = -100
    xin = layout(x)
    yin = layout(y)
    before = np.array(xin, copy=True)
    loss, grad = xf.cross_entropy(xin, yin, reduction=reduction,
                                  return_grad=True)
    ref = ref_ce(np.asarray(xin), y, reduction=reduction)
    check(loss, grad, ref, xin, reduction, h)
    np.testing.assert_array_equal(np.asarray(xin), before)
    np.testing.assert_array_equal(grad[2], 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["int", "prob"])
@pytest.mark.parametrize("shape,axis", [((3, 4, 6), -1), ((3, 4, 6), 2),
                                        ((4, 5, 3, 2), 1), ((5, 7), 0),
                                        ((2, 3, 4, 5), 0)],
                         ids=["BTC", "BTC_ax2", "NCd1d2", "CN", "C_first4d"])
def test_class_axis(shape, axis, kind, reduction, dtype, rng, h):
    x = logits(rng, shape, dtype)
    c = shape[axis]
    rows = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    if kind == "int":
        t = labels(rng, rows, c)
        t.reshape(-1)[[0, 3]] = -100
    else:
        t = probs(rng, shape, axis=axis)
    loss, grad = xf.cross_entropy(x, t, axis=axis, reduction=reduction,
                                  return_grad=True)
    ref = ref_ce(x, t, axis=axis, reduction=reduction)
    check(loss, grad, ref, x, reduction, h)
    if reduction == "none":
        assert loss.shape == rows


# ------------------------------------------------------ probability targets

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16],
                         ids=dtype_id)
@pytest.mark.parametrize("weighted", [False, True], ids=["w0", "w1"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_prob_targets(reduction, weighted, dtype, rng, h):
    n, c = 8, 6
    x = logits(rng, (n, c), dtype)
    t = probs(rng, (n, c)).astype(dtype)
    t[3] = np.eye(c)[2]          # a one-hot row
    t[4, :] = 0.0                # a zero row contributes 0
    kw = {"weight": rng.random(c) + 0.2} if weighted else {}
    loss, grad = xf.cross_entropy(x, t, reduction=reduction,
                                  return_grad=True, **kw)
    check(loss, grad, ref_ce(x, t, reduction=reduction, **kw), x,
          reduction, h)


@pytest.mark.parametrize("ignore_index", [-100, -1])
def test_prob_targets_negative_ignore_index_has_no_effect(ignore_index, rng,
                                                          h):
    x = logits(rng, (5, 4))
    t = probs(rng, (5, 4))
    a = xf.cross_entropy(x, t, ignore_index=ignore_index, return_grad=True)
    check(*a, ref_ce(x, t), x, "mean", h)


def test_prob_target_zero_at_neg_inf_logit(h):
    x = np.array([[-np.inf, 1.0, 2.0], [0.5, -np.inf, -1.0]])
    t = np.array([[0.0, 0.3, 0.7], [0.6, 0.0, 0.4]])
    loss, grad = xf.cross_entropy(x, t, reduction="none", return_grad=True)
    xs = [x[0, 1:], x[1, [0, 2]]]
    ts = [t[0, 1:], t[1, [0, 2]]]
    for i, (xi, ti) in enumerate(zip(xs, ts)):
        lp = xi - np.log(np.exp(xi).sum())
        np.testing.assert_allclose(loss[i], -(ti * lp).sum(), rtol=1e-13)
    assert grad[0, 0] == 0.0 and grad[1, 1] == 0.0
    np.testing.assert_allclose(grad[0, 1:], np.exp(xs[0]) / np.exp(xs[0]).sum()
                               - ts[0], rtol=1e-12, atol=1e-15)
    # A positive target probability on a -inf logit is an infinite loss.
    t2 = np.array([[0.1, 0.2, 0.7]])
    assert xf.cross_entropy(x[:1], t2, reduction="none")[0] == np.inf


# ---------------------------------------------------------- label smoothing

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("kind", ["int", "prob"])
@pytest.mark.parametrize("weighted", [False, True], ids=["w0", "w1"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ls", [0.0, 0.1, 0.5, 1.0])
def test_label_smoothing(ls, reduction, weighted, kind, dtype, rng, h):
    n, c = 7, 5
    x = logits(rng, (n, c), dtype)
    if kind == "int":
        t = labels(rng, (n,), c)
        t[1] = -100
    else:
        t = probs(rng, (n, c)).astype(dtype)
    kw = {"weight": rng.random(c) + 0.2} if weighted else {}
    res = xf.cross_entropy(x, t, label_smoothing=ls, reduction=reduction,
                           return_grad=True, **kw)
    check(*res, ref_ce(x, t, label_smoothing=ls, reduction=reduction, **kw),
          x, reduction, h)


# ------------------------------------------------------------ sample_weight

def test_reference_self_consistency(rng):
    # The general torch expression (used for sample_weight / z_loss) must
    # reduce to torch's own cross_entropy when those features are off.
    x = logits(rng, (6, 4))
    y = labels(rng, (6,), 4)
    y[0] = -100
    w = rng.random(4) + 0.5
    for red in REDUCTIONS:
        a = ref_ce(x, y, weight=w, reduction=red, label_smoothing=0.2)
        b = ref_ce(x, y, weight=w, reduction=red, label_smoothing=0.2,
                   sample_weight=np.ones(6))
        np.testing.assert_allclose(a[0], b[0], rtol=1e-14)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["w0", "w1"])
def test_sample_weight_numpy_formula(weighted, reduction, rng, h):
    n, c = 10, 4
    x = logits(rng, (n, c))
    y = labels(rng, (n,), c)
    y[[2, 7]] = -100
    sw = rng.random(n) * 3
    w = rng.random(c) + 0.3 if weighted else None
    res = xf.cross_entropy(x, y, weight=w, sample_weight=sw,
                           reduction=reduction, return_grad=True)
    check(*res, np_ce(x, y, weight=w, sample_weight=sw, reduction=reduction),
          x, reduction, h)
    if reduction == "mean" and not weighted:
        per = xf.cross_entropy(x, y, reduction="none")
        keep = y != -100
        np.testing.assert_allclose(res[0], np.average(per[keep],
                                                      weights=sw[keep]),
                                   rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("kind", ["int", "prob"])
@pytest.mark.parametrize("weighted", [False, True], ids=["w0", "w1"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sample_weight_vs_torch_expression(reduction, weighted, kind, dtype,
                                           rng, h):
    shape = (3, 4, 5)
    x = logits(rng, shape, dtype)
    if kind == "int":
        t = labels(rng, shape[:-1], 5)
        t[0, 1] = -100
    else:
        t = probs(rng, shape).astype(dtype)
    sw = (rng.random(shape[:-1]) * 2).astype(dtype)
    kw = {"weight": rng.random(5) + 0.2} if weighted else {}
    res = xf.cross_entropy(x, t, sample_weight=sw, reduction=reduction,
                           label_smoothing=0.05, return_grad=True, **kw)
    check(*res, ref_ce(x, t, sample_weight=sw, reduction=reduction,
                       label_smoothing=0.05, **kw), x, reduction, h)


def test_prob_targets_sample_weight_denominator(rng):
    x = logits(rng, (6, 3))
    t = probs(rng, (6, 3))
    sw = rng.random(6) + 0.1
    w = rng.random(3) + 0.5
    per = xf.cross_entropy(x, t, weight=w, reduction="none")
    mean = xf.cross_entropy(x, t, weight=w, sample_weight=sw)
    np.testing.assert_allclose(mean, np.sum(sw * per) / np.sum(sw),
                               rtol=1e-12)


# ------------------------------------------------------------------- z_loss

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["w0", "w1"])
@pytest.mark.parametrize("with_sw", [False, True], ids=["sw0", "sw1"])
def test_z_loss_numpy_formula_and_fd(with_sw, weighted, reduction, rng, h):
    n, c = 6, 4
    x = logits(rng, (n, c)) + 3.0      # lse far from 0: z-term matters
    y = labels(rng, (n,), c)
    y[4] = -100
    sw = rng.random(n) + 0.5 if with_sw else None
    w = rng.random(c) + 0.3 if weighted else None
    z = 1e-2
    loss, grad = xf.cross_entropy(x, y, weight=w, sample_weight=sw, z_loss=z,
                                  reduction=reduction, return_grad=True)
    check(loss, grad, np_ce(x, y, weight=w, sample_weight=sw, z_loss=z,
                            reduction=reduction), x, reduction, h)
    base = xf.cross_entropy(x, y, weight=w, sample_weight=sw,
                            reduction=reduction)
    assert np.all(np.asarray(loss) > np.asarray(base) - 1e-15)

    def f(xx):
        return float(np.sum(xf.cross_entropy(
            xx, y, weight=w, sample_weight=sw, z_loss=z,
            reduction=reduction)))

    fd = h.finite_diff(f, x)
    np.testing.assert_allclose(grad, fd, rtol=1e-6,
                               atol=1e-7 * np.abs(fd).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("kind", ["int", "prob"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_z_loss_vs_torch_expression(reduction, kind, dtype, rng, h):
    shape = (4, 3, 6)
    x = logits(rng, shape, dtype) - 2.0
    if kind == "int":
        t = labels(rng, shape[:-1], 6)
        t[1, 2] = -100
    else:
        t = probs(rng, shape).astype(dtype)
    sw = rng.random(shape[:-1]) + 0.1
    w = rng.random(6) + 0.2
    kw = dict(weight=w, sample_weight=sw, z_loss=3e-3, reduction=reduction,
              label_smoothing=0.1)
    res = xf.cross_entropy(x, t, return_grad=True, **kw)
    check(*res, ref_ce(x, t, **kw), x, reduction, h)


# ------------------------------------------------------------------ softcap

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("kind", ["int", "prob"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("cap", [0.5, 3.0, 30.0])
def test_softcap_vs_torch(cap, reduction, kind, dtype, rng, h):
    n, c = 7, 5
    x = (10 * rng.standard_normal((n, c))).astype(dtype)
    if kind == "int":
        t = labels(rng, (n,), c)
        t[3] = -100
    else:
        t = probs(rng, (n, c)).astype(dtype)
    kw = dict(softcap=cap, reduction=reduction, z_loss=1e-3,
              label_smoothing=0.1, weight=rng.random(c) + 0.5)
    res = xf.cross_entropy(x, t, return_grad=True, **kw)
    check(*res, ref_ce(x, t, **kw), x, reduction, h)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_softcap_gradient_near_saturation(dtype, h):
    # Where tanh(x / s) is close to +-1 the cap's derivative 1 - tanh^2 is
    # small; it must keep its relative accuracy (no cancellation).
    x = np.array([[3.1, 0.0, -1.0], [-2.7, 1.0, 0.2], [4.0, -4.0, 0.1]],
                 dtype=dtype)
    y = np.array([1, 2, 2])
    res = xf.cross_entropy(x, y, softcap=0.5, reduction="sum",
                           return_grad=True)
    rl, rg = ref_ce(x, y, softcap=0.5, reduction="sum")
    h.assert_close(res[0], rl, dtype)
    # torch's own 1 - tanh^2 loses ~1e-11 here: float64 checks to 1e-9.
    rtol = 1e-5 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(res[1], rg, rtol=rtol, atol=0)


def test_softcap_finite_differences(rng, h):
    x = 4 * rng.standard_normal((4, 3))
    y = labels(rng, (4,), 3)
    loss, grad = xf.cross_entropy(x, y, softcap=2.0, return_grad=True)
    fd = h.finite_diff(lambda xx: float(xf.cross_entropy(xx, y, softcap=2.0)),
                       x)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)
    # The cap really is applied: huge logits behave like logits of size s.
    big = np.array([[1e6, 0.0, -1e6]])
    capped = xf.cross_entropy(big, np.array([2]), softcap=2.0)
    np.testing.assert_allclose(capped, np.log(1 + np.exp(2) + np.exp(4)),
                               rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["int", "prob"])
def test_every_option_finite_differences(kind, reduction, rng, h):
    # The gradient is the derivative of the returned loss: checked with no
    # reference implementation at all, every option on, class axis 1.
    x = 2 * rng.standard_normal((3, 4, 5))
    rows = (3, 5)
    if kind == "int":
        t = labels(rng, rows, 4)
        t[0, 2] = -100
    else:
        t = probs(rng, x.shape, axis=1)
    kw = dict(weight=rng.random(4) + 0.5, sample_weight=rng.random(rows) + .2,
              label_smoothing=0.15, z_loss=2e-2, softcap=3.0, axis=1,
              reduction=reduction)
    _, grad = xf.cross_entropy(x, t, return_grad=True, **kw)
    fd = h.finite_diff(lambda xx: float(np.sum(xf.cross_entropy(xx, t, **kw))),
                       x)
    np.testing.assert_allclose(grad, fd, rtol=1e-6,
                               atol=1e-8 * np.abs(fd).max())


# ---------------------------------------------------------- gradient output

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16],
                         ids=dtype_id)
def test_grad_out_preallocated(dtype, reduction, rng, h):
    x = logits(rng, (3, 4, 5), dtype)
    y = labels(rng, (3, 4), 5)
    y[1, 1] = -100
    cdt = h.compute_dtype(x)
    buf = np.full(x.shape, np.nan, dtype=cdt)   # garbage must be overwritten
    loss, grad = xf.cross_entropy(x, y, reduction=reduction,
                                  return_grad=True, grad_out=buf)
    assert grad is buf
    check(loss, grad, ref_ce(x, y, reduction=reduction), x, reduction, h,
          cdt=cdt)
    np.testing.assert_array_equal(buf[1, 1], 0.0)


@pytest.mark.parametrize("kind", ["int", "prob"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_grad_out_is_logits(dtype, reduction, kind, rng, h):
    x = logits(rng, (6, 5), dtype)
    if kind == "int":
        t = labels(rng, (6,), 5)
        t[2] = -100
    else:
        t = probs(rng, (6, 5)).astype(dtype)
    kw = dict(reduction=reduction, label_smoothing=0.1, z_loss=1e-3,
              sample_weight=rng.random(6) + 0.5, weight=rng.random(5) + 0.5)
    ref = ref_ce(x.copy(), t, **kw)
    loss, grad = xf.cross_entropy(x, t, return_grad=True, grad_out=x, **kw)
    assert grad is x
    check(loss, grad, ref, x, reduction, h)


def test_inputs_never_modified(rng):
    x = logits(rng, (5, 4))
    y = labels(rng, (5,), 4)
    y[1] = -100
    w = rng.random(4) + 0.5
    sw = rng.random(5)
    t = probs(rng, (5, 4))
    copies = [a.copy() for a in (x, y, w, sw, t)]
    for red in REDUCTIONS:
        xf.cross_entropy(x, y, weight=w, sample_weight=sw, z_loss=1e-3,
                         softcap=5.0, label_smoothing=0.1, reduction=red,
                         return_grad=True)
        xf.cross_entropy(x, t, weight=w, sample_weight=sw, reduction=red,
                         return_grad=True)
    for a, b in zip((x, y, w, sw, t), copies):
        np.testing.assert_array_equal(a, b)


def test_array_likes_everywhere(rng, h):
    x = logits(rng, (5, 3))
    y = labels(rng, (5,), 3)
    w, sw = rng.random(3) + 0.5, rng.random(5) + 0.5
    kw = dict(reduction="sum", return_grad=True, z_loss=1e-3)
    a = xf.cross_entropy(x.tolist(), y.tolist(), weight=w.tolist(),
                         sample_weight=sw.tolist(), **kw)
    check(*a, ref_ce(x, y, weight=w, sample_weight=sw, reduction="sum",
                     z_loss=1e-3), x, "sum", h)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bool_logits_compute_in_float64(reduction, rng, h):
    x = rng.integers(0, 2, (6, 4)).astype(bool)
    y = labels(rng, (6,), 4)
    res = xf.cross_entropy(x, y, reduction=reduction, return_grad=True)
    check(*res, ref_ce(x.astype(np.float64), y, reduction=reduction), x,
          reduction, h)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("mode", ["buffer", "in_place"])
@pytest.mark.parametrize("shape,axis", [((3, 5, 2, 4), 1), ((6, 4), 0),
                                        ((2, 3, 5), -2)],
                         ids=["NCd1d2", "CN", "mid"])
def test_grad_out_with_class_axis(shape, axis, mode, reduction, rng, h):
    x = logits(rng, shape)
    c = shape[axis]
    rows = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    y = labels(rng, rows, c)
    y.reshape(-1)[0] = -100
    kw = dict(axis=axis, reduction=reduction, weight=rng.random(c) + 0.5,
              label_smoothing=0.1)
    ref = ref_ce(x.copy(), y, **kw)
    buf = np.full(shape, np.nan) if mode == "buffer" else x
    loss, grad = xf.cross_entropy(x, y, return_grad=True, grad_out=buf, **kw)
    assert grad is buf
    check(loss, grad, ref, x, reduction, h)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("kind", ["int", "prob"])
def test_float32_accuracy_on_many_rows(kind, reduction, rng, h):
    # Long reductions must not lose float32 accuracy (sums in double).
    x = logits(rng, (20000, 7), np.float32)
    t = labels(rng, (20000,), 7) if kind == "int" else probs(
        rng, (20000, 7)).astype(np.float32)
    res = xf.cross_entropy(x, t, reduction=reduction, return_grad=True)
    check(*res, ref_ce(x, t, reduction=reduction), x, reduction, h)


@pytest.mark.parametrize("kind", ["int", "prob"])
def test_nan_inf_rows_isolated_with_every_option(kind, rng, h):
    n, c = 6, 5
    x = logits(rng, (n, c))
    if kind == "int":
        t = labels(rng, (n,), c)
    else:
        t = probs(rng, (n, c))
    x[1, 2] = np.nan
    x[4, 0] = np.inf
    kw = dict(weight=rng.random(c) + 0.5, sample_weight=rng.random(n) + 0.5,
              z_loss=1e-2, label_smoothing=0.1)
    loss, grad = xf.cross_entropy(x, t, reduction="none", return_grad=True,
                                  **kw)
    for r in (1, 4):
        assert np.isnan(loss[r]) and np.all(np.isnan(grad[r])), r
    good = [0, 2, 3, 5]
    kw["sample_weight"] = kw["sample_weight"][good]
    rl, rg = ref_ce(x[good], t[good], reduction="none", **kw)
    h.assert_close(loss[good], rl, np.float64)
    h.assert_close(grad[good], rg, np.float64)


# ------------------------------------------------------ all rows ignored

@pytest.mark.parametrize("extra", [{}, {"sample_weight": np.ones(4)},
                                   {"z_loss": 1e-2},
                                   {"weight": np.arange(1.0, 4.0),
                                    "label_smoothing": 0.2}],
                         ids=["plain", "sw", "z", "w_ls"])
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_all_rows_ignored(ignore_index, extra, rng):
    x = logits(rng, (4, 3))
    y = np.full(4, ignore_index)
    loss, grad = xf.cross_entropy(x, y, ignore_index=ignore_index,
                                  return_grad=True, **extra)
    assert np.isnan(loss)
    np.testing.assert_array_equal(grad, 0.0)
    loss, grad = xf.cross_entropy(x, y, ignore_index=ignore_index,
                                  reduction="sum", return_grad=True, **extra)
    assert loss == 0.0
    np.testing.assert_array_equal(grad, 0.0)
    loss = xf.cross_entropy(x, y, ignore_index=ignore_index,
                            reduction="none", **extra)
    np.testing.assert_array_equal(loss, 0.0)


# ------------------------------------------------------ non-finite values

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_nonfinite_rows(dtype, rng, h):
    n, c = 10, 4
    x = logits(rng, (n, c), dtype)
    y = labels(rng, (n,), c)
    x[0, (y[0] + 1) % c] = -np.inf                # masked non-target: finite
    x[1, y[1]] = -np.inf                          # masked target: +inf
    x[2] = -np.inf                                # all masked: NaN
    x[3, 1] = np.nan                              # NaN row
    x[4, 2] = np.inf                              # +inf row
    x[5, 0], y[5] = np.nan, -100                  # ignored rows: 0
    x[6, 3], y[6] = np.inf, -100
    x[7], y[7] = -np.inf, -100
    loss, grad = xf.cross_entropy(x, y, reduction="none", return_grad=True)
    assert np.isfinite(loss[0]) and np.all(np.isfinite(grad[0]))
    assert loss[1] == np.inf
    assert np.isnan(loss[2])
    for r in (3, 4):
        assert np.isnan(loss[r]), r
        assert np.all(np.isnan(grad[r])), r
    np.testing.assert_array_equal(loss[5:8], 0.0)
    np.testing.assert_array_equal(grad[5:8], 0.0)
    good = [0, 8, 9]
    rl, rg = ref_ce(x[good], y[good], reduction="none")
    h.assert_close(loss[good], rl, dtype)
    h.assert_close(grad[good], rg, dtype)

    # Ignored non-finite rows leave every reduction finite and unchanged.
    keep = [0, 5, 6, 7, 8, 9]
    for red in ("mean", "sum"):
        loss, grad = xf.cross_entropy(x[keep], y[keep], reduction=red,
                                      return_grad=True)
        rl, rg = ref_ce(x[good], y[good], reduction=red)
        h.assert_close(loss, rl, dtype)
        h.assert_close(grad[[0, 4, 5]], rg, dtype)
        np.testing.assert_array_equal(grad[1:4], 0.0)


def test_nan_row_does_not_leak_into_mean_grad(rng, h):
    x = logits(rng, (5, 3))
    y = labels(rng, (5,), 3)
    x[2, 0] = np.nan
    loss, grad = xf.cross_entropy(x, y, return_grad=True)
    assert np.isnan(loss)
    assert np.all(np.isnan(grad[2]))
    others = [0, 1, 3, 4]
    _, rg = ref_ce(x[others], y[others], reduction="sum")
    h.assert_close(grad[others], rg / 5, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_huge_logits_and_confident_rows(dtype, h):
    x = np.array([[1e30, -1e30, 0.0], [-1e30, 1e30, 1e30],
                  [0.0, -40.0, -1e30]], dtype=dtype)
    y = np.array([0, 2, 0])
    loss, grad = xf.cross_entropy(x, y, reduction="none", return_grad=True)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    rl, rg = ref_ce(x, y, reduction="none")
    h.assert_close(grad, rg, dtype)
    np.testing.assert_allclose(loss[:2], rl[:2], rtol=1e-6, atol=0)
    # The confident row keeps its tiny loss instead of rounding to 0.
    np.testing.assert_allclose(float(loss[2]), 4.248354255291589e-18,
                               rtol=1e-3)


# --------------------------------------------------------------- properties

try:
    from hypothesis import given, settings, strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:  # pragma: no cover - the property tests need hypothesis
    hnp = None

if hnp is not None:
    @st.composite
    def problems(draw):
        n = draw(st.integers(1, 8))
        c = draw(st.integers(1, 7))
        x = draw(hnp.arrays(np.float64, (n, c),
                            elements=st.floats(-30, 30, allow_nan=False)))
        y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
        red = draw(st.sampled_from(REDUCTIONS))
        return x, y, red

    @settings(max_examples=50, deadline=None)
    @given(p=problems())
    def test_prop_grad_rows_sum_to_zero(p):
        x, y, red = p
        _, g = xf.cross_entropy(x, y, reduction=red, return_grad=True)
        np.testing.assert_allclose(g.sum(axis=1), 0.0, atol=1e-14)
        assert np.all(g[np.arange(len(y)), y] <= 0)

    @settings(max_examples=50, deadline=None)
    @given(p=problems(), ls=st.floats(0, 1))
    def test_prop_loss_nonnegative(p, ls):
        x, y, red = p
        loss = xf.cross_entropy(x, y, reduction=red, label_smoothing=ls)
        assert np.all(np.asarray(loss) >= 0)

    @settings(max_examples=50, deadline=None)
    @given(p=problems(), c=st.floats(-100, 100))
    def test_prop_row_shift_invariance(p, c):
        x, y, red = p
        shift = c * np.linspace(-1, 1, x.shape[0])[:, None]
        a, ga = xf.cross_entropy(x, y, reduction=red, return_grad=True)
        b, gb = xf.cross_entropy(x + shift, y, reduction=red,
                                 return_grad=True)
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(ga, gb, rtol=1e-8, atol=1e-12)

    @st.composite
    def prob_problems(draw):
        n = draw(st.integers(1, 6))
        c = draw(st.integers(1, 6))
        x = draw(hnp.arrays(np.float64, (n, c),
                            elements=st.floats(-30, 30, allow_nan=False)))
        raw = draw(hnp.arrays(np.float64, (n, c),
                              elements=st.floats(0, 1, allow_nan=False)))
        raw[:, 0] += 1e-3                       # no all-zero rows
        return x, raw / raw.sum(axis=1, keepdims=True)

    @settings(max_examples=50, deadline=None)
    @given(p=prob_problems())
    def test_prop_gibbs_inequality_and_zero_sum_grad(p):
        # cross-entropy(t, softmax(x)) >= entropy(t), equal when p == t.
        x, t = p
        loss, g = xf.cross_entropy(x, t, reduction="none", return_grad=True)
        ent = -np.sum(np.where(t > 0, t * np.log(np.where(t > 0, t, 1)), 0),
                      axis=1)
        assert np.all(loss >= ent - 1e-12 * (1 + np.abs(ent)))
        np.testing.assert_allclose(g.sum(axis=1), 0.0, atol=1e-14)
