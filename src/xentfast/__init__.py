"""xentfast: fused, numerically stable cross-entropy losses and gradients.

Where things are (docs/internals.md has the details, docs/api-contract.md the contract):
  multiclass.py, softmax.py, binary.py  public functions: options, reductions, docstrings
  _call.py, _validation.py, _scan.pyx   per-call helper; every check_*; compiled input scans
  _kernels.py                           internal block API: row kernels on a caller's block
  linear.py                             fused linear + cross-entropy (chunked GEMMs + block API)
  _multiclass/_softmax/_binary.pyx      kernels (prange, row maths); _rows/_elementwise.pxd -> C
  _openmp.pyx/.pxd, _threads.py         OpenMP shim and the thread rule; public thread control
"""
from . import info
from ._config import config_info, show_config
from ._threads import get_num_threads, num_threads, set_num_threads
from .binary import (binary_cross_entropy, binary_cross_entropy_with_logits,
                     sigmoid_focal_loss)
from .linear import linear_cross_entropy
from .multiclass import cross_entropy, nll_loss, softmax_focal_loss
from .softmax import log_softmax, logsumexp, softmax

__version__ = "0.1.0"

__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "sigmoid_focal_loss", "info",
    "config_info", "cross_entropy", "get_num_threads", "linear_cross_entropy", "log_softmax",
    "logsumexp", "nll_loss", "num_threads", "set_num_threads", "show_config", "softmax",
    "softmax_focal_loss",
]
