# Raw pointers from optional 1-d memoryviews, taken before a nogil loop.
from cython cimport floating


cdef inline const floating *ptr_or_null(const floating[::1] v) noexcept:
    """Data of an input, or NULL for None (an option not given) or empty."""
    return &v[0] if v is not None and v.shape[0] > 0 else NULL


cdef inline floating *out_ptr(floating[::1] v) noexcept:
    """Data of an output, or NULL for None (not wanted) or empty."""
    return &v[0] if v is not None and v.shape[0] > 0 else NULL
