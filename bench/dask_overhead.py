"""xentfast.dask against xentfast in memory, on one machine.

Three tables (Markdown), for bench/README.md's "Dask" section:

1. overhead: cross_entropy loss + gradient of N x C float32 logits in 8 row
   chunks, ``dask.compute(loss, grad)`` on the threaded scheduler (graph
   construction and the final join of the gradient blocks included), against
   ``xf.cross_entropy(x, y, return_grad=True)``; also with the class axis split
   (vocabulary-parallel) and with the kernels left at every core in each task
   (oversubscribed: Dask's threads times OpenMP's);
2. past memory: logits on disk (zarr) from 1/4 to several times a worker's
   memory limit, on a LocalCluster of process workers, gradient written back
   to disk: time and throughput per size;
3. the estimator: CrossEntropyClassifier's time per L-BFGS iteration in
   memory, on a dask array with the threaded scheduler, and on the cluster
   (X persisted on the workers).

Variants are timed in interleaved rounds (each round runs every variant
once) and compared by their best and median times, so a load change on a
shared machine hits all of them alike.  Run:
    python bench/dask_overhead.py [--quick] [--rounds 15] [--sizes 0.125,0.25,0.5,1,2]
"""
import argparse
import contextlib
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np

import xentfast as xf
import xentfast.dask as xfd


def interleaved(variants, rounds):
    """{name: [seconds per round]} of zero-argument calls, one of each per round."""
    for f in variants.values():   # warm up
        f()
    times = {name: [] for name in variants}
    for _ in range(rounds):
        for name, f in variants.items():
            t = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t)
    return times


def table(times, base):
    print("| variant | best ms | median ms | best / in-memory best | median / in-memory median |")
    print("|---|---:|---:|---:|---:|")
    b, m = min(times[base]), np.median(times[base])
    for name, ts in times.items():
        print(f"| {name} | {min(ts) * 1e3:.1f} | {np.median(ts) * 1e3:.1f} | "
              f"{min(ts) / b:.2f} | {np.median(ts) / m:.2f} |")


