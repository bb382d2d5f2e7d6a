"""log_softmax / softmax / logsumexp against torch float64 references."""

import numpy as np
import pytest

import xentfast as xf
from grids import dtype_id

torch = pytest.importorskip("torch")

FUNCS = ("log_softmax", "softmax", "logsumexp")
DTYPES = (np.float32, np.float64, np.float16, np.int32, np.int64, np.bool_)


def ref(name, x, axis=-1):
    """torch float64 reference of softmax-family function ``name``."""
    t = torch.from_numpy(np.asarray(x, dtype=np.float64))
    if name == "log_softmax":
        r = torch.log_softmax(t, dim=axis)
    elif name == "softmax":
        r = torch.softmax(t, dim=axis)
    else:
        r = torch.logsumexp(t, dim=axis)
    return r.numpy()


def make(rng, shape, dtype):
    if np.dtype(dtype).kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(-6, 7, size=shape).astype(dtype)
    return (3 * rng.standard_normal(shape)).astype(dtype)


def out_shape(name, shape, axis):
    if name == "logsumexp":
        return tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    return shape


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", FUNCS)
def test_values_dtype_layout_axis(name, dtype, axis, layout, rng, h):
    x = make(rng, (3, 4, 5), dtype)
    xin = layout(x)
    before = np.array(xin, copy=True)
    res = getattr(xf, name)(xin, axis=axis)
    cdt = h.compute_dtype(np.asarray(xin))
    assert isinstance(res, np.ndarray)
    assert res.dtype == cdt
    assert res.shape == out_shape(name, x.shape, axis)
    h.assert_close(res, ref(name, x, axis), cdt)
    np.testing.assert_array_equal(np.asarray(xin), before)


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["log_softmax", "softmax"])
def test_out_given(name, dtype, axis, rng, h):
    x = make(rng, (4, 3, 6), dtype)
    before = x.copy()
    cdt = h.compute_dtype(x)
    out = np.full(x.shape, 123.0, dtype=cdt)
    res = getattr(xf, name)(x, axis=axis, out=out)
    assert res is out
    h.assert_close(out, ref(name, x, axis), cdt)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["log_softmax", "softmax"])
def test_out_is_input(name, dtype, axis, rng, h):
    x = make(rng, (4, 3, 6), dtype)
    expected = ref(name, x, axis)
    res = getattr(xf, name)(x, axis=axis, out=x)
    assert res is x
    h.assert_close(x, expected, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", FUNCS)
def test_huge_logits_stable(name, dtype, h):
    x = np.array([[1e30, -1e30, 0.0, 5.0],
                  [-1e30, -1e30, 3.0, -1e30],
                  [1e30, 1e30, -1e30, 1e30],
                  [-1e30, -1e30, -1e30, -1e30]], dtype=dtype)
    res = getattr(xf, name)(x)
    assert np.all(np.isfinite(res))
    h.assert_close(res, ref(name, x), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", FUNCS)
def test_neg_inf_is_a_mask(name, dtype, rng, h):
    x = make(rng, (5, 6), dtype)
    x[0, 2] = -np.inf
    x[3, [0, 1, 5]] = -np.inf
    res = getattr(xf, name)(x)
    expected = ref(name, x)
    h.assert_close(res, expected, dtype)
    if name == "softmax":
        assert res[0, 2] == 0.0 and res[3, 0] == 0.0
        np.testing.assert_allclose(res.sum(-1), 1.0, rtol=1e-6)
    if name == "log_softmax":
        assert res[0, 2] == -np.inf and res[3, 5] == -np.inf


@pytest.mark.parametrize("dtype", [np.float32, np.float64],
                         ids=lambda d: np.dtype(d).name)
def test_all_neg_inf_row(dtype, rng, h):
    x = make(rng, (4, 5), dtype)
    x[2] = -np.inf
    lse = xf.logsumexp(x)
    sm = xf.softmax(x)
    ls = xf.log_softmax(x)
    assert lse[2] == -np.inf
    assert np.all(np.isnan(sm[2]))
    assert np.all(np.isnan(ls[2]))
    keep = [0, 1, 3]
    h.assert_close(lse[keep], ref("logsumexp", x[keep]), dtype)
    h.assert_close(sm[keep], ref("softmax", x[keep]), dtype)
    h.assert_close(ls[keep], ref("log_softmax", x[keep]), dtype)


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "posinf"])
@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("name", FUNCS)
def test_nonfinite_rows_isolated(name, bad, axis, rng, h):
    x = make(rng, (5, 6), np.float64)
    if axis == 0:
        x = np.ascontiguousarray(x.T)
    # Put the bad value in "row" 1 (the slice along the class axis).
    idx = (1, 3) if axis == -1 else (3, 1)
    x[idx] = bad
    res = getattr(xf, name)(x, axis=axis)
    if axis == 0:
        x, res = x.T, (res.T if res.ndim == 2 else res)
    if np.isnan(bad):
        assert np.all(np.isnan(res[1]))
    keep = [0, 2, 3, 4]
    h.assert_close(res[keep], ref(name, x[keep]), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64],
                         ids=lambda d: np.dtype(d).name)
