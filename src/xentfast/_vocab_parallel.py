"""Softmax and cross-entropy over a class axis split into chunks
(vocabulary-parallel, as in Megatron-LM): NumPy functions on one block.

Pass 1 turns each (rows, class chunk) block into per-row statistics
(`chunk_stats`); `merge_stats` combines those of several chunks, in any
grouping (so a tree reduction can run it); pass 2 turns a block and its rows'
merged statistics into that block's log-softmax, softmax or gradient.

The statistics keep what the row kernels keep (_multiclass.pyx), relative to
the row's max so nothing cancels: ``m`` the max, ``r`` the sum of exp(x - m)
over every class but one max entry (log-sum-exp = m + log1p(r): a confident
row keeps its tiny loss), ``dot`` = sum_c q_c (x_c - shift) and ``csum`` =
sum_c q_c for the target weights q (label smoothing, probability targets),
``xy`` the target logit.  A chunk of only -inf has m = -inf and r = -1 (an
empty sum).  Arithmetic is in float64; NaN and +inf propagate row by row as
in the kernels, and the per-row formulas are the kernels' (label_row,
cross_entropy_probs), so results agree with the in-memory functions to a few
roundings.
"""
import math

import numpy as np

STATS = np.dtype([("m", "f8"), ("r", "f8"), ("shift", "f8"), ("dot", "f8"),
                  ("csum", "f8"), ("xy", "f8")])


_INT64 = np.iinfo(np.int64)


class Options:
    """The per-call constants of a cross-entropy: `n_classes` of the whole
    row, the compute `dtype`, and the loss options.  Labels reach these
    functions as int64 (from `check_labels`), where ignored rows hold
    `row_ignore`: ignore_index, or the nearest int64 if it lies outside."""

    def __init__(self, n_classes, dtype, *, ignore_index=-100, label_smoothing=0.0,
                 z_loss=0.0, softcap=None, probs=False):
        self.n_classes = n_classes
        self.dtype = np.dtype(dtype)
        self.ignore_index = ignore_index
        self.row_ignore = min(max(ignore_index, _INT64.min), _INT64.max)
        self.eps = label_smoothing
        self.z_loss = z_loss
        # the kernels narrow the cap to the compute dtype
        self.softcap = None if softcap is None else float(self.dtype.type(softcap))
        self.probs = probs


def capped(x, softcap, dtype):
    """(logits as the loss sees them, float64; the cap's slope or None),
    rounded to the compute dtype as the kernels store them."""
    x = np.asarray(x, dtype=dtype)
    if softcap is None:
        return x.astype(np.float64), None
    u = x.astype(np.float64) / softcap
    slope = (1.0 / np.cosh(u) ** 2).astype(dtype)
    return (softcap * np.tanh(u)).astype(dtype).astype(np.float64), slope


def target_weights(o, w, t, n_rows, width):
    """q, the coefficient of each class in the loss's linear term, float64
    of shape (rows, width), or None when the loss has no such term:
    w * ((1 - eps) t + eps / C) for probabilities, w (or 1) with smoothing."""
    dtype = o.dtype.type
    if o.probs:
        q = dtype(1 - o.eps) * np.asarray(t, dtype=o.dtype) + dtype(o.eps / o.n_classes)
    elif o.eps > 0:
        q = np.ones((n_rows, width), dtype=o.dtype)
    else:
        return None
    if w is not None:
        q = q * np.asarray(w, dtype=o.dtype)
    return np.broadcast_to(q, (n_rows, width)).astype(np.float64)


def _target_column(y, start, width, ignore_index):
    """Each row's target column within the chunk [start, start + width), and
    whether it is there (and the row not ignored)."""
    col = y - start
    inside = (y != ignore_index) & (col >= 0) & (col < width)
    return np.where(inside, col, 0), inside


