"""A scikit-learn classifier trained on xentfast's fused loss and gradient.

``CrossEntropyClassifier`` is a linear multinomial model, ``softmax(X @ coef_.T
+ intercept_)``, fitted by SciPy's L-BFGS-B. Every objective evaluation costs
one matrix product for the logits, one xentfast call that returns the loss and
writes the gradient with respect to the logits in place, and one matrix
product for the chain rule. The logits buffer is allocated once per ``fit``.

Needs the ``sklearn`` extra: ``pip install xentfast[sklearn]``.
"""

import functools
import inspect
import math
import numbers
import sys
import warnings

try:
    import scipy.optimize
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils.class_weight import compute_class_weight
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import (
        _check_sample_weight,
        check_is_fitted,
        validate_data,
    )
    from threadpoolctl import threadpool_limits

    # scikit-learn >= 1.7: validate_data (1.6) and weighted 'balanced'
    # class weights (1.7).
    if "sample_weight" not in inspect.signature(compute_class_weight).parameters:
        raise ImportError("scikit-learn is older than 1.7")
except ImportError as exc:
    raise ImportError(
        "xentfast.sklearn needs scikit-learn >= 1.7 and SciPy; install them "
        "with `pip install xentfast[sklearn]`"
    ) from exc

import numpy as np

import xentfast as xf

__all__ = ["CrossEntropyClassifier"]

_LOSSES = ("cross_entropy", "focal")


def _is_dask_array(X):
    """Whether X is a dask array (without importing dask)."""
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(X, dask_array.Array)


def _dask_rows(method):
    """On a dask array, `method` becomes lazy: a dask array of its results
    on each row block (see xentfast.dask)."""
    @functools.wraps(method)
    def on_rows(self, X):
        if _is_dask_array(X):
            from ._dask_estimator import _map_row_blocks
            return _map_row_blocks(self, method.__name__, X)
        return method(self, X)
    return on_rows