def test_confident_row_no_cancellation(dtype):
    # -log1p(exp(-40)) = -4.248354255291589e-18; naive x - lse gives 0.0.
    res = xf.log_softmax(np.array([0.0, -40.0], dtype=dtype))
    assert res[0] < 0
    np.testing.assert_allclose(float(res[0]), -4.248354255291589e-18,
                               rtol=1e-3)
    np.testing.assert_allclose(float(res[1]), -40.0, rtol=1e-6)
    res = xf.log_softmax(np.array([[-50.0, 3.0, -37.0]], dtype=dtype))
    expected = -np.log1p(np.exp(-53.0) + np.exp(-40.0))
    np.testing.assert_allclose(float(res[0, 1]), expected, rtol=1e-3)


CLASS_COUNTS = (1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 127, 256, 257, 517)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("c", CLASS_COUNTS)
def test_class_count_sweep(c, dtype, rng, h):
    # Every vector-width remainder, with the max and a -inf in the tail; 37
    # rows: groups of 16 rows up to 256 classes, and a partial one.
    x = make(rng, (37, c), dtype)
    x[0, -1] = 50.0
    if c > 1:
        x[1, -1] = -np.inf
        x[2, 0] = -np.inf
    for name in FUNCS:
        h.assert_close(getattr(xf, name)(x), ref(name, x), dtype, what=name)
    expected = ref("log_softmax", x)
    out = np.empty_like(x)
    xf.log_softmax(x, out=out)
    h.assert_close(out, expected, dtype)
    xf.log_softmax(x, out=x)
    h.assert_close(x, expected, dtype)


@pytest.mark.parametrize("shape", [(3000, 517), (3, 70001)],
                         ids=["many_rows", "many_classes"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_large_inputs_threaded_path(shape, dtype, rng, h):
    x = make(rng, shape, dtype)
    for name in FUNCS:
        with xf.num_threads(2):
            res = getattr(xf, name)(x)
        h.assert_close(res, ref(name, x), dtype, what=name)


def test_one_dim_and_single_class(h):
    x = np.array([1.0, 2.0, 3.0])
    h.assert_close(xf.log_softmax(x), ref("log_softmax", x), np.float64)
    lse = xf.logsumexp(x)
    np.testing.assert_allclose(float(lse), np.log(np.exp(x).sum()), rtol=1e-13)
    one = np.array([[2.5], [-1e30]])
    np.testing.assert_array_equal(xf.log_softmax(one), [[0.0], [0.0]])
    np.testing.assert_array_equal(xf.softmax(one), [[1.0], [1.0]])
    np.testing.assert_array_equal(xf.logsumexp(one), [2.5, -1e30])


# ---------------------------------------------------------------- properties

try:
    from hypothesis import given, settings, strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:  # pragma: no cover - the property tests need hypothesis
    hnp = None

if hnp is not None:
    finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False)
    logit_arrays = hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=9),
        elements=finite)

    @settings(max_examples=50, deadline=None)
    @given(x=logit_arrays)
    def test_prop_softmax_sums_to_one(x):
        s = xf.softmax(x)
        assert np.all(s >= 0)
        np.testing.assert_allclose(s.sum(-1), 1.0, rtol=1e-12)
        np.testing.assert_allclose(np.exp(xf.log_softmax(x)), s, rtol=1e-12,
                                   atol=1e-300)

    @settings(max_examples=50, deadline=None)
    @given(x=logit_arrays, c=st.floats(-1e3, 1e3))
    def test_prop_shift_invariance(x, c):
        shift = c * np.arange(1, x.shape[0] + 1)[:, None] / x.shape[0]
        a = xf.log_softmax(x)
        b = xf.log_softmax(x + shift)
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(xf.logsumexp(x + shift),
                                   xf.logsumexp(x) + shift[:, 0],
                                   rtol=1e-12, atol=1e-9)
