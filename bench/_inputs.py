"""Benchmark inputs, identical in every worker process, and their checks."""

import functools

import numpy as np

from _formulas import FORMULAS

# Loose tolerances: they flag a broken peer, not rounding differences.
TOLERANCE = {"float32": 1e-3, "float64": 1e-7}


class Inputs:
    """Logits, labels and binary targets for one (dtype, shape).

    Each array comes from its own generator seeded by (seed, N, C, k), so
    every process gets the same bits, whichever arrays it asks for and in
    whatever order. Logits are standard normal times 3.
    """

    def __init__(self, dtype, n, c, seed=0):
        self.dtype = np.dtype(dtype)
        self.n, self.c, self.seed = n, c, seed
        self.x = self._rng(0).standard_normal((n, c), dtype=self.dtype)
        self.x *= 3
        self.y = self._rng(1).integers(0, c, size=n, dtype=np.int64)
        self._t = None
        self._ref = {}

    def _rng(self, k):
        return np.random.default_rng([self.seed, self.n, self.c, k])

    @property
    def t(self):
        """Multi-label 0/1 targets for the binary loss, in the logits' dtype."""
        if self._t is None:
            self._t = (self._rng(2).random((self.n, self.c)) < 0.5).astype(self.dtype)
        return self._t

    def reference(self, op):
        """``(loss, array)`` of ``op`` computed in float64 from the same inputs."""
        if op not in self._ref:
            ref = _Float64View(self)
            self._ref[op] = FORMULAS[op](ref)
        return self._ref[op]


class _Float64View:
    """The float64 promotion of an Inputs' arrays (what the reference reads)."""

    def __init__(self, inp):
        self._inp = inp
        self.y = inp.y

    @functools.cached_property
    def x(self):
        return self._inp.x.astype(np.float64)

    @functools.cached_property
    def t(self):
        return self._inp.t.astype(np.float64)


def check(op, result, inp):
    """Compare a library's ``(loss, array)`` with the float64 reference.

    Returns
    -------
    status : str
        ``"ok"`` or ``"FAIL: <why>"``.
    err : float
        Largest relative error found (array error relative to the
        reference's largest magnitude), or NaN when the shapes do not match.
    """
    loss, arr = result
    ref_loss, ref_arr = inp.reference(op)
    arr = np.asarray(arr)
    if arr.shape != ref_arr.shape:
        return f"FAIL: shape {arr.shape}, expected {ref_arr.shape}", float("nan")
    problems = []
    if arr.dtype != inp.dtype:
        # a peer computing in another precision would not be a fair peer
        problems.append(f"returns {arr.dtype} for {inp.dtype} input")
    scale = np.max(np.abs(ref_arr))
    err = float(np.max(np.abs(arr.astype(np.float64) - ref_arr)) / scale)
    if ref_loss is not None:
        loss_err = abs(float(loss) - ref_loss) / max(abs(ref_loss), 1e-300)
        err = float(max(err, loss_err))
    if not err <= TOLERANCE[inp.dtype.name]:  # NaN fails too
        problems.append(f"relative error {err:.2e}")
    return ("FAIL: " + "; ".join(problems)) if problems else "ok", err
