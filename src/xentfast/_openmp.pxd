# The OpenMP shim's declarations: the thread count and the one rule every
# kernel follows to choose its threads.

# Number of threads the kernels may use (the pinned count, else OpenMP's).
cdef int n_threads() noexcept nogil

# Inputs smaller than this many elements run on one thread: waking the
# OpenMP team costs more than it saves.
cdef enum:
    PARALLEL_MIN_ELEMENTS = 32768


cdef inline int threads_for(Py_ssize_t units, Py_ssize_t elements) noexcept nogil:
    """The thread rule: threads a prange over `units` independent pieces
    (rows, tiles, blocks) holding `elements` values in all uses -- one below
    PARALLEL_MIN_ELEMENTS, else n_threads() but never more than `units`.

    A kernel with per-thread scratch takes its thread count from the
    scratch's first axis (which its module's `*_scratch` function sets from
    this rule), so each thread has a row of its own even if another Python
    thread changes the setting meanwhile; other kernels call this directly."""
    cdef int t
    if elements < PARALLEL_MIN_ELEMENTS or units <= 1:
        return 1
    t = n_threads()
    return <int>units if units < t else t
