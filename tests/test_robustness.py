"""Defects found by the independent robustness hunt (issue 9): overlapping
buffers, non-finite or out-of-range parameters, scratch memory, edge shapes.

Cases that crashed are run in a subprocess, so a regression fails the test
instead of killing the test run.  References are float64 NumPy formulas.
"""
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import xentfast as xf

try:
    import torch
except ImportError:   # torch is an optional oracle
    torch = None


def run_isolated(code):
    """Run `code` in a fresh interpreter; return (returncode, stdout, stderr)."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                       capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def softmax64(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ---------------------------------------------- 1. labels overlapping grad_out

@pytest.mark.parametrize("func", ["cross_entropy", "nll_loss", "softmax_focal_loss"])
def test_labels_sharing_memory_with_grad_out_raise(func):
    code = f"""
        import numpy as np, xentfast as xf
        N, C = 64, 300
        buf = np.zeros(N * C); g = buf.reshape(N, C)
        y = buf[C:C + N].view(np.int64); y[:] = 1
        try:
            xf.{func}(np.zeros((N, C)), y, return_grad=True, grad_out=g)
        except ValueError as e:
            print("ValueError:", e)
        assert (y == 1).all(), "labels were overwritten"
    """
    rc, out, err = run_isolated(code)
    assert rc == 0, err
    assert "ValueError:" in out and "grad_out" in out


def test_labels_sharing_memory_with_grad_out_in_place_raise():
    # the labels live inside the logits, which are also the gradient buffer
    code = """
        import numpy as np, xentfast as xf
        N, C = 64, 300
        x = np.zeros((N, C))
        y = x.reshape(-1)[C:C + N].view(np.int64); y[:] = 1
        try:
            xf.cross_entropy(x, y, return_grad=True, grad_out=x)
        except ValueError as e:
            print("ValueError:", e)
    """
    rc, out, err = run_isolated(code)
    assert rc == 0, err
    assert "ValueError:" in out and "grad_out" in out


def test_probability_target_sharing_memory_with_grad_out_raises():
    buf = np.zeros(2 * 6 * 5)
    g = buf[:30].reshape(6, 5)
    t = buf[5:35].reshape(6, 5)
    with pytest.raises(ValueError, match="grad_out"):
        xf.cross_entropy(np.zeros((6, 5)), t, return_grad=True, grad_out=g)


# -------------------------- 2. overlap with an input that is not an ndarray

@pytest.mark.parametrize("func", [xf.softmax, xf.log_softmax])
def test_out_overlapping_a_memoryview_input_raises(func):
    buf = np.random.default_rng(0).standard_normal((7, 300))
    before = buf.copy()
    with pytest.raises(ValueError, match="out"):
        func(memoryview(buf[:6]), out=buf[1:])
    np.testing.assert_array_equal(buf, before)


@pytest.mark.skipif(torch is None, reason="torch not installed")
def test_out_overlapping_a_tensor_input_raises():
    buf = np.random.default_rng(0).standard_normal((7, 300))
    before = buf.copy()
    with pytest.raises(ValueError, match="out"):
        xf.softmax(torch.from_numpy(buf[:6]), out=buf[1:])
    np.testing.assert_array_equal(buf, before)


@pytest.mark.skipif(torch is None, reason="torch not installed")
def test_grad_out_overlapping_a_tensor_input_raises():
    buf = np.random.default_rng(0).standard_normal((7, 300))
    y = np.zeros(6, np.int64)
    with pytest.raises(ValueError, match="grad_out"):
        xf.cross_entropy(torch.from_numpy(buf[:6]), y, return_grad=True, grad_out=buf[1:])
    with pytest.raises(ValueError, match="grad_out"):
        xf.binary_cross_entropy_with_logits(torch.from_numpy(buf[:6]), np.zeros((6, 300)),
                                            return_grad=True, grad_out=buf[1:])


def test_in_place_on_a_memoryview_of_the_output_still_works():
    x = np.random.default_rng(1).standard_normal((5, 40))
    expected = np.log(softmax64(x))
    xf.log_softmax(memoryview(x), out=x)
    np.testing.assert_allclose(x, expected, rtol=1e-12, atol=1e-12)


# ------------ 4. a non-finite weight of a class no row targets leaves grads finite

@pytest.mark.parametrize("dtype,c", [(np.float32, 200), (np.float64, 40)])
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_non_finite_weight_of_an_untargeted_class(dtype, c, bad):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((9, c)).astype(dtype)
    y = rng.integers(1, c, size=9)
    w = rng.uniform(0.5, 2.0, size=c)
    w[0] = bad                       # class 0 is nobody's target
    loss, g = xf.cross_entropy(x, y, weight=w.astype(dtype), return_grad=True)
    wy = w[y]
    p = softmax64(x)
    onehot = np.eye(c)[y]
    ref_g = wy[:, None] * (p - onehot) / wy.sum()
    ref_loss = np.sum(-wy * np.log(p[np.arange(9), y])) / wy.sum()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, ref_g, rtol=tol, atol=tol)
    np.testing.assert_allclose(loss, ref_loss, rtol=tol)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_non_finite_weight_of_an_untargeted_class_with_softcap(bad):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 12))
    y = rng.integers(1, 12, size=9)
    w = np.ones(12)
    w[0] = bad
    _, g = xf.cross_entropy(x, y, weight=w, softcap=5.0, return_grad=True)
    z = 5.0 * np.tanh(x / 5.0)
    ref = (softmax64(z) - np.eye(12)[y]) / np.cosh(x / 5.0) ** 2 / 9
    np.testing.assert_allclose(g, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype,c", [(np.float32, 200), (np.float64, 40), (np.float32, 10)])
def test_non_finite_alpha_of_an_untargeted_class(dtype, c):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, c)).astype(dtype)
    y = rng.integers(1, c, size=9)
    alpha = np.ones(c, dtype)
    alpha[0] = np.inf
    _, g = xf.softmax_focal_loss(x, y, alpha=alpha, gamma=0.0, return_grad=True)
    # gamma = 0 and alpha = 1 on every target: plain cross-entropy
    ref = (softmax64(x) - np.eye(c)[y]) / 9
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(g, ref, rtol=tol, atol=tol)


# -------------------------- 5. float64 parameters that float32 cannot hold

@pytest.mark.parametrize("cap", [1e39, 1e-300])
def test_softcap_beyond_float32_is_an_error_for_float32(cap):
    x = np.random.default_rng(5).standard_normal((4, 7)).astype(np.float32)
    y = np.arange(4)
    with pytest.raises(ValueError, match=r"softcap .*float32.*got 1e"):
        xf.cross_entropy(x, y, softcap=cap)
    # float64 logits hold it: finite
    loss = xf.cross_entropy(x.astype(np.float64), y, softcap=cap)
    assert np.isfinite(loss)


@pytest.mark.parametrize("name", ["gamma", "alpha"])
def test_sigmoid_focal_parameters_beyond_float32(name):
    x = np.random.default_rng(6).standard_normal((4, 7)).astype(np.float32)
    t = (x > 0).astype(np.float32)
    with pytest.raises(ValueError, match=rf"{name} .*float32.*got 1e\+39"):
        xf.sigmoid_focal_loss(x, t, **{name: 1e39}, return_grad=True)
    loss, g = xf.sigmoid_focal_loss(x.astype(np.float64), t, **{name: 1e39},
                                    return_grad=True)
    assert np.isfinite(g).all()


def test_softmax_focal_gamma_beyond_float32_keeps_its_float64_meaning():
    # the row maths run in double: a huge gamma zeroes every loss and gradient
    x = np.random.default_rng(7).standard_normal((4, 7)).astype(np.float32)
    loss, g = xf.softmax_focal_loss(x, np.arange(4), gamma=1e39, return_grad=True)
    assert loss == 0 and not g.any()


# ------------------------- 6. scratch does not grow with threads it cannot use

def _peak_bytes(func):
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("call", [
    "ce_in_place", "ce_grad", "ce_softcap_grad", "focal_in_place",
    "log_softmax_out", "softmax_in_place", "logsumexp",
])
def test_one_row_call_needs_no_scratch_per_thread(call):
    c = 1 << 16
    x = np.random.default_rng(8).standard_normal((1, c)).astype(np.float32)
    y = np.array([3])
    g = np.empty_like(x)
    out = np.empty_like(x)
    calls = {
        "ce_in_place": lambda: xf.cross_entropy(x, y, return_grad=True, grad_out=x),
        "ce_grad": lambda: xf.cross_entropy(x, y, return_grad=True, grad_out=g),
        "ce_softcap_grad": lambda: xf.cross_entropy(x, y, softcap=30.0, return_grad=True,
                                                    grad_out=g),
        "focal_in_place": lambda: xf.softmax_focal_loss(x, y, return_grad=True, grad_out=x),
        "log_softmax_out": lambda: xf.log_softmax(x, out=out),
        "softmax_in_place": lambda: xf.softmax(x, out=x),
        "logsumexp": lambda: xf.logsumexp(x),
    }
    # what one row may need: its own scratch row (softcap's slope), once
    allowed = x.nbytes + 4096
    with xf.num_threads(64):
        peak = _peak_bytes(calls[call])
    assert peak <= allowed, f"{call}: {peak} bytes of scratch for one row"


def test_in_place_cross_entropy_allocates_no_scratch():
    x = np.random.default_rng(9).standard_normal((64, 4096)).astype(np.float32)
    y = np.arange(64)
    with xf.num_threads(8):
        peak = _peak_bytes(lambda: xf.cross_entropy(x, y, return_grad=True, grad_out=x))
    assert peak < x.nbytes // 8


def test_binary_scratch_bounded_by_blocks():
    x = np.zeros(40000, np.float32)
    t = np.zeros(40000, np.float32)
    with xf.num_threads(64):
        peak = _peak_bytes(lambda: xf.binary_cross_entropy_with_logits(
            x, t, return_grad=True, grad_out=x))
    # one scratch row (4 slots of a 4096-element block) per block, 10 blocks,
    # and some slack (64 rows would be 4 MiB)
    assert peak <= 11 * 4 * 4096 * 4


# --------------------------------------------------- 7. no classes, a weight

@pytest.mark.parametrize("func", [xf.cross_entropy, xf.nll_loss])
def test_no_classes_with_weight_is_nan(func):
    x = np.zeros((3, 0))
    y = np.full(3, -100)
    loss, g = func(x, y, weight=np.ones(0), return_grad=True)
    assert np.isnan(loss)
    assert g.shape == (3, 0)
    total = func(x, y, weight=np.ones(0), reduction="sum")
    assert total == 0


# -------------------------------------------- 8. ignore_index outside int64

@pytest.mark.parametrize("ignore_index", [2**64 - 1, np.uint64(2**64 - 1), 10**30, -10**30,
                                          2**63])
@pytest.mark.parametrize("func", [xf.cross_entropy, xf.nll_loss, xf.softmax_focal_loss])
def test_ignore_index_outside_int64_matches_no_row(func, ignore_index):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((5, 4))
    y = np.array([0, 1, 2, 3, 1])
    loss, g = func(x, y, ignore_index=ignore_index, return_grad=True)
    ref_loss, ref_g = func(x, y, ignore_index=-1, return_grad=True)
    np.testing.assert_array_equal(loss, ref_loss)
    np.testing.assert_array_equal(g, ref_g)


def test_ignore_index_outside_int64_matches_equal_uint64_labels():
    x = np.random.default_rng(11).standard_normal((4, 3))
    y = np.array([0, 2**64 - 1, 2, 2**64 - 1], dtype=np.uint64)
    loss = xf.cross_entropy(x, y, ignore_index=2**64 - 1, reduction="none")
    lp = np.log(softmax64(x))
    np.testing.assert_allclose(loss, [-lp[0, 0], 0.0, -lp[2, 2], 0.0], rtol=1e-12)


@pytest.mark.parametrize("bad", [-1, 2**63 - 1, 2**63, 7])
def test_ignore_index_outside_int64_still_rejects_bad_labels(bad):
    x = np.zeros((3, 3))
    dtype = np.uint64 if bad >= 2**63 else np.int64
    y = np.array([0, bad, 1], dtype=dtype)
    with pytest.raises(ValueError, match=rf"got {bad} at position \(1,\)"):
        xf.cross_entropy(x, y, ignore_index=2**64 - 1)


# -------------------------------------------------- 12. logsumexp with +inf

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("row", [[np.inf, 0, 1], [np.inf, -np.inf], [1, np.inf, np.inf],
                                 [np.inf, np.nan, 0], [np.nan, np.inf], [-np.inf, -np.inf],
                                 [np.nan, -np.inf]])
def test_logsumexp_of_rows_with_inf(dtype, row):
    x = np.array([row, [0.0] * len(row)], dtype)
    with np.errstate(all="ignore"):
        ref = np.log(np.sum(np.exp(x.astype(np.float64)), axis=-1))
    np.testing.assert_allclose(xf.logsumexp(x), ref.astype(dtype), rtol=1e-6)


# --------------------------------------------------- 13. honest messages

@pytest.mark.parametrize("kw,interval", [
    ({"softcap": np.inf}, "(0.0, inf)"),
    ({"z_loss": np.nan}, "(-inf, inf)"),
    ({"z_loss": np.inf}, "(-inf, inf)"),
    ({"label_smoothing": np.nan}, "[0.0, 1.0]"),
])
def test_interval_in_message_excludes_what_it_rejects(kw, interval):
    with pytest.raises(ValueError) as info:
        xf.cross_entropy(np.zeros((2, 3)), np.zeros(2, np.int64), **kw)
    msg = str(info.value)
    assert interval in msg, msg
    assert "inf]" not in msg and "[-inf" not in msg


def test_gamma_message_has_open_upper_end():
    with pytest.raises(ValueError, match=r"gamma must be in \[0.0, inf\); got inf"):
        xf.softmax_focal_loss(np.zeros((2, 3)), np.zeros(2, np.int64), gamma=np.inf)
