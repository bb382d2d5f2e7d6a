"""Every SIMD level this machine supports: XENTFAST_SIMD, config_info(), and
the kernels' results at each level against float64 NumPy references.

Each level runs in a subprocess with XENTFAST_SIMD set (the level is chosen
once, at import).  The subprocess computes the results for every thread
count in THREAD_COUNTS; this process checks them against the references and
checks that they are bitwise identical across thread counts.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import xentfast as xf

AVAILABLE = xf.config_info()["simd_available"]
THREAD_COUNTS = (1, 2, 3)
# Class counts around every vector width, tile limit and float sum block
# (256 classes, _xf_rows_x86.h), and rows that leave
# a partial tile; the last shapes are large enough to use threads.
SHAPES = [(37, c) for c in (1, 2, 3, 7, 8, 9, 10, 15, 16, 17, 23, 24, 25, 31, 32, 33, 40, 41,
                            55, 56, 57, 63, 64, 65, 79, 80, 81, 100, 127, 128, 129, 255, 256, 257, 513)]
SHAPES += [(3001, 17), (1203, 100), (67, 1000), (9, 4000)]


def run_at_level(level, code, **env):
    """Run `code` in a fresh interpreter with XENTFAST_SIMD=level; its stdout
    and stderr."""
    environ = {**os.environ, **env}
    if level is None:
        environ.pop("XENTFAST_SIMD", None)
    else:
        environ["XENTFAST_SIMD"] = level
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environ,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, proc.stderr


def make_inputs(path):
    rng = np.random.default_rng(1234)
    arrays = {}
    for k, (n, c) in enumerate(SHAPES):
        x = rng.standard_normal((n, c)) * 4
        x[0, 0] = 80.0                       # a dominant class
        if c > 1:
            x[1, 1:] = -np.inf               # masked classes
            x[2, -1] = -np.inf
            x[3, 1:] = x[3, 1:] * 0.01 - 100     # exps in float32's subnormal range
        arrays[f"x{k}"] = x
        y = rng.integers(0, c, n)
        y[1], y[2] = 0, 0                    # labels away from the masked classes
        arrays[f"y{k}"] = y
        arrays[f"t{k}"] = (rng.random((n, c)) < 0.3).astype(np.float64)
    np.savez(path, **arrays)


WORKER = """
    import numpy as np
    import xentfast as xf
    inputs = np.load({inputs!r})
    out = {{}}
    for k in range({n_shapes}):
        x64, y, t64 = inputs[f"x{{k}}"], inputs[f"y{{k}}"], inputs[f"t{{k}}"]
        for dt in ("float32", "float64"):
            x, t = x64.astype(dt), t64.astype(dt)
            for threads in {threads!r}:
                with xf.num_threads(threads):
                    r = {{
                        "ce": xf.cross_entropy(x, y, reduction="sum", return_grad=True),
                        "focal": xf.softmax_focal_loss(x, y, reduction="sum",
                                                       return_grad=True),
                        "log_softmax": (xf.log_softmax(x),),
                        "softmax": (xf.softmax(x),),
                        "bce": xf.binary_cross_entropy_with_logits(
                            np.where(np.isinf(x), 0, x), t, reduction="sum",
                            return_grad=True),
                    }}
                for op, values in r.items():
                    for j, v in enumerate(values):
                        out[f"{{op}}-{{k}}-{{dt}}-{{threads}}-{{j}}"] = np.asarray(v)
    np.savez({outputs!r}, **out)
    print(xf.config_info()["simd"])
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    path = tmp_path_factory.mktemp("simd") / "inputs.npz"
    make_inputs(path)
    return path


def log_softmax_ref(x):
    m = np.max(x, axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        z = x - m
    return z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))


def references(x, y, t):
    """float64 (loss, grad) or (values,) of each op of WORKER."""
    n = x.shape[0]
    lp = log_softmax_ref(x)
    p = np.exp(lp)
    rows = np.arange(n)
    lp_y, p_y = lp[rows, y], p[rows, y]
    onehot = np.zeros_like(x)
    onehot[rows, y] = 1
    q = -np.expm1(lp_y)
    # focal, gamma = 2: L = -q^2 lp_y; dL/dlp_y = -q^2 + 2 q p_y lp_y
    dl_dlp = -q ** 2 + 2 * q * p_y * lp_y
    xb = np.where(np.isinf(x), 0, x)
    return {
        "ce": (-np.sum(lp_y), p - onehot),
        "focal": (np.sum(-q ** 2 * lp_y), dl_dlp[:, None] * (onehot - p)),
        "log_softmax": (lp,),
        "softmax": (p,),
        "bce": (np.sum(np.maximum(xb, 0) - xb * t + np.log1p(np.exp(-np.abs(xb)))),
                1 / (1 + np.exp(-xb)) - t),
    }


