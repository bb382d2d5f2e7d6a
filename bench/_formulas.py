"""Plain NumPy formulas for the benchmarked ops.

They serve twice: at the input's dtype they are the "numpy" peer (what a
careful user writes in NumPy: vectorised, a few temporaries, no loops), and
in float64 they are the reference every library's result is checked against.

Every function returns ``(loss, array)`` in one convention shared by all
libraries, so results can be compared directly:

- ``cross_entropy``: mean loss over rows, gradient of that mean w.r.t. the logits;
- ``bce_logits``: mean loss over all elements, gradient of that mean;
- ``log_softmax``: ``None`` and the log-probabilities.
"""

import numpy as np


def cross_entropy(x, y):
    """Mean softmax cross-entropy of logits ``x`` (N, C), labels ``y`` (N,)."""
    n = x.shape[0]
    rows = np.arange(n)
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(s[:, 0]) - z[rows, y])
    grad = np.divide(e, s, out=e)
    grad[rows, y] -= 1
    grad /= n
    return loss, grad


def log_softmax(x):
    """Log-softmax of ``x`` (N, C) along the last axis."""
    z = x - x.max(axis=1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=1, keepdims=True))
    return None, z


def bce_logits(x, t):
    """Mean binary cross-entropy of logits ``x`` against targets ``t``."""
    e = np.exp(-np.abs(x))
    loss = np.mean(np.maximum(x, 0) - x * t + np.log1p(e))
    # sigmoid(x) without overflow: 1/(1+e) for x >= 0, e/(1+e) otherwise
    p = np.where(x >= 0, 1, e) / (1 + e)
    grad = np.subtract(p, t, out=p)
    grad /= x.size
    return loss, grad


FORMULAS = {
    "cross_entropy": lambda inp: cross_entropy(inp.x, inp.y),
    "log_softmax": lambda inp: log_softmax(inp.x),
    "bce_logits": lambda inp: bce_logits(inp.x, inp.t),
}
