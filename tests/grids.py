"""Parameter grids shared by the test modules (plain values: parametrize
needs them at collection time, before any fixture exists)."""

import numpy as np
import pytest

REDUCTIONS = ("mean", "sum", "none")
INT_DTYPES = (np.int8, np.int16, np.int32, np.int64,
              np.uint8, np.uint16, np.uint32, np.uint64)


def dtype_id(d):
    """Test id of a dtype: its name."""
    return np.dtype(d).name


# Unsigned labels cannot hold the default ignore_index -100.
LABEL_CASES = [pytest.param(d, ig, id=f"{np.dtype(d).name}-{ig}")
               for d in INT_DTYPES for ig in ("none", "default", "custom")
               if not (ig == "default" and np.dtype(d).kind == "u")]
