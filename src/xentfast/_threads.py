"""Thread control: one OpenMP thread pool, shared with threadpoolctl."""
import contextlib
import operator

from . import _openmp


def get_num_threads():
    """Number of threads the kernels use (OpenMP's ``omp_get_max_threads``).

    Defaults to ``OMP_NUM_THREADS``, else the number of cores; threadpoolctl
    limits show here too.
    """
    return _openmp.max_threads()


def set_num_threads(n):
    """Set the number of threads the kernels use, for the whole process.

    Parameters
    ----------
    n : int
        At least 1.  Results are bitwise identical for every value.
    """
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"n must be an integer; got {n!r}") from None
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n}")
    _openmp.set_max_threads(n)


@contextlib.contextmanager
def num_threads(n):
    """Context manager: run the block with `n` threads, then restore."""
    previous = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(previous)
