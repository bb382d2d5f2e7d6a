# The only module that talks to the OpenMP runtime.  Without OpenMP the
# extension is built serially and reports one thread.
#
# OpenMP's omp_set_num_threads only changes the calling thread's setting, but
# xentfast's set_num_threads is process-wide: the count is pinned here and
# kernels pass n_threads() to prange.  A thread whose OpenMP setting is not
# what xentfast last left there (threadpoolctl changed it, say) follows its
# OpenMP setting instead; so does every thread while nothing is pinned.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int xf_omp_max_threads(void) { return omp_get_max_threads(); }
    static void xf_omp_set_threads(int n) { omp_set_num_threads(n); }
    #else
    static int xf_omp_max_threads(void) { return 1; }
    static void xf_omp_set_threads(int n) { (void)n; }
    #endif
    /* What xentfast last set OpenMP to in this thread; 0: never, so the
       thread still has OpenMP's default. */
    static __thread int xf_left_in_thread = 0;
    """
    int xf_omp_max_threads() nogil
    void xf_omp_set_threads(int n) nogil
    int xf_left_in_thread

cdef int pinned = 0   # 0: not pinned
cdef int default_threads = xf_omp_max_threads()   # OMP_NUM_THREADS or cores


cdef int n_threads() noexcept nogil:
    cdef int own = xf_omp_max_threads()
    cdef int left = xf_left_in_thread if xf_left_in_thread else default_threads
    if pinned == 0 or own != left:
        return own
    return pinned


def get_threads():
    return n_threads()


def _set_openmp(int n):
    global xf_left_in_thread
    xf_omp_set_threads(n)
    xf_left_in_thread = n


def pin_threads(int n):
    """Pin the thread count for the whole process (n >= 1)."""
    global pinned
    pinned = n
    _set_openmp(n)


def save_state():
    """What `restore_state` needs to undo later pin_threads calls."""
    return pinned, xf_omp_max_threads()


def restore_state(state):
    global pinned
    pinned, own = state
    _set_openmp(own)
