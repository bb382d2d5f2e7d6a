"""xentfast on Dask arrays: the softmax family and cross-entropy, lazily, on
any chunking, on the threaded scheduler or a dask.distributed cluster.

Two plans, chosen by the chunking of the class axis (the last one):

* in one chunk: one task per row block runs the in-memory function on it,
  reading each logits chunk once (its per-row results are bitwise those of
  the in-memory function on that block);
* in several chunks (vocabulary-parallel): per (rows, classes) chunk the
  statistics of `_vocab_parallel`, combined by a tree reduction over the
  class chunks, then each chunk's output in a second pass.

The 'mean' denominator depends on the labels only, so it is a small
reduction of its own that the gradient tasks take as an input.

Results the size of the logits (the gradient, the softmax family) are joined
with parallel copies (_JoinedArray); on the threaded and synchronous
schedulers the row blocks of a gradient are written straight into one array
of the whole (_SharedOut), which the compute returns without any join.

Needs the ``dask`` extra: ``pip install xentfast[dask]``.
"""
import concurrent.futures
import contextlib
import itertools
import math
import operator
import os
import re
import string
import sys
import threading

try:
    import dask
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph
except ImportError as exc:
    raise ImportError(
        "xentfast.dask needs Dask; install it with `pip install xentfast[dask]`"
    ) from exc

import numpy as np

import xentfast as xf

from . import _buffers, _kernels, _multiclass
from . import _vocab_parallel as vp
from .linear import LinearGrads
from ._validation import (as_float_array, check_class_vector, check_fits,
                          check_ignore_index, check_labels, check_labels_only,
                          check_linear_operands, check_real, check_reduction,
                          check_row_vector, compute_dtype)


__all__ = ["cross_entropy", "linear_cross_entropy", "log_softmax", "logsumexp", "softmax"]

_ROW_LETTERS = string.ascii_lowercase[:-1]   # 'z' is the class axis


# ---- running the kernels inside tasks -------------------------------------

_controller = None


def _distributed_worker():
    """The dask.distributed worker running this task, or None."""
    distributed = sys.modules.get("distributed")
    if distributed is not None:
        try:
            return distributed.get_worker()
        except ValueError:   # not in a worker
            pass
    return None


def _scheduler_threads():
    """How many tasks the scheduler running this one runs at once in this
    process: the worker's threads on dask.distributed, the pool's on the
    threaded scheduler, 1 on the synchronous one (the main thread)."""
    worker = _distributed_worker()
    if worker is not None:
        return worker.state.nthreads
    if threading.current_thread() is threading.main_thread():
        return 1
    return dask.config.get("num_workers", None) or dask.system.CPU_COUNT


