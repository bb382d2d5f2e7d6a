"""Internal block API: the fused row kernels on a caller's (rows, classes) block.

The public functions (multiclass.py) validate, then call these.  Code that
holds its own buffers and has already established the preconditions -- the
fused linear cross-entropy (once per chunk of rows), the PyTorch adapter
(once per call) -- calls them directly and pays no Python-layer checks:

    loss_rows = np.empty(rows)
    cross_entropy_block(logits2d, labels, grad_scale=1 / denominator,
                        grad_out=logits2d, loss_out=loss_rows)   # in place

Preconditions (NOT checked; breaking one is undefined behaviour, up to a
crash): `logits` is a C-contiguous 2-d float32 or float64 ndarray (read-only
allowed); every other array has its dtype (labels: int64), is C-contiguous
and of the shape given below; labels are in [0, C) or equal ignore_index;
`grad_out`, if given, is writeable and shares no memory with any argument
except that it may be exactly `logits`; `loss_out` shares memory with
nothing.  Results are bitwise identical to the public functions' and for any
number of threads.  The 'mean' reduction is the caller's: sum `loss_out`
(in a fixed order) and divide by `label_denominator(...)`, passing
``grad_scale=1 / denominator`` so the gradient comes out already divided.
"""
import numpy as np

from . import _multiclass
from ._call import by_dtype


_CROSS_ENTROPY_LABELS = by_dtype(_multiclass.cross_entropy_labels)
_CROSS_ENTROPY_LABELS_SCRATCH = by_dtype(_multiclass.cross_entropy_labels_scratch)
_CROSS_ENTROPY_PROBS = by_dtype(_multiclass.cross_entropy_probs)
_CROSS_ENTROPY_PROBS_SCRATCH = by_dtype(_multiclass.cross_entropy_probs_scratch)
_SOFTMAX_FOCAL_LABELS = by_dtype(_multiclass.softmax_focal_labels)
_SOFTMAX_FOCAL_LABELS_SCRATCH = by_dtype(_multiclass.softmax_focal_labels_scratch)
_NLL_LOSS = by_dtype(_multiclass.nll_loss)


def _loss_buffer(loss_out, n_rows):
    return np.empty(n_rows, np.float64) if loss_out is None else loss_out


def _scratch(shape, logits, max_threads=None):
    """The kernel's scratch: one row per thread, so its rows cap the threads."""
    if max_threads is not None:
        shape = (min(shape[0], max_threads), shape[1])
    return np.empty(shape, logits.dtype)


def cross_entropy_block(logits, target, *, weight=None, ignore_index=-100,
                        label_smoothing=0.0, sample_weight=None, z_loss=0.0,
                        softcap=None, grad_scale=1.0, grad_out=None, loss_out=None,
                        max_threads=None):
    """Per-row cross-entropy of a (rows, C) block, and its gradient in place.

    Parameters
    ----------
    logits : ndarray, shape (rows, C), float32 or float64, C-contiguous
    target : ndarray
        int64 labels of shape (rows,), each in [0, C) or `ignore_index`; or
        class probabilities of the logits' shape and dtype.
    weight : ndarray of shape (C,), optional
        Class weights, in the logits' dtype.
    ignore_index : int, default -100
        Must fit in int64 (labels only).
    label_smoothing, z_loss : float
        As in `xentfast.cross_entropy`.
    sample_weight : ndarray of shape (rows,), optional
        Row weights, in the logits' dtype.
    softcap : float > 0, optional
        Representable in the logits' dtype.
    grad_scale : float, default 1
        Multiplies the gradient (1 / the 'mean' denominator).
    grad_out : ndarray of the logits' shape and dtype, optional
        Receives the gradient of ``grad_scale * sum(loss_out)``; may be
        `logits` itself.  None: no gradient.
    loss_out : ndarray of shape (rows,), float64, optional
        Receives the per-row losses, weighted (``sample_weight_i *
        weight[y_i]`` scale the row's term; ignored rows give 0), not
        divided by anything.  Allocated when None.
    max_threads : int >= 1, optional
        At most this many threads (None: the process's setting).  The
        result is the same bitwise for any count.

    Returns
    -------
    loss_out : ndarray of shape (rows,), float64
    """
    loss_out = _loss_buffer(loss_out, logits.shape[0])
    if logits.size == 0:
        loss_out[:] = 0.0
        return loss_out
    grad, dtype = grad_out is not None, logits.dtype
    if target.ndim == 1:
        _CROSS_ENTROPY_LABELS[dtype](
            logits=logits, labels=target, weight=weight, sample_weight=sample_weight,
            ignore_index=ignore_index, label_smoothing=label_smoothing, z_loss=z_loss,
            softcap=softcap, grad_scale=grad_scale, loss=loss_out, grad=grad_out,
            scratch=_scratch(_CROSS_ENTROPY_LABELS_SCRATCH[dtype](
                logits, grad=grad, label_smoothing=label_smoothing, softcap=softcap),
                logits, max_threads))
    else:
        _CROSS_ENTROPY_PROBS[dtype](
            logits=logits, target=target, weight=weight, sample_weight=sample_weight,
            label_smoothing=label_smoothing, z_loss=z_loss, softcap=softcap,
            grad_scale=grad_scale, loss=loss_out, grad=grad_out,
            scratch=_scratch(_CROSS_ENTROPY_PROBS_SCRATCH[dtype](
                logits, grad=grad, softcap=softcap), logits, max_threads))
    return loss_out