@pytest.mark.parametrize("level", AVAILABLE)
def test_results_at_level(level, inputs, tmp_path, h):
    outputs = tmp_path / "out.npz"
    stdout, stderr = run_at_level(level, WORKER.format(
        inputs=str(inputs), outputs=str(outputs), n_shapes=len(SHAPES),
        threads=THREAD_COUNTS))
    assert stdout.split() == [level]
    assert "RuntimeWarning" not in stderr
    got = np.load(outputs)
    data = np.load(inputs)
    for k, shape in enumerate(SHAPES):
        refs = references(data[f"x{k}"], data[f"y{k}"], data[f"t{k}"])
        for dt in ("float32", "float64"):
            for op, values in refs.items():
                for j, ref in enumerate(values):
                    what = f"{op} {shape} {dt} at {level}"
                    first = got[f"{op}-{k}-{dt}-{THREAD_COUNTS[0]}-{j}"]
                    assert first.dtype == np.dtype(dt), what
                    h.assert_close(first, ref, dt, what=what)
                    for threads in THREAD_COUNTS[1:]:
                        other = got[f"{op}-{k}-{dt}-{threads}-{j}"]
                        assert other.tobytes() == first.tobytes(), (what, threads)


def test_config_info_keys():
    info = xf.config_info()
    assert info["version"] == xf.__version__
    assert info["simd"] in info["simd_available"]
    assert info["simd_available"][-1] in ("baseline", "neon")
    assert isinstance(info["openmp"], bool)
    assert info["num_threads"] == xf.get_num_threads()
    assert isinstance(info["compiler"], str) and info["compiler"]
    for dt in ("float32", "float64"):
        assert 0 <= info[f"tile_limit_{dt}"] <= 128
        assert 0 <= info[f"label_tile_limit_{dt}"] <= 128


def test_show_config_prints_every_key(capsys):
    xf.show_config()
    printed = capsys.readouterr().out
    for key in xf.config_info():
        assert key in printed


def test_config_info_without_the_variable():
    stdout, stderr = run_at_level(None, """
        import json, xentfast as xf
        print(json.dumps(xf.config_info()))
    """)
    info = json.loads(stdout)
    assert info["simd"] == info["simd_available"][0] == AVAILABLE[0]
    assert "RuntimeWarning" not in stderr


@pytest.mark.parametrize("level", AVAILABLE)
def test_each_level_is_reported(level):
    stdout, stderr = run_at_level(level, """
        import json, xentfast as xf
        print(json.dumps(xf.config_info()))
    """)
    info = json.loads(stdout)
    assert info["simd"] == level
    assert info["simd_available"] == AVAILABLE   # capping does not hide levels
    assert "RuntimeWarning" not in stderr


def test_baseline_names_the_lowest_level():
    stdout, _ = run_at_level("baseline", """
        import xentfast as xf
        print(xf.config_info()["simd"])
    """)
    assert stdout.strip() == AVAILABLE[-1]


def import_warnings_at(level):
    """(RuntimeWarning messages of `import xentfast`, the level it runs at)
    with XENTFAST_SIMD=level."""
    stdout, _ = run_at_level(level, """
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import xentfast as xf
        print([str(w.message) for w in caught if w.category is RuntimeWarning])
        print(xf.config_info()["simd"])
    """)
    return stdout.strip().splitlines()


def test_unknown_level_warns_and_is_ignored():
    messages, simd = import_warnings_at("avx9000")
    assert "XENTFAST_SIMD='avx9000' is not a SIMD level" in messages
    assert "ignored" in messages
    assert simd == AVAILABLE[0]


# The levels of each architecture, best first.
LEVELS_BY_ARCH = {"x86_64": ("avx512", "avx2", "baseline"), "aarch64": ("neon",)}
MISSING = [lv for lv in LEVELS_BY_ARCH.get(os.uname().machine, ()) if lv not in AVAILABLE]


@pytest.mark.skipif(not MISSING, reason="this CPU supports every level of its architecture")
def test_unavailable_level_falls_back_with_a_warning():
    level = MISSING[0]
    messages, simd = import_warnings_at(level)
    assert "this CPU does not support that level" in messages
    order = LEVELS_BY_ARCH[os.uname().machine]
    below = [lv for lv in order[order.index(level):] if lv in AVAILABLE]
    assert simd == below[0]
