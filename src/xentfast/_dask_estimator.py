"""CrossEntropyClassifier on dask arrays (see xentfast.sklearn, which calls
these for dask input): the fit, one tree-reduced pass over X per L-BFGS
evaluation, and the predict methods mapped over row blocks.
"""
import numpy as np
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

import xentfast as xf

# first from .dask: without Dask, its ImportError says how to install it
from .dask import _arg, _meta, da, dask
from .sklearn import _minimize


def _rows_of(a, X, name):
    """A per-sample vector as a dask array in X's row chunks."""
    a = a if isinstance(a, da.Array) else da.from_array(np.asarray(a), chunks=-1)
    if a.ndim != 1 or a.shape[0] != X.shape[0]:
        raise ValueError(
            f"{name} must have shape ({X.shape[0]},), one entry per sample; got shape {a.shape}")
    return a.rechunk((X.chunks[0],))


def _label_index(y, classes, dtype):
    return np.searchsorted(classes, y).astype(dtype)


def _classifier_block(X, y, s, theta, *, n_classes, loss, gamma, label_smoothing,
                      fit_intercept):
    """One row block's share of the estimator's objective: (1, P) float64,
    the sum of s_i * loss_i, then its gradient w.r.t. coef_ (raveled) and
    intercept_ (as CrossEntropyClassifier's in-memory objective, summed
    instead of averaged)."""
    X = np.asarray(X, dtype=np.float64)
    n_coef = n_classes * X.shape[1]
    W = theta[:n_coef].reshape(n_classes, X.shape[1])
    Z = X @ W.T
    if fit_intercept:
        Z += theta[n_coef:]
    if loss == "cross_entropy":
        value, G = xf.cross_entropy(Z, y, sample_weight=s, label_smoothing=label_smoothing,
                                    reduction="sum", return_grad=True, grad_out=Z)
    else:
        rows, G = xf.softmax_focal_loss(Z, y, gamma=gamma, reduction="none",
                                        return_grad=True, grad_out=Z)
        value = rows.sum() if s is None else np.dot(s, rows)
        if s is not None:
            G *= s[:, None]
    out = np.empty((1, theta.size + 1))
    out[0, 0] = value
    out[0, 1:1 + n_coef] = (G.T @ X).ravel()
    if fit_intercept:
        out[0, 1 + n_coef:] = G.sum(axis=0)
    return out


def _fit_classifier(est, X, y, sample_weight):
    """`CrossEntropyClassifier.fit` on a dask array X (rows chunked): every
    L-BFGS evaluation is one pass over X on the cluster, each row block
    giving its loss and gradient, summed by a tree reduction; X is never
    gathered.  Same objective, start and stopping rule as the in-memory fit."""
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, (n_samples, n_features); got shape {X.shape}")
    if X.dtype.kind not in "fiub":
        raise TypeError(f"X must be a real numeric array; got dtype {X.dtype}")
    X = X.rechunk({1: -1})
    y = _rows_of(y, X, "y")
    classes = np.asarray(da.unique(y).compute())
    check_classification_targets(classes)
    if len(classes) < 2:
        raise ValueError(
            "CrossEntropyClassifier needs samples of at least 2 classes "
            f"in y; got only one class: {classes[0]!r}")
    k, d = len(classes), X.shape[1]
    index_dtype = np.min_scalar_type(-k)   # the smallest signed type holding k
    y_idx = y.map_blocks(_label_index, classes, index_dtype, dtype=index_dtype,
                         meta=_meta(1, index_dtype))
    sw = (da.ones(X.shape[0], chunks=(X.chunks[0],)) if sample_weight is None
          else _rows_of(sample_weight, X, "sample_weight").astype(np.float64))
    counts, sw_min = dask.compute(da.bincount(y_idx, weights=sw, minlength=k), sw.min())
    if sw_min < 0:
        raise ValueError("Negative values in data passed to `sample_weight`")
    with np.errstate(divide="ignore", invalid="ignore"):
        # the class counts stand in for y: 'balanced' reads only them
        class_w = compute_class_weight(est.class_weight, classes=classes, y=classes,
                                       sample_weight=counts)
        s_sum = float(np.sum(np.where(counts > 0, class_w * counts, 0.0)))
    if not s_sum > 0:
        raise ValueError(
            "sample_weight times the class weights must have a positive sum; got all zeros")
    if sample_weight is None and np.all(class_w == 1):
        s = None   # every row weighs 1
    else:
        s = da.where(sw > 0, sw * y_idx.map_blocks(_take_weights, class_w,
                                                    dtype=np.float64), 0.0)
    # the labels (and weights) of every evaluation: small next to X, so kept
    # on the workers rather than recomputed (or re-sent) each time
    y_idx, s = dask.persist(y_idx, s)

    n_coef = k * d
    alpha, fit_intercept = float(est.alpha), bool(est.fit_intercept)
    options = dict(n_classes=k, loss=est.loss, gamma=float(est.gamma),
                   label_smoothing=float(est.label_smoothing), fit_intercept=fit_intercept)

    client = _client_in_use()
    blocks = _persisted_row_blocks(client, X, y_idx, s) if client is not None else None

    def objective(theta):
        if blocks is not None:
            total = _objective_on_futures(client, blocks, theta, options) / s_sum
        else:
            P = theta.size + 1
            parts = da.blockwise(
                _classifier_block, "ip", X, "ij", y_idx, "i", *_arg(s, "i"),
                da.from_array(theta, chunks=-1), "q", new_axes={"p": P},
                adjust_chunks={"i": 1}, concatenate=True, align_arrays=False,
                meta=_meta(2, np.float64), **options)
            total = parts.sum(axis=0).compute() / s_sum
        W = theta[:n_coef]
        grad = total[1:]
        grad[:n_coef] += alpha * W
        return float(total[0]) + 0.5 * alpha * float(np.dot(W, W)), grad

    est.coef_, est.intercept_, est.n_iter_ = _minimize(
        objective, k, d, fit_intercept=fit_intercept, max_iter=int(est.max_iter),
        tol=float(est.tol))
    est.classes_ = classes
    est.n_features_in_ = d
    if hasattr(est, "feature_names_in_"):
        del est.feature_names_in_
    return est