class CrossEntropyClassifier(ClassifierMixin, BaseEstimator):
    """Linear multinomial classifier trained by L-BFGS on xentfast's losses.

    Minimises ``sum_i s_i * loss_i / sum_i s_i + (alpha / 2) * ||coef_||^2``
    over ``coef_`` and ``intercept_`` (the intercept is not penalised), where
    ``loss_i`` is the loss of row ``i``'s logits ``coef_ @ x_i + intercept_``
    and ``s_i`` is ``sample_weight[i]`` times the class weight of row ``i``'s
    label.

    Parameters
    ----------
    loss : {'cross_entropy', 'focal'}, default='cross_entropy'
        Row loss: softmax cross-entropy (:func:`xentfast.cross_entropy`) or
        softmax focal loss (:func:`xentfast.softmax_focal_loss`).
    gamma : float, default=2.0
        Focusing parameter of the focal loss (``>= 0``); ignored by
        ``'cross_entropy'``.
    label_smoothing : float, default=0.0
        Label smoothing in ``[0, 1]`` for ``'cross_entropy'``; must be 0
        with ``'focal'``.
    alpha : float, default=1e-4
        Strength of the L2 penalty on ``coef_`` (finite, ``>= 0``). It matches
        :class:`sklearn.linear_model.LogisticRegression` with
        ``C = 1 / (alpha * n_samples)``.
    class_weight : None, 'balanced' or dict, default=None
        Weight of each class: None (all ones), ``'balanced'``
        (``n_samples / (n_classes * count)``, counting with
        ``sample_weight``) or a dict ``{label: weight}`` of finite weights
        ``>= 0`` (missing labels weigh 1).
    fit_intercept : bool, default=True
        Whether to fit ``intercept_``; if False it is all zeros.
    max_iter : int, default=200
        Maximum number of L-BFGS iterations (``>= 1``). Stopping there
        issues a :class:`~sklearn.exceptions.ConvergenceWarning`.
    tol : float, default=1e-6
        L-BFGS stops when the largest component of the gradient of the
        objective falls below ``tol`` (finite, ``> 0``), or when an
        iteration no longer decreases the objective beyond rounding error.
        If L-BFGS fails instead (e.g. the objective overflows on features
        of 1e200), ``fit`` issues a
        :class:`~sklearn.exceptions.ConvergenceWarning`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels seen in ``fit``, sorted; any label type.
    coef_ : ndarray of shape (n_classes, n_features)
        One weight row per class, two classes included.
    intercept_ : ndarray of shape (n_classes,)
        One intercept per class.
    n_iter_ : int
        Number of L-BFGS iterations run.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features,)
        Feature names seen in ``fit``, when ``X`` has string column names.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from xentfast.sklearn import CrossEntropyClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = CrossEntropyClassifier(alpha=1e-3).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    """

    def __init__(
        self,
        loss="cross_entropy",
        *,
        gamma=2.0,
        label_smoothing=0.0,
        alpha=1e-4,
        class_weight=None,
        fit_intercept=True,
        max_iter=200,
        tol=1e-6,
    ):
        self.loss = loss
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.alpha = alpha
        self.class_weight = class_weight
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    def _check_params(self):
        """Raise a clear error for any invalid hyper-parameter."""
        if not isinstance(self.loss, str) or self.loss not in _LOSSES:
            raise ValueError(
                f"loss must be one of {_LOSSES}; got {self.loss!r}"
            )
        _check_real("gamma", self.gamma, low=0.0)
        _check_real("label_smoothing", self.label_smoothing, low=0.0, high=1.0)
        if self.loss == "focal" and self.label_smoothing != 0:
            raise ValueError(
                "label_smoothing must be 0 with loss='focal'; got "
                f"{self.label_smoothing!r}"
            )
        _check_real("alpha", self.alpha, low=0.0)
        _check_real("tol", self.tol, low=0.0, low_open=True)
        if (
            not isinstance(self.max_iter, numbers.Integral)
            or isinstance(self.max_iter, bool)
            or self.max_iter < 1
        ):
            raise ValueError(
                f"max_iter must be an integer >= 1; got {self.max_iter!r}"
            )
        cw = self.class_weight
        if not (cw is None or isinstance(cw, dict) or
                (isinstance(cw, str) and cw == "balanced")):
            raise ValueError(
                "class_weight must be None, 'balanced' or a dict; got "
                f"{cw!r}"
            )
        if isinstance(cw, dict):
            for label, weight in cw.items():
                _check_real(f"class_weight[{label!r}]", weight, low=0.0)

    def fit(self, X, y, sample_weight=None):
        """Fit the model by L-BFGS on the regularised weighted loss.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (dense; computed in float64).
        y : array-like of shape (n_samples,)
            Labels, of any type; at least two distinct classes.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample; None means all ones.

        Returns
        -------
        self : CrossEntropyClassifier
            The fitted estimator.
        """
        self._check_params()
        if _is_dask_array(X):
            from ._dask_estimator import _fit_classifier
            return _fit_classifier(self, X, y, sample_weight)
        X, y = validate_data(self, X, y, dtype=np.float64, order="C")
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                "CrossEntropyClassifier needs samples of at least 2 classes "
                f"in y; got only one class: {self.classes_[0]!r}"
            )
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            # 'balanced' gives inf to a class whose rows all weigh 0.
            class_w = compute_class_weight(
                self.class_weight, classes=self.classes_, y=y,
                sample_weight=sample_weight,
            )
        s = np.zeros_like(sample_weight)
        np.multiply(sample_weight, class_w[y_idx], out=s,
                    where=sample_weight > 0)
        if not s.sum() > 0:
            raise ValueError(
                "sample_weight times the class weights must have a positive "
                "sum; got all zeros"
            )

        coef, intercept, n_iter = _fit_lbfgs(
            X, y_idx.astype(np.intp), s, n_classes,
            loss=self.loss, gamma=float(self.gamma),
            label_smoothing=float(self.label_smoothing),
            alpha=float(self.alpha), fit_intercept=bool(self.fit_intercept),
            max_iter=int(self.max_iter), tol=float(self.tol),
        )
        self.coef_ = coef
        self.intercept_ = intercept
        self.n_iter_ = n_iter
        return self

    def _logits(self, X):
        """Validated ``X @ coef_.T + intercept_`` in float64, (n, n_classes)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        Z = X @ self.coef_.T
        Z += self.intercept_
        return Z

    @_dask_rows
    def decision_function(self, X):
        """Logits of each class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            The logits; for two classes the difference ``z_1 - z_0``
            (positive means ``classes_[1]``), scikit-learn's convention.
        """
        Z = self._logits(X)
        if Z.shape[1] == 2:
            return Z[:, 1] - Z[:, 0]
        return Z

    @_dask_rows
    def predict(self, X):
        """Most probable class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        Z = self._logits(X)
        return self.classes_[np.argmax(Z, axis=1)]

    @_dask_rows
    def predict_log_proba(self, X):
        """Log-probability of each class, by :func:`xentfast.log_softmax`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        Z = self._logits(X)
        return xf.log_softmax(Z, axis=1, out=Z)

    @_dask_rows
    def predict_proba(self, X):
        """Probability of each class, by :func:`xentfast.softmax`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        Z = self._logits(X)
        return xf.softmax(Z, axis=1, out=Z)


