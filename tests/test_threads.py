"""Thread-count control and bitwise determinism across thread counts."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import xentfast as xf
from grids import REDUCTIONS

THREAD_COUNTS = (1, 2, 3)


@pytest.fixture(autouse=True)
def restore_threads():
    n = xf.get_num_threads()
    yield
    xf.set_num_threads(n)


def test_get_set_num_threads():
    n = xf.get_num_threads()
    assert isinstance(n, int) and n >= 1
    for k in (1, 2, 5, 1):
        xf.set_num_threads(k)
        assert xf.get_num_threads() == k


def test_context_manager_restores():
    xf.set_num_threads(2)
    with xf.num_threads(1):
        assert xf.get_num_threads() == 1
        with xf.num_threads(3):
            assert xf.get_num_threads() == 3
        assert xf.get_num_threads() == 1
    assert xf.get_num_threads() == 2
    with pytest.raises(RuntimeError, match="boom"):
        with xf.num_threads(1):
            raise RuntimeError("boom")
    assert xf.get_num_threads() == 2


def _overlapping_blocks(order):
    """Thread A enters num_threads(4), thread B enters num_threads(3), then
    they leave in ``order``; return what every step saw."""
    import threading
    steps = {"A": threading.Event(), "B": threading.Event()}
    seen = {}

    def block(name, n, entered, leave):
        with xf.num_threads(n):
            entered.set()
            steps[name].wait(10)
        seen["after " + name] = xf.get_num_threads()
        leave.set()

    a_in, b_in, a_out, b_out = (threading.Event() for _ in range(4))
    ta = threading.Thread(target=block, args=("A", 4, a_in, a_out))
    tb = threading.Thread(target=block, args=("B", 3, b_in, b_out))
    ta.start()
    a_in.wait(10)
    tb.start()
    b_in.wait(10)
    seen["both in"] = xf.get_num_threads()
    for name in order:
        steps[name].set()
        (a_out if name == "A" else b_out).wait(10)
    ta.join()
    tb.join()
    seen["end"] = xf.get_num_threads()
    return seen


@pytest.mark.parametrize("order", ["AB", "BA"])
def test_overlapping_blocks_in_two_threads_restore(order):
    # The process-wide setting is the latest block still open; when every
    # block is closed, it is what it was before the first one.
    xf.set_num_threads(2)
    seen = _overlapping_blocks(order)
    first, second = order
    assert seen["both in"] == 3
    assert seen["after " + first] == (3 if first == "A" else 4)
    assert seen["after " + second] == 2
    assert seen["end"] == 2


def test_many_threads_opening_blocks_leave_no_trace():
    import threading
    xf.set_num_threads(2)
    errors = []

    def churn(k):
        try:
            for i in range(300):
                with xf.num_threads(1 + (i + k) % 5):
                    with xf.num_threads(1 + (i * k) % 3):
                        time.sleep(0)   # let another thread in here
        except Exception as e:   # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=churn, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert xf.get_num_threads() == 2


def test_setting_is_process_wide():
    # "process-wide": a Python thread other than the one that set it sees
    # the same value (OpenMP's omp_set_num_threads alone is per-thread).
    import threading
    seen = []
    for k in (1, 3):
        xf.set_num_threads(k)
        t = threading.Thread(target=lambda: seen.append(xf.get_num_threads()))
        t.start()
        t.join()
    assert seen == [1, 3]


@pytest.mark.parametrize("n", [0, -1, -8,                                  # fewer than one
                               2**31, 2**40, 2**64 + 3, np.int64(2**62)])   # huge
def test_thread_count_out_of_range_is_a_value_error(n):
    before = xf.get_num_threads()
    with pytest.raises(ValueError, match=str(n)):
        xf.set_num_threads(n)
    with pytest.raises(ValueError, match=str(n)):
        with xf.num_threads(n):
            pass
    assert xf.get_num_threads() == before


_MANY_THREADS_UNDER_MEMORY_LIMIT = """
import resource
import numpy as np
import xentfast as xf
x, y = np.zeros((4000, 300)), np.zeros(4000, dtype=np.int64)
# 2 GiB of address space beyond what the process holds now (relative, so
# that it also works under AddressSanitizer, whose shadow takes terabytes).
with open("/proc/self/status") as f:
    held = next(int(line.split()[1]) for line in f
                if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS,
                   (held + (2 << 30), resource.getrlimit(resource.RLIMIT_AS)[1]))
try:
    xf.set_num_threads(5000)
except ValueError as e:
    print("ValueError:", e)