# On a distributed cluster with X already in the workers' memory, an
# evaluation submits one task per row block and a tree of sums straight to
# the scheduler: a dask graph for the same work cost a further ~50 ms a
# round trip on a 2-core LocalCluster (graph submission and the reduction's
# layers), half of what the in-memory fit spends on a whole iteration.
SUM_FAN_IN = 8


def _client_in_use():
    """The dask.distributed Client that dask computes on now, else None."""
    try:
        from distributed import Client
    except ImportError:
        return None
    client = getattr(dask.base.get_scheduler(), "__self__", None)
    return client if isinstance(client, Client) else None


def _persisted_row_blocks(client, X, y_idx, s):
    """The futures of the row blocks of X (one column chunk), y_idx and s
    (None: no sample weights), in order, when every block is held by the
    cluster (persisted); else None."""
    from distributed import futures_of

    if X.numblocks[1] != 1 or y_idx.chunks[0] != X.chunks[0]:
        return None
    arrays = [X, y_idx] + ([s] if s is not None else [])
    futures = {f.key: f for a in arrays for f in futures_of(a)}
    blocks = []
    for a in arrays:
        keys = [k[0] if a.ndim == 2 else k for k in a.__dask_keys__()]
        if any(k not in futures for k in keys):
            return None
        blocks.append([futures[k] for k in keys])
    return blocks


def _sum_parts(*parts):
    return np.sum(np.concatenate(parts), axis=0, keepdims=True)


def _objective_on_futures(client, blocks, theta, options):
    """The (P,) sum over row blocks of _classifier_block, computed by tasks
    on the blocks' futures and summed SUM_FAN_IN at a time: on the workers
    while more parts remain, then here."""
    n_blocks = len(blocks[0])
    s_blocks = blocks[2] if len(blocks) > 2 else [None] * n_blocks
    parts = client.map(_classifier_block, blocks[0], blocks[1], s_blocks,
                       [theta] * n_blocks, pure=False, **options)
    while len(parts) > SUM_FAN_IN:
        parts = [client.submit(_sum_parts, *parts[i:i + SUM_FAN_IN], pure=False)
                 for i in range(0, len(parts), SUM_FAN_IN)]
    return _sum_parts(*client.gather(parts))[0]   # the tree's last level, here


def _take_weights(y_idx, class_w):
    return class_w[y_idx]


def _apply_method(block, est, name):
    return getattr(est, name)(block)


def _map_row_blocks(est, name, X):
    """est.<name>(X) for a dask array X, lazily: the in-memory method on
    each row block."""
    check_is_fitted(est)
    if X.ndim != 2 or X.shape[1] != est.n_features_in_:
        raise ValueError(
            f"X must have shape (n_samples, {est.n_features_in_}); got shape {X.shape}")
    X = X.rechunk({1: -1})
    probe = getattr(est, name)(np.zeros((1, X.shape[1])))
    if probe.ndim == 1:
        return X.map_blocks(_apply_method, est, name, drop_axis=1, dtype=probe.dtype,
                            meta=_meta(1, probe.dtype))
    return X.map_blocks(_apply_method, est, name, chunks=(X.chunks[0], probe.shape[1:]),
                        dtype=probe.dtype, meta=_meta(2, probe.dtype))
