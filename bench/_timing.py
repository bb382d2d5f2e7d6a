"""Adaptive wall-clock timing of one zero-argument call."""

import gc
import os
import time

import numpy as np


def machine_busy():
    """Seconds all CPUs have spent busy (stolen by the hypervisor included)
    since boot, from /proc/stat; None where that file does not exist."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guest = sum(fields[8:10])  # already counted in user and nice
    return (sum(fields) - idle - guest) / os.sysconf("SC_CLK_TCK")


def measure(call, min_time, min_reps, max_time):
    """Time ``call()`` repeatedly and summarise.

    The call is warmed up first (JIT compilation, first touch of buffers,
    allocator caches): at least 2 calls and 25% of ``min_time``. Then every
    call is timed on its own with ``time.perf_counter`` until both
    ``min_reps`` calls and ``min_time`` seconds are reached; ``max_time``
    stops a slow call early (after at least 3 timed calls). The garbage
    collector is off meanwhile.

    Returns
    -------
    stats : dict
        ``median_ms``, ``best_ms``, ``p25_ms``, ``p75_ms``, ``reps``,
        ``seconds`` (warm-up included),
        ``cpu_util``: process CPU time over wall time while timing, i.e. the
        number of cores the library really kept busy, and ``others``: the
        cores kept busy meanwhile by everything else on the machine (other
        processes, the hypervisor; None if unknown, resolution 1/100 s).
    last : object
        What the last call returned.
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        last = call()
        warm = 1
        while warm < 2 or time.perf_counter() - start < 0.25 * min_time:
            last = call()
            warm += 1
        times = []
        busy0 = machine_busy()
        cpu0 = time.process_time()
        t_start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            last = call()
            t1 = time.perf_counter()
            times.append(t1 - t0)
            elapsed = t1 - t_start
            if len(times) >= min_reps and elapsed >= min_time:
                break
            if elapsed >= max_time and len(times) >= 3:
                break
        cpu = time.process_time() - cpu0
        busy1 = machine_busy()
    finally:
        if gc_was_enabled:
            gc.enable()
    ms = np.array(times) * 1e3
    stats = {
        "median_ms": float(np.median(ms)),
        "best_ms": float(ms.min()),
        "p25_ms": float(np.percentile(ms, 25)),
        "p75_ms": float(np.percentile(ms, 75)),
        "reps": len(times),
        "seconds": time.perf_counter() - start,
        "cpu_util": cpu / elapsed,
        "others": None if busy0 is None else max(0.0, (busy1 - busy0 - cpu) / elapsed),
    }
    return stats, last