def _task_threads():
    """Context: the kernels of this task get their share of the cores, so
    that Dask's threads times OpenMP's stay within the machine.  OpenMP's
    setting is per thread, so concurrent tasks do not disturb each other."""
    global _controller
    tasks = _scheduler_threads()
    if tasks <= 1:
        return contextlib.nullcontext()
    if _controller is None:
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
    share = max(1, xf.get_num_threads() // tasks)
    return _controller.limit(limits=share, user_api="openmp")


# ---- joining the blocks of a result ------------------------------------------

class _SharedOut:
    """One compute's whole result, which its row-block tasks write their
    blocks into: views of it, so that no task faults in fresh memory of its
    own (the blocks of a 131 MB gradient, 16 MB each, cost two to three times
    the kernel in page faults) and joining them at the end costs nothing.

    Only on the threaded and synchronous schedulers and for a result of at
    most a quarter of the machine's memory (the array lives as long as any
    block of it, so a result consumed block by block, such as one written
    to disk, would otherwise fill the memory); elsewhere, and wherever it
    arrives pickled (another process), it holds no array and each task
    allocates its own block."""

    def __init__(self, shape, dtype):
        # from the buffer cache, as the in-memory functions' outputs
        self.array = None if shape is None else _buffers.empty(shape, dtype)

    def __reduce__(self):
        return _SharedOut, (None, None)

    def rows(self, start, shape, dtype):
        """Rows [start, start + shape[0]) of the (rows, C) result: a view,
        or a new array."""
        if self.array is None:
            return np.empty(shape, dtype)
        return self.array[start:start + shape[0]]


def _shared_out_task(shape, dtype):
    too_big = math.prod(shape) * np.dtype(dtype).itemsize > _physical_memory() // 4
    return _SharedOut(None if too_big or _distributed_worker() else shape, dtype)


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0


def _shared_out(x, dtype):
    """A 0-d dask array of the _SharedOut the row blocks of x (the class
    axis in one chunk) write into, or None when the blocks are not
    contiguous rows of the whole (a row axis but the first is split)."""
    if any(len(c) > 1 for c in x.chunks[1:]):
        return None
    shape = (math.prod(x.shape[:-1]), x.shape[-1])
    name = "shared-out-" + tokenize(x, dtype)
    graph = HighLevelGraph.from_collections(
        name, {(name,): (_shared_out_task, shape, np.dtype(dtype).str)}, dependencies=[])
    return da.Array(graph, name, (), meta=np.empty((), dtype=object))


class _JoinedArray(da.Array):
    """A dask array whose compute joins its blocks into one NumPy array with
    parallel copies.  Dask's own join copies them one after another; for a
    large gradient (32768 x 1000 float32, 131 MB) that single-threaded copy
    into fresh memory was as long as the cross-entropy itself.  Anything
    derived from it is a plain dask array."""

    __slots__ = ()

    def __dask_postcompute__(self):
        return _join_blocks, (self.chunks, xf.get_num_threads())


def _tiled_base(blocks, shape):
    """The array the blocks are consecutive views of, in order and covering
    it (a _SharedOut's), reshaped to `shape`; else None."""
    base = blocks[0].base
    if (type(base) is not np.ndarray or base.base is not None
            or base.size != math.prod(shape) or not base.flags.c_contiguous):
        return None
    address = base.__array_interface__["data"][0]
    for b in blocks:
        if (b.base is not base or not b.flags.c_contiguous
                or b.__array_interface__["data"][0] != address):
            return None
        address += b.nbytes
    return base.reshape(shape)


def _joined(a):
    return _JoinedArray(a.dask, a.name, a.chunks, meta=a._meta)


def _join_blocks(results, chunks, threads):
    """The array of the nested list of blocks `results` (dask's finalize
    where they are not all NumPy arrays of one dtype, or there is one)."""
    blocks = list(dask.core.flatten(results, container=list))
    if (len(blocks) < 2 or any(math.isnan(n) for c in chunks for n in c)
            or not all(type(b) is np.ndarray and b.dtype == blocks[0].dtype for b in blocks)):
        return da.core.finalize(results)
    shape = tuple(map(sum, chunks))
    whole = _tiled_base(blocks, shape)
    if whole is not None:
        return whole
    out = np.empty(shape, dtype=blocks[0].dtype)
    starts = [np.cumsum((0,) + c) for c in chunks]

    def copy(item):
        index, block = item
        out[tuple(slice(s[i], s[i + 1]) for s, i in zip(starts, index))] = block

    # the blocks are in the order of their indices (C order of the grid)
    items = zip(itertools.product(*(range(len(c)) for c in chunks)), blocks)
    with concurrent.futures.ThreadPoolExecutor(max(1, min(threads, len(blocks)))) as pool:
        for _ in pool.map(copy, items):
            pass
    return out


# ---- inputs -----------------------------------------------------------------

def _meta(ndim, dtype):
    return np.empty((0,) * ndim, dtype=dtype)


def _as_dask(a, name):
    """`a` as a dask array: dask arrays as they are, anything else wrapped
    with the last axis in one chunk and the others chunked 'auto'."""
    if isinstance(a, da.Array):
        return a
    a = np.asarray(a)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real numeric array; got dtype {a.dtype}")
    return da.from_array(a, chunks={a.ndim - 1: -1} if a.ndim else ())


def _logits(x, name):
    x = _as_dask(x, name)
    if x.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the class axis); got a scalar")
    if any(math.isnan(n) for n in x.shape):
        raise ValueError(f"{name} must have known chunk sizes; call {name}.compute_chunk_sizes()")
    return x, compute_dtype(x.dtype, name)


def _row_like(a, x, name):
    """A per-row array (dask or not) with x's row shape, in x's row chunks."""
    if a is None:
        return None
    row_shape, row_chunks = x.shape[:-1], x.chunks[:-1]
    a = _as_dask(a, name)
    if a.shape != row_shape:
        raise ValueError(f"{name} must have the row shape {row_shape}; got shape {a.shape}")
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real numeric array; got dtype {a.dtype}")
    return a.rechunk(row_chunks)


def _class_vector(w, x, name):
    """A per-class vector as a dask array in x's class chunks, or None."""
    if w is None:
        return None
    w = _as_dask(w, name)
    if w.shape != (x.shape[-1],):
        raise ValueError(
            f"{name} must have shape ({x.shape[-1]},), one entry per class; got shape {w.shape}")
    if w.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real numeric array; got dtype {w.dtype}")
    return w.rechunk((x.chunks[-1],))


def _starts(chunks):
    """The first index of each chunk, as a dask array with one entry a block."""
    return da.from_array(np.cumsum((0,) + tuple(chunks[:-1]), dtype=np.int64), chunks=1)


