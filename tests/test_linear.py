"""linear_cross_entropy against the unfused computation in float64.

Two independent references: ``np_ref``, a plain float64 NumPy formula of the
logits ``x @ W.T + b``, the loss and its analytic gradients; and ``torch_ref``,
torch float64 autograd through ``F.linear`` and ``F.cross_entropy`` (with the
documented formula, written in torch ops, for what torch lacks:
``sample_weight``, ``z_loss``, ``softcap``).
"""

import tracemalloc

import numpy as np
import pytest

import xentfast as xf
from grids import REDUCTIONS, dtype_id

TOL = {np.float32: 1e-4, np.float64: 1e-10}   # the contract's rtol
OPTIONS = {
    "plain": {},
    "bias": {"bias": True},
    "weight": {"weight": True},
    "ignore": {"ignore_index": 3},
    "smoothing": {"label_smoothing": 0.2, "weight": True},
    "sample_weight": {"sample_weight": True},
    "z_loss": {"z_loss": 1e-2},
    "softcap": {"softcap": 2.5, "bias": True},
    "everything": {"bias": True, "weight": True, "ignore_index": 3, "label_smoothing": 0.1,
                   "sample_weight": True, "z_loss": 1e-3, "softcap": 4.0},
}


# ----------------------------------------------------------------- references

def np_ref(x, W, y, *, bias=None, weight=None, ignore_index=-100, reduction="mean",
           label_smoothing=0.0, sample_weight=None, z_loss=0.0, softcap=None):
    """(loss, dx, dW, dbias) of the unfused computation, all in float64 NumPy."""
    x2 = np.asarray(x, np.float64).reshape(-1, np.shape(W)[1])
    W = np.asarray(W, np.float64)
    row_shape = np.shape(y)
    y = np.asarray(y).reshape(-1).astype(np.int64)
    n, c = x2.shape[0], W.shape[0]
    z = x2 @ W.T + (0.0 if bias is None else np.asarray(bias, np.float64))
    slope = 1.0
    if softcap is not None:
        t = np.tanh(z / softcap)
        z, slope = softcap * t, 1 - t**2
    m = z.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    logp = z - lse[:, None]
    p = np.exp(logp)
    keep = y != ignore_index
    yk = np.where(keep, y, 0)
    w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64).reshape(-1)
    eps = label_smoothing
    row = s * ((1 - eps) * w[yk] * -logp[np.arange(n), yk]
               - eps / c * (w * logp).sum(axis=1) + z_loss * lse**2)
    row = np.where(keep, row, 0.0)
    onehot = np.eye(c)[yk]
    dz = s[:, None] * ((1 - eps) * w[yk][:, None] * (p - onehot)
                       + eps / c * (w.sum() * p - w) + 2 * z_loss * lse[:, None] * p)
    dz = np.where(keep[:, None], dz * slope, 0.0)
    denom = np.sum(np.where(keep, s * w[yk], 0.0))
    if reduction == "none":
        loss = row.reshape(row_shape)
    elif reduction == "sum":
        loss = row.sum()
    else:
        loss = row.sum() / denom if denom else np.nan
        dz = dz / denom if denom else 0 * dz
    dx = (dz @ W).reshape(np.shape(x))
    return loss, dx, dz.T @ x2, None if bias is None else dz.sum(axis=0)


