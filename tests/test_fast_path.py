"""The fast path of small plain calls (_fast.py): results against float64
NumPy formulas, and every error still raised, with the general path's
message, before anything is written.

A call takes the general path when axis is not a Python int, so
``axis=np.intp(-1)`` gives the general path's answer for comparison.
"""
import numpy as np
import pytest

import xentfast as xf

GENERAL = np.intp(-1)


def ref_log_softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def ref_ce(x, y, weight=None, ignore_index=-100, reduction="mean"):
    """float64 loss and gradient of torch's cross_entropy semantics."""
    lp = ref_log_softmax(x)
    n, c = lp.shape
    w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    kept = y != ignore_index
    yk = np.where(kept, y, 0)
    wy = np.where(kept, w[yk], 0.0)
    rows = -wy * lp[np.arange(n), yk]
    grad = np.exp(lp) * wy[:, None]
    grad[np.arange(n), yk] -= wy
    if reduction == "none":
        return rows, grad
    if reduction == "sum":
        return rows.sum(), grad
    return rows.sum() / wy.sum(), grad / wy.sum()


def _data(dtype, n=32, c=10, seed=0):
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((n, c))).astype(dtype)
    y = rng.integers(0, c, n)
    return x, y


TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_dtype", [np.int64, np.int32, np.uint8, np.uint32])
@pytest.mark.parametrize("options", ["plain", "weight", "ignore"])
@pytest.mark.parametrize("grad", ["alloc", "grad_out", "in_place"])
def test_cross_entropy_matches_numpy(dtype, reduction, label_dtype, options, grad):
    x, y = _data(dtype)
    kw = dict(reduction=reduction)
    if options == "weight":
        kw["weight"] = np.linspace(0.5, 2.0, 10).astype(dtype)
    if options == "ignore":
        y[::3] = 7
        kw["ignore_index"] = 7
    y = y.astype(label_dtype)
    ref_loss, ref_grad = ref_ce(x, y.astype(np.int64), **kw)
    general = xf.cross_entropy(x.copy(), y, return_grad=True, axis=GENERAL, **kw)
    xin = x.copy()
    g = {"alloc": None, "grad_out": np.full_like(x, np.nan), "in_place": xin}[grad]
    loss, gr = xf.cross_entropy(xin, y, return_grad=True, grad_out=g, **kw)
    if g is not None:
        assert gr is g
    assert gr.dtype == dtype and np.asarray(loss).dtype == dtype
    np.testing.assert_allclose(loss, ref_loss, **TOL[dtype])
    np.testing.assert_allclose(gr, ref_grad, **TOL[dtype])
    # bitwise the general path's result
    np.testing.assert_array_equal(loss, general[0])
    np.testing.assert_array_equal(gr, general[1])
    np.testing.assert_array_equal(xf.cross_entropy(x, y, **kw), general[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(5, 3), (100, 60), (40, 300), (1, 32767), (400, 100)],
                         ids=str)
