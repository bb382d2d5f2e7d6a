# Stub of the compiled elementwise kernels (_binary.pyx); flat C-contiguous
# arrays of float32 or float64 (the same in one call).  A broadcast operand is
# (data, inner, period): flat element k reads data[(k // inner) % period].
import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float32] | NDArray[np.float64]

BLOCK: int

def block_count(n: int) -> int: ...
def scratch_shape(n: int) -> tuple[int, int]: ...
def binary_cross_entropy(
    *, probs: Floats, target: Floats, weight: Floats | None, weight_inner: int,
    weight_period: int, grad_scale: float, loss: Floats | None,
    partial: NDArray[np.float64], grad: Floats | None, scratch: Floats,
) -> None: ...
def binary_cross_entropy_with_logits(
    *, logits: Floats, target: Floats, weight: Floats | None, weight_inner: int,
    weight_period: int, pos_weight: Floats | None, pos_weight_inner: int,
    pos_weight_period: int, grad_scale: float, loss: Floats | None,
    partial: NDArray[np.float64], grad: Floats | None, scratch: Floats,
) -> None: ...
def sigmoid_focal_loss(
    *, logits: Floats, target: Floats, alpha: float, gamma: float, grad_scale: float,
    loss: Floats | None, partial: NDArray[np.float64], grad: Floats | None,
    scratch: Floats,
) -> None: ...
