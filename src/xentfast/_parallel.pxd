from ._openmp cimport n_threads

# Inputs smaller than this many elements run on one thread: waking the
# OpenMP team costs more than it saves.
cdef enum:
    PARALLEL_MIN_ELEMENTS = 32768


cdef inline int threads_for(Py_ssize_t units, Py_ssize_t elements) noexcept nogil:
    """Threads a prange over `units` independent pieces (rows, tiles, blocks)
    holding `elements` values in all will use: one below
    PARALLEL_MIN_ELEMENTS, else the thread setting but never more than
    `units`.  A kernel with per-thread scratch takes this count from its
    scratch's first axis, so each thread has a row of its own."""
    cdef int t
    if elements < PARALLEL_MIN_ELEMENTS or units <= 1:
        return 1
    t = n_threads()
    return <int>units if units < t else t
