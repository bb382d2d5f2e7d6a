# Stub of the output buffer cache (_buffers.pyx).
from typing import Any

import numpy as np

MIN_BYTES: int

def empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray: ...
def release() -> int: ...
def bytes_kept() -> int: ...