def _block_offsets(x):
    """Each row block's position, as a dask array of object tuples with one
    element per block (for error messages that point into the whole array)."""
    starts = [np.cumsum((0,) + c[:-1]) for c in x.chunks[:-1]]
    grid = np.empty(tuple(len(s) for s in starts), dtype=object)
    for idx in np.ndindex(grid.shape):
        grid[idx] = tuple(int(s[i]) for s, i in zip(starts, idx))
    return da.from_array(grid, chunks=1) if grid.ndim else da.from_array(grid, chunks=())


def _offset(block):
    return np.asarray(block).reshape(-1)[0]


def _check_labels(y, o, offset):
    """Labels of one row block as flat int64 (ignored rows: o.row_ignore),
    and how many are not ignored; a bad label is reported at its position
    in the whole array, not in the block."""
    try:
        y64, n_kept, _ = check_labels(y, y.shape, o.n_classes, o.ignore_index)
    except ValueError as exc:
        where = re.search(r"at position \(([\d, ]*)\)$", str(exc))
        if where is None:
            raise
        local = [int(i) for i in where.group(1).split(",") if i.strip()]
        position = tuple(i + int(start) for i, start in zip(local, _offset(offset)))
        raise ValueError(f"{str(exc)[:where.start()]}at position {position}") from None
    return y64, n_kept


class _Target:
    """The target of a cross-entropy: labels (row-shaped, in x's row chunks)
    or class probabilities (x's shape and chunks)."""

    def __init__(self, target, x, ignore_index):
        rows = x.shape[:-1]
        if isinstance(target, da.Array):
            t = target
        else:
            t = np.asarray(target)
        self.probs = t.dtype.kind == "f"
        if self.probs:
            if t.shape == rows and rows != x.shape:
                raise TypeError(
                    "target must hold integer class labels, or class probabilities with "
                    f"the logits' shape {x.shape}; got dtype {t.dtype} with the label "
                    f"shape {t.shape}")
            if t.shape != x.shape:
                raise ValueError(
                    "target of class probabilities (a float array) must have the logits' "
                    f"shape {x.shape}; got shape {t.shape}")
            if ignore_index >= 0:
                raise ValueError(
                    "ignore_index is not supported with probability targets; "
                    f"got ignore_index={ignore_index}")
            self.array = _as_dask(t, "target").rechunk(x.chunks)
            return
        if t.dtype == np.bool_ or t.dtype.kind not in "iu":
            raise TypeError(
                "target must hold integer class labels (any integer dtype); "
                f"got dtype {t.dtype}")
        if t.shape != rows:
            raise ValueError(
                f"target must have the logits' shape without the class axis, {rows}; "
                f"got shape {t.shape}")
        if isinstance(t, np.ndarray):   # in memory: check the labels now
            check_labels(t, rows, x.shape[-1], ignore_index)
        self.array = _as_dask(t, "target").rechunk(x.chunks[:-1])


# ---- graph pieces ------------------------------------------------------------

def _arg(a, index):
    """A blockwise (array, index) pair; (None, None) for an absent array."""
    return (a, index) if a is not None else (None, None)


def _take(pairs, k, chunks, meta, keep=None, extra=()):
    """Item k of each tuple-valued block of `pairs`, as a dask array of
    `chunks`: block (i, ...) of pairs gives block (i, ...)[:keep] + extra."""
    name = f"{pairs.name.split('-')[0]}-{k}-{tokenize(pairs, k)}"
    dsk = {(name,) + key[1:][:keep] + extra: (operator.getitem, key, k)
           for key in dask.core.flatten(pairs.__dask_keys__())}
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[pairs])
    return da.Array(graph, name, chunks, meta=meta)


def _block_chunks(x):
    """Chunks of an array with one element per row block of x."""
    return tuple((1,) * len(c) for c in x.chunks[:-1])


def _same(a, axis=None, keepdims=None):
    return a


def _merged_stats(per_chunk):
    """The per-chunk statistics (rows..., class chunks) merged over the
    class chunks by a tree reduction: one STATS record per row."""
    return da.reduction(per_chunk, _same, vp.merge_final, combine=vp.merge_stats,
                        axis=-1, concatenate=False, dtype=vp.STATS,
                        meta=_meta(per_chunk.ndim - 1, vp.STATS))


def _indices(x):
    rows = _ROW_LETTERS[:x.ndim - 1]
    return rows, rows + "z"


# ---- the softmax family -------------------------------------------------------

def _in_task(x, func):
    with _task_threads():
        return np.asarray(func(x))


def _softmax_stats(x):
    rows, ind = _indices(x)
    per_chunk = da.blockwise(vp.chunk_stats, ind, x, ind, adjust_chunks={"z": 1},
                             meta=_meta(x.ndim, vp.STATS))
    return _merged_stats(per_chunk)