def overhead(args):
    n, c = args.rows, args.classes
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((n, c)) * 3).astype(np.float32)
    y = rng.integers(0, c, n)
    rows = n // 8
    X, Y = da.from_array(x, chunks=(rows, c)), da.from_array(y, chunks=rows)
    Xs = da.from_array(x, chunks=(rows, c // 4))

    def on_dask(X, reduction="mean"):
        return lambda: dask.compute(*xfd.cross_entropy(X, Y, reduction=reduction,
                                                       return_grad=True), scheduler="threads")

    def oversubscribed():
        saved = xfd._task_threads
        xfd._task_threads = contextlib.nullcontext   # every task runs all cores
        try:
            on_dask(X)()
        finally:
            xfd._task_threads = saved

    times = interleaved({
        "in memory": lambda: xf.cross_entropy(x, y, return_grad=True),
        "dask, 8 row chunks": on_dask(X),
        "dask, 8 row chunks, 'sum'": on_dask(X, "sum"),
        "dask, 8 row chunks, kernels on all cores in every task": oversubscribed,
        "dask, 8 x 4 chunks (class axis split)": on_dask(Xs),
    }, args.rounds)
    print(f"\n### Overhead: cross_entropy + gradient, {n} x {c} float32, "
          f"threaded scheduler ({dask.system.CPU_COUNT} threads), {args.rounds} rounds\n")
    table(times, "in memory")


def past_memory(args):
    from distributed import Client, LocalCluster
    root = Path(tempfile.mkdtemp(prefix="xentfast-bench-"))
    c, limit = args.classes, args.memory_limit
    print(f"\n### Past memory: logits N x {c} float32 on disk (zarr, uncompressed), "
          f"{args.workers} workers x 1 thread, memory limit {limit / 2**30:.2f} GiB each, "
          "loss + gradient written to disk\n")
    print("| logits | x memory limit | time s | GB/s (read + write) | s per GB |")
    print("|---:|---:|---:|---:|---:|")
    try:
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          memory_limit=limit, dashboard_address=":0") as cluster, \
                Client(cluster):
            for size in args.sizes:
                n = int(size * 2**30 / (4 * c))
                chunk = max(1, 2**24 // (4 * c))
                path = root / f"{size}"
                rs = da.random.default_rng(0)
                logits = rs.standard_normal((n, c), chunks=(chunk, c), dtype=np.float32)
                da.to_zarr(logits, str(path / "x.zarr"), compressors=None)
                da.to_zarr(rs.integers(0, c, n, chunks=chunk), str(path / "y.zarr"),
                           compressors=None)
                x, y = da.from_zarr(str(path / "x.zarr")), da.from_zarr(str(path / "y.zarr"))
                t = time.perf_counter()
                loss, grad = xfd.cross_entropy(x, y, return_grad=True)
                dask.compute(loss, da.to_zarr(grad, str(path / "g.zarr"), compressors=None,
                                              compute=False))
                s = time.perf_counter() - t
                gbytes = x.nbytes / 1e9
                print(f"| {x.nbytes / 2**30:.3g} GiB | {x.nbytes / limit:.2g} | {s:.1f} | "
                      f"{2 * gbytes / s:.2f} | {s / gbytes:.1f} |")
                shutil.rmtree(path, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def estimator(args):
    from distributed import Client, LocalCluster
    from xentfast.sklearn import CrossEntropyClassifier
    n, d, k = args.fit_rows, 32, 10
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    y = np.argmax(X @ rng.standard_normal((k, d)).T + rng.gumbel(size=(n, k)), axis=1)
    Xd, yd = da.from_array(X, chunks=(n // 8, d)), da.from_array(y, chunks=n // 8)

    def per_iteration(X, y):
        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                clf = CrossEntropyClassifier(tol=1e-12, max_iter=args.fit_iter).fit(X, y)
                return (time.perf_counter() - t) / clf.n_iter_
        return run

    def fits(variants):
        per = {name: [] for name in variants}
        for _ in range(args.fit_rounds):
            for name, f in variants.items():
                per[name].append(f())
        return per

    def threaded():
        with dask.config.set(scheduler="threads"):
            return per_iteration(Xd, yd)()

    per = fits({"in memory": per_iteration(X, y), "dask, threaded scheduler": threaded})
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        Xp, yp = client.persist(Xd), client.persist(yd)
        more = fits({"in memory (beside the cluster)": per_iteration(X, y),
                     "dask, LocalCluster (X persisted)": per_iteration(Xp, yp)})
    print(f"\n### The estimator: {n} x {d} float64, {k} classes, 8 row chunks, "
          f"{args.fit_iter} L-BFGS iterations, {args.fit_rounds} rounds\n")
    print("| fit | best ms / iteration | median ms / iteration | ratio to in memory (median) |")
    print("|---|---:|---:|---:|")
    for group in (per, more):
        base = np.median(next(iter(group.values())))
        for name, ts in group.items():
            print(f"| {name} | {min(ts) * 1e3:.1f} | {np.median(ts) * 1e3:.1f} | "
                  f"{np.median(ts) / base:.2f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=32768)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--sizes", default="0.125,0.25,0.5,1,2", help="GiB of logits on disk")
    p.add_argument("--memory-limit", type=int, default=512 * 2**20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--fit-rows", type=int, default=400_000)
    p.add_argument("--fit-iter", type=int, default=20)
    p.add_argument("--fit-rounds", type=int, default=3)
    p.add_argument("--only", default="overhead,memory,estimator")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    args.sizes = [float(s) for s in args.sizes.split(",")]
    if args.quick:
        args.rows, args.rounds, args.sizes = 8192, 3, [0.125]
        args.fit_rows, args.fit_rounds = 40_000, 1
    only = args.only.split(",")
    if "overhead" in only:
        overhead(args)
    if "memory" in only:
        past_memory(args)
    if "estimator" in only:
        estimator(args)


if __name__ == "__main__":
    main()
