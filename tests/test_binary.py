"""binary_cross_entropy, binary_cross_entropy_with_logits and
sigmoid_focal_loss against torch float64 autograd (torchvision's focal loss
written out below), mpmath at saturated logits, and finite differences."""

import numpy as np
import pytest

import xentfast as xf
from grids import REDUCTIONS, dtype_id

torch = pytest.importorskip("torch")
F = torch.nn.functional

DTYPES = (np.float32, np.float64)


# ----------------------------------------------------------------- references

def _t(a):
    return None if a is None else torch.tensor(np.asarray(a, dtype=np.float64))


def _run(loss_fn, first, reduction):
    """(loss, grad of sum of losses) of a torch float64 expression."""
    xt = torch.tensor(np.asarray(first, dtype=np.float64), requires_grad=True)
    loss = loss_fn(xt)
    (loss if reduction != "none" else loss.sum()).backward()
    return loss.detach().numpy(), xt.grad.numpy()


def ref_bce(p, t, weight=None, reduction="mean"):
    return _run(lambda pt: F.binary_cross_entropy(pt, _t(t), weight=_t(weight),
                                                  reduction=reduction), p, reduction)


def ref_bce_logits(x, t, weight=None, pos_weight=None, reduction="mean"):
    return _run(lambda xt: F.binary_cross_entropy_with_logits(
        xt, _t(t), weight=_t(weight), pos_weight=_t(pos_weight), reduction=reduction),
        x, reduction)


