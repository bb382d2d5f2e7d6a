"""softmax_focal_loss against torch float64 autograd of
``-alpha[y] * (1 - p_y)**gamma * log p_y``, cross_entropy (gamma = 0), mpmath
at saturated logits, and finite differences."""

import numpy as np
import pytest

import xentfast as xf
from grids import REDUCTIONS, dtype_id

torch = pytest.importorskip("torch")
F = torch.nn.functional

DTYPES = (np.float32, np.float64)


def ref_focal(x, y, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean", axis=-1):
    """torch float64 autograd of the documented formula: (loss, grad)."""
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    z = torch.movedim(xt, axis, -1)
    yt = torch.tensor(np.asarray(y).astype(np.int64))
    keep = yt != ignore_index
    safe = torch.where(keep, yt, 0)
    lp = torch.log_softmax(z, dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    a = torch.ones_like(lp) if alpha is None else torch.tensor(
        np.asarray(alpha, dtype=np.float64))[safe]
    per = torch.where(keep, -a * (1 - lp.exp()) ** gamma * lp, 0.0)
    if reduction == "none":
        loss = per
        per.sum().backward()
    else:
        loss = per.sum() / (keep.sum() if reduction == "mean" else 1)
        loss.backward()
    return loss.detach().numpy(), xt.grad.numpy()


def mp_focal_row(x, y, gamma, a=1.0):
    """(loss, gradient) of one row in 60-digit arithmetic."""
    mpmath = pytest.importorskip("mpmath")
    mp = mpmath.mp.clone()
    mp.dps = 60

    def loss(*z):
        lse = mp.log(mp.fsum(mp.exp(v) for v in z))
        lp = z[y] - lse
        # 1 - p_y as the sum of the other probabilities: no cancellation.
        q = mp.fsum(mp.exp(v - lse) for j, v in enumerate(z) if j != y)
        return -a * q ** gamma * lp
    z = [mp.mpf(v) for v in x]
    grad = [float(mp.diff(lambda v, j=j: loss(*(z[:j] + [v] + z[j + 1:])), z[j]))
            for j in range(len(z))]
    return float(loss(*z)), np.array(grad)


def labels(rng, shape, n_classes, n_ignored=0, ignore_index=-100):
    y = rng.integers(0, n_classes, size=shape)
    flat = y.reshape(-1)
    flat[rng.choice(flat.size, n_ignored, replace=False)] = ignore_index
    return y


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("with_alpha", [False, True], ids=["no_alpha", "alpha"])
def test_matches_torch(h, rng, dtype, reduction, gamma, with_alpha):
    x = (rng.normal(size=(31, 7)) * 3).astype(dtype)
    y = labels(rng, 31, 7, n_ignored=4)
    alpha = rng.uniform(0.1, 2, size=7).astype(dtype) if with_alpha else None
    loss, grad = xf.softmax_focal_loss(x, y, gamma=gamma, alpha=alpha, reduction=reduction,
                                       return_grad=True)
    ref = ref_focal(x, y, gamma, alpha, reduction=reduction)
    h.assert_close(loss, ref[0], dtype, what="loss")
    h.assert_close(grad, ref[1], dtype, what="grad")
    assert grad.dtype == dtype
    if reduction != "none":
        h.assert_reduced_scalar(loss, dtype)
    else:
        assert loss.shape == (31,)


@pytest.mark.parametrize("shape,axis", [((4, 5, 3), 1), ((2, 3, 6), -1), ((6, 2, 2, 3), 1),
                                        ((3, 4), 0)], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_class_axis(h, rng, shape, axis, reduction):
    x = rng.normal(size=shape) * 2
    row_shape = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    y = labels(rng, row_shape, shape[axis], n_ignored=1)
    alpha = rng.uniform(0.5, 1.5, size=shape[axis])
    loss, grad = xf.softmax_focal_loss(x, y, gamma=1.5, alpha=alpha, axis=axis,
                                       reduction=reduction, return_grad=True)
    ref = ref_focal(x, y, 1.5, alpha, reduction=reduction, axis=axis)
    h.assert_close(loss, ref[0], np.float64)
    h.assert_close(grad, ref[1], np.float64)
    if reduction == "none":
        assert loss.shape == row_shape


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gamma0_is_weighted_cross_entropy(h, rng, reduction):
    x = rng.normal(size=(40, 6)) * 3
    y = labels(rng, 40, 6, n_ignored=5)
    alpha = rng.uniform(0.2, 3, size=6)
    loss, grad = xf.softmax_focal_loss(x, y, gamma=0.0, alpha=alpha, reduction=reduction,
                                       return_grad=True)
    count = 1 if reduction == "sum" else np.count_nonzero(y != -100)
    xt = torch.tensor(x, requires_grad=True)
    ce = F.cross_entropy(xt, torch.tensor(y), weight=torch.tensor(alpha), reduction="sum") / count
    ce.backward()
    h.assert_close(loss, ce.item(), np.float64)
    h.assert_close(grad, xt.grad.numpy(), np.float64)
    ce_loss, ce_grad = xf.cross_entropy(x, y, weight=alpha, reduction="sum", return_grad=True)
    h.assert_close(loss, ce_loss / count, np.float64)
    h.assert_close(grad, ce_grad / count, np.float64)


SATURATED_ROWS = [([100.0, 0.0, -100.0], 0), ([1e4, -1e4, 0.0], 0), ([40.0, 0.0, 0.0], 0),
                  ([-100.0, 100.0, 0.0], 0), ([0.0, 1e4, -1e4], 2), ([17.0, -3.0, 2.0], 0)]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_saturated_logits(dtype, gamma):
    x = np.array([r for r, _ in SATURATED_ROWS])
    y = np.array([k for _, k in SATURATED_ROWS])
    loss, grad = xf.softmax_focal_loss(x.astype(dtype), y, gamma=gamma, reduction="none",
                                       return_grad=True)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    ref = [mp_focal_row(r, k, gamma) for r, k in SATURATED_ROWS]
    rtol = 2e-5 if dtype == np.float32 else 1e-11
    tiny = np.finfo(dtype).tiny
    np.testing.assert_allclose(loss, [r[0] for r in ref], rtol=rtol, atol=tiny)
    # Per row, relative to the row's largest gradient entry.
    for g, (_, rg) in zip(grad, ref):
        np.testing.assert_allclose(g, rg, rtol=rtol, atol=rtol * np.abs(rg).max() + tiny)


def test_torch_formula_is_nan_where_we_are_finite():
    x = np.array([[100.0, 0.0, -100.0]])
    y = np.array([0])
    _, ref_grad = ref_focal(x, y, gamma=0.5, reduction="sum")
    assert np.isnan(ref_grad).any()
    _, grad = xf.softmax_focal_loss(x, y, gamma=0.5, return_grad=True)
    assert np.all(np.isfinite(grad))


def test_finite_differences(h, rng):
    x = rng.normal(size=(4, 5)) * 2
    y = np.array([0, 3, -100, 4])
    alpha = rng.uniform(0.5, 2, size=5)
    f = lambda z: float(xf.softmax_focal_loss(z, y, gamma=0.7, alpha=alpha))  # noqa: E731
    _, grad = xf.softmax_focal_loss(x, y, gamma=0.7, alpha=alpha, return_grad=True)
    np.testing.assert_allclose(grad, h.finite_diff(f, x), rtol=1e-6, atol=1e-9)


def test_ignore_index():
    x = np.random.default_rng(0).normal(size=(5, 4))
    y = np.array([7, 1, 7, 3, 0])
    loss, grad = xf.softmax_focal_loss(x, y, ignore_index=7, reduction="none", return_grad=True)
    assert loss[0] == 0 and loss[2] == 0 and not grad[[0, 2]].any()
    mean = xf.softmax_focal_loss(x, y, ignore_index=7)
    np.testing.assert_allclose(mean, loss.sum() / 3, rtol=1e-15)
    # Every row ignored: 'mean' is NaN with a zero gradient, as in torch.
    loss, grad = xf.softmax_focal_loss(x, np.full(5, -100), return_grad=True)
    assert np.isnan(loss) and not grad.any()


def test_masked_logits():
    x = np.array([[0.0, -np.inf, 1.0], [0.0, -np.inf, 1.0], [np.nan, 0.0, 1.0], [1.0, 2.0, 3.0]])
    y = np.array([0, 1, 0, 2])
    loss, grad = xf.softmax_focal_loss(x, y, gamma=0.5, reduction="none", return_grad=True)
    assert np.isfinite(loss[0]) and np.all(np.isfinite(grad[0])) and grad[0, 1] == 0
    assert loss[1] == np.inf
    assert np.isnan(loss[2]) and np.isnan(grad[2]).all()
    assert np.isfinite(loss[3]) and np.all(np.isfinite(grad[3]))  # nothing leaks


@pytest.mark.parametrize("int_dtype", [np.int8, np.uint8, np.int32, np.uint64])
def test_label_dtypes(rng, int_dtype):
    x = rng.normal(size=(6, 3))
    y = np.array([0, 1, 2, 2, 1, 0])
    ref = xf.softmax_focal_loss(x, y.astype(np.int64))
    assert xf.softmax_focal_loss(x, y.astype(int_dtype)) == ref


def test_grad_out_in_place_and_threads(rng):
    x = rng.normal(size=(300, 250)) * 3  # 75k logits: threads on
    y = labels(rng, 300, 250, n_ignored=10)
    alpha = rng.uniform(size=250)
    results = []
    for n in (1, 2, 3):
        with xf.num_threads(n):
            results.append(xf.softmax_focal_loss(x, y, gamma=0.5, alpha=alpha, return_grad=True))
    for loss, grad in results[1:]:
        assert loss.tobytes() == results[0][0].tobytes()
        assert grad.tobytes() == results[0][1].tobytes()
    x_in = x.copy()
    loss, grad = xf.softmax_focal_loss(x_in, y, gamma=0.5, alpha=alpha, return_grad=True,
                                       grad_out=x_in)
    assert grad is x_in and grad.tobytes() == results[0][1].tobytes()
    out = np.empty_like(x, dtype=np.float32)
    _, g32 = xf.softmax_focal_loss(x.astype(np.float32), y, return_grad=True, grad_out=out)
    assert g32 is out


def test_bad_inputs():
    x, y = np.zeros((4, 3)), np.array([0, 1, 2, 0])
    with pytest.raises(ValueError, match="gamma"):
        xf.softmax_focal_loss(x, y, gamma=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        xf.softmax_focal_loss(x, y, alpha=np.ones(4))
    with pytest.raises(ValueError, match=r"target.*\[0, 3\).*got 3"):
        xf.softmax_focal_loss(x, np.array([0, 1, 3, 0]))
    with pytest.raises(TypeError, match="target"):
        xf.softmax_focal_loss(x, y.astype(float))
    with pytest.raises(TypeError, match="target"):
        xf.softmax_focal_loss(x, y.astype(bool))
    with pytest.raises(ValueError, match="target"):
        xf.softmax_focal_loss(x, y[:3])
    with pytest.raises(ValueError, match="reduction"):
        xf.softmax_focal_loss(x, y, reduction="batchmean")
    with pytest.raises(ValueError, match="grad_out"):
        xf.softmax_focal_loss(x, y, grad_out=np.zeros_like(x))
    with pytest.raises(ValueError, match="grad_out"):
        xf.softmax_focal_loss(x, y, return_grad=True, grad_out=np.zeros((4, 3), np.float32))
