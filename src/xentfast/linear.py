"""Fused linear layer + cross-entropy: the loss of
``cross_entropy(x @ W.T + bias, target)`` and its gradients, computed without
ever holding the (N, V) logits.

Rows go through in chunks, all in one preallocated block of logits:

1. ``block = x[chunk] @ W.T (+ bias)``                  (GEMM, NumPy's BLAS)
2. the cross-entropy kernel turns the block, in place, into the gradient of
   the returned loss with respect to those logits (the 'mean' denominator of
   ALL rows is computed from the labels first, so the kernel scales it)
3. ``dx[chunk] = G @ W`` and ``dW += G.T @ x[chunk]``   (GEMMs), dbias += G.sum(0)

NumPy's matmul has no ``C += A @ B``, so the first chunk's GEMM writes dW and
the others accumulate by tiles of dW's rows: a GEMM into a scratch tile, then
an add (measured: within 4-8% of a BLAS GEMM with beta=1, at rows >= 64).

Threads: the GEMMs use the BLAS's threads, and the kernel runs on the
calling thread alone. Woken for it, OpenMP's threads would busy-wait for some
milliseconds after every chunk, on the cores the next GEMM's threads need
(and the BLAS's idle threads spin likewise during the kernel): measured at
2048 x 512 x 32000 on 2 cores, 1.5-1.7 s a call with both pools against
1.27 s with the kernel serial, which is 3-4% of the work.
"""
import math
import operator
from collections import namedtuple

import numpy as np

from ._kernels import cross_entropy_block, label_denominator
from ._typing import Any, ArrayLike, Reduction
from ._validation import (as_float_array, check_class_vector, check_fits,
                          check_ignore_index, check_labels, check_labels_only,
                          check_linear_operands, check_real, check_reduction,
                          check_row_vector)
from .multiclass import _grad_scale, _reduce

LinearGrads = namedtuple("LinearGrads", ["x", "W", "bias"])
LinearGrads.__doc__ = "Gradients of `linear_cross_entropy`'s loss w.r.t. x, W and bias."

# A chunk's logits take at most this many bytes (the contract's bound).
MAX_CHUNK_BYTES = 32 * 2**20
# Default chunk: 16 MiB of logits, but at least MIN_CHUNK_ROWS rows (within
# the bound). Measured (1 thread, CPU time, N x D x V = 2048 x 512 x 32000):
# the GEMMs run at 57% of their peak with 32-row chunks, 75% at 64, 90% at 128,
# 100% at 256 (float32; float64: 70% at 32, 86% at 64, 98% at 128 rows), so
# 16 MiB (128 float32 rows here) is within 10% of 32 MiB at half the memory;
# OpenBLAS's packing buffers add about one more chunk of RSS.
DEFAULT_CHUNK_BYTES = 16 * 2**20
MIN_CHUNK_ROWS = 64
# Bytes of the scratch tile dW is accumulated through (at most one chunk of logits).
DW_TILE_BYTES = 4 * 2**20


