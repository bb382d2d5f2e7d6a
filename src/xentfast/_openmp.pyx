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
    #include <pthread.h>
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

    /* GCC's runtime (GNU libgomp) keeps its thread pool across fork(), but
       not the pool's threads: a child that starts a team after its parent
       had one waits forever for them.  LLVM's and Intel's runtimes start
       afresh in the child.  So with libgomp a forked child, and every
       process forked from it, runs the kernels on one thread. */
    #if defined(_OPENMP) && defined(__GNUC__) && !defined(__clang__) \
        && !defined(__INTEL_COMPILER)
    static int xf_single_after_fork = 0;
    static void xf_mark_forked(void) { xf_single_after_fork = 1; }
    static void xf_watch_fork(void) { pthread_atfork(NULL, NULL, xf_mark_forked); }
    #else
    static const int xf_single_after_fork = 0;
    static void xf_watch_fork(void) {}
    #endif
    """
    int xf_omp_max_threads() nogil
    void xf_omp_set_threads(int n) nogil
    int xf_left_in_thread
    const int xf_single_after_fork
    void xf_watch_fork()

cdef int pinned = 0   # 0: not pinned
cdef int default_threads = xf_omp_max_threads()   # OMP_NUM_THREADS or cores
xf_watch_fork()


cdef int n_threads() noexcept nogil:
    if xf_single_after_fork:
        return 1
    cdef int own = xf_omp_max_threads()
    cdef int left = xf_left_in_thread if xf_left_in_thread else default_threads
    if pinned == 0 or own != left:
        return own
    return pinned


def get_threads():
    return n_threads()


def single_after_fork():
    """True in a forked child whose OpenMP runtime cannot start threads."""
    return bool(xf_single_after_fork)


def thread_state():
    """The calling thread's OpenMP setting, and what xentfast last set it to."""
    return xf_omp_max_threads(), xf_left_in_thread


def restore_thread_state(state):
    """Undo, in the calling thread, set_openmp_threads calls since thread_state."""
    global xf_left_in_thread
    own, left = state
    xf_omp_set_threads(own)
    xf_left_in_thread = left


def set_openmp_threads(int n):
    """Set the calling thread's OpenMP setting (n >= 1)."""
    global xf_left_in_thread
    xf_omp_set_threads(n)
    xf_left_in_thread = n


def pinned_threads():
    """The process-wide count; 0: not pinned."""
    return pinned


def set_pinned_threads(int n):
    """Pin the count for the whole process (n >= 1), or unpin it (n = 0)."""
    global pinned
    pinned = n