def torch_ref(x, W, y, *, bias=None, weight=None, ignore_index=-100, reduction="mean",
              label_smoothing=0.0, sample_weight=None, z_loss=0.0, softcap=None,
              upstream=None):
    """Same as np_ref, by torch float64 autograd; for 'none' the gradient is
    that of sum(losses * upstream) (upstream: ones by default)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional

    def leaf(a):
        return None if a is None else torch.tensor(np.asarray(a, np.float64), requires_grad=True)
    xt, Wt, bt = leaf(x), leaf(W), leaf(bias)
    z = F.linear(xt, Wt, bt).reshape(-1, Wt.shape[0])
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    yt = torch.tensor(np.asarray(y).reshape(-1).astype(np.int64))
    wt = None if weight is None else torch.tensor(np.asarray(weight, np.float64))
    per = F.cross_entropy(z, yt, weight=wt, ignore_index=ignore_index, reduction="none",
                          label_smoothing=label_smoothing)
    keep = yt != ignore_index
    s = (torch.ones_like(per) if sample_weight is None
         else torch.tensor(np.asarray(sample_weight, np.float64).reshape(-1)))
    per = s * (per + torch.where(keep, z_loss * torch.logsumexp(z, dim=1) ** 2, 0.0))
    if reduction == "none":
        loss = per.reshape(np.shape(y))
        r = torch.ones_like(loss) if upstream is None else torch.tensor(upstream)
        (loss * r).sum().backward()
    else:
        loss = per.sum()
        if reduction == "mean":
            wy = torch.ones_like(per) if wt is None else wt[torch.where(keep, yt, 0)]
            loss = loss / torch.where(keep, s * wy, 0.0).sum()
        loss.backward()
    return (loss.detach().numpy(), xt.grad.numpy(), Wt.grad.numpy(),
            None if bt is None else bt.grad.numpy())


# ------------------------------------------------------------------- helpers

def problem(rng, rows=(45,), d=6, v=40, dtype=np.float64, options=(), ignore_every=7):
    """Random inputs and keyword options (values for the names in `options`)."""
    x = rng.normal(size=rows + (d,)).astype(dtype)
    W = (rng.normal(size=(v, d)) * 0.7).astype(dtype)
    y = rng.integers(0, v, size=rows)
    kw = dict(OPTIONS[options]) if isinstance(options, str) else dict(options)
    if "ignore_index" in kw:
        y.reshape(-1)[::ignore_every] = kw["ignore_index"]
    if kw.get("bias"):
        kw["bias"] = rng.normal(size=v).astype(dtype)
    if kw.get("weight"):
        kw["weight"] = rng.uniform(0.2, 2.0, size=v)
    if kw.get("sample_weight"):
        kw["sample_weight"] = rng.uniform(0.0, 3.0, size=rows)
    return x, W, y, kw


def check(got, ref, dtype, what):
    """rtol of the contract, atol relative to the reference's scale."""
    rtol = TOL[np.dtype(dtype).type]
    ref = np.asarray(ref, np.float64)
    scale = np.max(np.abs(ref)) if ref.size else 1.0
    np.testing.assert_allclose(np.asarray(got, np.float64), ref, rtol=rtol,
                               atol=rtol * scale, err_msg=what)


def check_all(got, ref, dtype):
    loss, grads = got
    for name, g, r in zip(("loss", "x", "W", "bias"), (loss,) + tuple(grads), ref):
        if r is None:
            assert g is None, name
            continue
        assert np.asarray(g).dtype == dtype, (name, np.asarray(g).dtype)
        assert np.shape(g) == np.shape(r), (name, np.shape(g), np.shape(r))
        check(g, r, dtype, name)


# --------------------------------------------------------------------- values

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", list(OPTIONS))
def test_matches_unfused_float64(options, reduction, dtype, rng):
    x, W, y, kw = problem(rng, dtype=dtype, options=options)
    got = xf.linear_cross_entropy(x, W, y, reduction=reduction, return_grad=True,
                                  chunk_size=7, **kw)   # 7 does not divide 45
    check_all(got, np_ref(x, W, y, reduction=reduction, **kw), dtype)
    check_all(got, torch_ref(x, W, y, reduction=reduction, **kw), dtype)
    loss_only = xf.linear_cross_entropy(x, W, y, reduction=reduction, chunk_size=7, **kw)
    np.testing.assert_array_equal(loss_only, got[0])


def test_references_agree(rng):
    """The two references describe the same function."""
    x, W, y, kw = problem(rng, options="everything")
    for reduction in REDUCTIONS:
        a = np_ref(x, W, y, reduction=reduction, **kw)
        b = torch_ref(x, W, y, reduction=reduction, **kw)
        for u, v in zip(a, b):
            np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("chunk_size", [1, 2, 16, 44, 45, 46, 1000, None])