def _softmax_like(x, in_memory, from_stats):
    x, dtype = _logits(x, "x")
    if len(x.chunks[-1]) == 1:
        return _joined(x.map_blocks(_in_task, in_memory, dtype=dtype,
                                    meta=_meta(x.ndim, dtype)))
    x = x.astype(dtype)
    rows, ind = _indices(x)
    return _joined(da.blockwise(from_stats, ind, x, ind, _softmax_stats(x), rows,
                                dtype=dtype, meta=_meta(x.ndim, dtype)))


def log_softmax(x):
    """Logarithm of the softmax along the last axis, lazily.

    Parameters
    ----------
    x : dask.array.Array or array_like, shape (..., C)
        Logits; any chunking (a NumPy array is wrapped with the class axis
        in one chunk).

    Returns
    -------
    dask.array.Array
        x's shape and chunks, in the compute dtype (see
        :func:`xentfast.log_softmax`).  With the class axis in one chunk
        each block is bitwise ``xentfast.log_softmax`` of that block.
    """
    return _softmax_like(x, xf.log_softmax, vp.log_softmax_block)


def softmax(x):
    """Softmax along the last axis, lazily: :func:`xentfast.softmax` on a
    dask array (or a wrapped NumPy array) of any chunking, returning a dask
    array of x's shape, chunks and compute dtype; see `log_softmax`.
    """
    return _softmax_like(x, xf.softmax, vp.softmax_block)


def logsumexp(x):
    """``log(sum(exp(x)))`` along the last axis, lazily:
    :func:`xentfast.logsumexp` on a dask array of any chunking, returning a
    dask array of x's row shape and row chunks, in the compute dtype.
    """
    x, dtype = _logits(x, "x")
    meta = _meta(x.ndim - 1, dtype)
    if len(x.chunks[-1]) == 1:
        return x.map_blocks(_in_task, xf.logsumexp, drop_axis=x.ndim - 1, dtype=dtype, meta=meta)
    stats = _softmax_stats(x.astype(dtype))
    return stats.map_blocks(vp.logsumexp, dtype, dtype=dtype, meta=meta)


# ---- cross-entropy ------------------------------------------------------------

def _loss_options(dtype, reduction, ignore_index, label_smoothing, z_loss, softcap):
    """The checked options of a cross-entropy, for `vp.Options`."""
    check_reduction(reduction)
    if softcap is not None:
        softcap = check_fits(check_real(softcap, "softcap", 0.0, low_open=True), "softcap",
                             dtype, "logits")
    return dict(ignore_index=check_ignore_index(ignore_index), softcap=softcap,
                label_smoothing=check_real(label_smoothing, "label_smoothing", 0.0, 1.0),
                z_loss=check_real(z_loss, "z_loss"))


def _flat_row(offset, block_shape):
    """The first row of a row block, counted in the whole array's rows,
    where only the first row axis is split (_shared_out)."""
    starts = _offset(offset)
    return int(starts[0]) * math.prod(block_shape[1:-1]) if starts else 0


def _grad_scale(den):
    den = float(den)
    return 1.0 / den if den != 0 else 0.0


def _rows_task(x, t, w, sw, den, offset, shared, *, o, reduction, return_grad):
    """One row block with the whole class axis: the in-memory kernel, with
    the global 'mean' scale, its gradient into `shared` (a _SharedOut, or
    None).  Returns (per-row losses in the compute dtype for 'none', else the
    block's float64 sum as an array of one element per row axis; the
    gradient or None)."""
    row_shape = x.shape[:-1]
    x2d = as_float_array(x, "logits", o.dtype).reshape(math.prod(row_shape), o.n_classes)
    if o.probs:
        t2d = as_float_array(t, "target", o.dtype).reshape(x2d.shape)
    else:
        t2d, _ = _check_labels(t, o, offset)
    grad = None
    if return_grad:
        grad = (np.empty_like(x2d) if shared is None else
                shared.rows(_flat_row(offset, x.shape), x2d.shape, x2d.dtype))
    with _task_threads():
        loss_rows = _kernels.cross_entropy_block(
            x2d, t2d, weight=check_class_vector(w, o.n_classes, o.dtype, "weight"),
            ignore_index=o.row_ignore, label_smoothing=o.eps,
            sample_weight=check_row_vector(sw, row_shape, o.dtype, "sample_weight"),
            z_loss=o.z_loss, softcap=o.softcap,
            grad_scale=_grad_scale(den) if reduction == "mean" else 1.0, grad_out=grad)
    grad = None if grad is None else grad.reshape(x.shape)
    if reduction == "none":
        return loss_rows.astype(o.dtype).reshape(row_shape), grad
    return np.full((1,) * len(row_shape), _multiclass.row_losses_sum(loss_rows)), grad


