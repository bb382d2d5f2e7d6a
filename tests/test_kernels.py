"""The internal block API (xentfast._kernels): the fused row kernels on a
caller's (rows, classes) block, as the fused linear cross-entropy (per chunk)
and the PyTorch adapter (per call) use them.  Checked against float64 NumPy
formulas, and against the public functions bit for bit."""
import numpy as np
import pytest

import xentfast as xf
from xentfast import _kernels

TOL = {np.float32: 2e-5, np.float64: 1e-12}


def softmax64(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def inputs(dtype, n=37, c=300, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, c)) * 3).astype(dtype)
    y = rng.integers(0, c, size=n).astype(np.int64)
    y[::7] = -100
    return x, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [10, 300])        # tile path and row path
def test_cross_entropy_block_against_numpy(dtype, c):
    x, y = inputs(dtype, c=c)
    w = np.linspace(0.5, 2.0, c).astype(dtype)
    sw = np.linspace(1.0, 3.0, len(y)).astype(dtype)
    x64 = x.astype(np.float64)
    kept = y != -100
    yk = np.where(kept, y, 0)
    p = softmax64(x64)
    s = np.where(kept, w[yk].astype(np.float64) * sw, 0.0)
    ref_loss = -s * np.log(p[np.arange(len(y)), yk])
    ref_grad = s[:, None] * (p - np.eye(c)[yk]) * 0.25

    grad = np.empty_like(x)
    loss_rows = _kernels.cross_entropy_block(x, y, weight=w, sample_weight=sw,
                                             grad_scale=0.25, grad_out=grad)
    assert loss_rows.dtype == np.float64 and loss_rows.shape == (len(y),)
    np.testing.assert_allclose(loss_rows, ref_loss, rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(grad, ref_grad, rtol=TOL[dtype], atol=TOL[dtype])
    denominator = _kernels.label_denominator(y, weight=w, sample_weight=sw)
    np.testing.assert_allclose(denominator, s.sum(), rtol=TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1, "z_loss": 1e-3},
                                     {"softcap": 5.0}])
def test_chunked_in_place_equals_the_public_function(dtype, options):
    # what the fused linear cross-entropy does: one call per chunk of rows,
    # in place, with the global denominator, then the fixed-order sum
    x, y = inputs(dtype, n=50)
    w = np.linspace(0.5, 2.0, x.shape[1]).astype(dtype)
    loss, grad = xf.cross_entropy(x, y, weight=w, return_grad=True, **options)

    block = x.copy()
    denominator = _kernels.label_denominator(y, weight=w)
    pieces = sum(_kernels.label_denominator(y[a:a + 16], weight=w) for a in range(0, 50, 16))
    np.testing.assert_allclose(pieces, denominator, rtol=1e-12)
    loss_rows = np.empty(50)
    for a in range(0, 50, 16):
        _kernels.cross_entropy_block(block[a:a + 16], y[a:a + 16], weight=w,
                                     grad_scale=1 / denominator, grad_out=block[a:a + 16],
                                     loss_out=loss_rows[a:a + 16], **options)
    np.testing.assert_array_equal(block, grad)
    assert dtype(loss_rows.sum() / denominator) == loss


@pytest.mark.parametrize("target", ["labels", "probabilities"])
def test_max_threads_changes_no_bit(target):
    # what the fused linear cross-entropy asks for (a serial kernel between
    # the BLAS's GEMMs): the same bits as the threaded call, both right
    x, y = inputs(np.float32, n=4096, c=300)
    t = y if target == "labels" else softmax64(x[::-1].astype(np.float64)).astype(np.float32)
    results = []
    for max_threads in (None, 1):
        with xf.num_threads(2):
            grad = np.empty_like(x)
            rows = _kernels.cross_entropy_block(x, t, grad_out=grad, max_threads=max_threads)
        results.append((rows, grad))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    p = softmax64(x.astype(np.float64))
    if target == "labels":
        kept = y != -100
        ref = np.where(kept, -np.log(p[np.arange(len(y)), np.where(kept, y, 0)]), 0.0)
    else:
        ref = -(t * np.log(p)).sum(axis=1)
    np.testing.assert_allclose(results[1][0], ref, rtol=1e-5, atol=1e-5)


def test_probability_targets_and_no_gradient():
    x, _ = inputs(np.float64, n=9, c=20)
    t = softmax64(np.random.default_rng(1).standard_normal((9, 20)))
    loss_rows = _kernels.cross_entropy_block(x, t)
    ref = -(t * np.log(softmax64(x))).sum(axis=1)
    np.testing.assert_allclose(loss_rows, ref, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_focal_and_nll_blocks_equal_the_public_functions(dtype):
    x, y = inputs(dtype)
    alpha = np.linspace(0.5, 2.0, x.shape[1]).astype(dtype)
    loss, grad = xf.softmax_focal_loss(x, y, alpha=alpha, gamma=1.5, return_grad=True)
    g = np.empty_like(x)
    rows = _kernels.softmax_focal_block(x, y, alpha=alpha, gamma=1.5,
                                        grad_scale=1 / np.count_nonzero(y != -100),
                                        grad_out=g)
    np.testing.assert_array_equal(g, grad)
    assert dtype(rows.sum() / np.count_nonzero(y != -100)) == loss

    loss, grad = xf.nll_loss(x, y, reduction="sum", return_grad=True)
    rows = _kernels.nll_block(x, y, grad_out=g)
    np.testing.assert_array_equal(g, grad)
    assert dtype(rows.sum()) == loss


def test_empty_blocks():
    x = np.zeros((3, 0), np.float32)
    y = np.full(3, -100)
    out = np.full(3, 7.0)
    assert _kernels.cross_entropy_block(x, y, loss_out=out) is out
    np.testing.assert_array_equal(out, 0.0)
    assert _kernels.label_denominator(y, weight=np.ones(0)) == 0.0


@pytest.mark.parametrize("module", ["_multiclass", "_softmax", "_binary", "_scan", "_openmp", "_simd", "_buffers"])
def test_stubs_name_the_compiled_functions(module):
    import ast
    import importlib
    import pathlib
    mod = importlib.import_module(f"xentfast.{module}")
    stub = pathlib.Path(mod.__file__).with_name(f"{module}.pyi")
    tree = ast.parse(stub.read_text())
    stubbed = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    compiled = {name for name in dir(mod) if not name.startswith("_")
                and callable(getattr(mod, name)) and name[0].islower()}
    assert stubbed == compiled
    # keyword-only entry points take the names the stub gives
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.args.kwonlyargs and not node.args.args:
            with pytest.raises(TypeError):
                getattr(mod, node.name)(object())     # no positional call


def test_py_typed_ships():
    import pathlib
    assert (pathlib.Path(xf.__file__).with_name("py.typed")).exists()
