"""Build, SIMD level and configuration: config_info() and show_config().

The kernels' instruction-set level is chosen in C when the compiled modules
load (at import): the best the CPU supports, capped by the environment
variable ``XENTFAST_SIMD``.  This module reports that choice and warns, once
at import, about a value of ``XENTFAST_SIMD`` that could not be honoured.
"""
import os
import warnings

from . import _simd
from ._threads import get_num_threads
from ._typing import Any

ENV_VAR = "XENTFAST_SIMD"


def _warn_about_env():
    status = _simd.env_status()
    known = _simd.known()
    if "baseline" not in known:
        known.insert(0, "baseline")
    requested = os.environ.get(ENV_VAR, "")
    if status == "unknown":
        warnings.warn(
            f"{ENV_VAR}={requested!r} is not a SIMD level of this build "
            f"(known: {', '.join(known)}); ignored, "
            f"running at {_simd.level()!r}",
            RuntimeWarning, stacklevel=2)
    elif status == "unavailable":
        warnings.warn(
            f"{ENV_VAR}={requested!r}: this CPU does not support that level "
            f"(available: {', '.join(_simd.available())}); running at {_simd.level()!r}",
            RuntimeWarning, stacklevel=2)


def config_info() -> dict[str, Any]:
    """The build and runtime configuration of xentfast, as a dict.

    Returns
    -------
    dict
        ``version`` (str); ``simd``, the instruction-set level the kernels
        run at now; ``simd_available``, the levels this CPU and build
        support, best first; ``openmp`` (bool), built with OpenMP;
        ``num_threads``, what `get_num_threads` returns; ``compiler``, the C
        compiler of the build; ``tile_rows`` and ``tile_limit_float32`` /
        ``tile_limit_float64``: the small-class kernels of the softmax family
        take ``tile_rows`` rows at a time, up to that many classes, at the
        current level; ``label_tile_limit_float32`` /
        ``label_tile_limit_float64``: the same for the losses of integer
        labels.
    """
    from . import __version__
    build = _simd.build_info()
    return {
        "version": __version__,
        "simd": _simd.level(),
        "simd_available": _simd.available(),
        "openmp": build.pop("openmp"),
        "num_threads": get_num_threads(),
        "simd_env": os.environ.get(ENV_VAR),
        **build,
    }


def show_config() -> None:
    """Print `config_info`, one item a line."""
    info = config_info()
    width = max(len(key) for key in info)
    for key, value in info.items():
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:<{width}}  {value}")


_warn_about_env()