print(np.isclose(xf.cross_entropy(x, y), np.log(300), rtol=1e-12))
"""


def test_thread_count_has_an_upper_bound():
    # 5000 threads under an address-space limit: libgomp cannot create
    # them and exits the process (no Python exception) unless xentfast
    # refuses the count first.
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs Linux's /proc to set a memory limit")
    out = _run_child_script(_MANY_THREADS_UNDER_MEMORY_LIMIT).splitlines()
    assert out[0].startswith("ValueError: n must be in [1, "), out
    assert "5000" in out[0] and out[1] == "True", out
    # The bound never goes below 64, whatever the machine, so a count
    # written for a bigger machine still works on a small one.
    with xf.num_threads(64):
        assert xf.get_num_threads() == 64
    with pytest.raises(ValueError, match=str(max(64, 4 * os.cpu_count()))):
        xf.set_num_threads(max(64, 4 * os.cpu_count()) + 1)


def _threads_in_fresh_process(env_update):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(env_update)
    out = subprocess.run(
        [sys.executable, "-c",
         "import xentfast as xf; print(xf.get_num_threads())"],
        env=env, capture_output=True, text=True, timeout=60, check=True)
    return int(out.stdout.strip())


def test_default_follows_openmp():
    assert _threads_in_fresh_process({"OMP_NUM_THREADS": "1"}) == 1
    assert _threads_in_fresh_process({"OMP_NUM_THREADS": "3"}) == 3
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count())
    assert _threads_in_fresh_process({}) == cores


def test_threadpoolctl_sees_and_limits_openmp():
    tpc = pytest.importorskip("threadpoolctl")
    openmp = [i for i in tpc.threadpool_info() if i["user_api"] == "openmp"]
    assert openmp, "threadpoolctl found no OpenMP runtime"
    xf.set_num_threads(2)
    with tpc.threadpool_limits(limits=1, user_api="openmp"):
        assert xf.get_num_threads() == 1
    assert xf.get_num_threads() == 2
    # And the other way round: xentfast's setting is what the runtime has.
    xf.set_num_threads(3)
    seen = [i["num_threads"] for i in tpc.threadpool_info()
            if i["user_api"] == "openmp"]
    assert 3 in seen, seen


def test_block_inside_threadpoolctl_limit_restores_the_limit():
    # The block must give back what this thread saw before it: here the
    # threadpoolctl limit, which overrides the pinned count.
    tpc = pytest.importorskip("threadpoolctl")
    xf.set_num_threads(1)
    with tpc.threadpool_limits(limits=2, user_api="openmp"):
        assert xf.get_num_threads() == 2
        with xf.num_threads(3):
            assert xf.get_num_threads() == 3
        assert xf.get_num_threads() == 2
    assert xf.get_num_threads() == 1


@pytest.mark.parametrize("omp,pinned,limit", [("1", 2, 1), ("2", 1, 2),
                                               ("3", 2, 1)])
def test_threadpoolctl_limit_wins_whatever_the_default(omp, pinned, limit):
    # A threadpoolctl limit equal to OpenMP's default must still apply after
    # xf.set_num_threads (fresh process: the default comes from the env).
    pytest.importorskip("threadpoolctl")
    code = (
        "import xentfast as xf, threadpoolctl as t\n"
        f"xf.set_num_threads({pinned})\n"
        f"with t.threadpool_limits({limit}, user_api='openmp'):\n"
        "    inside = xf.get_num_threads()\n"
        "print(inside, xf.get_num_threads())\n")
    env = dict(os.environ, OMP_NUM_THREADS=omp)
    out = subprocess.run([sys.executable, "-c", code], env=env,
                         capture_output=True, text=True, timeout=60,
                         check=True)
    assert out.stdout.split() == [str(limit), str(pinned)], out.stdout


_CONCURRENT = """
import threading
import numpy as np
import xentfast as xf
rng = np.random.default_rng(0)
xs = [rng.standard_normal((600, 517)) for _ in range(3)]
ys = [rng.integers(0, 517, 600) for _ in range(3)]
kw = dict(softcap=5.0, label_smoothing=0.1, reduction="none")
with xf.num_threads(1):
    refs = [xf.cross_entropy(x, y, **kw) for x, y in zip(xs, ys)]
bad, done = [], threading.Event()
def work(k):
    for _ in range(40):
        if not np.array_equal(xf.cross_entropy(xs[k], ys[k], **kw), refs[k]):
            bad.append(k)
def toggle():
    i = 0
    while not done.is_set():
        xf.set_num_threads(1 if i % 2 else 4)
        i += 1
