"""The public API's type annotations, as a user's type checker sees them:
mypy --strict accepts typical user code and rejects typical mistakes."""

import re
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("mypy")

GOOD = """
import numpy as np
import numpy.typing as npt

import xentfast as xf
from xentfast import info

logits: npt.NDArray[np.float32] = np.zeros((8, 5), np.float32)
labels = np.arange(8) % 5
weight = np.ones(5)

loss = xf.cross_entropy(logits, labels, weight=weight, label_smoothing=0.1,
                        reduction="mean", z_loss=1e-4, softcap=30.0)
loss, grad = xf.cross_entropy(logits, labels, return_grad=True, grad_out=logits)
print(float(loss), grad.shape)
rows = xf.cross_entropy(logits, [0, 1, 2, 3, 4, 0, 1, 2], reduction="none",
                        sample_weight=np.ones(8), ignore_index=-1, axis=-1)
probs = xf.softmax(logits)
log_probs = xf.log_softmax(logits, axis=1, out=np.empty_like(logits))
lse = xf.logsumexp(logits)
nll = xf.nll_loss(log_probs, labels, weight=weight)
focal = xf.softmax_focal_loss(logits, labels, gamma=2.0, alpha=weight)

targets = np.zeros_like(logits)
bce = xf.binary_cross_entropy(probs, targets, reduction="sum")
bce_logits, g = xf.binary_cross_entropy_with_logits(logits, targets, pos_weight=weight,
                                                    return_grad=True)
sigmoid_focal = xf.sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0)

h = info.entropy(probs, base=2)
kl = info.kl_divergence(probs, probs) + info.cross_entropy(probs, probs, axis=-1)

h_hidden = np.zeros((8, 16), np.float32)
W_out = np.zeros((5, 16), np.float32)
head_loss, head_grads = xf.linear_cross_entropy(h_hidden, W_out, labels, return_grad=True,
                                                chunk_size=4)
config: dict[str, object] = xf.config_info()
xf.show_config()

n: int = xf.get_num_threads()
xf.set_num_threads(n)
with xf.num_threads(1):
    xf.cross_entropy(logits, labels)
"""

# Each line is a mistake mypy must report (the comment says why).
BAD = """
import numpy as np

import xentfast as xf

x = np.zeros((4, 3))
y = np.array([0, 1, 2, 0])
xf.cross_entropy(x, y, reduction="avg")           # not a reduction
xf.cross_entropy(x, y, label_smothing=0.1)        # misspelt keyword
xf.cross_entropy(x, y, "mean")                    # options are keyword-only
xf.set_num_threads("2")                           # not an int
n: str = xf.get_num_threads()                     # returns an int
xf.info.entropy(x, base="2")                      # base is a number
xf.linear_cross_entropy(x, x, y, chunk_size=0.5)  # chunk_size is an int
"""


def test_mypy_accepts_user_code_and_rejects_mistakes(tmp_path):
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text(textwrap.dedent(GOOD))
    bad.write_text(textwrap.dedent(BAD))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
         "--cache-dir", str(tmp_path / "cache"), good.name, bad.name],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert errors and not [e for e in errors if not e.startswith("bad.py:")], result.stdout
    flagged = {int(m.group(1)) for e in errors if (m := re.match(r"bad\.py:(\d+):", e))}
    mistakes = {i for i, line in enumerate(textwrap.dedent(BAD).splitlines(), 1)
                if "#" in line}
    assert flagged == mistakes, result.stdout
