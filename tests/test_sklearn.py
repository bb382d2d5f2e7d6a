"""Tests of xentfast.sklearn.CrossEntropyClassifier.

References are independent of xentfast: a float64 NumPy log-softmax for the
objective's gradient, and scikit-learn's LogisticRegression on real data.
"""

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from xentfast.sklearn import CrossEntropyClassifier  # noqa: E402


@parametrize_with_checks(
    [
        CrossEntropyClassifier(),
        CrossEntropyClassifier(loss="focal", class_weight="balanced"),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
