"""Does a call in a forked child hang after torch / xentfast ran?

argv: order (torch-first | xf-first | torch-only), parent (torch | both: which
ran a 2-thread op before the fork), child (dl-xf: DataLoader fork workers call
xf | fork-xf / fork-torch: os.fork, the child calls xf / a torch op)
"""
import importlib, os, sys
order, parent, child = sys.argv[1:]
mods = {"torch-first": ["torch", "xentfast"], "xf-first": ["xentfast", "torch"],
        "torch-only": ["torch"]}[order]
for m in mods:
    importlib.import_module(m)
import numpy as np
import torch
torch.set_num_threads(2)
rng = np.random.default_rng(0)
x = rng.standard_normal((2000, 300))
y = rng.integers(0, 300, 2000)
a, t = torch.from_numpy(x), torch.from_numpy(y)
torch.nn.functional.cross_entropy(a, t).item()        # torch's team exists
if parent == "both":
    import xentfast as xf
    xf.set_num_threads(2)
    xf.cross_entropy(x, y)

def xf_loss(i=0):
    import xentfast as xf
    return float(xf.cross_entropy(x, np.roll(y, i)))

class Losses(torch.utils.data.Dataset):
    def __len__(self):
        return 4
    def __getitem__(self, i):
        return xf_loss(i)

if child == "dl-xf":
    dl = torch.utils.data.DataLoader(Losses(), batch_size=None, num_workers=2,
                                     multiprocessing_context="fork")
    assert len(list(dl)) == 4
else:
    pid = os.fork()
    if pid == 0:
        if child == "fork-xf":
            xf_loss()
        else:
            torch.nn.functional.cross_entropy(a, t).item()
        os._exit(0)
    os.waitpid(pid, 0)
print("ok")
