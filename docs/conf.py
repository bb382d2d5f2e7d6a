"""Sphinx configuration of the xentfast documentation.

Build (from the repository root)::

    pip install ".[docs]" && python -m sphinx -W --keep-going -n -b html docs docs/_build/html

The gallery (docs/tutorial/ and examples/) is executed during the build.
"""

import importlib.util
import re
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import xentfast

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

project = "xentfast"
author = "the xentfast developers"
copyright = "2026, the xentfast developers"
version = release = xentfast.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build", "_generated", "**/README.rst"]
templates_path = ["_templates"]

html_theme = "pydata_sphinx_theme"
html_title = f"xentfast {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "getting_started": [], "performance": []}
html_show_sourcelink = False
# MathJax comes from the ``django-static-mathjax`` wheel (the docs extra) and
# is copied next to the pages, so formulas render offline, with no CDN.
MATHJAX = Path(importlib.util.find_spec("mathjax").origin).parent / "static/mathjax/es5"
MATHJAX_FILES = ["tex-chtml.js", "output/chtml/fonts/woff-v2"]
mathjax_path = "mathjax/tex-chtml.js"

# --- autodoc / autosummary / numpydoc ---------------------------------------
autosummary_generate = True
autodoc_typehints = "none"          # the numpydoc "Parameters" say it
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# Every parameter documented, none unknown, each with a description; a
# Returns section on functions that return.
numpydoc_validation_checks = {"PR01", "PR02", "PR07", "RT01"}
# The torch and dask adapters document their arguments as "as in torch" /
# "as in xentfast.cross_entropy" rather than one by one.
numpydoc_validation_exclude = {r"^xentfast\.torch\.", r"^xentfast\.dask\."}
# No intersphinx (the build needs no network): names from other projects in
# the docstrings stay plain text instead of failing the nitpicky build.
nitpick_ignore_regex = [("py:.*", r"(sklearn|numpy|scipy|torch|dask)\..*")]
# sphinx_gallery_conf holds a function (reset_argv), which Sphinx cannot
# pickle; it only means the configuration is re-read on every build.
suppress_warnings = ["config.cache"]

# --- sphinx-gallery ----------------------------------------------------------
# Examples that need PyTorch or a Dask cluster are rendered, not run.
NOT_RUN = ("torch", "dask", "cluster")


def _reset_argv(gallery_conf, script_vars):
    """Command-line arguments of each example: cheap settings for the build."""
    name = os.path.basename(script_vars["src_file"])
    if name == "mlp_digits.py":
        return ["--epochs", "20", "--plot", os.path.join(tempfile.gettempdir(), "mlp_digits.png")]
    if name == "next_token_stdlib.py":
        return ["--quick"]
    if name == "sklearn_digits.py":
        return ["--repeat", "1", "--plot",
                os.path.join(tempfile.gettempdir(), "sklearn_digits.png")]
    return []


sphinx_gallery_conf = {
    "examples_dirs": [str(DOCS / "tutorial"), str(ROOT / "examples")],
    "gallery_dirs": ["auto_tutorial", "auto_examples"],
    "filename_pattern": r"/(?!.*(" + "|".join(NOT_RUN) + r"))[^/]*\.py$",
    "ignore_pattern": r"__init__\.py|/_",
    "reset_argv": _reset_argv,
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "show_memory": False,
    "plot_gallery": "True",
}

# The examples run in this process: quiet, one BLAS thread for the tiny
# matrices they multiply, and no interactive backend.
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings("ignore", message="Matplotlib is currently using agg")


def _copy_mathjax(app, exception):
    if exception is None and app.builder.format == "html":
        for name in MATHJAX_FILES:
            src, dst = MATHJAX / name, Path(app.outdir) / "_static" / "mathjax" / name
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)


NOT_RUN_NOTE = """
.. note::

   This example needs {what}, so it is shown here without being run when the
   documentation is built: no output or figures below come from the build.
"""


def _say_not_run(app, docname, source):
    """Put a note at the top of the gallery pages of examples not executed."""
    name = docname.rsplit("/", 1)[-1]
    if docname.startswith("auto_examples/") and re.search("|".join(NOT_RUN), name):
        what = "a Dask cluster" if re.search("dask|cluster", name) else "PyTorch"
        text = source[0]
        # after the title (the first line underlined with "=")
        title = re.search(r"^=+\n", text, re.M)
        if title:
            cut = title.end()
            source[0] = text[:cut] + NOT_RUN_NOTE.format(what=what) + text[cut:]


def setup(app):
    app.connect("build-finished", _copy_mathjax)
    app.connect("source-read", _say_not_run)


# --- the Performance page's results, read from bench/README.md ---------------
def _markdown_inline(text):
    """Markdown code spans and links as reStructuredText."""
    text = re.sub(r"(?<!`)`([^`]+)`(?!`)", r"``\1``", text)
    return re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)


def _bench_results():
    """The newest run of bench/README.md's 'Results on the development
    machine' (its first subsection): introduction, command and first table,
    as reStructuredText."""
    text = (ROOT / "bench" / "README.md").read_text()
    section = text.split("## Results on the development machine", 1)[1]
    section = section.split("\n## ", 1)[0]
    newest = section.split("\n### ")[1]          # its title line, then the text
    intro, rest = newest.split("\n", 1)[1].split("```", 1)
    command, rest = rest.split("```", 1)
    table = rest[rest.index("\n|") + 1:].split("\n\n", 1)[0]
    lines = [line for line in table.splitlines() if line.startswith("|")]
    header, rows = lines[0], lines[2:]

    def cells(line):
        return [c.strip() for c in line.strip().strip("|").split("|")]

    def csv_row(line):
        return ", ".join('"' + c.replace('"', '""') + '"' for c in cells(line))

    out = [_markdown_inline(" ".join(intro.split())), "", ".. code-block:: bash", ""]
    out += ["   " + line for line in command.strip().splitlines()]
    out += ["", ".. csv-table:: Summary of that run (``bench/README.md``)",
            "   :header: " + csv_row(header), "   :class: bench-table", ""]
    out += ["   " + csv_row(r) for r in rows]
    target = DOCS / "_generated" / "bench_results.rst"
    target.parent.mkdir(exist_ok=True)
    new = "\n".join(out) + "\n"
    if not target.exists() or target.read_text() != new:
        target.write_text(new)


_bench_results()
