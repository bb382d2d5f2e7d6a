"""Time one library in this process: ``python bench/_worker.py '<json spec>'``.

The parent (``run.py``) starts one worker per library and thread count, with
the thread environment variables (and CPU affinity) already set, so that no
two OpenMP runtimes share a process. The spec holds ``lib``, ``threads``,
``dtypes``, ``shapes``, ``ops``, ``min_time``, ``min_reps``, ``max_time``,
``retries``, ``check`` and ``seed``. The worker prints progress on stderr
and, last, one line ``RESULT_PREFIX + json`` on stdout:
``{"lib", "threads", "status", "reason", "info", "rows"}``.
A library that fails to import gives ``status="missing"``; an op that raises
gives a row with ``status="error"``; neither stops the worker.
"""

import json
import os
import sys
import time
import traceback

RESULT_PREFIX = "@@xentfast-bench@@ "
# A row is "disturbed" when other processes kept busy more than DISTURBED
# cores beyond those this run leaves free (CPUs minus threads). It is timed
# again (up to spec["retries"] more times) if that is cheap (the attempt took
# under RETRY_SECONDS); the least disturbed attempt is kept.
DISTURBED = 0.3
RETRY_SECONDS = 1.5


def is_disturbed(others, threads):
    """Did other processes take cores this run needed? (``others`` in cores)"""
    spare = max(0, (os.cpu_count() or 1) - threads)  # /proc/stat counts every CPU
    return others is not None and others > spare + DISTURBED


def _error_text(exc):
    return f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]


def _least_disturbed(call, spec):
    """``measure`` the call, again if other processes took cores meanwhile."""
    from _timing import measure

    best = None
    for attempt in range(1, 2 + spec["retries"]):
        stats, last = measure(call, spec["min_time"], spec["min_reps"],
                              spec["max_time"])
        stats["disturbed"] = is_disturbed(stats["others"], spec["threads"])
        if best is None or (stats["others"] or 0) < (best[0]["others"] or 0):
            best = stats, last
        if not stats["disturbed"] or stats["seconds"] > RETRY_SECONDS:
            break
        time.sleep(0.5)  # let the other process's burst pass
    best[0]["attempts"] = attempt
    return best


def run(spec):
    """Run every (dtype, shape, op, variant) of ``spec``; return the result dict."""
    import _libs
    from _inputs import Inputs, check

    lib = spec["lib"]
    out = {"lib": lib, "threads": spec["threads"], "status": "ok",
           "reason": "", "info": {}, "rows": []}
    adapter = _libs.LIBS[lib]()
    try:
        out["info"] = adapter.setup(spec["threads"])
    except Exception as exc:  # ImportError, or a broken install
        out["status"], out["reason"] = "missing", _error_text(exc)
        return out
    todo = [(op, v) for op in spec["ops"] for v in _libs.variants(lib, op)]
    for dtype in spec["dtypes"]:
        for n, c in spec["shapes"]:
            inp = Inputs(dtype, n, c, seed=spec["seed"])
            for op, variant in todo:
                row = {"op": op, "lib": variant, "dtype": dtype, "shape": [n, c],
                       "threads": spec["threads"], "status": "ok"}
                if "exp_rate" in out["info"]:
                    row["exp_rate"] = out["info"]["exp_rate"][dtype]
                print(f"  {variant} {op} {dtype} {n}x{c}", file=sys.stderr, flush=True)
                try:
                    call, normalise = adapter.prepare(op, variant, inp)
                    stats, last = _least_disturbed(call, spec)
                    row.update(stats)
                    if spec["check"] and normalise is not None:
                        row["check"], row["check_err"] = check(op, normalise(last), inp)
                    del last
                except Exception as exc:
                    row["status"], row["error"] = "error", _error_text(exc)
                    traceback.print_exc(file=sys.stderr)
                out["rows"].append(row)
            del inp
    return out


def main():
    spec = json.loads(sys.argv[1])
    result = run(spec)
    sys.stdout.write("\n" + RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