def _denominator_task(y, sw, w, offset, *, o):
    y64, n_kept = _check_labels(y, o, offset)
    den = _kernels.label_denominator(
        y64, ignore_index=o.row_ignore, n_kept=n_kept,
        weight=check_class_vector(w, o.n_classes, o.dtype, "weight"),
        sample_weight=check_row_vector(sw, y.shape, o.dtype, "sample_weight"))
    return np.full((1,) * y.ndim, den)


def _block_labels(y, o, offset):
    return None if y is None else _check_labels(y, o, offset)[0]


def _stats_task(x, y, t, w, start, offset, *, o):
    return vp.chunk_stats(x, _block_labels(y, o, offset), t, w, int(_offset(start)), o)


def _loss_task(stats, y, w, sw, offset, *, o):
    return vp.loss_rows(stats, _block_labels(y, o, offset), w, sw, o).reshape(stats.shape)


def _grad_task(x, stats, y, t, w_chunk, w, sw, start, den, offset, *, o, mean):
    scale = _grad_scale(den) if mean else 1.0
    return vp.grad_block(x, stats, _block_labels(y, o, offset), t, w_chunk, w, sw,
                         int(_offset(start)), o, scale)


def _reduced_loss(total, den, *, reduction, loss_dtype):
    total = float(total)
    if reduction == "mean":
        den = float(den)
        total = total / den if den != 0 else np.nan
    return loss_dtype.type(total)


def _denominator(x, target, w, sw, o, offsets):
    """The 'mean' denominator as a 0-d float64 dask array: sum of
    sample_weight * weight[y] over the rows not ignored (labels), or of
    sample_weight (probabilities; the number of rows without)."""
    if o.probs:
        if sw is None:
            return da.from_array(np.array(float(math.prod(x.shape[:-1]))))
        return sw.astype(o.dtype).sum(dtype=np.float64)
    rows, _ = _indices(x)
    w_full = None if w is None else w.rechunk(-1)
    parts = da.blockwise(_denominator_task, rows, target.array, rows, *_arg(sw, rows),
                         *_arg(w_full, "Z"), offsets, rows, o=o, align_arrays=False,
                         concatenate=True,
                         adjust_chunks={r: 1 for r in rows}, meta=_meta(len(rows), np.float64))
    return parts.sum(dtype=np.float64)


def _rows_plan(x, target, w, sw, den, o, offsets, reduction, return_grad):
    """Loss part and gradient with the class axis in one chunk."""
    rows, ind = _indices(x)
    shared = _shared_out(x, o.dtype) if return_grad else None
    pairs = da.blockwise(
        _rows_task, ind, x, ind, target.array, ind if o.probs else rows,
        *_arg(w, "z"), *_arg(sw, rows), *_arg(den, ""), offsets, rows, *_arg(shared, ""),
        o=o, reduction=reduction, return_grad=return_grad,
        align_arrays=False, meta=_meta(x.ndim, object))
    if reduction == "none":
        loss = _take(pairs, 0, x.chunks[:-1], _meta(len(rows), o.dtype), keep=len(rows))
    else:
        loss = _take(pairs, 0, _block_chunks(x), _meta(len(rows), np.float64), keep=len(rows))
    grad = _joined(_take(pairs, 1, x.chunks, _meta(x.ndim, o.dtype))) if return_grad else None
    return loss, grad


def _split_plan(x, target, w, sw, den, o, offsets, reduction, return_grad):
    """Loss part and gradient with the class axis in several chunks."""
    rows, ind = _indices(x)
    x = x.astype(o.dtype)
    y = None if o.probs else target.array
    t = target.array if o.probs else None
    w_full = None if w is None else w.rechunk(-1)
    starts = _starts(x.chunks[-1])
    per_chunk = da.blockwise(
        _stats_task, ind, x, ind, *_arg(y, rows), *_arg(t, ind), *_arg(w, "z"),
        starts, "z", offsets, rows, o=o, adjust_chunks={"z": 1}, align_arrays=False,
        meta=_meta(x.ndim, vp.STATS))
    stats = _merged_stats(per_chunk)
    loss = da.blockwise(
        _loss_task, rows, stats, rows, *_arg(y, rows), *_arg(w_full, "Z"),
        *_arg(sw, rows), offsets, rows, o=o, align_arrays=False, concatenate=True,
        meta=_meta(len(rows), np.float64))
    grad = None
    if return_grad:
        grad = da.blockwise(
            _grad_task, ind, x, ind, stats, rows, *_arg(y, rows), *_arg(t, ind),
            *_arg(w, "z"), *_arg(w_full, "Z"), *_arg(sw, rows), starts, "z",
            *_arg(den, ""), offsets, rows, o=o, mean=reduction == "mean",
            align_arrays=False, concatenate=True, meta=_meta(x.ndim, o.dtype))
        grad = _joined(grad)
    return loss, grad


