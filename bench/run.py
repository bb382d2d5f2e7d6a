"""xentfast benchmark: time xentfast against its peers, one process per library.

Usage (from the repository root)::

    python bench/run.py --quick
    python bench/run.py --threads 1,2 --dtypes float32 --shapes 4096x1000 \\
        --ops cross_entropy --libs xentfast,torch --json out.json --plot out.png

See bench/README.md for what is timed and what every column means.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _libs  # noqa: E402  (needs HERE on sys.path; imports only NumPy)
import _report  # noqa: E402
from _worker import RESULT_PREFIX  # noqa: E402

WORKER = os.path.join(HERE, "_worker.py")
DEFAULT_SHAPES = "65536x10,16384x100,4096x1000,512x32000,128x128000"
QUICK_SHAPES = "65536x10,4096x1000,128x32000"
# The thread-count environment variables every worker gets.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")
# No benchmarked op uses NumPy's BLAS, but OpenBLAS's idle threads spin for a
# while after import and would steal a core from the first rows timed.
FIXED_ENV = {"OPENBLAS_NUM_THREADS": "1"}
# XLA ignores OMP_NUM_THREADS; these flags are the usual request for one
# thread, but only the CPU affinity below really holds XLA to one core.
JAX_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
# Timing per (op, dtype, shape, lib):
# (min_time s, min_reps, max_time s, retries of disturbed rows, worker timeout s)
MODES = {"quick": (0.12, 5, 0.6, 1, 120), "full": (0.4, 10, 2.0, 2, 1800)}


def available_cpus():
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Benchmark xentfast against NumPy, PyTorch, JAX, scikit-learn "
                    "and SciPy; each library runs in its own process.")
    p.add_argument("--quick", action="store_true",
                   help=f"short run (under a minute): float32, shapes {QUICK_SHAPES}, "
                        "fewer repetitions")
    p.add_argument("--threads", default="1,all",
                   help="comma-separated thread counts; 'all' = every available "
                        "CPU (default: 1,all)")
    p.add_argument("--dtypes", help="float32,float64 (default; --quick: float32)")
    p.add_argument("--shapes", help=f"NxC,... (default {DEFAULT_SHAPES})")
    p.add_argument("--ops", default=",".join(_libs.OPS),
                   help=f"subset of {','.join(_libs.OPS)}")
    p.add_argument("--libs", default=",".join(n for n in _libs.LIBS if n != "copy"),
                   help="libraries to time (default: all; missing ones are reported)")
    p.add_argument("--json", default=os.path.join(HERE, "results", "latest.json"),
                   help="where to write the results (default bench/results/latest.json)")
    p.add_argument("--plot", default=os.path.join(HERE, "results", "latest.png"),
                   help="PNG plot of the speed-ups (default bench/results/latest.png)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the plot")
    p.add_argument("--no-check", action="store_true",
                   help="skip the check of every result against float64 NumPy")
    p.add_argument("--no-pin", action="store_true",
                   help="do not restrict runs with fewer threads than CPUs to that "
                        "many CPUs (affinity)")
    p.add_argument("--min-time", type=float,
                   help=f"seconds of timed calls per row (default {MODES['full'][0]}; "
                        f"--quick {MODES['quick'][0]})")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--simd", metavar="LEVEL",
                   help="run xentfast at this SIMD level (sets XENTFAST_SIMD in its "
                        "worker: avx512, avx2, baseline, neon)")
    p.add_argument("--load", metavar="JSON",
                   help="print the tables and draw the plot of a saved run; no timing")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show each worker's progress (stderr)")
    args = p.parse_args(argv)
    if args.dtypes is None:
        args.dtypes = "float32" if args.quick else "float32,float64"
    if args.shapes is None:
        args.shapes = QUICK_SHAPES if args.quick else DEFAULT_SHAPES
    return args, p


def resolve(args, parser):
    """Check and expand the comma-separated options."""
    def split(text):
        return [s.strip() for s in text.split(",") if s.strip()]

    cpus = available_cpus()
    threads = []
    for t in split(args.threads):
        n = len(cpus) if t == "all" else int(t) if t.isdigit() else 0
        if n < 1:
            parser.error(f"--threads takes positive integers or 'all'; got {t!r}")
        if n not in threads:
            threads.append(n)
    dtypes = split(args.dtypes)
    for d in dtypes:
        if d not in ("float32", "float64"):
            parser.error(f"--dtypes takes float32 and float64; got {d!r}")
    shapes = []
    for s in split(args.shapes):
        try:
            n, c = (int(v) for v in s.lower().split("x"))
            assert n > 0 and c > 0
        except (ValueError, AssertionError):
            parser.error(f"--shapes takes NxC with positive N, C; got {s!r}")
        shapes.append([n, c])
    ops = split(args.ops)
    for op in ops:
        if op not in _libs.OPS:
            parser.error(f"--ops takes {', '.join(_libs.OPS)}; got {op!r}")
    libs = split(args.libs)
    for lib in libs:
        if lib not in _libs.LIBS or lib == "copy":
            parser.error(f"--libs takes {', '.join(n for n in _libs.LIBS if n != 'copy')}; "
                         f"got {lib!r}")
    return threads, dtypes, shapes, ops, libs, cpus


def worker_setup(lib, threads, cpus, pin, simd=None):
    """Environment and CPU set of the worker for ``lib`` at ``threads`` threads."""
    env = dict(os.environ)
    env.update({var: str(threads) for var in THREAD_VARS}, **FIXED_ENV)
    notes = [f"OMP/MKL_NUM_THREADS={threads}"]
    if lib == "xentfast" and simd:
        env["XENTFAST_SIMD"] = simd
        notes.append(f"XENTFAST_SIMD={simd}")
    if lib == "jax" and threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + JAX_ONE_THREAD).strip()
        notes.append(f"XLA_FLAGS={JAX_ONE_THREAD!r}")
    can_pin = pin and hasattr(os, "sched_setaffinity")
    cpu_set = cpus[:threads] if can_pin and threads < len(cpus) else None
    if cpu_set is not None:
        notes.append(f"affinity={cpu_set}")
    return env, cpu_set, "; ".join(notes)


def run_worker(lib, threads, spec, cpus, pin, timeout, verbose, simd=None):
    """Start one worker, wait, return its result dict (never raises)."""
    env, cpu_set, settings = worker_setup(lib, threads, cpus, pin, simd)
    spec = dict(spec, lib=lib, threads=threads)
    preexec = (lambda: os.sched_setaffinity(0, cpu_set)) if cpu_set else None
    load_before = loadavg()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, WORKER, json.dumps(spec)], env=env,
                              capture_output=True, text=True, timeout=timeout,
                              preexec_fn=preexec)
        stdout, stderr, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        stdout, stderr, code = "", (exc.stderr or b"").decode(errors="replace"), None
    seconds = time.perf_counter() - t0
    if verbose and stderr:
        sys.stderr.write(stderr)
    result = None
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
    if result is None:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        why = f"timed out after {timeout} s" if code is None else f"exit code {code}"
        result = {"lib": lib, "threads": threads, "status": "crashed",
                  "reason": f"worker {why}: {tail}"[:300], "info": {}, "rows": []}
    result["settings"] = settings
    result["seconds"] = round(seconds, 2)
    # other users of the machine show up here (and as cores < threads)
    result["loadavg_1min"] = [load_before, loadavg()]
    return result


def rows_of(result, spec):
    """The worker's rows, or one placeholder row per expected row if it failed."""
    if result["status"] == "ok":
        return result["rows"]
    lib = result["lib"]
    return [{"op": op, "lib": v, "dtype": d, "shape": s, "threads": result["threads"],
             "status": result["status"], "reason": result["reason"]}
            for d in spec["dtypes"] for s in spec["shapes"] for op in spec["ops"]
            for v in _libs.variants(lib, op)]