def _check_real(name, value, *, low, high=None, low_open=False):
    """Raise ValueError unless ``value`` is a finite real number in range.

    Not ``_validation.check_real``, whose semantics differ: that one raises
    TypeError for a value that is not a number (here, as for every invalid
    hyper-parameter, ValueError: ``class_weight={2: "heavy"}``), accepts
    0-d arrays (here only ``numbers.Real`` scalars) and words its messages
    as intervals."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low)
    ok = ok and (high is None or value <= high)
    if not ok:
        lo = f"> {low}" if low_open else f">= {low}"
        rng = lo if high is None else f"in [{low}, {high}]"
        raise ValueError(
            f"{name} must be a finite real number {rng}; got {value!r}"
        )


def _fit_lbfgs(X, y, s, n_classes, *, loss, gamma, label_smoothing, alpha,
               fit_intercept, max_iter, tol):
    """Minimise the weighted, L2-penalised loss; return (coef, intercept, n_iter).

    The parameter vector is ``concat(coef.ravel(), intercept)`` (the
    intercept part only when ``fit_intercept``), in float64.
    """
    n, d = X.shape
    k = n_classes
    n_coef = k * d
    s_sum = s.sum()
    s_norm = s / s_sum  # focal: per-row factors of the weighted mean
    Z = np.empty((n, k))  # logits, overwritten in place by their gradient

    def objective(theta):
        W = theta[:n_coef].reshape(k, d)
        np.matmul(X, W.T, out=Z)
        if fit_intercept:
            np.add(Z, theta[n_coef:], out=Z)
        if loss == "cross_entropy":
            # With sample_weight and no class weight, 'mean' divides by
            # sum(s): exactly the weighted mean in the objective.
            value, G = xf.cross_entropy(
                Z, y, sample_weight=s, label_smoothing=label_smoothing,
                reduction="mean", return_grad=True, grad_out=Z,
            )
        else:
            # 'none' gives per-row losses and the gradient of their sum;
            # weighting row i by s_i / sum(s) gives the weighted mean.
            rows, G = xf.softmax_focal_loss(
                Z, y, gamma=gamma, reduction="none", return_grad=True,
                grad_out=Z,
            )
            value = np.dot(s_norm, rows)
            G *= s_norm[:, None]
        grad = np.empty_like(theta)
        dW = grad[:n_coef].reshape(k, d)
        np.matmul(G.T, X, out=dW)
        dW += alpha * W
        if fit_intercept:
            np.sum(G, axis=0, out=grad[n_coef:])
        flat_w = theta[:n_coef]
        value = float(value) + 0.5 * alpha * float(np.dot(flat_w, flat_w))
        return value, grad

    return _minimize(objective, k, d, fit_intercept=fit_intercept,
                     max_iter=max_iter, tol=tol)


def _minimize(objective, k, d, *, fit_intercept, max_iter, tol):
    """L-BFGS-B on ``objective(theta) -> (value, gradient)`` from zeros,
    with the estimator's stopping rule and warnings; (coef, intercept,
    n_iter).  Also runs the dask fit (xentfast.dask)."""
    n_coef = k * d
    theta0 = np.zeros(n_coef + (k if fit_intercept else 0))
    # xentfast's OpenMP threads and the BLAS thread pools (NumPy's and
    # SciPy's) take turns every iteration; when both are multi-threaded
    # they oversubscribe the cores and a fit can run 100x slower. As
    # scikit-learn does around its OpenMP loops, keep BLAS on one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        result = scipy.optimize.minimize(
            objective, theta0, method="L-BFGS-B", jac=True,
            options={
                "maxiter": max_iter,
                "gtol": tol,
                "ftol": 64 * np.finfo(float).eps,
                "maxls": 50,
            },
        )
    if result.status == 1:  # iteration (or evaluation) limit reached
        warnings.warn(
            f"CrossEntropyClassifier stopped at max_iter={max_iter} before "
            f"reaching tol={tol}; increase max_iter or scale the data.",
            ConvergenceWarning,
        )
    elif result.status != 0:
        # E.g. a line search that found no decrease because the objective
        # overflowed (huge features or weights): the model is not fitted.
        warnings.warn(
            f"CrossEntropyClassifier: L-BFGS failed after {result.nit} "
            f"iteration(s) (status={result.status}): {result.message}; "
            "scale the data, or check sample_weight and class_weight.",
            ConvergenceWarning,
        )
    coef = result.x[:n_coef].reshape(k, d).copy()
    intercept = result.x[n_coef:].copy() if fit_intercept else np.zeros(k)
    return coef, intercept, int(result.nit)