def softmax_focal_block(logits, labels, *, gamma=2.0, alpha=None, ignore_index=-100,
                        grad_scale=1.0, grad_out=None, loss_out=None):
    """Per-row softmax focal loss of a (rows, C) block, and its gradient.

    As `cross_entropy_block` with int64 labels; `alpha` is an optional (C,)
    array of class weights in the logits' dtype, `gamma` >= 0.
    """
    loss_out = _loss_buffer(loss_out, logits.shape[0])
    if logits.size == 0:
        loss_out[:] = 0.0
        return loss_out
    _SOFTMAX_FOCAL_LABELS[logits.dtype](
        logits=logits, labels=labels, alpha=alpha, ignore_index=ignore_index, gamma=gamma,
        grad_scale=grad_scale, loss=loss_out, grad=grad_out,
        scratch=_scratch(_SOFTMAX_FOCAL_LABELS_SCRATCH[logits.dtype](
            logits, grad=grad_out is not None), logits))
    return loss_out


def nll_block(log_probs, labels, *, weight=None, ignore_index=-100, sample_weight=None,
              grad_scale=1.0, grad_out=None, loss_out=None):
    """Per-row negative log-likelihood of a (rows, C) block, and its gradient.

    As `cross_entropy_block` with int64 labels.
    """
    loss_out = _loss_buffer(loss_out, log_probs.shape[0])
    if log_probs.size == 0:
        loss_out[:] = 0.0
        return loss_out
    _NLL_LOSS[log_probs.dtype](log_probs=log_probs, labels=labels, weight=weight,
                         sample_weight=sample_weight, ignore_index=ignore_index,
                         grad_scale=grad_scale, loss=loss_out, grad=grad_out)
    return loss_out


def label_denominator(labels, *, ignore_index=-100, weight=None, sample_weight=None,
                      n_kept=None):
    """The 'mean' denominator of integer labels: the sum of ``sample_weight_i
    * weight[y_i]`` over the rows not ignored (their count without weights).

    Additive over blocks of rows, so a chunked caller can sum the pieces.
    `n_kept` (the number of rows not ignored), if known, saves a pass.
    """
    if n_kept is None:
        n_kept = int(np.count_nonzero(labels != ignore_index))
    if n_kept == 0 or (weight is None and sample_weight is None):
        return float(n_kept)   # (no row kept: with C = 0, weight is empty)
    kept = labels != ignore_index
    w = 1.0 if weight is None else np.where(kept, weight[np.where(kept, labels, 0)], 0.0)
    s = 1.0 if sample_weight is None else sample_weight
    return float(np.sum(np.where(kept, w * s, 0.0), dtype=np.float64))
