# Number of threads every kernel passes to prange(num_threads=...).
cdef int n_threads() noexcept nogil