def chunk_stats(x, y=None, t=None, w=None, start=0, o=None):
    """Statistics of one (rows, classes) chunk of logits, as a STATS array of
    x's row shape plus a trailing axis of 1 (the reduced class axis).

    `y` are the rows' labels (for the target logit), `t` the chunk of
    probability targets, `w` the chunk of class weights, `start` the chunk's
    first class; `o` the Options (None: just the softmax statistics).
    """
    dtype = x.dtype if o is None else o.dtype
    x2d = _as_2d(x)
    n, c = x2d.shape
    xc, _ = capped(x2d, None if o is None else o.softcap, dtype)
    out = np.zeros(n, dtype=STATS)
    with np.errstate(invalid="ignore", over="ignore"):
        m = np.max(xc, axis=1, initial=-np.inf)
        e = np.exp(xc - m[:, None])
        if c:
            e[np.arange(n), np.argmax(xc, axis=1)] = 0.0   # one max term out
        out["m"] = m
        # +inf anywhere makes the row NaN, as in the kernels
        out["r"] = np.where(m == -np.inf, -1.0, np.where(m == np.inf, np.nan, e.sum(axis=1)))
        out["shift"] = shift = np.where(np.isfinite(m), m, 0.0)
        if o is not None:
            q = target_weights(o, w, None if t is None else t.reshape(n, c), n, c)
            if q is not None:
                out["dot"] = np.where(q != 0, q * (xc - shift[:, None]), 0.0).sum(axis=1)
                out["csum"] = q.sum(axis=1)
            if y is not None:
                col, inside = _target_column(y.reshape(-1), start, c, o.row_ignore)
                out["xy"] = np.where(inside, xc[np.arange(n), col] if c else 0.0, 0.0)
    return out.reshape(x.shape[:-1] + (1,))


def merge_stats(parts, axis=-1, keepdims=True):
    """Combine the statistics of several chunks of the same rows (a list of
    STATS arrays) into one, with or without the trailing axis."""
    s = np.concatenate(parts, axis=-1)
    m = s["m"]
    out = np.empty(s.shape[:-1], dtype=STATS)
    with np.errstate(invalid="ignore", over="ignore"):
        top = np.max(m, axis=-1)
        out["m"] = top
        first = np.argmax(m, axis=-1)[..., None] == np.arange(m.shape[-1])
        scale = np.where(m == -np.inf, 0.0, np.exp(m - top[..., None]))
        out["r"] = np.where(first, s["r"], scale * (1 + s["r"])).sum(axis=-1)
        out["shift"] = shift = np.where(np.isfinite(top), top, 0.0)
        out["dot"] = (s["dot"] + (s["shift"] - shift[..., None]) * s["csum"]).sum(axis=-1)
        out["csum"] = s["csum"].sum(axis=-1)
        out["xy"] = s["xy"].sum(axis=-1)
    return out[..., None] if keepdims else out


def merge_final(parts, axis=-1, keepdims=False):
    """`merge_stats` for the last step of a reduction (no trailing axis)."""
    return merge_stats(parts, keepdims=keepdims)


def log_softmax_block(x, stats):
    """log_softmax of one chunk from its rows' merged statistics."""
    xd = x.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (xd - stats["m"][..., None]) - np.log1p(stats["r"])[..., None]
    return out.astype(x.dtype)


def softmax_block(x, stats):
    """softmax of one chunk from its rows' merged statistics."""
    xd = x.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.exp(xd - stats["m"][..., None]) / (1 + stats["r"])[..., None]
    return out.astype(x.dtype)


def logsumexp(stats, dtype):
    """Each row's log-sum-exp from its merged statistics (+inf for a row
    with +inf and no NaN, as xentfast.logsumexp)."""
    m = stats["m"]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(m == np.inf, np.inf, m + np.log1p(stats["r"])).astype(dtype)


