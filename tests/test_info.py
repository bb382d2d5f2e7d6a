"""xentfast.info against SciPy (entr, xlogy, rel_entr, stats.entropy)."""

import math

import numpy as np
import pytest

import xentfast as xf
from grids import dtype_id

special = pytest.importorskip("scipy.special")
stats = pytest.importorskip("scipy.stats")

info = xf.info
DTYPES = (np.float32, np.float64)


def distributions(rng, shape, zeros=True):
    p = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
    if zeros:
        p[..., 0] = 0.0  # 0 log 0 terms
    return p


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_entropy_matches_entr(h, rng, dtype, axis):
    p = distributions(rng, (4, 6, 5)).astype(dtype)
    got = info.entropy(p, axis=axis)
    ref = special.entr(p.astype(np.float64)).sum(axis=axis)
    assert got.dtype == dtype and got.shape == ref.shape
    h.assert_close(got, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("base", [None, 2, 10, math.e, 0.5])
def test_base(h, rng, dtype, base):
    p = distributions(rng, (3, 8), zeros=False).astype(dtype)
    q = distributions(rng, (3, 8), zeros=False).astype(dtype)
    p64, q64 = p.astype(np.float64), q.astype(np.float64)
    # stats.entropy renormalises, so compare with exactly normalised inputs.
    p64 /= p64.sum(-1, keepdims=True)
    q64 /= q64.sum(-1, keepdims=True)
    p, q = p64.astype(dtype), q64.astype(dtype)
    h.assert_close(info.entropy(p, base=base), stats.entropy(p64, base=base, axis=-1), dtype)
    h.assert_close(info.kl_divergence(p, q, base=base),
                   stats.entropy(p64, q64, base=base, axis=-1), dtype)
    scale = 1.0 if base is None else math.log(base)
    h.assert_close(info.cross_entropy(p, q, base=base),
                   -special.xlogy(p64, q64).sum(-1) / scale, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_cross_entropy_and_kl(h, rng, dtype):
    p = distributions(rng, (5, 7)).astype(dtype)
    q = distributions(rng, (5, 7), zeros=False).astype(dtype)
    p64, q64 = p.astype(np.float64), q.astype(np.float64)
    h.assert_close(info.cross_entropy(p, q), -special.xlogy(p64, q64).sum(-1), dtype)
    h.assert_close(info.kl_divergence(p, q), special.rel_entr(p64, q64).sum(-1), dtype)
    # H(p, q) = H(p) + KL(p || q)
    h.assert_close(info.cross_entropy(p, q),
                   (special.entr(p64).sum(-1) + special.rel_entr(p64, q64).sum(-1)), dtype)


def test_no_renormalisation():
    # Textbook definitions as written: [1, 1] is not rescaled to [0.5, 0.5].
    assert info.entropy([1.0, 1.0]) == 0.0
    assert stats.entropy([1.0, 1.0]) == pytest.approx(math.log(2))
    np.testing.assert_allclose(info.entropy([2.0, 0.5]), -(2 * math.log(2) + 0.5 * math.log(0.5)))
    np.testing.assert_allclose(info.kl_divergence([2.0, 1.0], [1.0, 1.0]),
                               special.rel_entr([2.0, 1.0], [1.0, 1.0]).sum())


def test_zero_conventions():
    # p == 0: the term is 0 whatever q is; q == 0 < p: inf.
    assert info.entropy([0.0, 1.0]) == 0.0
    assert info.cross_entropy([0.0, 1.0], [0.0, 1.0]) == 0.0
    assert info.kl_divergence([0.0, 1.0], [0.0, 1.0]) == 0.0
    assert info.cross_entropy([0.5, 0.5], [0.0, 1.0]) == np.inf
    assert info.kl_divergence([0.5, 0.5], [0.0, 1.0]) == np.inf
    np.testing.assert_array_equal(info.kl_divergence([[0.5, 0.5], [0.5, 0.5]],
                                                     [[0.0, 1.0], [0.5, 0.5]]), [np.inf, 0.0])
    # Extreme ratios: log(p / q) would overflow, log p - log q does not.
    got = info.kl_divergence([1.0, 1e-300], [1e-300, 1.0])
    np.testing.assert_allclose(got, special.rel_entr([1.0, 1e-300], [1e-300, 1.0]).sum())
    assert np.isfinite(info.kl_divergence([1.0], [1e-310]))


def test_dtypes_and_shapes():
    p16 = np.array([0.25, 0.75], dtype=np.float16)
    for p, dt in [(p16, np.float32), (p16.astype(np.float32), np.float32),
                  (p16.astype(np.float64), np.float64), (np.array([1, 0]), np.float64),
                  (np.array([True, False]), np.float64), ([0.5, 0.5], np.float64)]:
        r = info.entropy(p)
        assert isinstance(r, np.generic) and r.dtype == dt
        assert info.kl_divergence(p, p).dtype == dt
    # Mixed dtypes: the wider compute dtype.
    assert info.cross_entropy(p16, np.array([0.5, 0.5])).dtype == np.float64
    # Broadcasting p against q.
    p = np.array([[0.2, 0.8], [0.6, 0.4]])
    np.testing.assert_allclose(info.kl_divergence(p, [0.5, 0.5]),
                               special.rel_entr(p, [[0.5, 0.5]]).sum(-1))
    assert info.entropy(np.empty((3, 0))).shape == (3,)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"p.*non-negative.*-0\.1.*\(1,\)"):
        info.entropy([0.5, -0.1])
    with pytest.raises(ValueError, match="q"):
        info.kl_divergence([0.5, 0.5], [1.5, -0.5])
    with pytest.raises(ValueError, match="p"):
        info.cross_entropy([-1.0, 2.0], [0.5, 0.5])
    for base in (0, -2, 1, 1.0, np.nan):
        with pytest.raises(ValueError, match="base"):
            info.entropy([0.5, 0.5], base=base)
    with pytest.raises(TypeError, match="base"):
        info.entropy([0.5, 0.5], base="2")
    with pytest.raises(ValueError, match="shape"):
        info.kl_divergence([0.5, 0.5], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="axis"):
        info.entropy([0.5, 0.5], axis=1)
    with pytest.raises(ValueError):
        info.entropy(0.5)
    with pytest.raises(TypeError):
        info.entropy(np.array([0.5, 0.5], dtype=complex))
