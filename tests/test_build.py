"""The build script's OpenMP probe, run as pip would run it."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

SETUP_PY = Path(__file__).resolve().parent.parent / "setup.py"

# Load setup.py without building anything (setup() runs only as __main__),
# make the compiler the build would use, and probe it.
_PROBE = f"""
import runpy
import setuptools   # provides distutils on Python >= 3.12
from distutils.ccompiler import new_compiler
from distutils.sysconfig import customize_compiler
build = runpy.run_path({str(SETUP_PY)!r}, run_name="probe")
compiler = new_compiler()
customize_compiler(compiler)
print(build["compiler_has_openmp"](compiler))
"""


def _probe(**env):
    r = subprocess.run([sys.executable, "-c", _PROBE], cwd=SETUP_PY.parent,
                       env=dict(os.environ, **env), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.split()[-1]


def test_openmp_probe_honours_cflags_and_ldflags():
    # CFLAGS=-fsanitize=address LDFLAGS=-fsanitize=address pip install .
    # compiles the probe with ASan, so it must link it with ASan too, or
    # OpenMP looks missing and the build silently goes serial.
    if not SETUP_PY.exists():
        pytest.skip("setup.py not present next to the tests")
    pytest.importorskip("Cython")       # setup.py's imports (the test extra
    pytest.importorskip("setuptools")   # has both)
    if _probe() != "True":
        pytest.skip("this compiler has no OpenMP")
    asan = "-fsanitize=address"
    cc = sysconfig.get_config_var("CC").split()[0]
    check = subprocess.run([cc, asan, "-x", "c", "-", "-o", os.devnull],
                           input="int main(void) { return 0; }",
                           capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip("this compiler cannot link AddressSanitizer programs")
    assert _probe(CFLAGS=asan, LDFLAGS=asan) == "True"
