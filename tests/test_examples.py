"""Run the example scripts in their reduced mode, as a user would."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_quick(name, cwd, timeout=300):
    """Run examples/<name> --quick in `cwd`; skip if examples/ is absent."""
    script = EXAMPLES / name
    if not script.exists():
        pytest.skip("examples/ not present next to the tests")
    r = subprocess.run([sys.executable, str(script), "--quick"], cwd=cwd,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r


def test_mlp_digits_quick(tmp_path):
    pytest.importorskip("sklearn")  # the digits data ship with scikit-learn
    r = run_quick("mlp_digits.py", tmp_path)
    epochs = re.findall(r"^epoch\s+\d+\s+loss ([\d.]+)", r.stdout, re.M)
    assert len(epochs) == 5, r.stdout
    losses = [float(v) for v in epochs]
    assert losses[-1] < losses[0] < 3.0  # starts near log(10), then falls
    m = re.search(r"final test accuracy ([\d.]+)", r.stdout)
    assert m, r.stdout
    # 5 epochs reach about 0.97; a broken loss or gradient stays near 0.1.
    assert float(m.group(1)) > 0.90, r.stdout


def test_torch_classifier_quick(tmp_path):
    pytest.importorskip("torch")
    r = run_quick("torch_classifier.py", tmp_path, timeout=600)
    m = re.search(r"max \|loss difference\| over all steps ([\d.e+-]+)", r.stdout)
    assert m, r.stdout
    assert float(m.group(1)) < 1e-4, r.stdout     # same losses, step by step
    assert len(re.findall(r"epoch times", r.stdout)) == 2, r.stdout