def test_chunk_sizes(chunk_size, rng):
    x, W, y, kw = problem(rng, options="everything")
    for reduction in REDUCTIONS:
        got = xf.linear_cross_entropy(x, W, y, reduction=reduction, return_grad=True,
                                      chunk_size=chunk_size, **kw)
        check_all(got, np_ref(x, W, y, reduction=reduction, **kw), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("options", ["plain", "everything"])
def test_none_with_nonuniform_upstream_gradient(options, dtype, rng):
    """'none' gives the gradient of the sum of the row losses; a per-row
    upstream gradient r is the same as sample_weight r (what a framework's
    backward of a 'none' loss needs): both against torch autograd of
    sum(losses * r)."""
    x, W, y, kw = problem(rng, dtype=dtype, options=options)
    r = rng.uniform(-2.0, 3.0, size=y.shape)
    base = kw.pop("sample_weight", None)
    got = xf.linear_cross_entropy(x, W, y, reduction="none", return_grad=True, **kw,
                                  sample_weight=r if base is None else r * base)
    ref = torch_ref(x, W, y, reduction="none", sample_weight=base, upstream=r, **kw)
    check_all(got, (ref[0] * r,) + ref[1:], dtype)
    plain = xf.linear_cross_entropy(x, W, y, reduction="none", return_grad=True,
                                    sample_weight=base, **kw)
    check_all(plain, torch_ref(x, W, y, reduction="none", sample_weight=base, **kw), dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("rows", [(3, 5), (2, 3, 4), (), (0,), (4, 0)])
def test_leading_axes(rows, reduction, rng):
    x, W, y, kw = problem(rng, rows=rows, options="everything")
    loss, grads = xf.linear_cross_entropy(x, W, y, reduction=reduction, return_grad=True,
                                          chunk_size=4, **kw)
    if reduction == "none":
        assert loss.shape == rows
    else:
        assert isinstance(loss, np.float64)
    assert grads.x.shape == x.shape and grads.W.shape == W.shape
    check_all((loss, grads), np_ref(x, W, y, reduction=reduction, **kw), np.float64)


def test_all_rows_ignored_mean_is_nan_with_zero_gradient(rng):
    x, W, y, kw = problem(rng, options="bias")
    y[:] = -100
    loss, grads = xf.linear_cross_entropy(x, W, y, return_grad=True, **kw)
    assert np.isnan(loss)
    for g in grads:
        assert not g.any()


def test_neg_inf_bias_masks_classes(rng):
    """A -inf bias removes a class: same result as W and bias without it."""
    x, W, y, kw = problem(rng, options="bias")
    masked = np.arange(W.shape[0]) % 5 == 0
    y = np.where(masked[y], y + 1, y)
    kw["bias"][masked] = -np.inf
    loss, grads = xf.linear_cross_entropy(x, W, y, return_grad=True, chunk_size=8, **kw)
    remap = np.cumsum(~masked) - 1
    ref = np_ref(x, W[~masked], remap[y], bias=kw["bias"][~masked])
    check(loss, ref[0], np.float64, "loss")
    check(grads.x, ref[1], np.float64, "x")
    check(grads.W[~masked], ref[2], np.float64, "W")
    assert not grads.W[masked].any() and not grads.bias[masked].any()


def test_nonfinite_input_row_stays_in_its_row(rng):
    x, W, y, kw = problem(rng, options="plain")
    x[4, 2] = np.nan
    loss, grads = xf.linear_cross_entropy(x, W, y, reduction="none", return_grad=True,
                                          chunk_size=8)
    others = np.arange(len(y)) != 4
    assert np.isnan(loss[4]) and np.isfinite(loss[others]).all()
    assert np.isnan(grads.x[4]).all() and np.isfinite(grads.x[others]).all()
    ref = np_ref(x[others], W, y[others], reduction="none")
    check(loss[others], ref[0], np.float64, "loss")


# ---------------------------------------------------------- dtypes and layouts

@pytest.mark.parametrize("x_dtype, W_dtype, expected", [
    (np.float32, np.float32, np.float32),
    (np.float16, np.float16, np.float32),
    (np.float16, np.float32, np.float32),
    (np.float32, np.float64, np.float64),
    (np.float64, np.float16, np.float64),
    (np.int32, np.float32, np.float64),
    (np.bool_, np.float32, np.float64),
], ids=str)
def test_dtype_rules(x_dtype, W_dtype, expected, rng):
    x, W, y, kw = problem(rng, options="everything")
    x, W = (x * 2).astype(x_dtype), (W * 2).astype(W_dtype)
    kw["bias"] = kw["bias"].astype(np.float64)   # cast to the compute dtype
    loss, grads = xf.linear_cross_entropy(x, W, y, return_grad=True, **kw)
    assert isinstance(loss, np.generic) and loss.dtype == expected
    check_all((loss, grads), np_ref(x.astype(expected), W.astype(expected), y,
                                    **{**kw, "bias": kw["bias"].astype(expected)}), expected)


@pytest.mark.parametrize("argument", ["x", "W", "bias", "target"])
def test_any_layout_gives_the_same_result(argument, layout, rng):
    x, W, y, kw = problem(rng, options="bias")
    expected = xf.linear_cross_entropy(x, W, y, return_grad=True, reduction="sum", **kw)
    args = {"x": x, "W": W, "target": y, "bias": kw["bias"]}
    args[argument] = layout(args[argument])
    got = xf.linear_cross_entropy(args["x"], args["W"], args["target"], bias=args["bias"],
                                  return_grad=True, reduction="sum")
    check_all(got, (expected[0],) + tuple(expected[1]), np.float64)


@pytest.mark.parametrize("label_dtype", [np.int8, np.uint16, np.int32, np.uint64])
def test_label_dtypes(label_dtype, rng):
    x, W, y, kw = problem(rng, options="plain", v=100)
    got = xf.linear_cross_entropy(x, W, y.astype(label_dtype), return_grad=True)
    check_all(got, np_ref(x, W, y), np.float64)


def test_inputs_never_modified(rng):
    x, W, y, kw = problem(rng, options="everything")
    copies = [a.copy() for a in (x, W, y, kw["bias"], kw["weight"], kw["sample_weight"])]
    xf.linear_cross_entropy(x, W, y, return_grad=True, chunk_size=5, **kw)
    for a, c in zip((x, W, y, kw["bias"], kw["weight"], kw["sample_weight"]), copies):
        np.testing.assert_array_equal(a, c)


def test_deterministic_for_a_fixed_thread_count(rng):
    x, W, y, kw = problem(rng, rows=(300,), d=32, v=500, dtype=np.float32,
                          options="everything")
    a = xf.linear_cross_entropy(x, W, y, return_grad=True, chunk_size=64, **kw)
    b = xf.linear_cross_entropy(x, W, y, return_grad=True, chunk_size=64, **kw)
    for u, v in zip((a[0],) + tuple(a[1]), (b[0],) + tuple(b[1])):
        np.testing.assert_array_equal(u, v)


def test_larger_float32_problem_within_contract_tolerance(rng):
    """Long sums (K = V in dx, K = N in dW) at the default chunk size."""
    x, W, y, kw = problem(rng, rows=(700,), d=64, v=3000, dtype=np.float32,
                          options="everything")
    got = xf.linear_cross_entropy(x, W, y, return_grad=True, **kw)
    check_all(got, np_ref(x, W, y, **kw), np.float32)


# ------------------------------------------------------------------ validation

BAD = [
    (dict(W=np.zeros((40, 5))), ValueError, r"feature size D.*\(45, 6\).*\(40, 5\)"),
    (dict(W=np.zeros(40)), ValueError, r"W must be 2-D.*\(40,\)"),
    (dict(x=np.float64(1.0)), ValueError, r"x must have at least one dimension"),
    (dict(x=np.zeros((45, 6), complex)), TypeError, r"x must be a real numeric.*complex"),
    (dict(W=np.zeros((40, 6), object)), TypeError, r"W must be a real numeric.*object"),
    (dict(bias=np.zeros(39)), ValueError, r"bias must have shape \(40,\).*\(39,\)"),
    (dict(weight=np.zeros(41)), ValueError, r"weight must have shape \(40,\).*\(41,\)"),
    (dict(sample_weight=np.zeros(44)), ValueError, r"sample_weight must have the row shape"),
    (dict(target="labels-40"), ValueError, r"labels in \[0, 40\).*got 40 at position \(3,\)"),
    (dict(target="labels-neg"), ValueError, r"got -1 at position \(3,\)"),
    (dict(target="float"), TypeError, r"probability targets are not supported"),
    (dict(target="bool"), TypeError, r"target must hold integer class labels; got dtype bool"),
    (dict(target="short"), ValueError, r"target must have .*\(45,\); got shape \(44,\)"),
    (dict(chunk_size=0), ValueError, r"chunk_size must be at least 1; got 0"),
    (dict(chunk_size=-3), ValueError, r"chunk_size must be at least 1; got -3"),
    (dict(chunk_size=2.5), TypeError, r"chunk_size must be a positive integer or None; got 2.5"),
    (dict(chunk_size=True), TypeError, r"chunk_size must be a positive integer"),
    (dict(reduction="avg"), ValueError, r"reduction must be one of.*'avg'"),
    (dict(label_smoothing=1.5), ValueError, r"label_smoothing must be in \[0.0, 1.0\]"),
    (dict(softcap=0.0), ValueError, r"softcap must be in \(0.0, inf[\])]"),
    (dict(z_loss="big"), TypeError, r"z_loss must be a real number"),
    (dict(ignore_index=1.5), TypeError, r"ignore_index must be an integer"),
]


@pytest.mark.parametrize("change, error, message", BAD,
                         ids=[str(i) for i in range(len(BAD))])
def test_bad_input_rejected_before_any_work(change, error, message, rng, monkeypatch):
    x, W, y, _ = problem(rng)
    args = dict(x=x, W=W, target=y)
    target = change.pop("target", None)
    if target is not None:
        bad = y.copy()
        args["target"] = {"labels-40": np.where(np.arange(45) == 3, 40, bad),
                          "labels-neg": np.where(np.arange(45) == 3, -1, bad),
                          "float": bad.astype(np.float64), "bool": bad > 3,
                          "short": bad[:44]}[target]
    args.update({k: v for k, v in change.items() if k in ("x", "W")})
    kw = {k: v for k, v in change.items() if k not in ("x", "W")}

    def no_work(*a, **k):
        raise AssertionError("work started before validation finished")
    monkeypatch.setattr(xf.linear, "_fused_block", no_work)
    monkeypatch.setattr(xf.linear.np, "matmul", no_work)
    with pytest.raises(error, match=message):
        xf.linear_cross_entropy(args["x"], args["W"], args["target"], return_grad=True, **kw)


# ---------------------------------------------------------------------- memory

def extra_peak(call):
    """Peak of NumPy/Python allocations during call(), above the start, and
    the bytes of the arrays the call returned."""
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = call()
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    loss, grads = result if isinstance(result, tuple) else (result, ())
    returned = np.asarray(loss).nbytes + sum(g.nbytes for g in grads if g is not None)
    return peak, returned


@pytest.mark.parametrize("return_grad", [False, True])
@pytest.mark.parametrize("options", ["plain", "everything"])
def test_peak_memory_is_two_chunks_of_logits(options, return_grad, rng):
    n, d, v, chunk = 512, 16, 8192, 32
    x, W, y, kw = problem(rng, rows=(n,), d=d, v=v, options=options)
    one_chunk = chunk * v * 8                          # 2 MiB; all logits: 32 MiB
    o_n_v = 8 * (4 * n + 4 * v) + 64 * 1024            # O(N + V): labels, losses, vectors
    peak, returned = extra_peak(lambda: xf.linear_cross_entropy(
        x, W, y, return_grad=return_grad, chunk_size=chunk, **kw))
    assert peak - returned <= 2 * one_chunk + o_n_v, (peak, returned)


def test_default_chunk_stays_within_32_mib(rng):
    n, d, v = 160, 2, 100_000             # all logits: 61 MiB in float32
    x, W, y, _ = problem(rng, rows=(n,), d=d, v=v, dtype=np.float32)
    peak, returned = extra_peak(lambda: xf.linear_cross_entropy(x, W, y, return_grad=True))
    assert peak - returned <= 2 * 32 * 2**20 + 8 * (4 * n + 4 * v), (peak, returned)
    assert peak - returned < n * v * 4, "held all the logits"
