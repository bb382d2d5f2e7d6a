"""Shared fixtures for the xentfast test suite.

Everything here is a reference-side helper: input layouts, tolerances and the
dtype rules of the API contract. Nothing here calls xentfast, so a bug in the
package cannot hide in a helper.
"""

from types import SimpleNamespace

import numpy as np
import pytest

# Every input layout the contract promises to accept. "c" is the zero-copy
# path; every other one must be copied once and give identical values.
LAYOUTS = ("c", "fortran", "strided", "readonly", "byteswapped", "unaligned",
           "list")


def as_layout(x, kind):
    """Return ``x`` (a C-contiguous ndarray) re-laid-out as ``kind``.

    The values are unchanged; only the memory layout (or the container)
    differs.
    """
    x = np.ascontiguousarray(x)
    if kind == "c":
        return x
    if kind == "fortran":
        return np.asfortranarray(x)
    if kind == "strided":
        # A view that skips every other element along the last axis.
        big = np.empty(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
        big[..., ::2] = x
        # Poison the skipped elements so reading them shows up in results.
        big[..., 1::2] = (np.nan if x.dtype.kind == "f" else
                          True if x.dtype.kind == "b" else
                          np.iinfo(x.dtype).max)
        view = big[..., ::2]
        assert not view.flags.c_contiguous or x.shape[-1] <= 1
        return view
    if kind == "readonly":
        y = x.copy()
        y.flags.writeable = False
        return y
    if kind == "byteswapped":
        return x.astype(x.dtype.newbyteorder())
    if kind == "unaligned":
        # C-contiguous, right dtype, but the data pointer is off by one byte.
        raw = np.zeros(x.nbytes + 1, dtype=np.uint8)
        y = raw[1:].view(x.dtype).reshape(x.shape)
        y[...] = x
        assert not y.flags.aligned or x.dtype.itemsize == 1
        return y
    if kind == "list":
        return x.tolist()
    raise ValueError(kind)


@pytest.fixture(params=LAYOUTS)
def layout(request):
    """A function that re-lays-out a C-contiguous array (one per layout)."""
    kind = request.param
    return lambda x: as_layout(x, kind)


def compute_dtype(x):
    """The dtype xentfast computes in for logits ``x`` (contract rules)."""
    dt = np.asarray(x).dtype
    if dt.kind == "f" and dt.itemsize <= 4:       # float16 / float32
        return np.dtype(np.float32)
    if dt.kind == "f" and dt.itemsize == 8:
        return np.dtype(np.float64)
    if dt.kind in "biu":
        return np.dtype(np.float64)
    raise TypeError(dt)


def tolerances(dtype):
    """(rtol, atol scale) for a compute dtype; atol is scaled by max|ref|."""
    if np.dtype(dtype) == np.float32:
        return 1e-5, 2e-6
    return 1e-12, 1e-12


def assert_close(actual, expected, dtype, *, what="", scale=None):
    """Compare ``actual`` with a float64 reference at ``dtype``'s tolerance.

    The absolute tolerance is relative to ``scale`` (default: max |expected|),
    the natural size of the entries.  Non-finite entries must match exactly
    (same positions, same inf signs, NaN where the reference is NaN).
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    a = actual.astype(np.float64)
    fin = np.isfinite(expected)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(expected),
                                  err_msg=what)
    np.testing.assert_array_equal(a[np.isinf(expected)],
                                  expected[np.isinf(expected)], err_msg=what)
    if fin.any():
        rtol, ascale = tolerances(dtype)
        if scale is None:
            scale = np.max(np.abs(expected[fin]))
        atol = ascale * max(scale, 1e-300)
        np.testing.assert_allclose(a[fin], expected[fin], rtol=rtol,
                                   atol=atol, err_msg=what)


def assert_reduced_scalar(loss, dtype):
    """A reduced loss is a NumPy scalar of the compute dtype."""
    assert isinstance(loss, np.generic), type(loss)
    assert loss.dtype == np.dtype(dtype), (loss.dtype, dtype)


@pytest.fixture
def rng(request):
    """A generator seeded from the test id: reproducible, varied per case."""
    seed = sum(map(ord, request.node.nodeid)) * 7919 % (2**32)
    return np.random.default_rng(seed)


def finite_diff(f, x, eps=1e-6):
    """Central finite-difference gradient of scalar ``f`` at float64 ``x``."""
    x = np.array(x, dtype=np.float64)
    g = np.empty_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f(x)
        flat[i] = old - eps
        fm = f(x)
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return g


@pytest.fixture(scope="session")
def h():
    """The plain helpers above, so that tests need not import conftest."""
    return SimpleNamespace(
        as_layout=as_layout, compute_dtype=compute_dtype,
        tolerances=tolerances, assert_close=assert_close,
        assert_reduced_scalar=assert_reduced_scalar,
        finite_diff=finite_diff, LAYOUTS=LAYOUTS)
