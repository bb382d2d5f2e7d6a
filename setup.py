"""Build the compiled core of xentfast.

Environment switches:
  XENTFAST_DEBUG=1            Cython bounds/wraparound checks on, and C warnings
                              are errors (debug build).
  XENTFAST_REQUIRE_OPENMP=1   fail instead of building a serial extension when
                              the compiler has no OpenMP (CI sets this).
"""
import glob
import os
import platform
import shlex
import sys
import tempfile
import textwrap
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MODULES = ["_openmp", "_simd", "_scan", "_softmax", "_multiclass", "_binary", "_buffers"]
# Every module depends on every header and .pxd: editing one rebuilds all.
DEPENDS = sorted(glob.glob("src/xentfast/*.h") + glob.glob("src/xentfast/*.pxd"))
DEBUG = os.environ.get("XENTFAST_DEBUG", "0") == "1"

# Kernels rely on IEEE semantics (NaN/Inf propagate, -inf is a mask), so no
# -ffast-math.  -fno-math-errno and -fno-trapping-math only drop errno and FP
# trap side effects; they let gcc if-convert and vectorise the exp polynomial.
BASE_FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math"]
if platform.machine().lower() in ("x86_64", "amd64"):
    # The AVX-512 clones of the row kernels should use full 512-bit vectors.
    BASE_FLAGS.append("-mprefer-vector-width=512")

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 ? 0 : 1;
    }
    """
)


def compiler_has_openmp(compiler):
    """Compile and link a tiny OpenMP program with the build's own compiler.

    The compiler compiles with the user's CFLAGS but links executables
    without them or LDFLAGS (the extensions' link has both): add them, or
    e.g. CFLAGS=LDFLAGS=-fsanitize=address fails here and builds serially.
    """
    user_flags = [flag for var in ("CFLAGS", "LDFLAGS")
                  for flag in shlex.split(os.environ.get(var, ""))]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=["-fopenmp"])
            compiler.link_executable(objs, "probe", output_dir=tmp,
                                     extra_postargs=user_flags + ["-fopenmp"])
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    def build_extensions(self):
        openmp = compiler_has_openmp(self.compiler)
        if not openmp:
            msg = ("xentfast: the C compiler does not support OpenMP; building a "
                   "SERIAL extension (every call runs on one thread).")
            if os.environ.get("XENTFAST_REQUIRE_OPENMP", "0") == "1":
                sys.exit(msg + " XENTFAST_REQUIRE_OPENMP=1 makes this an error.")
            warnings.warn("\n" + "*" * 72 + "\n" + msg + "\n" + "*" * 72)
        omp = ["-fopenmp"] if openmp else ["-fopenmp-simd"]
        # The debug build (CI) turns warnings into errors, but one false
        # positive: Cython's bounds-check error paths inside prange leave
        # __pyx_clineno "maybe uninitialized" (the release build has none).
        werror = ["-Werror", "-Wno-maybe-uninitialized"] if DEBUG else []
        for ext in self.extensions:
            ext.extra_compile_args = BASE_FLAGS + omp + werror
            ext.extra_link_args = ["-fopenmp"] if openmp else []
        super().build_extensions()


missing = [name for name in MODULES if not os.path.exists(f"src/xentfast/{name}.pyx")]
if missing:
    sys.exit(f"xentfast: missing source src/xentfast/{missing[0]}.pyx")
extensions = [
    Extension(
        f"xentfast.{name}",
        [f"src/xentfast/{name}.pyx"],
        include_dirs=[np.get_include(), "src/xentfast"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        depends=DEPENDS,
    )
    for name in MODULES
]

if __name__ == "__main__":   # pip runs it so; tests load only the probe
    setup(
        ext_modules=cythonize(
            extensions,
            compiler_directives={
                "language_level": "3",
                "boundscheck": DEBUG,
                "wraparound": DEBUG,
                "initializedcheck": DEBUG,
                "cdivision": True,
                "cpow": True,
            },
        ),
        cmdclass={"build_ext": BuildExt},
    )
