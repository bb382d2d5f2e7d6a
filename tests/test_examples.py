"""Run the example scripts in their reduced mode, as a user would."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_quick(name, cwd, timeout=300):
    """Run examples/<name> --quick in `cwd`; its stdout (skip if examples/ is absent)."""
    script = EXAMPLES / name
    if not script.exists():
        pytest.skip("examples/ not present next to the tests")
    r = subprocess.run([sys.executable, str(script), "--quick"], cwd=cwd,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_mlp_digits_quick(tmp_path):
    pytest.importorskip("sklearn")  # the digits data ship with scikit-learn
    out = run_quick("mlp_digits.py", tmp_path)
    epochs = re.findall(r"^epoch\s+\d+\s+loss ([\d.]+)", out, re.M)
    assert len(epochs) == 5, out
    losses = [float(v) for v in epochs]
    assert losses[-1] < losses[0] < 3.0  # starts near log(10), then falls
    m = re.search(r"final test accuracy ([\d.]+)", out)
    assert m, out
    # 5 epochs reach about 0.97; a broken loss or gradient stays near 0.1.
    assert float(m.group(1)) > 0.90, out


def test_next_token_stdlib_quick(tmp_path):
    out = run_quick("next_token_stdlib.py", tmp_path)
    val = [float(v) for v in re.findall(r"validation loss ([\d.]+)", out)]
    assert len(val) == 2, out
    # starts at log(4096) = 8.3; 40 steps reach about 5.7, a broken gradient stays near 8.3
    assert 8.0 < val[0] < 8.7 and val[1] < 7.0, out
    m = re.search(r"memory ratio unfused/fused ([\d.]+)x", out)
    assert m and float(m.group(1)) > 1.5, out
    m = re.search(r"same loss \(([\d.]+) vs ([\d.]+)\), gradients within ([\d.e+-]+)", out)
    assert m, out
    fused, unfused, grad_diff = (float(v) for v in m.groups())
    assert abs(fused - unfused) <= 1e-4 * unfused and grad_diff < 1e-4, out


def test_torch_classifier_quick(tmp_path):
    pytest.importorskip("torch")
    out = run_quick("torch_classifier.py", tmp_path, timeout=600)
    m = re.search(r"max \|loss difference\| over all steps ([\d.e+-]+)", out)
    assert m, out
    assert float(m.group(1)) < 1e-4, out     # same losses, step by step
    assert len(re.findall(r"epoch times", out)) == 2, out
