"""nll_loss against torch float64 autograd and a NumPy formula."""

import numpy as np
import pytest

import xentfast as xf
from grids import LABEL_CASES, REDUCTIONS, dtype_id

torch = pytest.importorskip("torch")
F = torch.nn.functional



def ref_nll(lp, y, *, weight=None, ignore_index=-100, reduction="mean",
            sample_weight=None, axis=-1):
    """float64 torch autograd reference: returns (loss, grad) as NumPy."""
    xt = torch.tensor(np.asarray(lp, dtype=np.float64), requires_grad=True)
    z = torch.movedim(xt, axis, 1)
    yt = torch.tensor(np.asarray(y).astype(np.int64))
    wt = None if weight is None else torch.tensor(
        np.asarray(weight, dtype=np.float64))
    kw = dict(weight=wt, ignore_index=ignore_index)
    if sample_weight is None:
        loss = F.nll_loss(z, yt, reduction=reduction, **kw)
    else:
        sw = torch.tensor(np.asarray(sample_weight, dtype=np.float64))
        per = sw * F.nll_loss(z, yt, reduction="none", **kw)
        keep = yt != ignore_index
        wy = torch.ones_like(per) if wt is None else wt[torch.where(keep, yt,
                                                                    0)]
        loss = per if reduction == "none" else per.sum()
        if reduction == "mean":
            loss = loss / torch.where(keep, sw * wy, 0.0).sum()
    (loss.sum() if reduction == "none" else loss).backward()
    return loss.detach().numpy(), xt.grad.numpy()


def check(loss, grad, ref, x, reduction, h, cdt=None):
    cdt = h.compute_dtype(np.asarray(x)) if cdt is None else cdt
    if reduction == "none":
        assert isinstance(loss, np.ndarray) and loss.dtype == cdt
    else:
        h.assert_reduced_scalar(loss, cdt)
    h.assert_close(loss, ref[0], cdt, what="loss")
    assert grad.dtype == cdt and grad.shape == np.shape(x)
    h.assert_close(grad, ref[1], cdt, what="grad")


def log_probs(rng, shape, dtype=np.float64, axis=-1):
    x = 2 * rng.standard_normal(shape)
    x = x - np.log(np.exp(x).sum(axis=axis, keepdims=True))
    return x.astype(dtype)


@pytest.mark.parametrize("weighted", [False, True], ids=["w0", "w1"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ldtype,ignore", LABEL_CASES)
def test_vs_torch(ldtype, reduction, weighted, ignore, rng, h):
    n, c = 9, 5
    lp = log_probs(rng, (n, c))
    y = rng.integers(0, c, n)
    kw = {}
    if ignore == "default":
        y[[2, 3]] = -100
    elif ignore == "custom":
        y[[0, 8]] = 4
        kw["ignore_index"] = 4
    y = y.astype(ldtype)
    if weighted:
        kw["weight"] = rng.random(c) + 0.1
    res = xf.nll_loss(lp, y, reduction=reduction, return_grad=True, **kw)
    ref = ref_nll(lp, y, reduction=reduction, **kw)
    check(*res, ref, lp, reduction, h)
    h.assert_close(xf.nll_loss(lp, y, reduction=reduction, **kw), ref[0],
                   np.float64)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16,
                                   np.int64], ids=dtype_id)
def test_dtype_and_layout(dtype, reduction, layout, rng, h):
    n, c = 6, 4
    if np.dtype(dtype).kind == "i":
        lp = rng.integers(-9, 1, size=(n, c)).astype(dtype)
    else:
        lp = log_probs(rng, (n, c), dtype)
    y = rng.integers(0, c, n)
    y[4] = -100
    lin, yin = layout(lp), layout(y)
    before = np.array(lin, copy=True)
    res = xf.nll_loss(lin, yin, reduction=reduction, return_grad=True)
    check(*res, ref_nll(np.asarray(lin), y, reduction=reduction), lin,
          reduction, h)
    np.testing.assert_array_equal(np.asarray(lin), before)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,axis", [((3, 4, 5), -1), ((4, 5, 3, 2), 1),
                                        ((5, 6), 0)],
                         ids=["BTC", "NCd1d2", "CN"])