def _chunk_rows(n_rows, n_classes, dtype, chunk_size):
    """Rows per chunk: `chunk_size`, or the default, split into equal chunks."""
    if chunk_size is not None:
        return max(1, min(chunk_size, n_rows))
    row_bytes = max(n_classes, 1) * dtype.itemsize
    target = max(DEFAULT_CHUNK_BYTES // row_bytes, MIN_CHUNK_ROWS)
    target = max(1, min(target, MAX_CHUNK_BYTES // row_bytes))
    n_chunks = max(1, math.ceil(n_rows / target))
    return max(1, math.ceil(n_rows / n_chunks))


def _check_chunk_size(chunk_size):
    if chunk_size is None:
        return None
    if isinstance(chunk_size, (bool, np.bool_)):
        raise TypeError("chunk_size must be a positive integer or None; got bool")
    try:
        chunk_size = operator.index(chunk_size)
    except TypeError:
        raise TypeError(
            f"chunk_size must be a positive integer or None; got {chunk_size!r}") from None
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1; got {chunk_size}")
    return chunk_size


def _operands(x, W):
    """x as (N, D) and W as (V, D), C-contiguous in the call's compute dtype
    (the wider of the two), and x's row shape."""
    x_arr, W_arr = np.asarray(x), np.asarray(W)
    dtype = check_linear_operands(x_arr, W_arr)
    x_arr = as_float_array(x_arr, "x", dtype)
    row_shape = x_arr.shape[:-1]
    return x_arr.reshape(math.prod(row_shape), x_arr.shape[-1]), as_float_array(W_arr, "W", dtype), row_shape


def _fused_block(block, y, loss_rows, with_grad, options):
    """The cross-entropy kernel on one block of logits: per-row losses into
    loss_rows and, with_grad, the gradient (times options' grad_scale)
    written over the block."""
    cross_entropy_block(block, y, grad_out=block if with_grad else None, loss_out=loss_rows,
                        max_threads=1, **options)


def _accumulate_dW(dW, G, x_chunk, tile):
    """dW += G.T @ x_chunk, a tile of dW's rows at a time (tile: scratch)."""
    if tile is None:    # the first chunk
        np.matmul(G.T, x_chunk, out=dW)
        return
    step = tile.shape[0]
    for v0 in range(0, dW.shape[0], step):
        v1 = min(v0 + step, dW.shape[0])
        t = tile[:v1 - v0]
        np.matmul(G[:, v0:v1].T, x_chunk, out=t)
        np.add(dW[v0:v1], t, out=dW[v0:v1])


def linear_cross_entropy(x: ArrayLike, W: ArrayLike, target: ArrayLike, *,
                         bias: ArrayLike | None = None, weight: ArrayLike | None = None,
                         ignore_index: int = -100, reduction: Reduction = "mean",
                         label_smoothing: float = 0.0, sample_weight: ArrayLike | None = None,
                         z_loss: float = 0.0, softcap: float | None = None,
                         return_grad: bool = False, chunk_size: int | None = None) -> Any:
    """Cross-entropy of the logits ``x @ W.T + bias``, with its gradients,
    without ever holding all the logits.

    Rows are processed in chunks; each chunk's logits are computed into one
    preallocated block, turned into their gradient in place by the fused
    cross-entropy kernel, and multiplied back (``dx = G @ W``,
    ``dW += G.T @ x``).  The GEMMs run in NumPy's BLAS.

    Parameters
    ----------
    x : array_like, shape (..., D)
        Inputs of the linear layer; every leading axis is a row axis.
    W : array_like, shape (V, D)
        Weights of the linear layer (the ``torch.nn.Linear`` layout).
    target : array_like of integers, shape ``x.shape[:-1]``
        Class labels in [0, V) or `ignore_index`.  Probability targets are
        not supported (TypeError).
    bias : array_like of shape (V,), optional
        Bias of the linear layer.
    weight, ignore_index, reduction, label_smoothing, sample_weight, z_loss, softcap
        As in `cross_entropy` (class axis last).
    return_grad : bool, default False
        Also return the gradients of the returned loss (for 'none': of the
        sum of the row losses).
    chunk_size : int >= 1, optional
        Rows per chunk.  None: chosen for speed, with a chunk's logits taking
        at most 32 MiB (or one row, where a single row is larger).

    Returns
    -------
    loss : NumPy scalar or ndarray
        In the compute dtype (the wider of x's and W's: float16 computes in
        float32, integers and bools in float64); 'none' gives x's row shape.
    grads : LinearGrads
        Only with ``return_grad=True``: the named tuple ``(x, W, bias)`` of
        gradients, shaped like x, (V, D) and (V,) (bias: None without a
        bias), in the compute dtype.

    Notes
    -----
    Beyond its inputs and outputs a call allocates about two chunks of
    logits and O(N + V).  Results are deterministic for a fixed number of
    threads; the BLAS may sum in another order for another thread count.
    """
    x2d, W2d, row_shape = _operands(x, W)
    dtype = x2d.dtype
    (n_rows, n_features), n_classes = x2d.shape, W2d.shape[0]
    check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    eps = check_real(label_smoothing, "label_smoothing", 0.0, 1.0)
    z_loss = check_real(z_loss, "z_loss")
    if softcap is not None:
        softcap = check_fits(check_real(softcap, "softcap", 0.0, low_open=True), "softcap",
                             dtype, "x and W")
    chunk_size = _check_chunk_size(chunk_size)
    b = check_class_vector(bias, n_classes, dtype, "bias")
    w = check_class_vector(weight, n_classes, dtype, "weight")
    sw = check_row_vector(sample_weight, row_shape, dtype, "sample_weight")
    target_arr = np.asarray(target)
    check_labels_only(target_arr, "linear_cross_entropy")
    y, n_kept, ignore_index = check_labels(target_arr, row_shape, n_classes, ignore_index)

    denominator = label_denominator(y, ignore_index=ignore_index, weight=w, sample_weight=sw,
                                    n_kept=n_kept)
    options = dict(weight=w, ignore_index=ignore_index, label_smoothing=eps, z_loss=z_loss,
                   softcap=softcap, grad_scale=_grad_scale(reduction, denominator))
    loss_rows = np.zeros(n_rows, dtype=np.float64)
    rows = _chunk_rows(n_rows, n_classes, dtype, chunk_size)
    if return_grad:
        dx = np.empty_like(x2d)
        dW = np.zeros_like(W2d) if n_rows == 0 else np.empty_like(W2d)
        db = np.zeros(n_classes, dtype) if b is not None else None
        ones = np.ones(rows, dtype)
        db_chunk = np.empty(n_classes, dtype)
        row_bytes = max(1, n_features * dtype.itemsize)
        tile_rows = max(1, min(n_classes, DW_TILE_BYTES // row_bytes,
                               rows * n_classes * dtype.itemsize // row_bytes))
        dW_tile = np.empty((tile_rows, n_features), dtype) if n_rows > rows else None
    block_buffer = np.empty(rows * n_classes, dtype)
    for r0 in range(0, n_rows, rows):
        r1 = min(r0 + rows, n_rows)
        block = block_buffer[:(r1 - r0) * n_classes].reshape(r1 - r0, n_classes)
        x_chunk = x2d[r0:r1]
        np.matmul(x_chunk, W2d.T, out=block)
        if b is not None:
            block += b
        _fused_block(block, y[r0:r1], loss_rows[r0:r1], return_grad,
                     dict(options, sample_weight=None if sw is None else sw[r0:r1]))
        if return_grad:
            np.matmul(block, W2d, out=dx[r0:r1])
            _accumulate_dW(dW, block, x_chunk, dW_tile if r0 else None)
            if b is not None:
                np.matmul(ones[:r1 - r0], block, out=db_chunk)
                db += db_chunk

    loss = _reduce(loss_rows, reduction, denominator, dtype, row_shape)
    if not return_grad:
        return loss
    return loss, LinearGrads(dx.reshape(row_shape + (n_features,)), dW, db)
