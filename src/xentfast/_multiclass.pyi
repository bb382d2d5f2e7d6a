# Stub of the compiled multiclass kernels (_multiclass.pyx).  Arrays are
# C-contiguous; "F" is float32 or float64, the same in one call.
import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float32] | NDArray[np.float64]

SMALL_CALL_ELEMENTS: int

def row_losses_sum(loss: NDArray[np.float64]) -> float: ...
def cross_entropy_small(logits: Floats, labels: NDArray[np.int64], grad: Floats | None,
                        ignore_index: int, mean: bool, /) -> tuple[float, float] | None: ...

def cross_entropy_labels_scratch(logits: Floats, *, grad: bool,
                                 label_smoothing: float = ...,
                                 softcap: float | None = ...) -> tuple[int, int]: ...
def softmax_focal_labels_scratch(logits: Floats, *, grad: bool) -> tuple[int, int]: ...
def cross_entropy_probs_scratch(logits: Floats, *, grad: bool,
                                softcap: float | None = ...) -> tuple[int, int]: ...
def cross_entropy_labels(
    *,
    logits: Floats,                      # (N, C)
    labels: NDArray[np.int64],           # (N,)
    weight: Floats | None,               # (C,)
    sample_weight: Floats | None,        # (N,)
    ignore_index: int,
    label_smoothing: float,
    z_loss: float,
    softcap: float | None,
    grad_scale: float,
    loss: NDArray[np.float64],           # OUT (N,)
    grad: Floats | None,                 # OUT (N, C), may be logits
    scratch: Floats,                     # cross_entropy_labels_scratch(...)
) -> None: ...
def softmax_focal_labels(
    *,
    logits: Floats,
    labels: NDArray[np.int64],
    alpha: Floats | None,
    ignore_index: int,
    gamma: float,
    grad_scale: float,
    loss: NDArray[np.float64],
    grad: Floats | None,
    scratch: Floats,
) -> None: ...
def cross_entropy_probs(
    *,
    logits: Floats,
    target: Floats,                      # (N, C)
    weight: Floats | None,
    sample_weight: Floats | None,
    label_smoothing: float,
    z_loss: float,
    softcap: float | None,
    grad_scale: float,
    loss: NDArray[np.float64],
    grad: Floats | None,
    scratch: Floats,
) -> None: ...
def nll_loss(
    *,
    log_probs: Floats,
    labels: NDArray[np.int64],
    weight: Floats | None,
    sample_weight: Floats | None,
    ignore_index: int,
    grad_scale: float,
    loss: NDArray[np.float64],
    grad: Floats | None,
) -> None: ...
