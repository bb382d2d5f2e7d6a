"""Type aliases of the public signatures (for type checkers; see py.typed)."""
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = ["Any", "ArrayLike", "FloatArray", "Reduction"]

ArrayLike = npt.ArrayLike
Reduction = Literal["mean", "sum", "none"]
FloatArray = npt.NDArray[np.floating[Any]]
