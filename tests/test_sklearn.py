"""Tests of xentfast.sklearn.CrossEntropyClassifier.

References are independent of xentfast: the objective's gradient in plain
float64 NumPy (checked itself against finite differences), scikit-learn's
LogisticRegression on real data, and row repetition for sample weights.
"""

import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import recall_score  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from xentfast.sklearn import CrossEntropyClassifier  # noqa: E402


@parametrize_with_checks(
    [
        CrossEntropyClassifier(),
        CrossEntropyClassifier(loss="focal", class_weight="balanced"),
        # check_sample_weight_equivalence compares two fits at rtol=1e-7, far
        # below what an optimiser's tol guarantees; a well-conditioned
        # objective (larger alpha) keeps the two L-BFGS paths together.
        CrossEntropyClassifier(label_smoothing=0.1, alpha=1e-2),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# -- reference objective, NumPy float64 only --------------------------------

def _np_log_softmax(Z):
    m = Z.max(axis=1, keepdims=True)
    return Z - m - np.log(np.exp(Z - m).sum(axis=1, keepdims=True))


def _np_objective(W, b, X, y, s, *, loss, gamma, label_smoothing, alpha):
    """Value and (dW, db) of the documented objective; y holds class indices."""
    k = W.shape[0]
    Z = X @ W.T + b
    logp = _np_log_softmax(Z)
    p = np.exp(logp)
    onehot = np.eye(k)[y]
    if loss == "cross_entropy":
        t = (1 - label_smoothing) * onehot + label_smoothing / k
        rows = -(t * logp).sum(axis=1)
        dZ = p - t
    else:
        # l = -(1 - p_y)^g log p_y;  dl/dz = (p - onehot) * (q^g - g q^(g-1) p_y log p_y)
        lpy = logp[np.arange(len(y)), y]
        q = 1.0 - np.exp(lpy)
        rows = -(q ** gamma) * lpy
        dq = gamma * q ** (gamma - 1) if gamma != 0 else 0.0
        factor = q ** gamma - dq * np.exp(lpy) * lpy
        dZ = (p - onehot) * factor[:, None]
    w = s / s.sum()
    value = w @ rows + 0.5 * alpha * (W * W).sum()
    dZ = dZ * w[:, None]
    return value, dZ.T @ X + alpha * W, dZ.sum(axis=0)


def _small_problem(n_classes, seed=0):
    X, y = make_classification(
        n_samples=150, n_features=5, n_informative=4, n_redundant=0,
        n_classes=n_classes, n_clusters_per_class=1, class_sep=0.7,
        random_state=seed,
    )
    sw = np.random.RandomState(seed).uniform(0.2, 3.0, size=len(y))
    return X, y, sw


@pytest.mark.parametrize("loss", ["cross_entropy", "focal"])
def test_reference_gradient_matches_finite_differences(loss):
    # The reference gradient used below is itself checked, independently.
    X, y, sw = _small_problem(3)
    rng = np.random.RandomState(1)
    W, b = rng.normal(size=(3, 5)), rng.normal(size=3)
    kw = dict(loss=loss, gamma=1.5, label_smoothing=0.1 if loss ==
              "cross_entropy" else 0.0, alpha=0.3)
    _, dW, db = _np_objective(W, b, X, y, sw, **kw)
    theta = np.concatenate([W.ravel(), b])

    def f(t):
        return _np_objective(t[:15].reshape(3, 5), t[15:], X, y, sw, **kw)[0]

    h = 1e-6
    fd = np.array([(f(theta + h * e) - f(theta - h * e)) / (2 * h)
                   for e in np.eye(len(theta))])
    np.testing.assert_allclose(np.concatenate([dW.ravel(), db]), fd,
                               rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize(
    "params",
    [
        dict(),
        dict(label_smoothing=0.2, alpha=1e-2),
        dict(fit_intercept=False, class_weight="balanced"),
        dict(class_weight={0: 3.0, 1: 0.5}, alpha=0.0),
        dict(loss="focal"),
        dict(loss="focal", gamma=0.5, class_weight="balanced", alpha=1e-2),
        dict(loss="focal", gamma=0.0, fit_intercept=False),
    ],
)
def test_fitted_model_is_optimal(params, n_classes):
    # The gradient of the documented objective at the fitted coef_/intercept_,
    # computed in plain NumPy, vanishes.
    X, y, sw = _small_problem(n_classes)
    clf = CrossEntropyClassifier(max_iter=2000, tol=1e-9, **params)
    clf.fit(X, y, sample_weight=sw)
    assert clf.coef_.shape == (n_classes, X.shape[1])
    assert clf.intercept_.shape == (n_classes,)
    if not clf.fit_intercept:
        assert np.all(clf.intercept_ == 0)
    cw = params.get("class_weight")
    if cw == "balanced":
        counts = np.bincount(y, weights=sw)
        class_w = counts.sum() / (n_classes * counts)
    elif isinstance(cw, dict):
        class_w = np.array([cw.get(c, 1.0) for c in range(n_classes)])
    else:
        class_w = np.ones(n_classes)
    value, dW, db = _np_objective(
        clf.coef_, clf.intercept_, X, y, sw * class_w[y],
        loss=params.get("loss", "cross_entropy"),
        gamma=params.get("gamma", 2.0),
        label_smoothing=params.get("label_smoothing", 0.0),
        alpha=params.get("alpha", 1e-4),
    )
    grad = np.concatenate([dW.ravel(), db if clf.fit_intercept else []])
    scale = max(1.0, np.abs(clf.coef_).max())
    assert np.abs(grad).max() < 1e-6 * scale, np.abs(grad).max()
    assert np.isfinite(value)


# -- real data ---------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0,
                            stratify=y)


@pytest.mark.parametrize("alpha", [1e-3, 1e-2])
def test_digits_matches_logistic_regression(digits, alpha):
    Xtr, Xte, ytr, yte = digits
    clf = CrossEntropyClassifier(alpha=alpha, max_iter=1000).fit(Xtr, ytr)
    # LogisticRegression minimises C * sum(loss) + ||w||^2 / 2: the same
    # minimiser as mean(loss) + alpha/2 ||w||^2 when C = 1 / (alpha * n).
    ref = LogisticRegression(C=1.0 / (alpha * len(ytr)), max_iter=2000,
                             tol=1e-6)
    with threadpool_limits(limits=1, user_api="blas"):  # oversubscription
        ref.fit(Xtr, ytr)
    assert abs(clf.score(Xte, yte) - ref.score(Xte, yte)) <= 0.01
    assert clf.score(Xte, yte) > 0.94
    np.testing.assert_allclose(clf.predict_proba(Xte), ref.predict_proba(Xte),
                               atol=2e-3)


@pytest.fixture(scope="module")
def imbalanced_digits():
    # Digit 8 keeps only 10 of its training rows (~1% of the training set).
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.5,
                                          random_state=0, stratify=y)
    idx = np.flatnonzero(ytr == 8)
    keep = np.ones(len(ytr), bool)
    keep[np.random.RandomState(0).permutation(idx)[10:]] = False
    return Xtr[keep], Xte, ytr[keep], yte


@pytest.mark.parametrize(
    "params, gain",
    [(dict(class_weight="balanced"), 0.15), (dict(loss="focal"), 0.05)],
)
def test_imbalanced_minority_recall_improves(imbalanced_digits, params, gain):
    Xtr, Xte, ytr, yte = imbalanced_digits

    def recall(**kw):
        clf = CrossEntropyClassifier(alpha=1e-3, max_iter=500, **kw)
        return recall_score(yte == 8, clf.fit(Xtr, ytr).predict(Xte) == 8)

    assert recall(**params) >= recall() + gain


# -- labels, weights, API ------------------------------------------------------

def test_string_labels():
    X, y, _ = _small_problem(3)
    names = np.array(["cat", "dog", "emu"])
    clf_s = CrossEntropyClassifier().fit(X, names[y])
    clf_i = CrossEntropyClassifier().fit(X, y)
    assert list(clf_s.classes_) == ["cat", "dog", "emu"]
    np.testing.assert_array_equal(clf_s.predict(X), names[clf_i.predict(X)])
    np.testing.assert_allclose(clf_s.coef_, clf_i.coef_)


def test_integer_sample_weight_equals_repetition():
    X, y, _ = _small_problem(3)
    reps = np.random.RandomState(3).randint(0, 4, size=len(y))
    kw = dict(max_iter=2000, tol=1e-10, alpha=1e-2)
    a = CrossEntropyClassifier(**kw).fit(X, y, sample_weight=reps)
    b = CrossEntropyClassifier(**kw).fit(np.repeat(X, reps, axis=0),
                                         np.repeat(y, reps))
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a.intercept_, b.intercept_, rtol=1e-6,
                               atol=1e-7)


