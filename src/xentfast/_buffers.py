"""Per-call work buffers for the kernels."""
import numpy as np

from . import _openmp


def scratch_rows(n_classes, dtype):
    """One row of `n_classes` per OpenMP thread, for exps a kernel must not
    write into its output."""
    return np.empty((_openmp.get_threads(), max(n_classes, 1)), dtype=dtype)
