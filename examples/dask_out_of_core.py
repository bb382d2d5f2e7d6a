"""
Out of core with xentfast.dask
==============================

Out of core with xentfast.dask: data several times a worker's memory.

1. Writes logits (N x C float32, with labels) to a zarr store on disk,
   starts a dask.distributed LocalCluster whose workers may each hold at most
   a quarter of that, computes the mean cross-entropy and its gradient with
   xentfast.dask (the gradient streamed back to disk, never gathered).
2. Writes a feature matrix of the same size with labels, and fits
   xentfast.sklearn.CrossEntropyClassifier on it (each L-BFGS evaluation is
   one pass over the data on disk).

It prints the time of each step, each worker's peak memory (the workers'
own peak resident set size, read on the workers) and what the cluster
spilled, and checks the results against xentfast in memory on a subsample.
Run::

    python examples/dask_out_of_core.py               # 2.6 GB per dataset
    python examples/dask_out_of_core.py --quick       # a smoke test (seconds)

Options: --rows N --classes C --features D --workers W --memory-limit BYTES
--dir PATH (default: a temporary directory, removed afterwards).
"""
import argparse
import resource
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import zarr
from distributed import Client, LocalCluster

import xentfast as xf
import xentfast.dask as xfd
from xentfast.sklearn import CrossEntropyClassifier


def parse_args():
    p = argparse.ArgumentParser(
        description="Out of core with xentfast.dask: data several times a worker's memory.")
    p.add_argument("--rows", type=int, default=640_000, help="rows of logits")
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--features", type=int, default=64,
                   help="features of the estimator's data (its rows: the same bytes as the logits)")
    p.add_argument("--estimator-classes", type=int, default=5)
    p.add_argument("--chunk-rows", type=int, default=16384)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--memory-limit", type=int, default=None,
                   help="bytes per worker (default: a quarter of a dataset)")
    p.add_argument("--max-iter", type=int, default=15, help="L-BFGS iterations of the big fit")
    p.add_argument("--check-rows", type=int, default=100_000,
                   help="rows of the subsample compared with xentfast in memory")
    p.add_argument("--dir", default=None)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    args = p.parse_args()
    if args.quick:
        args.rows, args.classes, args.features, args.chunk_rows = 20_000, 100, 16, 2000
        args.max_iter, args.check_rows = 5, 10_000
    return args


def gb(n):
    return f"{n / 1e9:.2f} GB"