def test_binary_decision_function_and_probabilities():
    X, y, _ = _small_problem(2)
    labels = np.array([-1, 7])
    clf = CrossEntropyClassifier().fit(X, labels[y])
    assert clf.coef_.shape == (2, X.shape[1])
    Z = X @ clf.coef_.T + clf.intercept_
    dec = clf.decision_function(X)
    assert dec.shape == (len(y),)
    np.testing.assert_allclose(dec, Z[:, 1] - Z[:, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), labels[(dec > 0).astype(int)])
    np.testing.assert_allclose(clf.predict_log_proba(X), _np_log_softmax(Z),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(clf.predict_proba(X),
                               np.exp(_np_log_softmax(Z)), rtol=1e-12)


def test_multiclass_decision_function_is_logits():
    X, y, _ = _small_problem(3)
    clf = CrossEntropyClassifier().fit(X, y)
    Z = X @ clf.coef_.T + clf.intercept_
    np.testing.assert_allclose(clf.decision_function(X), Z, rtol=1e-12)
    np.testing.assert_allclose(clf.predict_log_proba(X), _np_log_softmax(Z),
                               rtol=1e-12, atol=1e-12)


def test_convergence_warning_and_n_iter():
    X, y, _ = _small_problem(3)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        clf = CrossEntropyClassifier(max_iter=2).fit(X, y)
    assert clf.n_iter_ == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = CrossEntropyClassifier(alpha=1e-2).fit(X, y)
    assert 2 < clf.n_iter_ < 200


def test_abnormal_lbfgs_termination_warns_like_logistic_regression():
    # A feature of 1e200 makes the first step's objective overflow: L-BFGS
    # gives up at once (SciPy status 2). scikit-learn's LogisticRegression
    # warns on the same data; a silently all-zero model is a defect.
    from sklearn.linear_model import LogisticRegression
    X, y, _ = _small_problem(3)
    X = X.copy()
    X[:, 1] *= 1e200
    with pytest.warns(ConvergenceWarning, match="status=2"):
        LogisticRegression().fit(X, y)
    with pytest.warns(ConvergenceWarning, match="ABNORMAL"):
        CrossEntropyClassifier().fit(X, y)


def test_pipeline_gridsearch_clone():
    X, y, _ = _small_problem(3)
    pipe = make_pipeline(StandardScaler(), CrossEntropyClassifier())
    grid = GridSearchCV(pipe, {"crossentropyclassifier__alpha": [1e-3, 1e-1],
                               "crossentropyclassifier__loss":
                                   ["cross_entropy", "focal"]}, cv=3)
    grid.fit(X, y)
    assert grid.best_score_ > 0.6
    c = clone(CrossEntropyClassifier(loss="focal", gamma=0.5))
    assert c.get_params()["gamma"] == 0.5
    assert not hasattr(c, "coef_")


def test_single_class_raises():
    X = np.random.RandomState(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="class"):
        CrossEntropyClassifier().fit(X, np.full(10, "a"))


@pytest.mark.parametrize(
    "params, name",
    [
        (dict(loss="hinge"), "loss"),
        (dict(gamma=-1.0), "gamma"),
        (dict(label_smoothing=1.5), "label_smoothing"),
        (dict(loss="focal", label_smoothing=0.1), "label_smoothing"),
        (dict(alpha=-1e-3), "alpha"),
        (dict(max_iter=0), "max_iter"),
        (dict(max_iter=2.5), "max_iter"),
        (dict(tol=0.0), "tol"),
        (dict(class_weight="auto"), "class_weight"),
        (dict(alpha=np.inf), "alpha"),
        (dict(tol=np.inf), "tol"),
        (dict(gamma=np.inf, loss="focal"), "gamma"),
        (dict(alpha=np.nan), "alpha"),
        (dict(class_weight={0: np.inf}), "class_weight"),
        (dict(class_weight={1: np.nan}), "class_weight"),
        (dict(class_weight={2: -1.0}), "class_weight"),
        (dict(class_weight={2: "heavy"}), "class_weight"),
    ],
)
def test_bad_params_raise(params, name):
    X, y, _ = _small_problem(3)
    with pytest.raises(ValueError, match=name):
        CrossEntropyClassifier(**params).fit(X, y)


def test_negative_sample_weight_raises():
    X, y, _ = _small_problem(3)
    with pytest.raises(ValueError, match="[Nn]egative"):
        CrossEntropyClassifier().fit(X, y, sample_weight=-np.ones(len(y)))


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=120)


