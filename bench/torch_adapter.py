"""xentfast.torch against torch's own losses, call by call in one process.

``bench/run.py`` times each library in its own process, one after the other;
on a shared machine the load can change between them.  Here the two calls
alternate (torch, adapter, torch, adapter, ...) on the same tensors in one
torch process, so both see the same conditions, and the ratio of their
medians is the number to read.  Each call is what a training step does:
``x.grad = None; loss_fn(x, target).backward()``, float32 by default.

Usage (from the repository root, xentfast installed)::

    python bench/torch_adapter.py --threads 2
    python bench/torch_adapter.py --threads 1 --shapes 32x10,4096x1000 --dtype float64
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import xentfast.torch as xft

PAIRS = {
    "cross_entropy": (F.cross_entropy, xft.cross_entropy),
    "bce_logits": (F.binary_cross_entropy_with_logits, xft.binary_cross_entropy_with_logits),
}


def inputs(op, n, c, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (3 * torch.randn(n, c, generator=g)).to(dtype).requires_grad_()
    if op == "cross_entropy":
        return x, torch.randint(0, c, (n,), generator=g)
    return x, (torch.rand(n, c, generator=g) > 0.5).to(dtype)


def time_pair(fns, x, target, calls):
    """Medians and minima (ms) of alternating fwd+bwd calls of each function."""
    def step(f):
        x.grad = None
        f(x, target).backward()

    for f in fns:   # warm up: allocator, thread pools
        step(f)
        step(f)
    times = [[] for _ in fns]
    for _ in range(calls):
        for k, f in enumerate(fns):
            start = time.perf_counter()
            step(f)
            times[k].append(time.perf_counter() - start)
    return [statistics.median(t) * 1e3 for t in times], [min(t) * 1e3 for t in times]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--shapes", default="32x10,65536x10,16384x100,4096x1000")
    p.add_argument("--ops", default=",".join(PAIRS))
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--elements", type=float, default=1e7,
                   help="calls per shape: this many elements in all (30 to 3000 calls)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    print(f"torch {torch.__version__}, {args.dtype}, torch.set_num_threads({args.threads}); "
          "forward + backward, alternating calls; times in ms")
    print(f"{'op':<14}{'shape':>12}{'torch median':>14}{'xft median':>12}{'ratio':>8}"
          f"{'torch best':>12}{'xft best':>10}{'ratio':>8}")
    for op in args.ops.split(","):
        for shape in args.shapes.split(","):
            n, c = (int(v) for v in shape.split("x"))
            calls = max(30, min(3000, int(args.elements // (n * c))))
            x, target = inputs(op, n, c, dtype)
            (mt, mx), (bt, bx) = time_pair(PAIRS[op], x, target, calls)
            print(f"{op:<14}{shape:>12}{mt:>14.4f}{mx:>12.4f}{mt / mx:>7.2f}x"
                  f"{bt:>12.4f}{bx:>10.4f}{bt / bx:>7.2f}x", flush=True)


if __name__ == "__main__":
    main()