def cross_entropy(logits, target, *, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, sample_weight=None, z_loss=0.0, softcap=None,
                  return_grad=False):
    """Cross-entropy of dask arrays of logits, lazily, as
    :func:`xentfast.cross_entropy` with the class axis last.

    Parameters
    ----------
    logits : dask.array.Array or array_like, shape (..., C)
        Any chunking, the class axis included.
    target : dask.array.Array or array_like
        Integer labels of the row shape (rechunked to the logits' row
        chunks), or class probabilities of the logits' shape.
    weight : array_like of shape (C,), optional
    ignore_index : int, default -100
    reduction : {'mean', 'sum', 'none'}, default 'mean'
    label_smoothing : float in [0, 1], default 0
    sample_weight : dask.array.Array or array_like of the row shape, optional
    z_loss : float, default 0
    softcap : float > 0, optional
        As in :func:`xentfast.cross_entropy`.
    return_grad : bool, default False
        Also return the gradient with respect to the logits, with their
        chunks.

    Returns
    -------
    loss : dask.array.Array
        0-d, or the row shape for 'none', in the compute dtype.
    grad : dask.array.Array
        Only with ``return_grad=True``.

    Notes
    -----
    With the class axis in one chunk, each row block is one task that reads
    its logits once; its per-row losses (and its gradient for 'sum' and
    'none') are bitwise those of :func:`xentfast.cross_entropy` on that
    block, and the 'mean' gradient, scaled by the global denominator, is
    within one rounding of it.  With the class axis in several chunks the
    rows' softmax statistics are combined across chunks first (each chunk is
    read twice); results agree with the in-memory function to rtol 1e-6
    (float32) / 1e-12 (float64).  Labels out of range raise ValueError when
    computed (at once for NumPy labels).
    """
    x, dtype = _logits(logits, "logits")
    options = _loss_options(dtype, reduction, ignore_index, label_smoothing, z_loss, softcap)
    target = _Target(target, x, options["ignore_index"])
    w = _class_vector(weight, x, "weight")
    sw = _row_like(sample_weight, x, "sample_weight")
    o = vp.Options(x.shape[-1], dtype, probs=target.probs, **options)
    offsets = _block_offsets(x)
    den = _denominator(x, target, w, sw, o, offsets) if reduction == "mean" else None
    plan = _rows_plan if len(x.chunks[-1]) == 1 else _split_plan
    loss, grad = plan(x, target, w, sw, den, o, offsets, reduction, return_grad)
    loss = _finish_loss(loss, reduction, den, dtype)
    return (loss, grad) if return_grad else loss


def _finish_loss(part, reduction, den, dtype):
    """The loss from per-row losses or per-block sums."""
    if reduction == "none":
        return part.astype(dtype)
    total = part.sum(dtype=np.float64)
    return da.blockwise(_reduced_loss, "", total, "", *_arg(den, ""), reduction=reduction,
                        loss_dtype=dtype, meta=_meta(0, dtype))


# ---- fused linear + cross-entropy ------------------------------------------------

class _Layout:
    """The shape and chunks of the logits x @ W.T that are never built."""

    def __init__(self, x, W):
        self.shape = x.shape[:-1] + (W.shape[0],)
        self.chunks = x.chunks[:-1] + (W.chunks[0],)
        self.ndim = x.ndim


def _linear_operands(x, W):
    """x (rows chunked, features whole) and W (vocabulary chunked as given,
    features whole) as dask arrays, and the call's compute dtype."""
    x, W = _as_dask(x, "x"), W if isinstance(W, da.Array) else da.from_array(
        np.asarray(W), chunks=-1)
    dtype = check_linear_operands(x, W)
    return x.rechunk({x.ndim - 1: -1}), W.rechunk({1: -1}), dtype


def _linear_logits(x, W, b, o):
    """One (rows, vocabulary chunk) block of the logits x @ W.T + b."""
    x2d = as_float_array(x, "x", o.dtype).reshape(-1, x.shape[-1])
    z = x2d @ as_float_array(W, "W", o.dtype).T
    if b is not None:
        z += as_float_array(b, "bias", o.dtype)
    return x2d, z