def test_class_axis(shape, axis, reduction, rng, h):
    lp = log_probs(rng, shape, axis=axis)
    rows = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    y = rng.integers(0, shape[axis], rows)
    y.reshape(-1)[1] = -100
    w = rng.random(shape[axis]) + 0.5
    res = xf.nll_loss(lp, y, weight=w, axis=axis, reduction=reduction,
                      return_grad=True)
    check(*res, ref_nll(lp, y, weight=w, axis=axis, reduction=reduction), lp,
          reduction, h)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("weighted", [False, True], ids=["w0", "w1"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sample_weight(reduction, weighted, dtype, rng, h):
    n, c = 8, 3
    lp = log_probs(rng, (n, c), dtype)
    y = rng.integers(0, c, n)
    y[[0, 5]] = -100
    sw = rng.random(n) * 2
    w = rng.random(c) + 0.5 if weighted else None
    res = xf.nll_loss(lp, y, weight=w, sample_weight=sw, reduction=reduction,
                      return_grad=True)
    check(*res, ref_nll(lp, y, weight=w, sample_weight=sw,
                        reduction=reduction), lp, reduction, h)
    # Plain NumPy formula, independent of torch.
    keep = y != -100
    wy = (np.ones(c) if w is None else w)[np.where(keep, y, 0)] * keep
    per = -sw * wy * lp[np.arange(n), np.where(keep, y, 0)].astype(np.float64)
    expected = {"none": per, "sum": per.sum(),
                "mean": per.sum() / np.sum(sw * wy)}[reduction]
    h.assert_close(res[0], expected, dtype)


def test_reads_only_target_entries(rng, h):
    lp = log_probs(rng, (5, 4))
    y = np.array([0, 3, 1, 2, -100])
    lp[0, 1], lp[1, 0], lp[2, 3], lp[3, 0] = np.nan, np.inf, -np.inf, np.nan
    lp[4] = np.nan                                   # ignored row
    for red in REDUCTIONS:
        loss, grad = xf.nll_loss(lp, y, reduction=red, return_grad=True)
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
        check(loss, grad, ref_nll(np.nan_to_num(lp, posinf=0.0), y,
                                  reduction=red), lp, red, h)
        mask = np.zeros(lp.shape, bool)
        mask[np.arange(4), y[:4]] = True
        np.testing.assert_array_equal(grad[~mask], 0.0)


def test_target_entry_nonfinite():
    lp = np.log(np.full((3, 2), 0.5))
    lp[0, 1] = np.nan
    lp[1, 0] = -np.inf
    loss = xf.nll_loss(lp, np.array([1, 0, 0]), reduction="none")
    assert np.isnan(loss[0])
    assert loss[1] == np.inf
    np.testing.assert_allclose(loss[2], np.log(2), rtol=1e-15)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_grad_out(dtype, reduction, rng, h):
    lp = log_probs(rng, (4, 3, 5), dtype)
    y = rng.integers(0, 5, (4, 3))
    y[2, 2] = -100
    ref = ref_nll(lp, y, reduction=reduction)
    buf = np.full(lp.shape, np.nan, dtype)
    loss, grad = xf.nll_loss(lp, y, reduction=reduction, return_grad=True,
                             grad_out=buf)
    assert grad is buf
    check(loss, grad, ref, lp, reduction, h)
    loss, grad = xf.nll_loss(lp, y, reduction=reduction, return_grad=True,
                             grad_out=lp)
    assert grad is lp
    check(loss, grad, ref, lp, reduction, h)


@pytest.mark.parametrize("ignore_index", [-100, 0])
def test_all_rows_ignored(ignore_index, rng):
    lp = log_probs(rng, (3, 4))
    y = np.full(3, ignore_index)
    loss, grad = xf.nll_loss(lp, y, ignore_index=ignore_index,
                             return_grad=True)
    assert np.isnan(loss)
    np.testing.assert_array_equal(grad, 0.0)
    loss, grad = xf.nll_loss(lp, y, ignore_index=ignore_index,
                             sample_weight=np.ones(3), return_grad=True)
    assert np.isnan(loss)
    np.testing.assert_array_equal(grad, 0.0)
    assert xf.nll_loss(lp, y, ignore_index=ignore_index, reduction="sum") == 0


def test_matches_cross_entropy_of_log_softmax(rng):
    # nll_loss(log_softmax(x)) is cross_entropy(x): a cross-function check
    # whose reference (the textbook identity) involves no torch.
    x = 3 * rng.standard_normal((7, 6))
    y = rng.integers(0, 6, 7)
    w = rng.random(6) + 0.5
    lp = x - np.log(np.exp(x).sum(-1, keepdims=True))
    np.testing.assert_allclose(xf.nll_loss(lp, y, weight=w),
                               xf.cross_entropy(x, y, weight=w), rtol=1e-12)


def test_inputs_never_modified(rng):
    lp = log_probs(rng, (5, 3))
    y = rng.integers(0, 3, 5)
    w, sw = rng.random(3), rng.random(5)
    copies = [a.copy() for a in (lp, y, w, sw)]
    for red in REDUCTIONS:
        xf.nll_loss(lp, y, weight=w, sample_weight=sw, reduction=red,
                    return_grad=True)
    for a, b in zip((lp, y, w, sw), copies):
        np.testing.assert_array_equal(a, b)
