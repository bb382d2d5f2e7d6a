"""Fused linear + cross-entropy: xentfast against PyTorch, time and memory.

Usage (from the repository root)::

    python bench/linear.py                       # both default shapes, float32
    python bench/linear.py --shapes 2048x512x32000 --repeat 3
    python bench/linear.py --sweep-chunks        # time per chunk size (xentfast)

Every (variant, shape) runs in a fresh process: inputs are built, one tiny
warm-up call loads the libraries, then ONE forward+backward call is measured
for time and for peak RSS above the RSS just before it (Linux's VmHWM, reset
through /proc/self/clear_refs). The gradients a call returns count as its
memory, on every side. With --repeat R the time is the best of R calls (the
memory is still that of the first). See the README's "Fused linear
cross-entropy" section for results.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _timing import machine_busy  # noqa: E402

RESULT_PREFIX = "@@linear-bench@@ "
DEFAULT_SHAPES = "2048x512x32000,4096x1024x128000"
VARIANTS = {
    "xentfast": "xf.linear_cross_entropy(x, W, y, return_grad=True)",
    "xentfast-unfused": "logits = x @ W.T; xf.cross_entropy(logits, y, return_grad=True, "
                        "grad_out=logits); g @ W; g.T @ x",
    "torch": "F.linear_cross_entropy(x, W, y).backward()  (options=None: unchunked)",
    "torch-chunked": "F.linear_cross_entropy(x, W, y, options=LinearCrossEntropyOptions())"
                     ".backward()",
}
DEFAULT_VARIANTS = "xentfast,torch,torch-chunked"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# ------------------------------------------------------------------ worker side

def _rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak():
    """Reset VmHWM to the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _inputs(n, d, v, dtype, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32).astype(dtype)
    W = (rng.standard_normal((v, d), dtype=np.float32) / np.sqrt(d)).astype(dtype)
    y = rng.integers(0, v, size=n)
    return x, W, y


def _call(variant, x, W, y, chunk_size):
    """The forward+backward call of `variant` on NumPy inputs, as a closure
    (inputs converted beforehand), and a function giving its loss."""
    if variant.startswith("xentfast"):
        import numpy as np
        import xentfast as xf
        if variant == "xentfast":
            return lambda: xf.linear_cross_entropy(x, W, y, return_grad=True,
                                                   chunk_size=chunk_size)[0]

        def unfused():
            logits = np.matmul(x, W.T)
            loss, g = xf.cross_entropy(logits, y, return_grad=True, grad_out=logits)
            dx, dW = g @ W, g.T @ x
            return loss
        return unfused
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    options = None
    if variant == "torch-chunked":
        options = torch.nn.LinearCrossEntropyOptions()
    xt = torch.from_numpy(x).requires_grad_()
    Wt = torch.from_numpy(W).requires_grad_()
    yt = torch.from_numpy(y)

    def call():
        xt.grad = Wt.grad = None
        loss = F.linear_cross_entropy(xt, Wt, yt, options=options)
        loss.backward()
        return float(loss)
    return call


def worker(spec):
    import numpy as np
    n, d, v = spec["shape"]
    dtype = np.dtype(spec["dtype"])
    tiny = _call(spec["variant"], *_inputs(8, 16, 64, dtype, 1), None)
    tiny()                                         # load libraries, thread pools
    x, W, y = _inputs(n, d, v, dtype, spec["seed"])
    call = _call(spec["variant"], x, W, y, spec.get("chunk_size"))
    rss0 = _rss_kib("VmRSS")
    _reset_peak()
    busy0, cpu0, t0 = machine_busy(), time.process_time(), time.perf_counter()
    loss = call()
    seconds = time.perf_counter() - t0
    busy1, cpu = machine_busy(), time.process_time() - cpu0
    peak = _rss_kib("VmHWM")
    times = [seconds]
    for _ in range(spec["repeat"] - 1):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    # cores kept busy by other processes during the measured call
    others = None if busy0 is None else max(0.0, (busy1 - busy0 - cpu) / seconds)
    return {"loss": float(loss), "seconds": min(times), "first_seconds": seconds,
            "extra_mb": (peak - rss0) * 1024 / 1e6, "cpu_seconds": cpu, "cores_used": cpu / seconds,
            "other_cores": others}


# ------------------------------------------------------------------ parent side

def run_one(spec, threads, timeout):
    env = dict(os.environ, **{var: str(threads) for var in THREAD_VARS})
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                          env=env, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
    return {"error": f"exit code {proc.returncode}: {tail}"[:300]}


def parse_shapes(text):
    shapes = []
    for s in text.split(","):
        n, d, v = (int(a) for a in s.lower().split("x"))
        shapes.append((n, d, v))
    return shapes


def table(rows):
    lines = ["| N x D x V | library | time (s) | GFLOP/s | CPU s | peak extra MB "
             "| vs xentfast (time, memory) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['shape']} | {r['variant']} | error: {r['error']} | | | | |")
            continue
        base = next((b for b in rows if b["shape"] == r["shape"]
                     and b["variant"] == "xentfast" and "error" not in b), None)
        ratio = "" if base is None or r is base else (
            f"{r['seconds'] / base['seconds']:.2f}x, {r['extra_mb'] / base['extra_mb']:.2f}x")
        lines.append(f"| {r['shape']} | {r['variant']} | {r['seconds']:.2f} | "
                     f"{r['gflops']:.0f} | {r['cpu_seconds']:.2f} | {r['extra_mb']:.0f} | {ratio} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default=DEFAULT_SHAPES, help="NxDxV,... (default %(default)s)")
    p.add_argument("--variants", default=DEFAULT_VARIANTS,
                   help=f"subset of {','.join(VARIANTS)} (default %(default)s)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--repeat", type=int, default=1, help="calls timed per process (best kept)")
    p.add_argument("--chunk-size", type=int, help="xentfast's chunk_size (default: its own)")
    p.add_argument("--sweep-chunks", metavar="ROWS,...", nargs="?", const="16,32,64,128,256,512,1024",
                   help="time xentfast at each chunk size instead of comparing libraries")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--json", help="also write the rows here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(RESULT_PREFIX + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    jobs = []
    for n, d, v in parse_shapes(args.shapes):
        if args.sweep_chunks:
            jobs += [("xentfast", (n, d, v), int(c)) for c in args.sweep_chunks.split(",")]
        else:
            jobs += [(name, (n, d, v), args.chunk_size) for name in args.variants.split(",")]
    rows = []
    for variant, shape, chunk in jobs:
        spec = {"variant": variant, "shape": shape, "dtype": args.dtype, "seed": args.seed,
                "repeat": args.repeat, "chunk_size": chunk}
        r = run_one(spec, args.threads, args.timeout)
        n, d, v = shape
        r.update(variant=variant if chunk is None else f"{variant}[chunk_size={chunk}]",
                 shape="x".join(map(str, shape)), threads=args.threads)
        if "error" not in r:
            r["gflops"] = 6.0 * n * d * v / r["seconds"] / 1e9   # three GEMMs
        rows.append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
    print(f"{args.dtype}, {args.threads} threads, forward+backward, "
          f"best of {args.repeat} call(s) per fresh process\n")
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
