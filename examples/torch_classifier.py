"""A PyTorch training loop with xentfast's loss: the same model, data and seed
trained with ``torch.nn.CrossEntropyLoss`` and with
``xentfast.torch.CrossEntropyLoss``.

The model is a classifier head with many classes on synthetic features (the
last layer of a large classifier, where the loss is a real share of a step):
``logits = Linear(D, C)(features)``, trained by SGD with momentum on CPU.
Both runs start from the same weights and see the same batches in the same
order, so their losses agree step by step up to rounding; the script prints
the largest difference and the time per epoch of each.

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


def train(loss_fn, x, y, args):
    """Train a fresh head with `loss_fn`; return per-step losses and epoch times."""
    torch.manual_seed(args.seed)
    model = torch.nn.Linear(x.shape[1], args.classes)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    order = torch.Generator().manual_seed(args.seed)
    losses, epoch_times = [], []
    for _ in range(args.epochs):
        perm = torch.randperm(len(y), generator=order)
        start = time.perf_counter()
        for i in range(0, len(y), args.batch_size):
            idx = perm[i:i + args.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            losses.append(loss.item())
        epoch_times.append(time.perf_counter() - start)
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    return torch.tensor(losses), epoch_times, accuracy


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--classes", type=int, default=2000)
    p.add_argument("--features", type=int, default=128)
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
    runs = {}
    for name, loss_fn in [
        ("torch", torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)),
        ("xentfast", xft.CrossEntropyLoss(label_smoothing=args.label_smoothing)),
    ]:
        runs[name] = train(loss_fn, x, y, args)
        losses, times, acc = runs[name]
        print(f"{name:9s} final loss {losses[-1]:.4f}  train acc {acc:.4f}  "
              "epoch times " + " ".join(f"{t:.3f}s" for t in times))
    (lt, tt, _), (lx, tx, _) = runs["torch"], runs["xentfast"]
    print(f"steps {len(lt)}; max |loss difference| over all steps {(lt - lx).abs().max():.3g}")
    print(f"median epoch: torch {sorted(tt)[len(tt) // 2]:.3f}s, "
          f"xentfast {sorted(tx)[len(tx) // 2]:.3f}s")


if __name__ == "__main__":
    main()