def torchvision_focal(x, t, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss, as published."""
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * t + (1 - alpha) * (1 - t)
        loss = alpha_t * loss
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    return loss


def ref_focal(x, t, alpha=0.25, gamma=2.0, reduction="none"):
    return _run(lambda xt: torchvision_focal(xt, _t(t), alpha, gamma, reduction), x, reduction)


def mp_focal(x, t, alpha, gamma):
    """(loss, dloss/dx) of one element in 60-digit arithmetic."""
    mpmath = pytest.importorskip("mpmath")
    mp = mpmath.mp.clone()
    mp.dps = 60

    def loss(z):
        # p and 1 - p each from its own exp: 1 - p would round to 0 at 1e4.
        p, one_minus_p = 1 / (1 + mp.exp(-z)), 1 / (1 + mp.exp(z))
        ce = t * mp.log1p(mp.exp(-z)) + (1 - t) * mp.log1p(mp.exp(z))
        q = p * (1 - t) + one_minus_p * t
        at = alpha * t + (1 - alpha) * (1 - t) if alpha >= 0 else 1
        return at * ce * q ** gamma
    z = mp.mpf(x)
    return float(loss(z)), float(mp.diff(loss, z))


def check(h, got, ref, dtype, what):
    loss, grad = got
    h.assert_close(loss, ref[0], dtype, what=what + " loss")
    h.assert_close(grad, ref[1], dtype, what=what + " grad")


def logits_and_targets(rng, shape, scale=4.0, soft=True):
    x = rng.normal(size=shape) * scale
    t = rng.uniform(size=shape) if soft else (rng.uniform(size=shape) < 0.3).astype(float)
    return x, t


# ------------------------------------------------------ values against torch

@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_matches_torch(h, rng, dtype, reduction):
    p = rng.uniform(size=(37, 11))
    p[0, :4] = [0.0, 1.0, 1e-30, 1 - 1e-12]      # clamped logs, tiny p(1 - p)
    t = rng.uniform(size=p.shape)
    t[0, :4] = [0.3, 0.6, 1.0, 0.0]
    w = rng.uniform(0.5, 2, size=p.shape[1])
    got = xf.binary_cross_entropy(p.astype(dtype), t.astype(dtype), weight=w.astype(dtype),
                                  reduction=reduction, return_grad=True)
    ref = ref_bce(p.astype(dtype), t.astype(dtype), w.astype(dtype), reduction)
    check(h, got, ref, dtype, "bce")
    assert got[1].dtype == dtype and got[1].shape == p.shape
    if reduction != "none":
        h.assert_reduced_scalar(got[0], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("soft", [True, False], ids=["soft", "hard"])
def test_bce_with_logits_matches_torch(h, rng, dtype, reduction, soft):
    x, t = logits_and_targets(rng, (29, 13), soft=soft)
    w = rng.uniform(0.5, 2, size=(29, 1))
    pw = rng.uniform(0.2, 5, size=13)
    got = xf.binary_cross_entropy_with_logits(
        x.astype(dtype), t.astype(dtype), weight=w, pos_weight=pw,
        reduction=reduction, return_grad=True)
    ref = ref_bce_logits(x.astype(dtype), t.astype(dtype), w.astype(dtype),
                         pw.astype(dtype), reduction)
    check(h, got, ref, dtype, "bce_with_logits")
    if reduction == "none":
        assert got[0].shape == x.shape and got[0].dtype == dtype
    else:
        h.assert_reduced_scalar(got[0], dtype)


# weight / pos_weight shapes for an input of shape (4, 3, 5): per class,
# per row, scalar, full, leading broadcast axes, and (4, 1, 5) whose real
# axes are not contiguous (copied to the full shape).
BROADCAST_SHAPES = [(5,), (1, 5), (3, 1), (4, 1, 1), (), (1,), (4, 3, 5), (3, 5),
                    (4, 1, 5), (1, 3, 1)]


@pytest.mark.parametrize("w_shape", BROADCAST_SHAPES + [None], ids=str)
@pytest.mark.parametrize("pw_shape", [None, (5,), (1,), (4, 3, 5), (3, 1)], ids=str)
def test_bce_with_logits_broadcasting(h, rng, w_shape, pw_shape):
    x, t = logits_and_targets(rng, (4, 3, 5))
    w = None if w_shape is None else rng.uniform(0.1, 3, size=w_shape)
    pw = None if pw_shape is None else rng.uniform(0.1, 3, size=pw_shape)
    got = xf.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw,
                                              reduction="none", return_grad=True)
    check(h, got, ref_bce_logits(x, t, w, pw, "none"), np.float64, "broadcast")


@pytest.mark.parametrize("shape,w_shape", [((3, 2000, 7), (7,)), ((3, 2000, 7), (2000, 1)),
                                           ((9000,), ()), ((5, 3001), (5, 1)),
                                           ((2, 4100, 3), (2, 1, 3))], ids=str)
def test_broadcast_across_blocks(h, rng, shape, w_shape):
    # Several kernel blocks, periods that do not divide the block size.
    x, t = logits_and_targets(rng, shape)
    w = rng.uniform(0.1, 3, size=w_shape)
    pw = w if len(w_shape) else None
    got = xf.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw,
                                              reduction="sum", return_grad=True)
    ref = ref_bce_logits(x, t, w, pw, "sum")
    check(h, got, ref, np.float64, "blocks")
    got = xf.binary_cross_entropy(1 / (1 + np.exp(-x)), t, weight=w, reduction="none")
    h.assert_close(got, ref_bce(1 / (1 + np.exp(-x)), t, w, "none")[0], np.float64)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("alpha", [0.25, 0.9, -1.0])
def test_sigmoid_focal_matches_torchvision(h, rng, dtype, reduction, gamma, alpha):
    # |x| <= ~12: torchvision's 1 - p_t is still accurate in float64 there.
    x, t = logits_and_targets(rng, (23, 9), scale=3.0, soft=True)
    t[:10] = t[:10] > 0.5
    got = xf.sigmoid_focal_loss(x.astype(dtype), t.astype(dtype), alpha=alpha, gamma=gamma,
                                reduction=reduction, return_grad=True)
    ref = ref_focal(x.astype(dtype), t.astype(dtype), alpha, gamma, reduction)
    check(h, got, ref, dtype, "focal")


def test_sigmoid_focal_defaults(h, rng):
    x, t = logits_and_targets(rng, (6, 4), soft=False)
    loss = xf.sigmoid_focal_loss(x, t)
    assert loss.shape == x.shape  # reduction='none' by default, as torchvision
    h.assert_close(loss, ref_focal(x, t)[0], np.float64)


def test_focal_gamma0_is_weighted_bce(h, rng):
    x, t = logits_and_targets(rng, (8, 5))
    alpha = 0.3
    w = alpha * t + (1 - alpha) * (1 - t)
    got = xf.sigmoid_focal_loss(x, t, alpha=alpha, gamma=0.0, reduction="sum", return_grad=True)
    check(h, got, ref_bce_logits(x, t, w, None, "sum"), np.float64, "gamma=0")


# --------------------------------------------------------------- saturation

SATURATED = np.array([-1e4, -100.0, -40.0, -17.0, 17.0, 40.0, 100.0, 1e4])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_bce_with_logits_saturated(h, dtype):
    x = np.repeat(SATURATED, 3)
    t = np.tile([0.0, 1.0, 0.25], SATURATED.size)
    pw = np.full(x.size, 2.5)
    got = xf.binary_cross_entropy_with_logits(x.astype(dtype), t.astype(dtype),
                                              pos_weight=pw, reduction="none", return_grad=True)
    assert np.all(np.isfinite(got[0])) and np.all(np.isfinite(got[1]))
    # The reference in float64 whatever dtype: the stable form is exact here.
    ref = ref_bce_logits(x, t, None, pw, "none")
    check(h, got, ref, dtype, "saturated")
    # A confident right answer costs exp(-|x|), not 0 or a cancellation.
    right = (np.abs(x) == 17) & (((x > 0) & (t == 1)) | ((x < 0) & (t == 0)))
    np.testing.assert_allclose(got[0][right], np.log1p(np.exp(-17.0)) * np.array([1, 2.5]),
                               rtol=1e-5)
    # ... and its gradient is -pw * sigmoid(-x), not a cancelled 0.
    np.testing.assert_allclose(got[1][right], np.array([1, -2.5]) / (1 + np.exp(17.0)),
                               rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_sigmoid_focal_saturated(dtype, gamma):
    x = np.repeat(SATURATED, 3)
    t = np.tile([0.0, 1.0, 0.25], SATURATED.size)
    loss, grad = xf.sigmoid_focal_loss(x.astype(dtype), t.astype(dtype), gamma=gamma,
                                       return_grad=True)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    ref = np.array([mp_focal(xi, ti, 0.25, gamma) for xi, ti in zip(x, t)])
    tiny = np.finfo(dtype).tiny
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(loss, ref[:, 0], rtol=rtol, atol=tiny)
    np.testing.assert_allclose(grad, ref[:, 1], rtol=rtol, atol=tiny)


def test_torchvision_is_nan_where_we_are_finite():
    # The reason for the log-space form: torchvision's gradient at gamma < 1.
    x = torch.tensor([40.0, 100.0, -1e4], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    torchvision_focal(x, t, gamma=0.5).sum().backward()
    assert torch.isnan(x.grad).all()
    _, grad = xf.sigmoid_focal_loss(x.detach().numpy(), t.numpy(), gamma=0.5, return_grad=True)
    assert np.all(np.isfinite(grad))


# ------------------------------------------------------ finite differences

@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_finite_differences(h, rng, gamma):
    x, t = logits_and_targets(rng, (3, 4), scale=3.0)
    _, grad = xf.sigmoid_focal_loss(x, t, gamma=gamma, alpha=0.4, reduction="mean",
                                    return_grad=True)
    fd = h.finite_diff(lambda z: float(xf.sigmoid_focal_loss(z, t, gamma=gamma, alpha=0.4,
                                                              reduction="mean")), x)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)


def test_bce_logits_finite_differences(h, rng):
    x, t = logits_and_targets(rng, (3, 4))
    w, pw = rng.uniform(0.5, 2, size=(3, 1)), rng.uniform(0.5, 3, size=4)
    def f(z):
        return float(xf.binary_cross_entropy_with_logits(z, t, weight=w, pos_weight=pw))
    _, grad = xf.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw, return_grad=True)
    np.testing.assert_allclose(grad, h.finite_diff(f, x), rtol=1e-6, atol=1e-9)


def test_bce_finite_differences(h, rng):
    p = rng.uniform(0.05, 0.95, size=(3, 4))
    t = rng.uniform(size=p.shape)
    f = lambda z: float(xf.binary_cross_entropy(z, t, reduction="sum"))  # noqa: E731
    _, grad = xf.binary_cross_entropy(p, t, reduction="sum", return_grad=True)
    np.testing.assert_allclose(grad, h.finite_diff(f, p), rtol=1e-6, atol=1e-9)


# ------------------------------------------------------ non-finite logits

def test_infinite_and_nan_logits():
    x = np.array([np.inf, np.inf, -np.inf, -np.inf, np.inf, np.nan, 1.0])
    t = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 1.0, 1.0])
    loss, grad = xf.binary_cross_entropy_with_logits(x, t, reduction="none", return_grad=True)
    # sigmoid(+inf) = 1 exactly: a right answer costs 0, a wrong one inf.
    np.testing.assert_array_equal(loss[:6], [0.0, np.inf, 0.0, np.inf, np.inf, np.nan])
    np.testing.assert_array_equal(grad[:6], [0.0, 1.0, 0.0, -1.0, 0.5, np.nan])
    assert np.isfinite(loss[6]) and np.isfinite(grad[6])  # nothing leaks
    floss, fgrad = xf.sigmoid_focal_loss(x, t, gamma=0.5, return_grad=True)
    np.testing.assert_array_equal(np.isnan(floss), np.isnan(x))
    np.testing.assert_array_equal(np.isnan(fgrad), np.isnan(x))
    np.testing.assert_array_equal(floss[:4], [0.0, np.inf, 0.0, np.inf])
    np.testing.assert_array_equal(fgrad[:4], [0.0, 0.75, 0.0, -0.25])


# ------------------------------------------------ dtypes, layouts, outputs

@pytest.mark.parametrize("fn", ["bce", "logits", "focal"])
def test_dtype_rules(fn):
    call = {"bce": xf.binary_cross_entropy, "logits": xf.binary_cross_entropy_with_logits,
            "focal": xf.sigmoid_focal_loss}[fn]
    base = np.array([[0.2, 0.7], [0.9, 0.4]])
    t = np.array([[0, 1], [1, 0]])
    for x, dt in [(base.astype(np.float16), np.float32), (base.astype(np.float32), np.float32),
                  (base, np.float64), ((base > 0.5).astype(np.int8), np.float64),
                  (base > 0.5, np.float64)]:
        loss, grad = call(x, t, reduction="sum", return_grad=True)
        assert loss.dtype == dt and isinstance(loss, np.generic) and grad.dtype == dt
        assert call(x, t, reduction="none").dtype == dt
    with pytest.raises(TypeError, match="logits|probs"):
        call(base.astype(np.complex128), t)
    with pytest.raises(TypeError, match="target"):
        call(base, t.astype(object))


def test_layouts(h, layout, rng):
    x, t = logits_and_targets(rng, (6, 5))
    ref = xf.binary_cross_entropy_with_logits(x, t, weight=np.arange(5.0), reduction="none",
                                              return_grad=True)
    got = xf.binary_cross_entropy_with_logits(layout(x), layout(t), weight=layout(np.arange(5.0)),
                                              reduction="none", return_grad=True)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])


@pytest.mark.parametrize("fn", ["bce", "logits", "focal"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_grad_out_and_in_place(rng, fn, reduction):
    x, t = logits_and_targets(rng, (70, 600))  # > one block, many threads
    if fn == "bce":
        x = 1 / (1 + np.exp(-x))
    call = {"bce": xf.binary_cross_entropy, "logits": xf.binary_cross_entropy_with_logits,
            "focal": xf.sigmoid_focal_loss}[fn]
    loss, grad = call(x, t, reduction=reduction, return_grad=True)
    out = np.full_like(x, np.nan)
    loss2, grad2 = call(x, t, reduction=reduction, return_grad=True, grad_out=out)
    assert grad2 is out
    np.testing.assert_array_equal(grad2, grad)
    x_in = x.copy()
    loss3, grad3 = call(x_in, t, reduction=reduction, return_grad=True, grad_out=x_in)
    assert grad3 is x_in
    np.testing.assert_array_equal(grad3, grad)
    np.testing.assert_array_equal(loss3, loss)


@pytest.mark.parametrize("fn", ["bce", "logits", "focal"])
def test_thread_determinism(rng, fn):
    x, t = logits_and_targets(rng, (129, 513))  # 66k elements: threads on
    if fn == "bce":
        x = 1 / (1 + np.exp(-x))
    call = {"bce": xf.binary_cross_entropy, "logits": xf.binary_cross_entropy_with_logits,
            "focal": xf.sigmoid_focal_loss}[fn]
    kw = {"weight": rng.uniform(size=513)} if fn != "focal" else {}
    results = []
    for n in (1, 2, 3):
        with xf.num_threads(n):
            results.append([call(x.astype(dt), t, reduction=r, return_grad=True, **kw)
                            for dt in DTYPES for r in ("mean", "none")])
    for other in results[1:]:
        for (l0, g0), (l1, g1) in zip(results[0], other):
            assert np.asarray(l0).tobytes() == np.asarray(l1).tobytes()
            assert g0.tobytes() == g1.tobytes()


def test_empty_and_scalar_inputs():
    e = np.empty((0, 3))
    loss, grad = xf.binary_cross_entropy_with_logits(e, e, return_grad=True)
    assert np.isnan(loss) and grad.shape == (0, 3)
    assert xf.binary_cross_entropy_with_logits(e, e, reduction="sum") == 0
    assert xf.sigmoid_focal_loss(e, e).shape == (0, 3)
    loss, grad = xf.binary_cross_entropy_with_logits(np.float64(2.0), 1.0, pos_weight=3.0,
                                                     reduction="none", return_grad=True)
    assert loss.shape == () and grad.shape == ()
    np.testing.assert_allclose(loss, 3 * np.log1p(np.exp(-2.0)))


def test_inputs_not_modified(rng):
    x, t = logits_and_targets(rng, (5, 4))
    x0, t0 = x.copy(), t.copy()
    xf.binary_cross_entropy_with_logits(x, t, return_grad=True)
    xf.sigmoid_focal_loss(x, t, return_grad=True)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(t, t0)


# ------------------------------------------------------------ bad inputs

@pytest.mark.parametrize("bad", [-0.1, 1.5, np.nan])
def test_probs_outside_unit_interval(bad):
    p = np.full((3, 5000), 0.5)
    p[2, 4321] = bad
    out = np.zeros_like(p)
    with pytest.raises(ValueError, match=r"probs.*\[0, 1\].*\(2, 4321\)"):
        xf.binary_cross_entropy(p, np.zeros_like(p), return_grad=True, grad_out=out)
    assert not out.any()  # nothing written


@pytest.mark.parametrize("fn", ["bce", "logits", "focal"])
@pytest.mark.parametrize("bad", [-0.5, 2.0, np.nan])
def test_targets_outside_unit_interval(fn, bad):
    call = {"bce": xf.binary_cross_entropy, "logits": xf.binary_cross_entropy_with_logits,
            "focal": xf.sigmoid_focal_loss}[fn]
    x = np.full((4, 3), 0.5)
    t = np.zeros((4, 3))
    t[1, 2] = bad
    with pytest.raises(ValueError, match=r"target.*\[0, 1\].*\(1, 2\)"):
        call(x, t)


def test_bad_arguments():
    x, t = np.zeros((4, 3)), np.zeros((4, 3))
    bce_l = xf.binary_cross_entropy_with_logits
    with pytest.raises(ValueError, match="target"):
        bce_l(x, np.zeros(3))
    with pytest.raises(ValueError, match="weight"):
        bce_l(x, t, weight=np.ones(4))
    with pytest.raises(ValueError, match="weight"):
        bce_l(x, t, weight=np.ones((2, 4, 3)))
    with pytest.raises(ValueError, match="pos_weight"):
        bce_l(x, t, pos_weight=np.ones(2))
    with pytest.raises(TypeError, match="weight"):
        bce_l(x, t, weight=np.array(["a"] * 3))
    with pytest.raises(ValueError, match="weight"):
        xf.binary_cross_entropy(x, t, weight=np.ones(5))
    for fn in (xf.binary_cross_entropy, bce_l, xf.sigmoid_focal_loss):
        with pytest.raises(ValueError, match="reduction"):
            fn(x, t, reduction="avg")
        with pytest.raises(ValueError, match="grad_out"):
            fn(x, t, grad_out=np.zeros_like(x))
        for bad_out in (np.zeros((3, 4)), np.zeros((4, 3), np.float32),
                        np.zeros((3, 4)).T, np.zeros((4, 6))[:, ::2], [[0.0] * 3] * 4):
            with pytest.raises(ValueError, match="grad_out"):
                fn(x, t, return_grad=True, grad_out=bad_out)
        ro = np.zeros_like(x)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="grad_out"):
            fn(x, t, return_grad=True, grad_out=ro)
        with pytest.raises(ValueError, match="grad_out"):
            fn(x, t, return_grad=True, grad_out=t)  # the target is an input too
    with pytest.raises(ValueError, match="gamma"):
        xf.sigmoid_focal_loss(x, t, gamma=-0.5)
    with pytest.raises(ValueError, match="alpha"):
        xf.sigmoid_focal_loss(x, t, alpha=np.nan)
    with pytest.raises(TypeError, match="gamma"):
        xf.sigmoid_focal_loss(x, t, gamma=None)
