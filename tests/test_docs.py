"""The documentation's own checks: the built-HTML checker, and the tutorial's
two languages running the same code."""

import doctest
import importlib.util
import io
import re
import tokenize
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
if not DOCS.is_dir():
    pytest.skip("docs/ not present next to the tests", allow_module_level=True)


def _load_check_html():
    spec = importlib.util.spec_from_file_location("check_html", DOCS / "check_html.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_check_html_finds_broken_links_images_and_fragments(tmp_path):
    check_html = _load_check_html()
    _write(tmp_path / "index.html",
           '<a href="a/page.html#here">ok</a> <a href="https://example.org/x">external</a>'
           '<a href="#top">ok</a> <p id="top"></p> <img src="img/ok.png">')
    _write(tmp_path / "img" / "ok.png", "")
    _write(tmp_path / "a" / "page.html",
           '<h1 id="here"></h1> <a href="../index.html#nowhere">bad fragment</a>'
           '<a href="missing.html">missing page</a> <img src="../img/missing.png">'
           '<script src="../_static/js.js"></script>')
    _write(tmp_path / "_static" / "template.html", '<a href="{{ pathto(x) }}">skipped</a>')
    problems, n_pages = check_html.check_links(tmp_path)
    assert n_pages == 2
    assert sorted(p.split(": ", 1)[1] for p in problems) == [
        "<a> ../index.html#nowhere: no element with that id",
        "<a> missing.html: no such file",
        "<img> ../img/missing.png: no such file",
        "<script> ../_static/js.js: no such file",
    ]


def test_check_html_wants_a_page_per_public_name(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    check_html = _load_check_html()
    names = check_html.public_names("xentfast.info")
    assert names == ["xentfast.info.cross_entropy", "xentfast.info.entropy",
                     "xentfast.info.kl_divergence"]
    monkeypatch.setattr(check_html, "DOCUMENTED_MODULES", ["xentfast.info"])
    monkeypatch.setattr(check_html, "OPTIONAL_MODULES", ["xentfast.no_such_module"])
    _write(tmp_path / check_html.REFERENCE_DIR / "xentfast.info.entropy.html", "")
    problems, n_names = check_html.check_reference(tmp_path)
    assert n_names == 3
    assert [p.split(":")[0] for p in problems] == ["xentfast.info.cross_entropy",
                                                   "xentfast.info.kl_divergence"]
    # `info` is a module in xentfast.__all__: documented by its own names
    assert "xentfast.info" not in check_html.public_names("xentfast")


def _code_tokens(path):
    """The script's tokens without comments and the module docstring."""
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(path.read_text("utf-8")).readline)
              if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE)]
    assert tokens[0].type == tokenize.STRING  # the page's title and introduction
    return [(t.type, t.string) for t in tokens[1:]]


def test_tutorial_translation_runs_the_same_code():
    """The Chinese tutorial is a parallel page: only prose and comments differ."""
    english = _code_tokens(DOCS / "tutorial" / "plot_cross_entropy.py")
    chinese = _code_tokens(DOCS / "tutorial" / "plot_cross_entropy_zh.py")
    assert len(english) > 1000
    assert english == chinese


def test_ci_builds_the_docs_with_the_readme_command():
    root = DOCS.parent
    readme, ci = root / "README.md", root / ".ci" / "run"
    if not (readme.exists() and ci.exists()):
        pytest.skip("README.md or .ci/run not present next to the tests")
    commands = [line.strip() for line in readme.read_text().splitlines()
                if "python -m sphinx" in line]
    assert len(commands) == 1, commands
    assert "-W --keep-going -n" in commands[0]
    assert commands[0] in ci.read_text().splitlines()


# A float literal, optionally with an exponent (not part of a name like x1).
_FLOAT = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")


class _ShownDigitsChecker(doctest.OutputChecker):
    """Numbers need only match to the digits the page shows (as pytest's
    NUMBER option): 0.4903 on the page accepts 0.49029727511600024."""

    def check_output(self, want, got, optionflags):
        if super().check_output(want, got, optionflags):
            return True
        wanted, found = _FLOAT.findall(want), _FLOAT.findall(got)
        if len(wanted) != len(found):
            return False
        for w, g in zip(wanted, found):
            mantissa, _, exponent = w.lower().partition("e")
            decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
            tolerance = 0.5 * 10.0 ** (int(exponent or 0) - decimals)
            if not abs(float(w) - float(g)) <= tolerance * (1 + 1e-9):
                return False
        # NumPy pads numbers to a common width: compare the rest without spaces
        def rest(text):
            return re.sub(r"\s+", "", _FLOAT.sub("0", text))
        return rest(want) == rest(got)


DOCTEST_PAGES = ["user_guide/options.rst", "user_guide/arrays.rst", "user_guide/errors.rst"]


@pytest.mark.parametrize("page", DOCTEST_PAGES)
def test_user_guide_examples(page):
    """The >>> examples of the user guide print what the pages say."""
    text = (DOCS / page).read_text(encoding="utf-8")
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, page, page, 0)
    assert len(test.examples) >= 5
    runner = doctest.DocTestRunner(
        checker=_ShownDigitsChecker(),
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    out = io.StringIO()
    result = runner.run(test, out=out.write)
    assert result.failed == 0, out.getvalue()


@pytest.mark.parametrize("want, got, ok", [
    ("np.float64(0.4903)\n", "np.float64(0.49029727511600024)\n", True),
    ("np.float64(0.4903)\n", "np.float64(0.4913)\n", False),
    ("-4.248e-18\n", "-4.24835426e-18\n", True),
    ("-4.248e-18\n", "0.0\n", False),
    ("array([0.2413, 1.0986])\n", "array([0.2413113 , 1.09861229])\n", True),
    ("array([0.2413, 1.0986])\n", "array([0.2413113 , 1.09861229, 3.0])\n", False),
    ("np.float32(1.0986)\n", "np.float64(1.0986122886681096)\n", False),
])
def test_shown_digits_checker(want, got, ok):
    assert _ShownDigitsChecker().check_output(want, got, doctest.NORMALIZE_WHITESPACE) is ok