workers = [threading.Thread(target=work, args=(k,)) for k in range(3)]
toggler = threading.Thread(target=toggle)
toggler.start()
for t in workers:
    t.start()
for t in workers:
    t.join()
done.set()
toggler.join()
print("mismatches", len(bad))
"""


def test_set_num_threads_during_calls_in_other_threads():
    # Process-wide setting changed while other Python threads are inside
    # kernels: results stay right and nothing crashes (run in a child
    # process so that a crash fails this test, not the whole session).
    # Timing-dependent: a per-thread scratch buffer sized with one thread
    # count and used with another overflows only now and then.
    out = subprocess.run([sys.executable, "-c", _CONCURRENT],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert out.stdout.split() == ["mismatches", "0"], out.stdout


# ---------------------------------------------------------- determinism

def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint8).tobytes(), a.dtype, a.shape


def _same_for_every_thread_count(call):
    results = []
    for n in THREAD_COUNTS:
        with xf.num_threads(n):
            res = call()
        res = res if isinstance(res, tuple) else (res,)
        results.append([_bits(np.asarray(r)) for r in res])
    for n, r in zip(THREAD_COUNTS[1:], results[1:]):
        assert r == results[0], f"{n} threads differ from 1 thread"


@pytest.fixture(scope="module")
def big():
    rng = np.random.default_rng(20261124)
    out = {}
    for shape in ((3000, 517), (20000, 7)):
        n, c = shape
        x = (3 * rng.standard_normal(shape)).astype(np.float32)
        y = rng.integers(0, c, n)
        y[::13] = -100
        t = rng.random(shape, dtype=np.float32)
        t /= t.sum(1, keepdims=True)
        out[shape] = dict(x32=x, x64=x.astype(np.float64), y=y, t=t,
                          sw=rng.random(n), w=rng.random(c) + 0.5)
    return out


SHAPES = [pytest.param((3000, 517), id="3000x517"),
          pytest.param((20000, 7), id="20000x7")]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", ["x32", "x64"])
@pytest.mark.parametrize("shape", SHAPES)
def test_cross_entropy_bitwise_identical(shape, dtype, reduction, big):
    d = big[shape]
    x = d[dtype]
    _same_for_every_thread_count(lambda: xf.cross_entropy(
        x, d["y"], reduction=reduction, return_grad=True))
    _same_for_every_thread_count(lambda: xf.cross_entropy(
        x, d["y"], reduction=reduction, return_grad=True, weight=d["w"],
        sample_weight=d["sw"], z_loss=1e-4, label_smoothing=0.1,
        softcap=20.0))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_prob_targets_and_nll_bitwise_identical(shape, reduction, big):
    d = big[shape]
    _same_for_every_thread_count(lambda: xf.cross_entropy(
        d["x32"], d["t"], reduction=reduction, return_grad=True,
        sample_weight=d["sw"]))
    _same_for_every_thread_count(lambda: xf.nll_loss(
        d["x64"], d["y"], reduction=reduction, return_grad=True,
        weight=d["w"]))


@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_family_bitwise_identical(shape, big):
    x = big[shape]["x32"]
    for name in ("log_softmax", "softmax", "logsumexp"):
        _same_for_every_thread_count(lambda: getattr(xf, name)(x))
    _same_for_every_thread_count(lambda: xf.logsumexp(x, axis=0))


@pytest.mark.parametrize("kind", ["labels", "probs"])
def test_threaded_results_are_correct(kind):
    # Rows whose targets sum to very different totals (and class weights):
    # a per-row scalar shared between threads by mistake shows up as a
    # large error, not just as a last-bit difference.
    rng = np.random.default_rng(7)
    n, c = 400, 4000
    x = rng.standard_normal((n, c))
    w = rng.random(c) + 0.5
    if kind == "probs":
        t = rng.random((n, c))
        t /= t.sum(1, keepdims=True)
        t[::2] *= 1e-3
        kw = dict(label_smoothing=0.0)
    else:
        t = rng.integers(0, c, n)
        kw = dict(label_smoothing=0.3)
    with xf.num_threads(1):
        ref = xf.cross_entropy(x, t, weight=w, reduction="none",
                               return_grad=True, **kw)
    with xf.num_threads(2):
        for _ in range(10):
            loss, grad = xf.cross_entropy(x, t, weight=w, reduction="none",
                                          return_grad=True, **kw)
            np.testing.assert_array_equal(loss, ref[0])
            np.testing.assert_array_equal(grad, ref[1])


# ------------------------------------------------------------------ fork

def _run_child_script(code, timeout=60):
    """Run ``code`` in a fresh interpreter; a hang or crash fails the test."""
    # Its own process group, so that forked children that hang are killed
    # with it rather than left behind.
    proc = subprocess.Popen([sys.executable, "-c", code], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"hung for {timeout} s")
    assert proc.returncode == 0, (proc.returncode, stderr[-2000:])
    return stdout


_FORK_SETUP = """
import os, warnings
import numpy as np
import xentfast as xf
rng = np.random.default_rng(3)
x = rng.standard_normal((2000, 300))   # far above the one-thread size
y = rng.integers(0, 300, 2000)
def loss_bits():
    return xf.cross_entropy(x, y, reduction="none").tobytes()
