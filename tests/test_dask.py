"""xentfast.dask against the in-memory functions and a float64 NumPy
formula, on many chunkings (rows, the class axis, uneven and empty chunks),
on the threaded scheduler and on a dask.distributed cluster of processes.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xentfast as xf
from grids import REDUCTIONS, dtype_id

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
xfd = pytest.importorskip("xentfast.dask")

N, C = 37, 11
# chunks of (N, C): rows only, then the class axis split too
ROW_CHUNKS = [(N, C), (8, C), ((10, 1, 26), C), ((20, 0, 17), C)]
SPLIT_CHUNKS = [(N, 4), (8, 3), ((30, 7), (1, 10)), ((5, 32), (3, 0, 8)), (N, 1)]
CHUNKS = ROW_CHUNKS + SPLIT_CHUNKS
DTYPES = (np.float32, np.float64)
# loss options, each also tried with the class axis split
OPTIONS = {
    "plain": {},
    "weight": {"weight": "w"},
    "ignore": {"ignore_index": 2},
    "smoothing": {"label_smoothing": 0.2, "weight": "w"},
    "sample_weight": {"sample_weight": "sw", "weight": "w"},
    "z_loss": {"z_loss": 1e-2, "sample_weight": "sw"},
    "softcap": {"softcap": 2.5, "label_smoothing": 0.1},
    "everything": {"weight": "w", "ignore_index": 0, "label_smoothing": 0.3,
                   "sample_weight": "sw", "z_loss": 1e-3, "softcap": 4.0},
}
PROB_OPTIONS = ("plain", "weight", "smoothing", "sample_weight", "z_loss", "softcap")


def tol(dtype):
    """The contract's tolerance for class-split results (rtol; atol
    relative to the largest entry)."""
    return 1e-6 if np.dtype(dtype) == np.float32 else 1e-12


def close(actual, expected, dtype, rtol=None):
    """Elementwise agreement; non-finite entries must match exactly."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    inf = np.isinf(expected)
    np.testing.assert_array_equal(actual[inf], expected[inf])
    fin = np.isfinite(expected)
    if fin.any():
        rtol = tol(dtype) if rtol is None else rtol
        scale = np.max(np.abs(expected[fin]))
        np.testing.assert_allclose(actual[fin], expected[fin], rtol=rtol, atol=rtol * scale)


def inputs(rng, dtype, shape=(N, C), probs=False):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    c = shape[-1]
    if probs:
        t = rng.random(shape)
        t = (t / t.sum(axis=-1, keepdims=True)).astype(dtype)
    else:
        t = rng.integers(0, c, shape[:-1])
    return x, t


def resolve(options, rng, shape, dtype):
    """The options with 'w' / 'sw' replaced by random class / sample weights."""
    out = dict(options)
    if out.get("weight") == "w":
        out["weight"] = rng.uniform(0.2, 2.0, shape[-1]).astype(dtype)
    if out.get("sample_weight") == "sw":
        out["sample_weight"] = rng.uniform(0.0, 2.0, shape[:-1]).astype(dtype)
    return out


def ref64(x, target, *, weight=None, ignore_index=-100, reduction="mean",
          label_smoothing=0.0, sample_weight=None, z_loss=0.0, softcap=None):
    """float64 NumPy cross-entropy and its gradient, from the formulas
    (torch's, with xentfast's sample_weight, z_loss and softcap)."""
    x = np.asarray(x, np.float64)
    shape, c = x.shape, x.shape[-1]
    x = x.reshape(-1, c)
    n = x.shape[0]
    z = x if softcap is None else softcap * np.tanh(x / softcap)
    m = z.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    p = np.exp(z - lse[:, None])
    w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64).reshape(-1)
    t = np.asarray(target)
    eps = label_smoothing
    if t.dtype.kind == "f":
        q = (1 - eps) * t.reshape(n, c).astype(np.float64) + eps / c
        keep = np.ones(n, bool)
        den = sw.sum()
    else:
        y = t.reshape(-1).astype(np.int64)
        keep = y != ignore_index
        yc = np.where(keep, y, 0)
        q = (1 - eps) * np.eye(c)[yc] + eps / c
        den = np.sum(sw * w[yc] * keep)
    wq = w * q
    per = sw * keep * (-(wq * (z - lse[:, None])).sum(axis=1) + z_loss * lse**2)
    g = (sw * keep)[:, None] * (wq.sum(axis=1, keepdims=True) * p - wq
                                + 2 * z_loss * lse[:, None] * p)
    if softcap is not None:
        g = g / np.cosh(x / softcap) ** 2
    if reduction == "none":
        return per.reshape(shape[:-1]), g.reshape(shape)
    if reduction == "sum":
        return per.sum(), g.reshape(shape)
    return per.sum() / den, (g / den).reshape(shape)