def _linear_rows_task(x, W, b, y, w, sw, den, offset, *, o, reduction, return_grad):
    """One row block with the whole vocabulary: xentfast.linear_cross_entropy.
    Returns (loss part as in _rows_task, dx, dW, dbias) with the gradients
    of the block's sum (dx already divided by the 'mean' denominator)."""
    _check_labels(y, o, offset)
    with _task_threads():
        result = xf.linear_cross_entropy(
            x, W, y, bias=b, weight=w, ignore_index=o.ignore_index,
            reduction="none" if reduction == "none" else "sum", label_smoothing=o.eps,
            sample_weight=sw, z_loss=o.z_loss, softcap=o.softcap, return_grad=return_grad)
    loss, grads = result if return_grad else (result, None)
    if reduction != "none":
        loss = np.full((1,) * (x.ndim - 1), float(loss))
    if grads is None:
        return loss, None, None, None
    dx = grads.x
    if reduction == "mean":
        dx *= _grad_scale(den)
    block = (1,) * (x.ndim - 1)   # dW and dbias get one axis per row axis, for the sum
    db = None if grads.bias is None else grads.bias.reshape(block + grads.bias.shape)
    return loss, dx, grads.W.reshape(block + grads.W.shape), db


def _linear_stats_task(x, W, b, y, w, start, offset, *, o):
    _, z = _linear_logits(x, W, b, o)
    return vp.chunk_stats(z.reshape(x.shape[:-1] + z.shape[-1:]), _block_labels(y, o, offset),
                          None, w, int(_offset(start)), o)


def _linear_grad_task(x, W, b, stats, y, w_chunk, w, sw, start, den, offset, *, o, mean):
    """One (rows, vocabulary chunk) block: its logits, their gradient from
    the rows' statistics, and its shares of dx, dW and dbias."""
    x2d, z = _linear_logits(x, W, b, o)
    G = vp.grad_block(z, stats, _block_labels(y, o, offset), None, w_chunk, w, sw,
                      int(_offset(start)), o, _grad_scale(den) if mean else 1.0)
    G = G.reshape(z.shape)
    block = (1,) * (x.ndim - 1)
    dx = (G @ as_float_array(W, "W", o.dtype)).reshape(x.shape[:-1] + (1, x.shape[-1]))
    return dx, (G.T @ x2d).reshape(block + W.shape), G.sum(axis=0).reshape(block + W.shape[:1])


def _scaled_task(a, den, *, mean):
    return a * a.dtype.type(_grad_scale(den)) if mean else a


def _sum_row_blocks(parts, nr, den, mean):
    """Per-row-block partials summed over the row blocks (a tree), and
    divided by the 'mean' denominator."""
    total = parts.sum(axis=tuple(range(nr))) if nr else parts
    ind = "vd"[:total.ndim]
    return da.blockwise(_scaled_task, ind, total, ind, *_arg(den, ""), mean=mean,
                        meta=_meta(total.ndim, total.dtype))


def _linear_rows_plan(x, W, b, target, w, sw, den, o, offsets, reduction, return_grad):
    """Loss part and (dx, dW, dbias) with the vocabulary in one chunk."""
    rows = _ROW_LETTERS[:x.ndim - 1]
    nr, ind, layout = len(rows), rows + "d", _Layout(x, W)
    pairs = da.blockwise(
        _linear_rows_task, ind, x, ind, W, "vd", *_arg(b, "v"), target.array, rows,
        *_arg(w, "v"), *_arg(sw, rows), *_arg(den, ""), offsets, rows, o=o,
        reduction=reduction, return_grad=return_grad, concatenate=True, align_arrays=False,
        meta=_meta(x.ndim, object))
    if reduction == "none":
        loss = _take(pairs, 0, layout.chunks[:-1], _meta(nr, o.dtype), keep=nr)
    else:
        loss = _take(pairs, 0, _block_chunks(layout), _meta(nr, np.float64), keep=nr)
    if not return_grad:
        return loss, None
    blocks, mean = _block_chunks(layout), reduction == "mean"
    dx = _take(pairs, 1, x.chunks, _meta(x.ndim, o.dtype))
    dW = _take(pairs, 2, blocks + W.chunks, _meta(nr + 2, o.dtype), extra=(0,))
    db = None if b is None else _take(pairs, 3, blocks + W.chunks[:1], _meta(nr + 1, o.dtype))
    return loss, (dx, _sum_row_blocks(dW, nr, den, mean),
                  None if db is None else _sum_row_blocks(db, nr, den, mean))


