"""Thread control, process-wide, in step with threadpoolctl."""
import contextlib
from collections.abc import Iterator
import operator
import os
import threading
import warnings

from . import _openmp

# More threads than cores never speeds the kernels up, and a runtime that
# cannot create the threads it was asked for (a memory limit) exits the
# process.  So counts are bounded: 4 threads a core, and at least 64 on any
# machine so that a count written for a bigger machine still works.
_MAX_THREADS = max(64, 4 * (os.cpu_count() or 1))


def get_num_threads() -> int:
    """Number of threads the kernels use.

    The value given to `set_num_threads`, else OpenMP's (``OMP_NUM_THREADS``,
    else the number of cores, or what threadpoolctl limits it to).  Always 1
    in a process forked from another when xentfast was built with GCC's
    OpenMP runtime (libgomp), whose threads do not survive ``fork``.

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
    if not 1 <= n <= _MAX_THREADS:
        raise ValueError(f"n must be in [1, {_MAX_THREADS}]; got {n}")
    if n > 1 and _openmp.single_after_fork():
        warnings.warn(
            f"xentfast runs on one thread in this forked process (asked for "
            f"{n}): GCC's OpenMP runtime cannot start threads after fork. "
            "Start worker processes with 'spawn' or 'forkserver' to use "
            "threads in them.", RuntimeWarning, stacklevel=3)
    return n


def set_num_threads(n: int) -> None:
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
    n = _check(n)
    with _lock:
        _openmp.set_pinned_threads(n)
        _openmp.set_openmp_threads(n)


# The num_threads blocks still open, in every Python thread, oldest first.
# Each holds the process-wide setting to put back when it closes; a block
# that closes while a later one is still open (another thread's) hands that
# value on to the later block instead, so that the setting is always the
# latest open block's, and what it was before them all once they are closed.
_open_blocks = []
_lock = threading.Lock()
# A child forked while another thread held the lock would never get it.
os.register_at_fork(before=_lock.acquire, after_in_parent=_lock.release,
                    after_in_child=_lock.release)


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Context manager: run the block with `n` threads, then restore the
    previous setting (including "follow OpenMP/threadpoolctl").

    Blocks may overlap in several Python threads: the setting is the one
    of the latest block still open, and the one from before them all once
    every block has closed.

    Parameters
    ----------
    n : int
        From 1 to ``max(64, 4 * os.cpu_count())``, as in `set_num_threads`.
    """
    n = _check(n)
    seen = _openmp.thread_state()   # this thread's OpenMP setting
    with _lock:
        block = [_openmp.pinned_threads()]
        _open_blocks.append(block)
        _openmp.set_pinned_threads(n)
        _openmp.set_openmp_threads(n)
    try:
        yield
    finally:
        with _lock:
            i = next(i for i, b in enumerate(_open_blocks) if b is block)
            del _open_blocks[i]
            if i < len(_open_blocks):
                _open_blocks[i][0] = block[0]
            else:
                _openmp.set_pinned_threads(block[0])
            _openmp.restore_thread_state(seen)
