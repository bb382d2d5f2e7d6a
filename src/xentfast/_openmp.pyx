# The only module that talks to the OpenMP runtime.  Without OpenMP the
# extension is built serially and reports one thread.
#
# OpenMP's omp_set_num_threads only changes the calling thread's setting, but
# xentfast's set_num_threads is process-wide: the count is pinned here and
# every kernel passes n_threads() to prange.  A thread whose own OpenMP
# setting was changed from the process default (by threadpoolctl, say) follows
# that setting; every other thread follows the pinned count, or OpenMP's
# default while nothing is pinned.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int xf_omp_max_threads(void) { return omp_get_max_threads(); }
    static void xf_omp_set_threads(int n) { omp_set_num_threads(n); }
    static int xf_has_openmp(void) { return 1; }
    #else
    static int xf_omp_max_threads(void) { return 1; }
    static void xf_omp_set_threads(int n) { (void)n; }
    static int xf_has_openmp(void) { return 0; }
    #endif
    """
    int xf_omp_max_threads() nogil
    void xf_omp_set_threads(int n) nogil
    int xf_has_openmp() nogil

cdef int pinned = 0   # 0: not pinned, follow OpenMP
cdef int default_threads = xf_omp_max_threads()   # OMP_NUM_THREADS or cores


cdef int n_threads() noexcept nogil:
    cdef int own = xf_omp_max_threads()
    if own != default_threads or pinned == 0:
        return own
    return pinned


def get_threads():
    return n_threads()


def get_pinned():
    return pinned


def pin_threads(int n):
    """Pin the thread count for the process (n > 0), or unpin it (n = 0)."""
    global pinned
    pinned = n
    if n > 0 and xf_has_openmp():
        # keep OpenMP's own setting (what threadpoolctl reports) in step
        xf_omp_set_threads(n)


def has_openmp():
    return bool(xf_has_openmp())
