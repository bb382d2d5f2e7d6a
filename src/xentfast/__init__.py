"""xentfast: fused, numerically stable cross-entropy losses and gradients.

Compiled row kernels (OpenMP, SIMD) behind a thin NumPy API; see API.md.
"""
from . import info
from ._threads import get_num_threads, num_threads, set_num_threads
from .binary import (binary_cross_entropy, binary_cross_entropy_with_logits,
                     sigmoid_focal_loss)
from .linear import linear_cross_entropy
from .multiclass import cross_entropy, nll_loss, softmax_focal_loss
from .softmax import log_softmax, logsumexp, softmax

__version__ = "0.1.0"

__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "sigmoid_focal_loss", "info",
    "cross_entropy", "get_num_threads", "linear_cross_entropy", "log_softmax", "logsumexp",
    "nll_loss",
    "num_threads", "set_num_threads", "softmax", "softmax_focal_loss",
]
