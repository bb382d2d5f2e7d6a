import time

import numpy as np

# The instruction-set level the kernels run at (see _xf_dispatch.h), and what
# the build knows about it, for config_info().  Every kernel module makes the
# same choice when it is loaded; this module includes the same headers, so
# what it reports is what they run.
cdef extern from "_xf_rows.h" nogil:
    int XF_N_LEVELS
    const char *xf_level_names[]
    int xf_level
    int xf_best_level
    int xf_env_status
    int XF_ENV_UNSET, XF_ENV_OK, XF_ENV_UNKNOWN, XF_ENV_UNAVAILABLE
    int XF_LANES
    Py_ssize_t xf_tile_limit_f32()
    Py_ssize_t xf_tile_limit_f64()
    Py_ssize_t xf_label_tile_limit_f32()
    Py_ssize_t xf_label_tile_limit_f64()
    void xf_exp_block_f32(const float *x, Py_ssize_t n, float *e)
    void xf_exp_block_f64(const double *x, Py_ssize_t n, double *e)

cdef extern from *:
    """
    #if defined(__clang__)
    #  define XF_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
    #  define XF_COMPILER "gcc " __VERSION__
    #else
    #  define XF_COMPILER "unknown"
    #endif
    #ifdef _OPENMP
    #  define XF_OPENMP 1
    #else
    #  define XF_OPENMP 0
    #endif
    """
    const char *XF_COMPILER
    int XF_OPENMP


def level():
    """Name of the level the kernels run at."""
    return xf_level_names[xf_level].decode()


def available():
    """Levels this CPU and build support, best first."""
    return [xf_level_names[i].decode() for i in range(xf_best_level, -1, -1)]


def known():
    """Every level name of this build's architecture, lowest first."""
    return [xf_level_names[i].decode() for i in range(XF_N_LEVELS)]


def env_status():
    """What XENTFAST_SIMD asked for: 'unset', 'ok', 'unknown' or 'unavailable'."""
    return {XF_ENV_UNSET: "unset", XF_ENV_OK: "ok", XF_ENV_UNKNOWN: "unknown",
            XF_ENV_UNAVAILABLE: "unavailable"}[xf_env_status]


def build_info():
    """Compiler, OpenMP, and the per-level kernel settings at the current level."""
    return {
        "compiler": XF_COMPILER.decode().strip(),
        "openmp": bool(XF_OPENMP),
        "tile_rows": XF_LANES,
        "tile_limit_float32": xf_tile_limit_f32(),
        "tile_limit_float64": xf_tile_limit_f64(),
        "label_tile_limit_float32": xf_label_tile_limit_f32(),
        "label_tile_limit_float64": xf_label_tile_limit_f64(),
    }


def exp_rate(bint double_precision=False, Py_ssize_t size=4096, double seconds=0.05):
    """exps per second of the kernels' exp at the current level, one thread,
    on `size` values in L1 (the best of five runs of about `seconds`/5, in
    CPU time: other processes on the machine do not count)."""
    dtype = np.float64 if double_precision else np.float32
    x = np.random.default_rng(0).uniform(-20, 20, size).astype(dtype)
    e = np.empty_like(x)
    cdef float[::1] xf, ef
    cdef double[::1] xd, ed
    cdef Py_ssize_t reps = 1, r
    if double_precision:
        xd, ed = x, e
    else:
        xf, ef = x, e
    while True:
        best = float("inf")
        for _ in range(5):
            t0 = time.thread_time()
            with nogil:
                for r in range(reps):
                    if double_precision:
                        xf_exp_block_f64(&xd[0], size, &ed[0])
                    else:
                        xf_exp_block_f32(&xf[0], size, &ef[0])
            best = min(best, time.thread_time() - t0)
        # a bound on reps: a clock that never advances must not loop forever
        if best * 5 >= seconds or reps >= (1 << 40):
            return reps * size / best if best > 0 else float("inf")
        reps *= 4
