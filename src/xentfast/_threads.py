"""Thread control, process-wide, in step with threadpoolctl."""
import contextlib
import operator

from . import _openmp


def get_num_threads():
    """Number of threads the kernels use.

    The value given to `set_num_threads`, else OpenMP's (``OMP_NUM_THREADS``,
    else the number of cores, or what threadpoolctl limits it to).

    Returns
    -------
    int
    """
    return _openmp.get_threads()


def _check(n):
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"n must be an integer; got {n!r}") from None
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n}")
    return n


def set_num_threads(n):
    """Set the number of threads the kernels use, for every thread of the process.

    Parameters
    ----------
    n : int
        At least 1.  Results are bitwise identical for every value.
    """
    _openmp.pin_threads(_check(n))


@contextlib.contextmanager
def num_threads(n):
    """Context manager: run the block with `n` threads, then restore the
    previous setting (including "follow OpenMP/threadpoolctl").

    Parameters
    ----------
    n : int
        At least 1.
    """
    n = _check(n)
    previous = _openmp.save_state()
    _openmp.pin_threads(n)
    try:
        yield
    finally:
        _openmp.restore_state(previous)
