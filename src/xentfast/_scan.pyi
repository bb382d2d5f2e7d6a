# Stub of the compiled input scans (_scan.pyx).
import numpy as np
from numpy.typing import NDArray

def scan_labels(labels: NDArray[np.int64], n_classes: int,
                ignore_index: int) -> tuple[int, int]: ...
def first_outside_unit(values: NDArray[np.float32] | NDArray[np.float64]) -> int: ...
