"""The per-call helper every front end shares (multiclass, softmax, binary).

A `Call` converts the first argument for the kernels, checks the caller's
output buffer (`out=` or `grad_out=`) against every argument with the
aliasing rule (it may be exactly the first argument, nothing else), hands
the kernel the array to write, and restores the caller's layout.
"""
import numpy as np

from . import _buffers
from ._validation import as_float_array, check_out, check_rows, given_array


def by_dtype(fused):
    """A fused kernel's float32 and float64 specialisations, by dtype: calling
    one directly skips Cython's run-time signature dispatch (a large part of
    the cost of a small call)."""
    return {np.dtype(np.float32): fused["float"], np.dtype(np.float64): fused["double"]}


class Call:
    """One call's first argument as the kernels see it.

    `axis` given: a row function; the kernels see ``xk``, the (rows, classes)
    C-contiguous array with the class axis last.  `axis` None: an
    elementwise function; ``xk`` is the flat array.  `out` is the caller's
    output buffer (None: allocate one when `wanted`), `out_name` its name.
    """

    def __init__(self, first, name, *, axis=None, out=None, out_name="grad_out",
                 wanted=True):
        if out is not None and not wanted:
            raise ValueError(f"{out_name} is only used with return_grad=True; "
                             "got return_grad=False")
        self.given = first
        self.x = as_float_array(first, name)
        self.dtype = self.x.dtype
        self.out, self.out_name, self.wanted = out, out_name, wanted
        if axis is None:
            self.xk, self.row_shape, self.axis = self.x.reshape(-1), self.x.shape, None
            self.last = True
        else:
            self.xk, self.row_shape, self.axis = check_rows(self.x, axis, name)
            self.last = self.axis == self.x.ndim - 1

    def check_out(self, **inputs):
        """Check the output buffer against the first argument and every other
        one (`inputs`: name -> value, None, or a tuple of them: as given and
        as converted)."""
        if self.out is not None:
            check_out(self.out, self.x.shape, self.dtype, self.out_name,
                      may_be=(self.x, given_array(self.given)), inputs=inputs)

    def buffer(self):
        """The array (shaped like `xk`) the kernel writes, or None if unwanted."""
        if not self.wanted:
            return None
        if self.out is not None and self.last:
            return self.out.reshape(self.xk.shape)
        return _buffers.empty(self.xk.shape, self.dtype)

    def result(self, buffer):
        """What the kernel wrote, in the caller's layout (`out` if given)."""
        if self.last:
            return self.out if self.out is not None else buffer.reshape(self.x.shape)
        moved = np.moveaxis(buffer.reshape(self.row_shape + (self.xk.shape[1],)), -1,
                            self.axis)
        if self.out is None:
            return np.ascontiguousarray(moved)
        np.copyto(self.out, moved)
        return self.out