def loadavg():
    """The 1-minute load average, or None where the OS does not say."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _fmt_load(load):
    return "-" if load is None else f"{load:.2f}"


def machine():
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {"cpu": model, "cpus_available": len(available_cpus()),
            "platform": platform.platform(), "python": platform.python_version(),
            "git_commit": commit,
            "date_utc": datetime.datetime.now(datetime.timezone.utc)
            .strftime("%Y-%m-%d %H:%M:%S")}


def measure_all(args, parser):
    threads, dtypes, shapes, ops, libs, cpus = resolve(args, parser)
    min_time, min_reps, max_time, retries, timeout = MODES["quick" if args.quick
                                                          else "full"]
    if args.min_time is not None:
        min_time = args.min_time
    spec = {"dtypes": dtypes, "shapes": shapes, "ops": ops, "min_time": min_time,
            "min_reps": min_reps, "max_time": max(max_time, min_time),
            "retries": retries,
            "check": False, "seed": args.seed}
    meta = dict(machine(), command=" ".join([os.path.basename(sys.executable)]
                                            + sys.argv),
                mode="quick" if args.quick else "full", threads=threads,
                simd_requested=args.simd,
                timing={"min_time_s": min_time, "min_reps": min_reps,
                        "max_time_s": spec["max_time"], "retries": retries})
    print(f"xentfast benchmark ({meta['mode']}) on {meta['cpu']}, "
          f"{meta['cpus_available']} CPUs; {meta['date_utc']} UTC", flush=True)
    meta["loadavg_1min_at_start"] = load = loadavg()
    if load is not None and load > 0.5:
        print(f"note: 1-minute load average {load:.2f} at the start (recent runs "
              "count too); the 'other' column shows what other processes took "
              "while each row was timed", flush=True)
    # the copy first; then, per thread count, every library
    plan = [("copy", 1, False)] + [(lib, n, not args.no_check and n == threads[0])
                                   for n in threads for lib in libs]
    results, rows = [], []
    for i, (lib, n, check) in enumerate(plan, 1):
        lib_spec = dict(spec, check=check,
                        ops=["copy"] if lib == "copy" else spec["ops"])
        if not any(_libs.variants(lib, op) for op in lib_spec["ops"]):
            continue
        res = run_worker(lib, n, lib_spec, cpus, not args.no_pin, timeout,
                         args.verbose, args.simd)
        status = res["status"] + ("" if res["status"] == "ok" else f": {res['reason']}")
        errors = sum(r["status"] != "ok" for r in res["rows"])
        load = res["loadavg_1min"][0]
        print(f"[{i:2d}/{len(plan)}] {lib:<9} threads={n}  {res['seconds']:6.1f} s  "
              f"load {_fmt_load(load)}  {status}"
              + (f" ({errors} rows failed)" if errors else ""), flush=True)
        results.append({k: v for k, v in res.items() if k != "rows"})
        rows += rows_of(res, lib_spec)
    return {"meta": meta, "workers": results, "rows": rows}


def main(argv=None):
    args, parser = parse_args(argv)
    t0 = time.perf_counter()
    if args.load:
        with open(args.load) as f:
            data = json.load(f)
    else:
        data = measure_all(args, parser)
    _report.derive(data["rows"])
    print(_report.table(data["rows"]))
    print(_report.summary(data["rows"]))
    print("Workers:")
    for w in data["workers"]:
        info = w.get("info", {})
        simd = f"simd={info['simd']}  " if "simd" in info else ""
        print(f"  {w['lib']:<9} threads={w['threads']}  {w['status']:<8} "
              f"version={info.get('version', '-')}  {simd}[{w['settings']}]  "
              f"{info.get('threads', '') or w.get('reason', '')}")
        for dtype, rate in info.get("exp_rate", {}).items():
            print(f"{'':<13}exp throughput {dtype}: {rate / 1e9:.2f} G/s per core")
    if not args.load:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
        print(f"results written to {args.json}")
    if not args.no_plot:
        print(_report.plot(data["rows"], args.plot))
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
