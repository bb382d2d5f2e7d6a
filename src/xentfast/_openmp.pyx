# The only module that talks to the OpenMP runtime.  Without OpenMP the
# extension is built serially and reports one thread.
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


def max_threads():
    """Threads the next parallel region will use (OpenMP's nthreads-var)."""
    return xf_omp_max_threads()


def set_max_threads(int n):
    xf_omp_set_threads(n)


def has_openmp():
    return bool(xf_has_openmp())