@pytest.mark.parametrize("grad", ["none", "alloc", "grad_out", "in_place"])
def test_small_call_in_one_compiled_call(dtype, reduction, shape, grad):
    """Calls of fewer than 32768 elements run in one compiled call (tiles,
    row groups and single rows; with and without a gradient row): the
    float64 formulas, and bitwise the general path (the last shape is past
    the limit, for contrast)."""
    n, c = shape
    x, y = _data(dtype, n, c, seed=n + c)
    y[1::4] = -100
    ref_loss, ref_grad = ref_ce(x, y, reduction=reduction)
    general = xf.cross_entropy(x.copy(), y, return_grad=True, axis=GENERAL,
                               reduction=reduction)
    if grad == "none":
        loss = xf.cross_entropy(x, y, reduction=reduction)
    else:
        xin = x.copy()
        g = {"alloc": None, "grad_out": np.full_like(x, np.nan), "in_place": xin}[grad]
        loss, gr = xf.cross_entropy(xin, y, return_grad=True, grad_out=g, reduction=reduction)
        np.testing.assert_allclose(gr, ref_grad, **TOL[dtype])
        np.testing.assert_array_equal(gr, general[1])
    np.testing.assert_allclose(loss, ref_loss, **TOL[dtype])
    np.testing.assert_array_equal(loss, general[0])


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 128, 129, 1000, 100003])
def test_row_losses_sum(n):
    """The sum every front end reduces row losses with: within a few
    roundings of the exact sum, the same for the same input."""
    import math
    from xentfast import _multiclass
    v = np.random.default_rng(n).standard_normal(n) * 10 ** np.linspace(-3, 3, n)
    total = _multiclass.row_losses_sum(v)
    assert total == _multiclass.row_losses_sum(v.copy())
    exact = math.fsum(v)
    assert abs(total - exact) <= 1e-15 * max(1.0, np.abs(v).sum()) * max(1, math.log2(n + 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("func, ref", [(xf.log_softmax, ref_log_softmax),
                                       (xf.softmax, lambda x: np.exp(ref_log_softmax(x)))])
@pytest.mark.parametrize("where", ["alloc", "out", "in_place"])
@pytest.mark.parametrize("shape", [(32, 10), (3, 4, 5), (7,)])
def test_row_maps_match_numpy(dtype, func, ref, where, shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype) * 4
    expected = ref(x)
    general = func(x, axis=GENERAL)
    xin = x.copy()
    out = {"alloc": None, "out": np.full_like(x, np.nan), "in_place": xin}[where]
    got = func(xin, out=out)
    if out is not None:
        assert got is out
    np.testing.assert_allclose(got, expected, **TOL[dtype])
    np.testing.assert_array_equal(got, general)


def _message(call):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    return type(info.value), str(info.value)


def _same_error(fast, general):
    """The fast-path-shaped call raises what the general path raises."""
    got, want = _message(fast), _message(general)
    assert got == want


def _ce_error_cases():
    x, y = _data(np.float32)
    big = np.zeros(x.size + 20, np.float32)
    cases = {
        "label too large": lambda: (x, np.where(np.arange(32) == 5, 10, y), {}),
        "negative label": lambda: (x, np.where(np.arange(32) == 3, -1, y), {}),
        "bool labels": lambda: (x, y > 3, {}),
        "float16 labels": lambda: (x, y.astype(np.float16), {}),
        "labels wrong length": lambda: (x, y[:31], {}),
        "grad_out float64": lambda: (x, y, dict(grad_out=np.empty(x.shape))),
        "grad_out wrong shape": lambda: (x, y, dict(grad_out=np.empty((32, 11), np.float32))),
        "grad_out read-only": lambda: (x, y, dict(grad_out=_read_only(np.ones_like(x)))),
        "grad_out F-order": lambda: (x, y, dict(grad_out=np.empty((32, 10), np.float32, order="F"))),
        "grad_out overlaps x": lambda: _overlap_x(big),
        "grad_out overlaps y": lambda: _overlap_y(),
        "grad_out overlaps weight": lambda: _overlap_weight(),
        "grad_out without return_grad": lambda: (x, y, dict(grad_out=np.empty_like(x),
                                                            return_grad=False)),
        "bad reduction": lambda: (x, y, dict(reduction="avg")),
        "bool ignore_index": lambda: (x, y, dict(ignore_index=True)),
        "weight wrong shape": lambda: (x, y, dict(weight=np.ones(9, np.float32))),
    }
    return cases


def _read_only(a):
    a.setflags(write=False)
    return a


def _overlap_x(big):
    x = big[:320].reshape(32, 10)
    x[:] = 1
    return x, np.arange(32) % 10, dict(grad_out=big[10:330].reshape(32, 10))


def _overlap_y():
    g = np.zeros((32, 10), np.float32)
    y = g.reshape(-1).view(np.int64)[:32]   # labels are 0 (in range), inside g
    return np.ones((32, 10), np.float32), y, dict(grad_out=g)


def _overlap_weight():
    g = np.zeros((32, 10), np.float32)
    return np.ones((32, 10), np.float32), np.arange(32) % 10, dict(grad_out=g,
                                                                   weight=g[0])


@pytest.mark.parametrize("case", sorted(_ce_error_cases()))
def test_cross_entropy_errors_as_the_general_path(case):
    x, y, kw = _ce_error_cases()[case]()
    kw = dict(dict(return_grad=True), **kw)
    before = None if kw.get("grad_out") is None else kw["grad_out"].copy()
    _same_error(lambda: xf.cross_entropy(x, y, **kw),
                lambda: xf.cross_entropy(x, y, axis=GENERAL, **kw))
    if before is not None:   # nothing half-written
        np.testing.assert_array_equal(kw["grad_out"], before)


def test_bad_label_writes_nothing():
    x, y = _data(np.float32)
    y[-1] = 10
    g = np.full_like(x, 7.0)
    with pytest.raises(ValueError, match=r"got 10 at position \(31,\)"):
        xf.cross_entropy(x, y, return_grad=True, grad_out=g)
    assert (g == 7.0).all()


def test_grad_out_same_memory_as_x_is_in_place():
    x, y = _data(np.float64)
    ref_loss, ref_grad = ref_ce(x, y)
    view = x[...]   # another object, the same elements
    loss, g = xf.cross_entropy(x, y, return_grad=True, grad_out=view)
    assert g is view
    np.testing.assert_allclose(x, ref_grad, **TOL[np.float64])
    np.testing.assert_allclose(loss, ref_loss, **TOL[np.float64])


@pytest.mark.parametrize("func", [xf.log_softmax, xf.softmax])
def test_row_map_errors_as_the_general_path(func):
    x = np.ones((32, 10), np.float32)
    big = np.zeros(340, np.float32)
    for out in [np.empty((32, 10)), np.empty((32, 11), np.float32),
                np.empty((32, 10), np.float32, order="F"),
                big[10:330].reshape(32, 10)]:
        xin = big[:320].reshape(32, 10) if out.base is big else x
        _same_error(lambda: func(xin, out=out), lambda: func(xin, axis=GENERAL, out=out))
    ro = _read_only(np.empty_like(x))
    _same_error(lambda: func(x, out=ro), lambda: func(x, axis=GENERAL, out=ro))