xf.set_num_threads(2)
parent = loss_bits()   # the parent's OpenMP team now exists
"""

_FORK_CHILD = _FORK_SETUP + """
pid = os.fork()
if pid == 0:
    ok = loss_bits() == parent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xf.set_num_threads(2)   # asking for threads again must not hang
    ok = ok and loss_bits() == parent
    grandchild = os.fork()   # nor in a child of the child
    if grandchild == 0:
        os._exit(0 if loss_bits() == parent else 3)
    ok = ok and os.waitpid(grandchild, 0)[1] == 0
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status), "parent", loss_bits() == parent)
"""


def test_parallel_call_in_forked_child_does_not_hang():
    # GNU libgomp's thread pool does not survive fork(): a child that starts
    # an OpenMP team after the parent had one blocks forever.
    assert _run_child_script(_FORK_CHILD).split() == [
        "child", "0", "parent", "True"]


_FORK_POOL = _FORK_SETUP + """
import multiprocessing as mp
def work(k):
    return xf.cross_entropy(x, np.roll(y, k), reduction="none").tobytes()
if __name__ == "__main__":
    with mp.get_context("fork").Pool(2) as pool:
        got = pool.map(work, range(4))
    print(got == [work(k) for k in range(4)])
"""


def test_fork_pool_does_not_hang():
    # multiprocessing's 'fork' start method (Linux's default before 3.14).
    assert _run_child_script(_FORK_POOL).split() == ["True"]


_FORK_ASK_THREADS = """
import os, sys, warnings
import xentfast as xf
xf.set_num_threads(2)
pid = os.fork()
if pid == 0:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        xf.set_num_threads(2)
        with xf.num_threads(1):
            inside = xf.get_num_threads()
    print(xf.get_num_threads(), inside,
          [w.category.__name__ for w in caught], flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print(xf.get_num_threads())
"""


def test_forked_child_says_it_runs_on_one_thread():
    tpc = pytest.importorskip("threadpoolctl")
    runtimes = {i["prefix"] for i in tpc.threadpool_info()
                if i["user_api"] == "openmp"}
    if "libgomp" not in runtimes:
        pytest.skip("only GNU libgomp loses its threads on fork")
    child, parent = _run_child_script(_FORK_ASK_THREADS).splitlines()
    assert child == "1 1 ['RuntimeWarning']"
    assert parent == "2"


def _scratch_shapes(x):
    from xentfast import _multiclass, _softmax
    return {
        "log_softmax in place": _softmax.log_softmax_scratch(x, in_place=True),
        "log_softmax into out": _softmax.log_softmax_scratch(x, in_place=False),
        "logsumexp": _softmax.logsumexp_scratch(x),
        "cross_entropy labels": _multiclass.cross_entropy_labels_scratch(x, grad=True),
        "cross_entropy labels, smoothed, capped": _multiclass.cross_entropy_labels_scratch(
            x, grad=False, label_smoothing=0.1, softcap=5.0),
        "cross_entropy probs": _multiclass.cross_entropy_probs_scratch(x, grad=True),
        "softmax_focal": _multiclass.softmax_focal_labels_scratch(x, grad=True),
    }


@pytest.mark.parametrize("c", [10, 100, 1000])   # tile and row paths at each dtype
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_kernel_with_scratch_gets_the_threads_it_may_use(dtype, c):
    # a kernel with scratch runs scratch.shape[0] threads: a shape function
    # that says 1 makes the kernel serial whatever the setting (log_softmax
    # into `out` did, at every C above the tile limit)
    x = np.zeros((65536 // c * 4, c), dtype)
    for n in (1, 2):
        with xf.num_threads(n):
            shapes = _scratch_shapes(x)
        assert {name: s[0] for name, s in shapes.items()} == dict.fromkeys(shapes, n)