def _linear_split_plan(x, W, b, target, w, sw, den, o, offsets, reduction, return_grad):
    """Loss part and (dx, dW, dbias) with the vocabulary in several chunks:
    each (rows, vocabulary chunk) block of logits is computed twice (for
    the statistics, then for the gradient) and never stored."""
    rows = _ROW_LETTERS[:x.ndim - 1]
    nr, xind, ind, layout = len(rows), rows + "d", rows + "z", _Layout(x, W)
    y, w_full, starts = target.array, None if w is None else w.rechunk(-1), _starts(W.chunks[0])
    per_chunk = da.blockwise(
        _linear_stats_task, ind, x, xind, W, "zd", *_arg(b, "z"), y, rows, *_arg(w, "z"),
        starts, "z", offsets, rows, o=o, adjust_chunks={"z": 1}, concatenate=True,
        align_arrays=False, meta=_meta(x.ndim, vp.STATS))
    stats = _merged_stats(per_chunk)
    loss = da.blockwise(
        _loss_task, rows, stats, rows, y, rows, *_arg(w_full, "Z"), *_arg(sw, rows),
        offsets, rows, o=o, align_arrays=False, concatenate=True, meta=_meta(nr, np.float64))
    if not return_grad:
        return loss, None
    mean = reduction == "mean"
    pairs = da.blockwise(
        _linear_grad_task, ind, x, xind, W, "zd", *_arg(b, "z"), stats, rows, y, rows,
        *_arg(w, "z"), *_arg(w_full, "Z"), *_arg(sw, rows), starts, "z", *_arg(den, ""),
        offsets, rows, o=o, mean=mean, concatenate=True, align_arrays=False,
        meta=_meta(x.ndim, object))
    blocks, n_chunks = _block_chunks(layout), len(W.chunks[0])
    dx = _take(pairs, 0, x.chunks[:-1] + ((1,) * n_chunks,) + x.chunks[-1:],
               _meta(nr + 2, o.dtype), extra=(0,)).sum(axis=nr)
    dW = _take(pairs, 1, blocks + W.chunks, _meta(nr + 2, o.dtype), extra=(0,))
    db = _take(pairs, 2, blocks + W.chunks[:1], _meta(nr + 1, o.dtype))
    return loss, (dx, _sum_row_blocks(dW, nr, None, False),
                  None if b is None else _sum_row_blocks(db, nr, None, False))


def linear_cross_entropy(x, W, target, *, bias=None, weight=None, ignore_index=-100,
                         reduction="mean", label_smoothing=0.0, sample_weight=None,
                         z_loss=0.0, softcap=None, return_grad=False):
    """Cross-entropy of the logits ``x @ W.T + bias`` of dask arrays, lazily,
    as :func:`xentfast.linear_cross_entropy`, without building the logits.

    Parameters
    ----------
    x : dask.array.Array or array_like, shape (..., D)
        Rows chunked (the feature axis is put in one chunk).
    W : dask.array.Array or array_like, shape (V, D)
        A NumPy array, or a dask array that may be chunked along V
        (vocabulary-parallel).
    target : dask.array.Array or array_like of integers, shape ``x.shape[:-1]``
        Labels in [0, V) or `ignore_index`, rechunked to x's row chunks.
    bias : array_like of shape (V,), optional
    weight, ignore_index, reduction, label_smoothing, sample_weight, z_loss, softcap
        As in :func:`xentfast.dask.cross_entropy`.
    return_grad : bool, default False
        Also return the gradients.

    Returns
    -------
    loss : dask.array.Array
        0-d, or x's row shape for 'none', in the compute dtype (the wider of
        x's and W's).
    grads : LinearGrads
        Only with ``return_grad=True``: dask arrays ``(x, W, bias)`` of the
        gradients; ``grads.x`` has x's chunks, ``grads.W`` and
        ``grads.bias`` W's vocabulary chunks (bias: None without a bias).

    Notes
    -----
    W in one chunk: one task per row block runs
    :func:`xentfast.linear_cross_entropy` on it; the row blocks' dW and
    dbias are summed by a tree reduction.  W chunked along V: each (row
    block, vocabulary chunk) task computes its logits, the rows' softmax
    statistics are combined across the chunks, then a second pass computes
    each block's gradient and its shares of dx (summed over the vocabulary
    chunks), dW and dbias (summed over the row blocks).
    """
    x, W, dtype = _linear_operands(x, W)
    layout = _Layout(x, W)
    options = _loss_options(dtype, reduction, ignore_index, label_smoothing, z_loss, softcap)
    t = target if isinstance(target, da.Array) else np.asarray(target)
    check_labels_only(t, "linear_cross_entropy")
    target = _Target(t, layout, options["ignore_index"])
    b = _class_vector(bias, layout, "bias")
    w = _class_vector(weight, layout, "weight")
    sw = _row_like(sample_weight, layout, "sample_weight")
    o = vp.Options(W.shape[0], dtype, **options)
    offsets = _block_offsets(layout)
    den = _denominator(layout, target, w, sw, o, offsets) if reduction == "mean" else None
    plan = _linear_rows_plan if len(W.chunks[0]) == 1 else _linear_split_plan
    loss, grads = plan(x, W, b, target, w, sw, den, o, offsets, reduction, return_grad)
    loss = _finish_loss(loss, reduction, den, dtype)
    return (loss, LinearGrads(*grads)) if return_grad else loss
