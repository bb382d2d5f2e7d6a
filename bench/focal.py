"""The binary and focal losses against PyTorch, forward + backward, float32,
at 4096 x 1000, all in one process (medians of 60 calls, two rounds):
softmax focal loss (torch: log_softmax, gather, (1 - p)^gamma), sigmoid focal
loss (torchvision's formula), BCE with logits (F.binary_cross_entropy_with_logits).

    python bench/focal.py [--threads 2]
"""
import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

import xentfast as xf

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--threads", type=int, default=2)
args = parser.parse_args()
torch.set_num_threads(args.threads)
xf.set_num_threads(args.threads)
rng = np.random.default_rng(0)
N, C = 4096, 1000
x = rng.standard_normal((N, C), dtype=np.float32)
y = rng.integers(0, C, N)
t = (rng.random((N, C)) < 0.01).astype(np.float32)
tx = torch.from_numpy(x.copy()).requires_grad_()
ty, tt = torch.from_numpy(y), torch.from_numpy(t)


def torch_softmax_focal():
    tx.grad = None
    lp = F.log_softmax(tx, -1).gather(1, ty[:, None])[:, 0]
    (-(1 - lp.exp()) ** 2 * lp).mean().backward()


def torch_sigmoid_focal():   # torchvision.ops.sigmoid_focal_loss, alpha 0.25, gamma 2
    tx.grad = None
    p = torch.sigmoid(tx)
    ce = F.binary_cross_entropy_with_logits(tx, tt, reduction="none")
    p_t = p * tt + (1 - p) * (1 - tt)
    alpha_t = 0.25 * tt + 0.75 * (1 - tt)
    (alpha_t * ce * (1 - p_t) ** 2).mean().backward()


def torch_bce():
    tx.grad = None
    F.binary_cross_entropy_with_logits(tx, tt).backward()


def median_ms(f, reps=60):
    for _ in range(5):
        f()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return np.median(times) * 1e3


cases = {
    "softmax focal": (torch_softmax_focal,
                      lambda: xf.softmax_focal_loss(x, y, return_grad=True)),
    "sigmoid focal": (torch_sigmoid_focal,
                      lambda: xf.sigmoid_focal_loss(x, t, return_grad=True)),
    "BCE with logits": (torch_bce,
                        lambda: xf.binary_cross_entropy_with_logits(x, t, return_grad=True)),
}
print(f"float32 {N} x {C}, {args.threads} threads, forward + backward, median ms\n")
print("| loss | round | torch | xentfast | speed-up |\n|---|---|---|---|---|")
for round_ in (1, 2):
    for name, (peer, ours) in cases.items():
        a, b = median_ms(peer), median_ms(ours)
        print(f"| {name} | {round_} | {a:.2f} | {b:.2f} | {a / b:.2f}x |")
