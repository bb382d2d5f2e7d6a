# Output arrays whose memory comes from the buffer cache of _xf_buffers.h
# (NumPy's memory handler API): large gradients and log-probabilities reuse
# the memory of the previous call's, once it is freed, instead of faulting in
# fresh pages.  Only the arrays made here carry the handler; NumPy frees each
# array through the handler that allocated it.
cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_New

import numpy as np

cnp.import_array()

cdef extern from "_xf_buffers.h" nogil:
    enum: XF_BUFFERS_MIN
    cnp.PyDataMem_Handler xf_buffers_handler
    size_t xf_buffers_release()
    size_t xf_buffers_bytes_kept()

cdef extern from "numpy/arrayobject.h":
    object PyDataMem_SetHandler(object handler)

_handler = PyCapsule_New(&xf_buffers_handler, "mem_handler", NULL)

# Arrays smaller than this come from np.empty as usual.
MIN_BYTES = XF_BUFFERS_MIN


def empty(shape, dtype):
    """np.empty(shape, dtype), its memory from the buffer cache when it is
    at least MIN_BYTES."""
    dtype = np.dtype(dtype)
    cdef Py_ssize_t n = dtype.itemsize
    for d in shape:
        n *= d
    if n < <Py_ssize_t>XF_BUFFERS_MIN:
        return np.empty(shape, dtype)
    previous = PyDataMem_SetHandler(_handler)
    try:
        return np.empty(shape, dtype)
    finally:
        PyDataMem_SetHandler(previous)


def release():
    """Frees the kept buffers; returns their bytes."""
    return xf_buffers_release()


def bytes_kept():
    """Bytes of the buffers kept for reuse."""
    return xf_buffers_bytes_kept()
