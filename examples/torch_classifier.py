"""
A PyTorch training loop with xentfast.torch
===========================================

A PyTorch training loop with xentfast's loss: the same model, data and seed
trained with ``torch.nn.CrossEntropyLoss`` and with
``xentfast.torch.CrossEntropyLoss``.

The model is a classifier head with many classes on synthetic features (the
last layer of a large classifier: with few features and many classes the
loss is a large share of each step):
``logits = Linear(D, C)(features)``, trained by SGD with momentum on CPU.
Both heads start from the same weights and see the same batches in the same
order (trained in lockstep, so that load from other processes falls on both
alike); their losses agree step by step up to rounding.  The script prints
the largest difference and the time per epoch of each (forward, backward
and optimizer step).

Run:  python examples/torch_classifier.py [--classes 2000] [--epochs 3] [--quick]
"""

import argparse
import time

import torch

import xentfast.torch as xft


def make_data(n, d, c, seed):
    """Features with a linear class structure plus noise, and their labels."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(c, d, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    x = centres[y] + torch.randn(n, d, generator=g)
    return x / d ** 0.5, y


def train_both(loss_fns, x, y, args):
    """Train one fresh head per loss function, in lockstep: the same initial
    weights and batches; each step runs every head once, so machine load
    falls on both alike.  Returns per-head step losses, epoch times and
    training accuracy."""
    heads = {}
    for name in loss_fns:
        torch.manual_seed(args.seed)
        model = torch.nn.Linear(x.shape[1], args.classes)
        heads[name] = (model, torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9))
    losses = {name: [] for name in loss_fns}
    times = {name: [0.0] * args.epochs for name in loss_fns}
    order = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        perm = torch.randperm(len(y), generator=order)
        for i in range(0, len(y), args.batch_size):
            xb, yb = x[perm[i:i + args.batch_size]], y[perm[i:i + args.batch_size]]
            for name, loss_fn in loss_fns.items():
                model, opt = heads[name]
                start = time.perf_counter()
                opt.zero_grad()
                loss = loss_fn(model(xb), yb)
                loss.backward()
                opt.step()
                times[name][epoch] += time.perf_counter() - start
                losses[name].append(loss.item())
    with torch.no_grad():
        accuracy = {name: (model(x).argmax(1) == y).float().mean().item()
                    for name, (model, _) in heads.items()}
    return {name: torch.tensor(v) for name, v in losses.items()}, times, accuracy


def main():
    p = argparse.ArgumentParser(description="A PyTorch training loop with xentfast.torch.")
    p.add_argument("--classes", type=int, default=2000)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--samples", type=int, default=32768)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=2.0)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a small, fast run (the test)")
    args = p.parse_args()
    if args.quick:
        args.classes, args.samples, args.epochs = 1000, 4096, 2
    if args.threads:
        torch.set_num_threads(args.threads)

    x, y = make_data(args.samples, args.features, args.classes, args.seed)
    print(f"{args.samples} samples, {args.features} features, {args.classes} classes, "
          f"batches of {args.batch_size}, {torch.get_num_threads()} threads")
    loss_fns = {
        "torch": torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing),
        "xentfast": xft.CrossEntropyLoss(label_smoothing=args.label_smoothing),
    }
    losses, times, accuracy = train_both(loss_fns, x, y, args)
    for name in loss_fns:
        print(f"{name:9s} final loss {losses[name][-1]:.4f}  train acc {accuracy[name]:.4f}  "
              "epoch times " + " ".join(f"{t:.3f}s" for t in times[name]))
    diff = (losses["torch"] - losses["xentfast"]).abs().max().item()
    print(f"steps {len(losses['torch'])}; max |loss difference| over all steps {diff:.3g}")
    print(f"total: torch {sum(times['torch']):.3f}s, xentfast {sum(times['xentfast']):.3f}s "
          f"({sum(times['torch']) / sum(times['xentfast']):.2f}x)")


if __name__ == "__main__":
    main()