def is_split(chunks, shape=(N, C)):
    """Whether `chunks` split the class axis of an array of `shape`."""
    return len(da.core.normalize_chunks(chunks, shape)[-1]) > 1


# --------------------------------------------------------- the softmax family

@pytest.mark.parametrize("chunks", CHUNKS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", ["log_softmax", "softmax", "logsumexp"])
def test_softmax_family(name, dtype, chunks, rng):
    x = (rng.standard_normal((N, C)) * 5).astype(dtype)
    x[3, 2] = -np.inf                 # a masked class
    x[4] = -np.inf                    # a row of only -inf
    x[5, 0] = np.nan
    x[6, 7] = np.inf
    x[7] = [0] + [-40] * (C - 1)      # confident: log p_0 = -40 e^-40 * 10, not 0
    X = da.from_array(x, chunks=chunks)
    got = getattr(xfd, name)(X)
    assert isinstance(got, da.Array)
    expected = getattr(xf, name)(x)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    result = got.compute(scheduler="threads")
    assert result.dtype == expected.dtype
    if not is_split(chunks):
        np.testing.assert_array_equal(result, expected)   # the same kernels, row by row
    else:
        close(result, expected, dtype)
    if name == "log_softmax":
        confident = -(C - 1) * np.exp(-40.0)
        assert result[7, 0] < 0 and result[7, 0] == pytest.approx(confident, rel=1e-6)


@pytest.mark.parametrize("chunks", [(2, 3, 5), (1, 4, 2), (3, 2, 5)], ids=str)
def test_softmax_family_row_axes(chunks, rng):
    x = rng.standard_normal((3, 4, 5))
    X = da.from_array(x, chunks=chunks)
    for name in ("log_softmax", "softmax", "logsumexp"):
        close(getattr(xfd, name)(X).compute(), getattr(xf, name)(x), np.float64)


# ----------------------------------------------------------------- cross-entropy

def run(x, t, chunks, options, reduction, scheduler="threads", t_chunks=None):
    X = da.from_array(x, chunks=chunks)
    T = t if t_chunks is None else da.from_array(t, chunks=t_chunks)
    opts = dict(options)
    if isinstance(opts.get("sample_weight"), np.ndarray):
        opts["sample_weight"] = da.from_array(opts["sample_weight"], chunks=7)
    loss, grad = xfd.cross_entropy(X, T, reduction=reduction, return_grad=True, **opts)
    assert isinstance(loss, da.Array) and isinstance(grad, da.Array)
    assert grad.chunks == X.chunks
    return dask.compute(loss, grad, scheduler=scheduler)


def check_against_memory(loss, grad, x, t, options, reduction, chunks):
    dtype = np.dtype(np.float32 if x.dtype == np.float32 else np.float64)
    L, G = xf.cross_entropy(x, t, reduction=reduction, return_grad=True, **options)
    assert np.asarray(loss).dtype == L.dtype and grad.dtype == G.dtype
    if reduction != "none":
        assert isinstance(loss, np.generic) and loss.shape == ()
    if is_split(chunks, x.shape):
        close(loss, L, dtype)
        close(grad, G, dtype)
        return
    if reduction == "none":
        np.testing.assert_array_equal(loss, L)
    else:   # sums of the same row losses, in another order
        close(loss, L, dtype, rtol=1e-6 if dtype == np.float32 else 1e-14)
    if reduction == "mean":   # the global denominator, one rounding away
        close(grad, G, dtype, rtol=2 * np.finfo(dtype).eps)
    else:
        np.testing.assert_array_equal(grad, G)


@pytest.mark.parametrize("chunks", CHUNKS, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_labels_match_in_memory(dtype, option, reduction, chunks, rng):
    x, y = inputs(rng, dtype)
    y[::5] = OPTIONS[option].get("ignore_index", -100)
    options = resolve(OPTIONS[option], rng, x.shape, dtype)
    loss, grad = run(x, y, chunks, options, reduction, t_chunks=9)
    check_against_memory(loss, grad, x, y, options, reduction, chunks)
    ref_loss, ref_grad = ref64(x, y, reduction=reduction, **options)
    close(loss, ref_loss, dtype, rtol=1e-5 if dtype == np.float32 else 1e-12)
    close(grad, ref_grad, dtype, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("chunks", CHUNKS, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("option", PROB_OPTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_probabilities_match_in_memory(dtype, option, reduction, chunks, rng):
    x, t = inputs(rng, dtype, probs=True)
    options = resolve(OPTIONS[option], rng, x.shape, dtype)
    loss, grad = run(x, t, chunks, options, reduction, t_chunks=(6, 5))
    check_against_memory(loss, grad, x, t, options, reduction, chunks)
    ref_loss, ref_grad = ref64(x, t, reduction=reduction, **options)
    close(loss, ref_loss, dtype, rtol=1e-5 if dtype == np.float32 else 1e-12)
    close(grad, ref_grad, dtype, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("chunks", [(2, 3, 7), (1, 2, 3), (2, 3, 2)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_row_axes(chunks, reduction, rng):
    x, y = inputs(rng, np.float64, shape=(3, 5, 7))
    x32, t = inputs(rng, np.float32, shape=(3, 5, 7), probs=True)
    for xs, ts in ((x, y), (x32, t)):
        loss, grad = run(xs, ts, chunks, {"z_loss": 1e-2, "label_smoothing": 0.1}, reduction)
        L, G = xf.cross_entropy(xs, ts, reduction=reduction, return_grad=True,
                                z_loss=1e-2, label_smoothing=0.1)
        close(loss, L, xs.dtype)
        close(grad, G, xs.dtype)


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
@pytest.mark.parametrize("shape, chunks", [((N, C), (8, C)), ((N, C), ((10, 1, 26), C)),
                                           ((3, 5, 7), (2, 5, 7)), ((3, 5, 7), (2, 3, 7))],
                         ids=str)
def test_gradient_blocks_share_one_array(shape, chunks, scheduler, monkeypatch, rng):
    """Row blocks write their gradient into one array of the whole, which the
    compute returns without joining copies (where only the first row axis
    is split): the same values as the in-memory function, a new array each
    compute, and the same blocks for a consumer of them."""
    x, y = inputs(rng, np.float32, shape=shape)
    X = da.from_array(x, chunks=chunks)
    loss, grad = xfd.cross_entropy(X, y, reduction="sum", return_grad=True)
    _, G = xf.cross_entropy(x, y, reduction="sum", return_grad=True)
    joins = []
    tiled_base = xfd._tiled_base
    monkeypatch.setattr(xfd, "_tiled_base", lambda *a: joins.append(tiled_base(*a)) or joins[-1])
    g1 = grad.compute(scheduler=scheduler)
    g2 = dask.compute(loss, grad, scheduler=scheduler)[1]
    for g in (g1, g2):
        np.testing.assert_array_equal(g, G)
        assert g.flags.c_contiguous
    assert not np.shares_memory(g1, g2)
    shared = all(len(c) == 1 for c in X.chunks[1:])
    assert [j is not None for j in joins] == [shared, shared]
    close(grad.sum(axis=0).compute(scheduler=scheduler), G.sum(axis=0, dtype=np.float64),
          np.float32)


def test_gradient_too_large_to_share_gets_its_own_blocks(monkeypatch, rng):
    """Beyond a quarter of the machine's memory each task allocates its own
    gradient block, and the blocks are joined with copies."""
    x, y = inputs(rng, np.float64)
    monkeypatch.setattr(xfd, "_physical_memory", lambda: 4 * x.nbytes - 1)
    loss, grad = xfd.cross_entropy(da.from_array(x, chunks=(8, C)), y, return_grad=True)
    L, G = xf.cross_entropy(x, y, return_grad=True)
    blocks = dask.compute(*grad.to_delayed().ravel())
    assert not any(np.shares_memory(a, b) for a, b in zip(blocks, blocks[1:]))
    close(grad.compute(), G, np.float64, rtol=1e-15)


def test_join_blocks():
    """The parallel join of a grid of blocks, against np.block, and the
    shortcut for consecutive views of one array (only those)."""
    rng = np.random.default_rng(0)
    whole = rng.standard_normal((9, 7))
    chunks = ((4, 0, 5), (3, 4))
    blocks = [[whole[r0:r1, c0:c1] for c0, c1 in ((0, 3), (3, 7))]
              for r0, r1 in ((0, 4), (4, 4), (4, 9))]
    joined = xfd._join_blocks([[b.copy() for b in row] for row in blocks], chunks, 2)
    np.testing.assert_array_equal(joined, whole)
    base = rng.standard_normal((10, 3))
    views = [[base[:6]], [base[6:]]]
    assert xfd._join_blocks(views, ((6, 4), (3,)), 2) is not None
    assert np.shares_memory(xfd._join_blocks(views, ((6, 4), (3,)), 2), base)
    swapped = [[base[6:]], [base[:6]]]
    out = xfd._join_blocks(swapped, ((4, 6), (3,)), 2)
    assert not np.shares_memory(out, base)
    np.testing.assert_array_equal(out, np.concatenate([base[6:], base[:6]]))
    partial = [[base[:3]], [base[3:6]]]
    assert not np.shares_memory(xfd._join_blocks(partial, ((3, 3), (3,)), 2), base)
    mixed = [[np.ones((2, 3), np.float32)], [np.zeros((1, 3))]]   # dask's own join
    np.testing.assert_array_equal(xfd._join_blocks(mixed, ((2, 1), (3,)), 2),
                                  [[1, 1, 1], [1, 1, 1], [0, 0, 0]])


@pytest.mark.parametrize("chunks", [(8, C), (8, 3)], ids=str)
def test_non_finite_rows(chunks):
    x = np.zeros((10, C))
    y = np.arange(10) % C
    x[0, 3] = -np.inf                 # masked, not the target: finite
    x[1, 1] = -np.inf                 # masked target: loss +inf
    x[2] = -np.inf                    # every class masked: NaN
    x[3, 5] = np.nan                  # NaN: NaN row
    x[4, 9] = np.inf                  # +inf: NaN row
    x[5] = np.nan                     # ignored: 0 whatever it holds
    y[5] = -100
    for reduction in ("none", "sum"):
        loss, grad = run(x, y, chunks, {}, reduction)
        L, G = xf.cross_entropy(x, y, reduction=reduction, return_grad=True)
        close(loss, L, np.float64)
        close(grad, G, np.float64)
    loss, grad = run(x, y, chunks, {}, "none")
    assert np.isfinite(loss[0]) and loss[1] == np.inf and np.isnan(loss[2:5]).all()
    assert loss[5] == 0 and (grad[5] == 0).all() and np.isfinite(loss[6:]).all()


def test_confident_row_keeps_its_tiny_loss():
    x = np.array([[0.0, -40.0, -50.0, -45.0]])
    for chunks in ((1, 4), (1, 1), (1, 2)):
        loss = xfd.cross_entropy(da.from_array(x, chunks=chunks), np.array([0]),
                                 reduction="sum").compute()
        expected = np.log1p(np.exp(-40.0) + np.exp(-50.0) + np.exp(-45.0))
        assert loss == pytest.approx(expected, rel=1e-12)


def test_mean_with_every_row_ignored():
    x = np.ones((6, 4))
    for chunks in ((3, 4), (3, 2)):
        loss, grad = xfd.cross_entropy(da.from_array(x, chunks=chunks), np.full(6, -100),
                                       return_grad=True)
        loss, grad = dask.compute(loss, grad)
        assert np.isnan(loss) and (grad == 0).all()


@pytest.mark.parametrize("chunks", [(N, C), (8, C), (8, 4)], ids=str)
def test_dtypes(chunks, rng):
    y = rng.integers(0, C, N)
    for x, out in ((rng.standard_normal((N, C)).astype(np.float16), np.float32),
                   (rng.integers(-3, 3, (N, C)), np.float64),
                   (rng.random((N, C)) > 0.5, np.float64)):
        loss, grad = run(x, y, chunks, {}, "mean")
        assert np.asarray(loss).dtype == out and grad.dtype == out
        L, G = xf.cross_entropy(x, y, return_grad=True)
        close(loss, L, out, rtol=2e-6 if out == np.float32 else 1e-12)
        close(grad, G, out, rtol=2e-6 if out == np.float32 else 1e-12)
        for name in ("log_softmax", "softmax", "logsumexp"):
            got = getattr(xfd, name)(da.from_array(x, chunks=chunks)).compute()
            assert got.dtype == out
            close(got, getattr(xf, name)(x), out)


def test_numpy_inputs_are_wrapped(rng):
    x, y = inputs(rng, np.float32)
    loss, grad = xfd.cross_entropy(x, y, return_grad=True, sample_weight=np.ones(N))
    assert isinstance(loss, da.Array) and len(grad.chunks[-1]) == 1
    L, G = xf.cross_entropy(x, y, return_grad=True, sample_weight=np.ones(N))
    loss, grad = dask.compute(loss, grad)
    assert loss == L
    close(grad, G, np.float32, rtol=2 * np.finfo(np.float32).eps)
    assert isinstance(xfd.softmax(x), da.Array)


def test_empty(rng):
    for shape, chunks in (((0, 5), (1, 5)), ((0, 5), (1, 2)), ((4, 0), (2, 1))):
        x = np.zeros(shape)
        y = np.full(shape[0], -100)
        for reduction in REDUCTIONS:
            loss, grad = run(x, y, chunks, {}, reduction)
            L, G = xf.cross_entropy(x, y, return_grad=True, reduction=reduction)
            close(loss, L, np.float64)
            assert grad.shape == G.shape
        for name in ("log_softmax", "softmax", "logsumexp"):
            got = getattr(xfd, name)(da.from_array(x, chunks=chunks)).compute()
            close(got, getattr(xf, name)(x), np.float64)


def test_one_row(rng):
    x = rng.standard_normal(C)
    for chunks in (C, 3):
        X = da.from_array(x, chunks=chunks)
        loss, grad = dask.compute(*xfd.cross_entropy(X, np.int64(2), return_grad=True))
        L, G = xf.cross_entropy(x, np.int64(2), return_grad=True)
        close(loss, L, np.float64)
        close(grad, G, np.float64)
        close(xfd.logsumexp(X).compute(), xf.logsumexp(x), np.float64)


def test_lazy(rng):
    calls = []

    def counted(block):
        calls.append(1)
        return block

    x, y = inputs(rng, np.float64)
    X = da.from_array(x, chunks=(8, 4)).map_blocks(counted, meta=np.empty((0, 0)))
    loss, grad = xfd.cross_entropy(X, da.from_array(y, chunks=8), return_grad=True)
    xfd.softmax(X), xfd.logsumexp(X), xfd.log_softmax(X)
    assert calls == []
    dask.compute(loss, grad, scheduler="sync")
    assert len(calls) == X.npartitions   # each chunk made once (read by two passes)


# ------------------------------------------------------------------------ errors

def test_bad_labels_raise_at_their_position(rng):
    x, y = inputs(rng, np.float32)
    y[23] = C
    with pytest.raises(ValueError, match=rf"got {C} at position \(23,\)"):
        xfd.cross_entropy(x, y)                       # NumPy labels: at once
    for chunks in ((8, C), (8, 4)):
        loss = xfd.cross_entropy(da.from_array(x, chunks=chunks), da.from_array(y, chunks=8))
        with pytest.raises(ValueError, match=rf"in \[0, {C}\).*got {C} at position \(23,\)"):
            loss.compute(scheduler="threads")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"reduction": "avg"}, ValueError, "reduction"),
    ({"weight": np.ones(3)}, ValueError, "weight must have shape"),
    ({"sample_weight": np.ones(3)}, ValueError, "sample_weight must have the row shape"),
    ({"label_smoothing": 2.0}, ValueError, "label_smoothing"),
    ({"softcap": 0.0}, ValueError, "softcap"),
    ({"ignore_index": 1.5}, TypeError, "ignore_index"),
])
def test_bad_options(kwargs, error, match, rng):
    x, y = inputs(rng, np.float32)
    with pytest.raises(error, match=match):
        xfd.cross_entropy(da.from_array(x, chunks=8), y, **kwargs)


def test_bad_targets(rng):
    x, y = inputs(rng, np.float32)
    X = da.from_array(x, chunks=8)
    with pytest.raises(TypeError, match="integer class labels"):
        xfd.cross_entropy(X, y.astype(np.float32))
    with pytest.raises(TypeError, match="integer"):
        xfd.cross_entropy(X, y > 3)
    with pytest.raises(ValueError, match="shape"):
        xfd.cross_entropy(X, y[:-1])
    with pytest.raises(ValueError, match="ignore_index"):
        xfd.cross_entropy(X, np.full(x.shape, 1.0 / C), ignore_index=0)
    with pytest.raises(ValueError, match="scalar"):
        xfd.softmax(da.from_array(np.float64(1.0)))
    with pytest.raises(TypeError, match="complex"):
        xfd.log_softmax(np.ones((2, 2), complex))


def test_import_xentfast_does_not_import_dask():
    code = "import sys, xentfast, xentfast.sklearn; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_dask_says_how_to_install():
    code = ("import sys; sys.modules['dask'] = None\n"
            "try:\n    import xentfast.dask\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install xentfast[dask]" in out.stdout


# ------------------------------------------------------ linear_cross_entropy

V, D = 13, 5
LINEAR_OPTIONS = ["plain", "everything", "smoothing", "z_loss", "softcap"]
# (x chunks, W chunks): W whole (row blocks) or chunked along the vocabulary
LINEAR_CHUNKS = [((9, D), (V, D)), (((20, 0, 17), D), (V, D)), ((9, D), (4, D)),
                 (((30, 7), 2), ((1, 12), 3))]
has_linear = hasattr(xf, "linear_cross_entropy")


def linear_ref(x, W, b, y, reduction, options):
    """float64 reference: ref64 on the logits, then the chain rule."""
    x64, W64 = x.astype(np.float64), W.astype(np.float64)
    z = x64 @ W64.T + (0.0 if b is None else b)
    loss, G = ref64(z, y, reduction=reduction, **options)
    G2 = G.reshape(-1, W.shape[0])
    return loss, (G @ W64, G2.T @ x64.reshape(-1, W.shape[1]),
                  None if b is None else G2.sum(axis=0))


@pytest.mark.parametrize("chunks", LINEAR_CHUNKS, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("option", LINEAR_OPTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_linear(dtype, option, reduction, chunks, rng):
    x_chunks, W_chunks = chunks
    if len(da.core.normalize_chunks(W_chunks, (V, D))[0]) == 1 and not has_linear:
        pytest.skip("needs xentfast.linear_cross_entropy")
    x = rng.standard_normal((N, D)).astype(dtype)
    W = rng.standard_normal((V, D)).astype(dtype)
    b = rng.standard_normal(V).astype(dtype)
    y = rng.integers(0, V, N)
    y[::6] = OPTIONS[option].get("ignore_index", -100)
    options = resolve(OPTIONS[option], rng, (N, V), dtype)
    loss, grads = xfd.linear_cross_entropy(
        da.from_array(x, chunks=x_chunks), da.from_array(W, chunks=W_chunks),
        da.from_array(y, chunks=11), bias=b, reduction=reduction, return_grad=True, **options)
    assert grads.x.chunks == da.from_array(x, chunks=x_chunks).rechunk({1: -1}).chunks
    assert grads.W.chunks[0] == da.core.normalize_chunks(W_chunks, (V, D))[0]
    loss, *got = dask.compute(loss, *grads, scheduler="threads")
    ref_loss, ref = linear_ref(x, W, b, y, reduction, options)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    close(loss, ref_loss, dtype, rtol=rtol)
    for g, r in zip(got, ref):
        assert g.dtype == dtype
        close(g, r, dtype, rtol=rtol)
    if has_linear:
        L, G = xf.linear_cross_entropy(x, W, y, bias=b, reduction=reduction,
                                       return_grad=True, **options)
        close(loss, L, dtype, rtol=rtol)
        for g, r in zip(got, G):
            close(g, r, dtype, rtol=rtol)


def test_linear_row_axes_no_bias_and_numpy_W(rng):
    x = rng.standard_normal((3, 4, D))
    W = rng.standard_normal((V, D))
    y = rng.integers(0, V, (3, 4))
    for W_in in ([W] if not has_linear else [W, da.from_array(W, chunks=(V, D))]) + [
            da.from_array(W, chunks=(5, D))]:
        loss, grads = xfd.linear_cross_entropy(da.from_array(x, chunks=(2, 3, D)), W_in, y,
                                               return_grad=True, z_loss=1e-2)
        if isinstance(W_in, np.ndarray) and not has_linear:
            continue
        loss, gx, gW = dask.compute(loss, grads.x, grads.W)
        assert grads.bias is None
        ref_loss, (rx, rW, _) = linear_ref(x, W, None, y, "mean", {"z_loss": 1e-2})
        close(loss, ref_loss, np.float64, rtol=1e-10)
        close(gx, rx.reshape(x.shape), np.float64, rtol=1e-10)
        close(gW, rW, np.float64, rtol=1e-10)


def test_linear_bad_input(rng):
    x = da.from_array(rng.standard_normal((N, D)), chunks=10)
    W = rng.standard_normal((V, D))
    y = rng.integers(0, V, N)
    with pytest.raises(ValueError, match="feature size D"):
        xfd.linear_cross_entropy(x, W[:, :3], y)
    with pytest.raises(TypeError, match="probability targets are not supported"):
        xfd.linear_cross_entropy(x, W, rng.random((N, V)))
    with pytest.raises(ValueError, match="bias must have shape"):
        xfd.linear_cross_entropy(x, W, y, bias=np.ones(3))
    y[4] = V
    with pytest.raises(ValueError, match=rf"got {V} at position \(4,\)"):
        xfd.linear_cross_entropy(x, da.from_array(W, chunks=5), da.from_array(y, chunks=10)
                                 ).compute()


# ----------------------------------------------------- a cluster of processes

@pytest.fixture(scope="module")
def client():
    """A dask.distributed cluster of two single-threaded worker processes."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster, set_as_default=False) as c:
            yield c


@pytest.mark.parametrize("chunks", [(8, C), (8, 3)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("option", ["plain", "everything"])
def test_distributed_labels(client, option, reduction, chunks, rng):
    x, y = inputs(rng, np.float32)
    options = resolve(OPTIONS[option], rng, x.shape, np.float32)
    loss, grad = run(x, y, chunks, options, reduction, scheduler=client, t_chunks=9)
    check_against_memory(loss, grad, x, y, options, reduction, chunks)


@pytest.mark.parametrize("chunks", [(8, C), (8, 3)], ids=str)
def test_distributed_probabilities_and_softmax(client, chunks, rng):
    x, t = inputs(rng, np.float64, probs=True)
    options = {"label_smoothing": 0.1, "z_loss": 1e-3}
    loss, grad = run(x, t, chunks, options, "mean", scheduler=client, t_chunks=(6, 5))
    check_against_memory(loss, grad, x, t, options, "mean", chunks)
    X = da.from_array(x, chunks=chunks)
    results = dask.compute(xfd.log_softmax(X), xfd.softmax(X), xfd.logsumexp(X),
                           scheduler=client)
    for got, name in zip(results, ("log_softmax", "softmax", "logsumexp")):
        close(got, getattr(xf, name)(x), np.float64)


def test_distributed_linear(client, rng):
    x, W = rng.standard_normal((N, D)), rng.standard_normal((V, D))
    b, y = rng.standard_normal(V), rng.integers(0, V, N)
    W_chunks = [(4, D)] + ([(V, D)] if has_linear else [])
    for chunks in W_chunks:
        loss, grads = xfd.linear_cross_entropy(
            da.from_array(x, chunks=(9, D)), da.from_array(W, chunks=chunks), y, bias=b,
            label_smoothing=0.1, return_grad=True)
        loss, *got = dask.compute(loss, *grads, scheduler=client)
        ref_loss, ref = linear_ref(x, W, b, y, "mean", {"label_smoothing": 0.1})
        close(loss, ref_loss, np.float64, rtol=1e-10)
        for g, r in zip(got, ref):
            close(g, r, np.float64, rtol=1e-10)


def test_distributed_bad_label(client, rng):
    x, y = inputs(rng, np.float32)
    y[30] = -1
    loss = xfd.cross_entropy(da.from_array(x, chunks=(8, 4)), da.from_array(y, chunks=8))
    with pytest.raises(ValueError, match=r"got -1 at position \(30,\)"):
        loss.compute(scheduler=client)


# ------------------------------------------------------------------ the estimator

sklearn = pytest.importorskip("sklearn")
from xentfast.sklearn import CrossEntropyClassifier  # noqa: E402

ESTIMATOR_CASES = {
    "plain": {},
    "balanced": {"class_weight": "balanced"},
    "dict": {"class_weight": {0: 2.0, 2: 0.5}},
    "focal": {"loss": "focal", "gamma": 1.5},
    "smoothing-no-intercept": {"label_smoothing": 0.1, "fit_intercept": False},
}


def classification(rng, n=3000, d=6, k=3):
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((k, d)) * 2
    y = np.argmax(X @ W.T + rng.gumbel(size=(n, k)), axis=1)
    return X, y


def same_model(a, b):
    scale = max(np.abs(a.coef_).max(), np.abs(a.intercept_).max())
    np.testing.assert_allclose(b.coef_, a.coef_, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(b.intercept_, a.intercept_, rtol=0, atol=1e-6 * scale)
    np.testing.assert_array_equal(b.classes_, a.classes_)
    assert b.n_features_in_ == a.n_features_in_


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("case", list(ESTIMATOR_CASES))
def test_estimator_fit_equals_in_memory(case, weighted, rng):
    X, y = classification(rng)
    sw = rng.uniform(0, 2, len(y)) if weighted else None
    params = dict(tol=1e-10, max_iter=500, **ESTIMATOR_CASES[case])
    a = CrossEntropyClassifier(**params).fit(X, y, sample_weight=sw)
    Xd = da.from_array(X, chunks=(700, 3))              # features are rechunked whole
    swd = None if sw is None else da.from_array(sw, chunks=1000)
    with dask.config.set(scheduler="threads"):
        b = CrossEntropyClassifier(**params).fit(Xd, da.from_array(y, chunks=500), swd)
    same_model(a, b)


def test_estimator_labels_and_predictions(rng):
    X, y = classification(rng, k=2)
    labels = np.array(["no", "yes"])[y]
    a = CrossEntropyClassifier(tol=1e-10).fit(X, labels)
    Xd = da.from_array(X, chunks=(1000, 6))
    b = CrossEntropyClassifier(tol=1e-10).fit(Xd, labels)
    same_model(a, b)
    for name in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        got = getattr(b, name)(Xd)
        assert isinstance(got, da.Array), name
        expected = getattr(b, name)(X)
        assert got.shape == expected.shape and got.dtype == expected.dtype
        np.testing.assert_array_equal(got.compute(), expected)
    assert b.decision_function(Xd).ndim == 1   # two classes: z_1 - z_0


def test_estimator_bad_input(rng):
    X, y = classification(rng, n=100)
    Xd = da.from_array(X, chunks=(30, 6))
    with pytest.raises(ValueError, match="at least 2 classes"):
        CrossEntropyClassifier().fit(Xd, np.zeros(100, int))
    with pytest.raises(ValueError, match="Negative"):
        CrossEntropyClassifier().fit(Xd, y, sample_weight=-np.ones(100))
    with pytest.raises(ValueError, match="one entry per sample"):
        CrossEntropyClassifier().fit(Xd, y[:50])
    with pytest.raises(ValueError, match="2-D"):
        CrossEntropyClassifier().fit(Xd[:, 0], y)
    fitted = CrossEntropyClassifier().fit(Xd, y)
    with pytest.raises(ValueError, match="n_samples, 6"):
        fitted.predict(Xd[:, :3])


@pytest.mark.parametrize("persisted", [True, False], ids=["X_persisted", "X_lazy"])
@pytest.mark.parametrize("weighted", [True, False], ids=["weighted", "unweighted"])
def test_estimator_on_the_cluster(client, persisted, weighted, rng, monkeypatch):
    # X held by the workers: each evaluation goes to the blocks' futures
    # directly; X as a graph: through a dask graph.  Same model either way.
    from xentfast import _dask_estimator
    X, y = classification(rng, n=1000, d=4, k=3)
    sw = rng.uniform(0.5, 1.5, len(y)) if weighted else None
    kw = dict(tol=1e-9, class_weight="balanced" if weighted else None)
    a = CrossEntropyClassifier(**kw).fit(X, y, sample_weight=sw)
    Xd = da.from_array(X, chunks=(50, 4))   # 20 blocks: sums on the workers, then here
    if persisted:
        Xd = client.persist(Xd)
    calls = []
    on_futures = _dask_estimator._objective_on_futures
    monkeypatch.setattr(_dask_estimator, "_objective_on_futures",
                        lambda *args: calls.append(1) or on_futures(*args))
    with dask.config.set(scheduler=client):
        b = CrossEntropyClassifier(**kw).fit(
            Xd, da.from_array(y, chunks=50), None if sw is None else da.from_array(sw, chunks=50))
        assert (len(calls) > 0) == persisted
        proba = b.predict_proba(Xd)
        assert isinstance(proba, da.Array)
        np.testing.assert_array_equal(proba.compute(), b.predict_proba(X))
    same_model(a, b)


def test_out_of_core_example_quick(tmp_path):
    """examples/dask_out_of_core.py in its smoke-test size."""
    pytest.importorskip("distributed")
    pytest.importorskip("zarr")
    script = Path(__file__).resolve().parent.parent / "examples" / "dask_out_of_core.py"
    if not script.exists():
        pytest.skip("examples/ not present next to the tests")
    args = [sys.executable, str(script), "--quick", "--dir", str(tmp_path)]
    if os.environ.get("XENTFAST_ASAN"):
        # Under .ci/asan the ASan runtime alone (even with an uninstrumented
        # xentfast) takes a worker from 0.09 to 0.36 GB after its first task,
        # mostly its quarantine of freed memory (0.12 GB without it), and to
        # a peak of 0.71 GB over the example (0.16 GB without ASan): above
        # --quick's 0.27 GB limit the nanny restarts the workers until none is
        # left, and the example waits forever.  --quick's data (8 MB) comes
        # near neither limit: only the memory-limit value differs.
        args += ["--memory-limit", str(2 * 2**30)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    grad_diff = re.search(r"gradient max rel. difference ([\d.e+-]+)", r.stdout)
    assert grad_diff and float(grad_diff.group(1)) < 1e-6, r.stdout
    coef_diff = re.search(r"max coefficient difference ([\d.e+-]+)", r.stdout)
    assert coef_diff and float(coef_diff.group(1)) < 1e-6, r.stdout
    assert len(re.findall(r"peak memory", r.stdout)) == 4, r.stdout