class _Rows:
    """Per-row quantities of the loss and its gradient, from merged stats.

    y: labels (None for probability targets), w: the whole class-weight
    vector, sw: sample weights, grad_scale: the 'mean' scale."""

    def __init__(self, stats, y, w, sw, o, grad_scale=1.0):
        st = stats.reshape(-1)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            self.m = st["m"]
            self.others = st["r"]
            self.l1p = np.log1p(st["r"])
            self.lse = self.m + self.l1p
            self.dot = st["dot"] + (st["shift"] - self.m) * st["csum"]
            self.csum = st["csum"]
            self.s = (np.ones(len(st)) if sw is None else
                      np.asarray(sw, dtype=o.dtype).reshape(-1).astype(np.float64))
            if y is not None:
                self.y = y.reshape(-1).astype(np.int64)
                self.kept = self.y != o.row_ignore
                self.x_y = st["xy"] - self.m
                w = np.ones(o.n_classes) if w is None else np.asarray(w, dtype=o.dtype)
                self.w_y = w.astype(np.float64)[np.where(self.kept, self.y, 0)]
        self.o = o
        self.s_g = self.s * grad_scale

    def loss(self):
        """Per-row losses (float64)."""
        o = self.o
        with np.errstate(invalid="ignore", over="ignore"):
            z = o.z_loss * self.lse * self.lse
            if o.probs:
                return self.s * (self.csum * self.l1p - self.dot + z)
            eps_c = o.eps / o.n_classes
            loss = self.s * ((1 - o.eps) * self.w_y * (self.l1p - self.x_y)
                             + eps_c * (self.csum * self.l1p - self.dot) + z)
            return np.where(self.kept, loss, 0.0)

    def grad(self, x, t, w, start):
        """The gradient over one chunk x (rows, width) of the logits, whose
        first class is `start`; t, w: that chunk of the targets and weights."""
        o = self.o
        n, width = x.shape
        xc, slope = capped(x, o.softcap, o.dtype)
        q = target_weights(o, w, t, n, width)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            zl = 2 * o.z_loss * self.lse
            if o.probs:
                a = self.s_g * (self.csum + zl) / (1 + self.others)
                g = a[:, None] * np.exp(xc - self.m[:, None]) - self.s_g[:, None] * q
            else:
                eps_c = o.eps / o.n_classes
                a = self.s_g * ((1 - o.eps) * self.w_y + eps_c * self.csum + zl) / (1 + self.others)
                b = self.s_g * eps_c
                g = a[:, None] * np.exp(xc - self.m[:, None])
                if q is not None:
                    g -= b[:, None] * q
                g = self._target_entries(g, a, b, start)
        if slope is not None:
            g *= slope
        return g.astype(o.dtype)

    def _target_entries(self, g, a, b, start):
        """The gradient at each row's target class (label_row's g_y), and 0
        on ignored rows."""
        o = self.o
        col, inside = _target_column(self.y, start, g.shape[1], o.row_ignore)
        rows = np.flatnonzero(inside)
        s_g, b = self.s_g[rows], b[rows]
        w_y, x_y, others = self.w_y[rows], self.x_y[rows], self.others[rows]
        eps, eps_c = o.eps, o.eps / o.n_classes
        e_y = np.exp(x_y)
        top = e_y.astype(o.dtype) == 1     # the target is the max: no cancellation
        g_top = (s_g * (eps_c * self.csum[rows] + 2 * o.z_loss * self.lse[rows]
                        - (1 - eps) * w_y * others) / (1 + others) - b * w_y)
        g_else = a[rows] * e_y - b * w_y - s_g * (1 - eps) * w_y
        g[rows, col[rows]] = np.where(top, g_top, g_else)
        g[~self.kept] = 0.0
        return g


def loss_rows(stats, y, w, sw, o):
    """Per-row losses (float64, flat) from the rows' merged statistics."""
    return _Rows(stats, y, w, sw, o).loss()


def grad_block(x, stats, y, t, w_chunk, w, sw, start, o, grad_scale):
    """The gradient over one (rows, class chunk) block of the logits."""
    x2d = _as_2d(x)
    t2d = None if t is None else t.reshape(x2d.shape)
    rows = _Rows(stats, y, w, sw, o, grad_scale)
    return rows.grad(x2d, t2d, w_chunk, start).reshape(x.shape)


def _as_2d(x):
    """x as (rows, classes), any number of row axes (none included)."""
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])
