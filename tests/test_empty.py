"""Inputs with no rows or no classes, against torch."""
import numpy as np
import pytest

import xentfast as xf

torch = pytest.importorskip("torch")
F = torch.nn.functional


@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (0, 0)])
def test_softmax_family_empty(shape):
    x = np.zeros(shape)
    t = torch.zeros(shape, dtype=torch.float64)
    np.testing.assert_array_equal(xf.log_softmax(x), torch.log_softmax(t, -1).numpy())
    np.testing.assert_array_equal(xf.softmax(x), torch.softmax(t, -1).numpy())
    np.testing.assert_array_equal(xf.logsumexp(x), torch.logsumexp(t, -1).numpy())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_no_rows(reduction):
    x = np.zeros((0, 5))
    y = np.zeros(0, dtype=np.int64)
    expected = F.cross_entropy(torch.zeros(0, 5, dtype=torch.float64),
                               torch.zeros(0, dtype=torch.long), reduction=reduction)
    loss, grad = xf.cross_entropy(x, y, reduction=reduction, return_grad=True)
    np.testing.assert_array_equal(loss, expected.numpy())
    assert grad.shape == (0, 5)
    assert np.isnan(xf.nll_loss(x, y)) and np.isnan(xf.softmax_focal_loss(x, y))


def test_no_classes_needs_every_row_ignored():
    x = np.zeros((3, 0))
    loss, grad = xf.cross_entropy(x, np.full(3, -100), reduction="sum", return_grad=True)
    assert loss == 0 and grad.shape == (3, 0)
    with pytest.raises(ValueError, match=r"\[0, 0\)"):
        xf.cross_entropy(x, np.zeros(3, dtype=np.int64))
