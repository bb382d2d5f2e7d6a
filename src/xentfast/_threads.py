"""Thread control, process-wide, in step with threadpoolctl."""
import contextlib
import operator
import os
import warnings

from . import _openmp

# More threads than cores never speeds the kernels up, and a runtime that
# cannot create the threads it was asked for (a memory limit) exits the
# process.  So counts are bounded: 4 threads a core, and at least 64 on any
# machine so that a count written for a bigger machine still works.
_MAX_THREADS = max(64, 4 * (os.cpu_count() or 1))


def get_num_threads():
    """Number of threads the kernels use.

    The value given to `set_num_threads`, else OpenMP's (``OMP_NUM_THREADS``,
    else the number of cores, or what threadpoolctl limits it to).  Always 1
    in a process forked from another when xentfast was built with GCC's
    OpenMP runtime (libgomp), whose threads do not survive ``fork``.
    """
    return _openmp.get_threads()


def _check(n):
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"n must be an integer; got {n!r}") from None
    if not 1 <= n <= _MAX_THREADS:
        raise ValueError(f"n must be in [1, {_MAX_THREADS}]; got {n}")
    if n > 1 and _openmp.single_after_fork():
        warnings.warn(
            f"xentfast runs on one thread in this forked process (asked for "
            f"{n}): GCC's OpenMP runtime cannot start threads after fork. "
            "Start worker processes with 'spawn' or 'forkserver' to use "
            "threads in them.", RuntimeWarning, stacklevel=3)
    return n


def set_num_threads(n):
    """Set the number of threads the kernels use, for every thread of the process.

    Parameters
    ----------
    n : int
        From 1 to ``max(64, 4 * os.cpu_count())``; other values are a
        `ValueError`.  Results are bitwise identical for every value.  In a
        forked process that cannot start OpenMP threads (see
        `get_num_threads`) the kernels stay on one thread and ``n > 1``
        issues a `RuntimeWarning`.
    """
    _openmp.pin_threads(_check(n))


@contextlib.contextmanager
def num_threads(n):
    """Context manager: run the block with `n` threads, then restore the
    previous setting (including "follow OpenMP/threadpoolctl")."""
    n = _check(n)
    previous = _openmp.save_state()
    _openmp.pin_threads(n)
    try:
        yield
    finally:
        _openmp.restore_state(previous)
