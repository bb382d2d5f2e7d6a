"""xf.cross_entropy (4096, 1000) float32, loss + grad, 2 threads: median ms.

mode: none | torch-first | torch-after | torch-ran (torch first, and a torch
op runs between xentfast calls, as in a training loop)."""
import sys, time
import numpy as np
mode = sys.argv[1]
if mode in ("torch-first", "torch-ran"):
    import torch
import xentfast as xf
if mode == "torch-after":
    import torch
if mode != "none":
    torch.set_num_threads(2)
xf.set_num_threads(2)
rng = np.random.default_rng(0)
x = rng.standard_normal((4096, 1000), dtype=np.float32)
y = rng.integers(0, 1000, 4096)
g = np.empty_like(x)
if mode == "torch-ran":
    a = torch.randn(512, 512)
def call():
    xf.cross_entropy(x, y, return_grad=True, grad_out=g)
for _ in range(10):
    call()
ts = []
for _ in range(60):
    if mode == "torch-ran":
        a @ a            # torch's OpenMP/MKL threads run just before
    t0 = time.perf_counter(); call(); ts.append(time.perf_counter() - t0)
print(mode, f"{1e3 * np.median(ts):.3f}", f"{1e3 * min(ts):.3f}")