def test_import_xentfast_needs_neither_sklearn_nor_scipy():
    r = _run("import sys; import xentfast; "
             "bad = [m for m in ('sklearn', 'scipy') if m in sys.modules]; "
             "assert not bad, bad")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("missing", ["sklearn", "scipy"])
def test_missing_extra_gives_install_hint(missing):
    # A None entry in sys.modules makes `import <missing>` fail.
    r = _run(f"import sys; sys.modules[{missing!r}] = None\n"
             "try:\n    import xentfast.sklearn\n"
             "except ImportError as e:\n    print(e)\n"
             "else:\n    raise SystemExit('no ImportError')")
    assert r.returncode == 0, r.stderr
    assert "pip install xentfast[sklearn]" in r.stdout


def test_too_old_sklearn_gives_install_hint():
    # Stand in for scikit-learn < 1.7, whose compute_class_weight has no
    # sample_weight argument.
    r = _run("import sklearn.utils.class_weight as m\n"
             "m.compute_class_weight = lambda class_weight, *, classes, y: 0\n"
             "try:\n    import xentfast.sklearn\n"
             "except ImportError as e:\n    print(e)\n"
             "else:\n    raise SystemExit('no ImportError')")
    assert r.returncode == 0, r.stderr
    assert ">= 1.7" in r.stdout and "xentfast[sklearn]" in r.stdout


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("loss", ["cross_entropy", "focal"])
def test_fit_is_bitwise_identical_for_any_thread_count(loss):
    import xentfast as xf

    X, y = make_classification(n_samples=20000, n_features=20,
                               n_informative=10, n_classes=5, random_state=0)
    fits = []
    for n in (1, 2, 3):
        with xf.num_threads(n):
            fits.append(CrossEntropyClassifier(loss=loss, max_iter=30)
                        .fit(X, y))
    for clf in fits[1:]:
        np.testing.assert_array_equal(clf.coef_, fits[0].coef_)
        np.testing.assert_array_equal(clf.intercept_, fits[0].intercept_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("loss", ["cross_entropy", "focal"])
def test_fit_holds_one_logits_sized_buffer(loss):
    # The logits buffer is the only (n_samples, n_classes) array alive during
    # fit: the gradient is written over it. A second one (a per-iteration
    # gradient or temporary) would at least double the peak.
    import tracemalloc

    rng = np.random.default_rng(0)
    n, k = 100_000, 40
    X = rng.normal(size=(n, 2))
    y = np.arange(n) % k
    logits_bytes = n * k * 8
    tracemalloc.start()
    try:
        CrossEntropyClassifier(loss=loss, max_iter=3).fit(X, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert logits_bytes <= peak < 1.5 * logits_bytes, peak / logits_bytes
