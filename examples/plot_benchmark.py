"""
Benchmark plot from a saved run
===============================

``bench/run.py`` times xentfast against NumPy, PyTorch, JAX, scikit-learn
and SciPy, each library in its own process, and saves every number in a
JSON file. ``--load`` re-prints the tables and redraws the plot of a saved
file without timing anything; this example does that for a run committed to
the repository, ``bench/saved/quick-2026-12-06.json``.

That run is a ``--quick`` run (float32, three shapes) made on a shared
2-core virtual machine while other jobs were running: its ``!`` marks and
hollow markers flag rows that other processes disturbed, and its ratios are
much noisier than those of the quiet run on the :doc:`../performance` page.
It is here to show what the tool produces, not as the reference numbers.
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt

try:
    ROOT = Path(__file__).resolve().parent.parent
except NameError:                      # run by sphinx-gallery from examples/
    ROOT = Path.cwd().parent
SAVED = ROOT / "bench" / "saved" / "quick-2026-12-06.json"

with tempfile.TemporaryDirectory() as tmp:
    png = Path(tmp) / "plot.png"
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--load", str(SAVED),
                          "--plot", str(png)], capture_output=True, text=True, check=True)
    image = matplotlib.image.imread(png)

# The full output has one table per (op, shape, threads); print the summary
# that follows them: xentfast's time over a copy's, and its speed-up over
# each peer, per shape.
summary = re.search(r"^\w+ float\d+ threads=\d+$", out.stdout, re.M)
print(out.stdout[summary.start():])

# %%
# The plot: the speed-up of xentfast over each peer (peer median time /
# xentfast median time) against the number of classes; solid lines one
# thread, dashed two.

fig, ax = plt.subplots(figsize=(10, 10 * image.shape[0] / image.shape[1]))
ax.imshow(image)
ax.set_axis_off()
fig.tight_layout()
