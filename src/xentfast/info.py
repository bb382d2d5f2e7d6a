"""Information-theoretic quantities of discrete distributions: entropy,
cross_entropy, kl_divergence.

The textbook definitions as written, summed over `axis`: no renormalisation
(unlike ``scipy.stats.entropy``), ``0 log 0 = 0`` (a term with ``p == 0`` is
0 whatever ``q`` is), ``inf`` where ``q == 0 < p``.  Negative entries raise
ValueError.  The terms are computed and summed in float64; the result has
the compute dtype of the inputs (float32 for float16/float32, float64
otherwise), a NumPy scalar for 1-D input.  These are NumPy-vectorised: they
are memory-bound reductions with no gradient to fuse.
"""
import math
import numbers

import numpy as np

from ._typing import Any, ArrayLike
from ._validation import check_axis, compute_dtype

__all__ = ["cross_entropy", "entropy", "kl_divergence"]


def _distribution(p, name):
    """`p` as a float64 array of at least one dimension, with its result dtype."""
    arr = np.asarray(p)
    dtype = compute_dtype(arr.dtype, name)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension; got a scalar")
    arr = arr.astype(np.float64, copy=False)
    negative = arr < 0
    if negative.any():
        k = np.flatnonzero(negative.reshape(-1))[0]
        position = tuple(int(i) for i in np.unravel_index(k, arr.shape))
        raise ValueError(
            f"{name} must hold non-negative entries; "
            f"got {arr.reshape(-1)[k]} at position {position}"
        )
    return arr, dtype


def _pair(p, q):
    p, p_dtype = _distribution(p, "p")
    q, q_dtype = _distribution(q, "q")
    try:
        p, q = np.broadcast_arrays(p, q)
    except ValueError:
        raise ValueError(
            f"p and q must have broadcastable shapes; got {p.shape} and {q.shape}"
        ) from None
    return p, q, np.promote_types(p_dtype, q_dtype)


def _log_base(base):
    if base is None:
        return 1.0
    if not isinstance(base, numbers.Real):
        raise TypeError(f"base must be a real number or None; got {base!r}")
    b = float(base)
    if not (b > 0 and b != 1 and math.isfinite(b)):
        raise ValueError(
            f"base must be a finite positive number other than 1, or None; got {base!r}"
        )
    return math.log(b)


def _finish(terms, axis, log_base, dtype):
    """Sum `terms` over `axis`, divide by log(base), return in `dtype`."""
    axis = check_axis(axis, terms.ndim)
    total = terms.sum(axis=axis) / log_base
    if total.ndim == 0:
        return dtype.type(total)
    return total.astype(dtype)


def entropy(p: ArrayLike, axis: int = -1, *, base: float | None = None) -> Any:
    """Shannon entropy ``-sum(p * log(p))`` along `axis`, with ``0 log 0 = 0``.

    Parameters
    ----------
    p : array_like
        Non-negative entries (not renormalised).
    axis : int, default -1
        The axis to sum over.
    base : float, optional
        Logarithm base (``2`` for bits); None for nats.  Must be positive
        and not 1.

    Returns
    -------
    NumPy scalar or ndarray
        Shaped like `p` without `axis`.
    """
    p, dtype = _distribution(p, "p")
    log_base = _log_base(base)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p == 0, 0.0, -p * np.log(p))
    return _finish(terms, axis, log_base, dtype)


def cross_entropy(p: ArrayLike, q: ArrayLike, axis: int = -1, *,
                  base: float | None = None) -> Any:
    """Cross-entropy ``-sum(p * log(q))`` along `axis`.

    A term with ``p == 0`` is 0 whatever ``q`` is; ``q == 0 < p`` gives inf.

    Parameters
    ----------
    p, q : array_like
        Non-negative entries of broadcastable shapes (not renormalised).
    axis : int, default -1
        The axis to sum over.
    base : float, optional
        Logarithm base; None for nats.

    Returns
    -------
    NumPy scalar or ndarray

    See Also
    --------
    xentfast.cross_entropy : The loss ``H(target, softmax(logits))`` and its gradient.
    entropy, kl_divergence
    """
    p, q, dtype = _pair(p, q)
    log_base = _log_base(base)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p == 0, 0.0, -p * np.log(q))
    return _finish(terms, axis, log_base, dtype)


def kl_divergence(p: ArrayLike, q: ArrayLike, axis: int = -1, *,
                  base: float | None = None) -> Any:
    """Kullback-Leibler divergence ``sum(p * log(p / q))`` along `axis`.

    A term with ``p == 0`` is 0 whatever ``q`` is; ``q == 0 < p`` gives inf.

    Parameters
    ----------
    p, q : array_like
        Non-negative entries of broadcastable shapes (not renormalised).
    axis : int, default -1
        The axis to sum over.
    base : float, optional
        Logarithm base; None for nats.

    Returns
    -------
    NumPy scalar or ndarray
    """
    p, q, dtype = _pair(p, q)
    log_base = _log_base(base)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        ratio = p / q
        # log(p / q) has no cancellation when p ~ q; if the ratio over- or
        # underflows, log p - log q is still right.
        log_ratio = np.where((ratio > 0) & np.isfinite(ratio), np.log(ratio),
                             np.log(p) - np.log(q))
        terms = np.where(p == 0, 0.0, p * log_ratio)
    return _finish(terms, axis, log_base, dtype)