def peak_rss():
    """This process's peak resident set size in bytes (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def spilled(dask_worker):
    """Bytes this worker moved to disk so far."""
    total = getattr(dask_worker.data, "spilled_total", None)
    return 0 if total is None else total.disk


def fresh(client, args):
    """New worker processes, so that their peak memory is this step's
    (skipped by --quick, to save time)."""
    if not args.quick:
        client.restart()


def report_workers(client, limit):
    peaks = client.run(peak_rss)
    spills = client.run(spilled)
    for address in sorted(peaks):
        print(f"  worker {address}: peak memory {gb(peaks[address])} "
              f"(limit {gb(limit)}), spilled {gb(spills[address])}")


def write_logits(path, args):
    """Random logits and labels, generated block by block on the cluster."""
    rs = da.random.default_rng(0)
    shape, chunks = (args.rows, args.classes), (args.chunk_rows, args.classes)
    logits = (rs.standard_normal(shape, chunks=chunks, dtype=np.float32) * 3).astype(np.float32)
    labels = rs.integers(0, args.classes, args.rows, chunks=args.chunk_rows)
    da.to_zarr(logits, str(path / "logits.zarr"), compressors=None)
    da.to_zarr(labels, str(path / "labels.zarr"), compressors=None)


def write_features(path, args):
    """Features and labels of a noisy linear model, block by block."""
    rs = da.random.default_rng(1)
    n = args.rows * args.classes // args.features     # the logits' size in bytes
    k, d = args.estimator_classes, args.features
    X = rs.standard_normal((n, d), chunks=(args.chunk_rows * 4, d), dtype=np.float32)
    W = np.random.default_rng(2).standard_normal((k, d)).astype(np.float32) / np.sqrt(d) * 3
    noisy = X @ W.T + rs.gumbel(size=(n, k), chunks=(args.chunk_rows * 4, k)).astype(np.float32)
    da.to_zarr(X, str(path / "X.zarr"), compressors=None)
    da.to_zarr(noisy.argmax(axis=1), str(path / "y.zarr"), compressors=None)
    return n


def on_disk(path, data, labels, what, limit):
    """The two stored arrays, lazily, after a line about the first."""
    x, y = (da.from_zarr(str(path / name)) for name in (data, labels))
    print(f"{what} {x.shape[0]:,} x {x.shape[1]:,} float32 on disk: {gb(x.nbytes)} "
          f"({x.nbytes / limit:.1f}x a worker's memory limit), {x.npartitions} chunks")
    return x, y


def cross_entropy_on_disk(client, path, args, limit):
    logits, labels = on_disk(path, "logits.zarr", "labels.zarr", "logits", limit)
    fresh(client, args)
    t = time.perf_counter()
    loss, grad = xfd.cross_entropy(logits, labels, return_grad=True)
    store = da.to_zarr(grad, str(path / "grad.zarr"), compressors=None, compute=False)
    loss, _ = dask.compute(loss, store)
    print(f"cross_entropy loss + gradient (gradient written to disk): "
          f"{time.perf_counter() - t:.1f} s, mean loss {loss:.6f}")
    report_workers(client, limit)

    # the first rows, read here straight from disk (not through a worker),
    # in memory with the whole array's 'mean' denominator
    m = min(args.check_rows // 5, logits.shape[0])
    x, y = (zarr.open_array(str(path / name), mode="r")[:m]
            for name in ("logits.zarr", "labels.zarr"))
    _, g = xf.cross_entropy(x, y, reduction="sum", return_grad=True)
    g /= np.float32(logits.shape[0])
    g_disk = zarr.open_array(str(path / "grad.zarr"), mode="r")[:m]
    rel = np.abs(g_disk - g).max() / np.abs(g).max()
    sub = xfd.cross_entropy(logits[:m], labels[:m]).compute()
    print(f"agreement on the first {m:,} rows: gradient max rel. difference {rel:.1e}; "
          f"their mean loss {sub:.6f} (dask) vs {xf.cross_entropy(x, y):.6f} (in memory)")


def fit_on_disk(client, path, args, limit):
    X, y = on_disk(path, "X.zarr", "y.zarr", f"features ({args.estimator_classes} classes)",
                   limit)
    fresh(client, args)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # max_iter is kept small on purpose
        clf = CrossEntropyClassifier(max_iter=args.max_iter).fit(X, y)
    seconds = time.perf_counter() - t
    accuracy = (clf.predict(X) == y).mean().compute()
    print(f"fit: {clf.n_iter_} L-BFGS iterations in {seconds:.1f} s "
          f"({seconds / max(clf.n_iter_, 1):.2f} s per iteration); "
          f"training accuracy {accuracy:.4f}")
    report_workers(client, limit)

    # the same fit on a subsample, from disk with dask and in memory
    m = min(args.check_rows, X.shape[0])
    kw = dict(tol=1e-8, max_iter=500)
    lazy = CrossEntropyClassifier(**kw).fit(X[:m], y[:m])
    eager = CrossEntropyClassifier(**kw).fit(
        *(zarr.open_array(str(path / name), mode="r")[:m] for name in ("X.zarr", "y.zarr")))
    scale = max(np.abs(eager.coef_).max(), np.abs(eager.intercept_).max())
    diff = max(np.abs(lazy.coef_ - eager.coef_).max(),
               np.abs(lazy.intercept_ - eager.intercept_).max()) / scale
    print(f"agreement on the first {m:,} rows: dask fit vs in-memory fit, "
          f"max coefficient difference {diff:.1e} of the largest")


def main():
    args = parse_args()
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="xentfast-ooc-"))
    data_bytes = args.rows * args.classes * 4
    limit = args.memory_limit or max(data_bytes // 4, 256 * 2**20 if args.quick else 0)
    print(f"{args.workers} workers x 1 thread, memory limit {gb(limit)} each; data in {root}")
    try:
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          memory_limit=limit, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            t = time.perf_counter()
            write_logits(root, args)
            print(f"wrote logits and labels: {time.perf_counter() - t:.1f} s")
            cross_entropy_on_disk(client, root, args, limit)
            t = time.perf_counter()
            write_features(root, args)
            print(f"wrote features and labels: {time.perf_counter() - t:.1f} s")
            fit_on_disk(client, root, args, limit)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
