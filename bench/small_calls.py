"""Small-call timing (issue 11 item 3): (32, 10) float32 cross_entropy and
log_softmax, fast path vs the general path (forced by axis=np.intp(-1)) vs
torch forward-only, all in one process; minima over repeats, in µs.

    python bench/small_calls.py
"""
import timeit, numpy as np, torch, torch.nn.functional as F
import xentfast as xf
torch.set_num_threads(2)
rng = np.random.default_rng(0)
x = rng.standard_normal((32, 10)).astype(np.float32); y = rng.integers(0, 10, 32)
g = np.empty_like(x); o = np.empty_like(x); A = np.intp(-1)
tx, ty = torch.from_numpy(x), torch.from_numpy(y)
cases = {
 "torch F.cross_entropy": lambda: F.cross_entropy(tx, ty),
 "xf ce grad_out (general)": lambda: xf.cross_entropy(x, y, return_grad=True, grad_out=g, axis=A),
 "xf ce grad_out (fast)": lambda: xf.cross_entropy(x, y, return_grad=True, grad_out=g),
 "xf ce return_grad (general)": lambda: xf.cross_entropy(x, y, return_grad=True, axis=A),
 "xf ce return_grad (fast)": lambda: xf.cross_entropy(x, y, return_grad=True),
 "xf ce loss only (general)": lambda: xf.cross_entropy(x, y, axis=A),
 "xf ce loss only (fast)": lambda: xf.cross_entropy(x, y),
 "torch F.log_softmax": lambda: F.log_softmax(tx, -1),
 "xf log_softmax (general)": lambda: xf.log_softmax(x, axis=A),
 "xf log_softmax (fast)": lambda: xf.log_softmax(x),
 "xf log_softmax out (general)": lambda: xf.log_softmax(x, out=o, axis=A),
 "xf log_softmax out (fast)": lambda: xf.log_softmax(x, out=o),
}
best = {k: 1e9 for k in cases}
for rep in range(15):
    for k, f in cases.items():
        n = 2000
        best[k] = min(best[k], min(timeit.repeat(f, number=n, repeat=3)) / n * 1e6)
tce, tls = best["torch F.cross_entropy"], best["torch F.log_softmax"]
print("| call | µs (min) | × torch fwd |\n|---|---|---|")
for k, v in best.items():
    ref = tls if "softmax" in k else tce
    print(f"| {k} | {v:.2f} | {v/ref:.2f} |")
