"""Check the built HTML documentation.

* every internal link (``<a href>``), image, stylesheet and script resolves to
  a file of the build, and every ``#fragment`` to an element id in its page;
* every public name of the API has its reference page
  (``reference/generated/<module>.<name>.html``).

Usage: python docs/check_html.py [docs/_build/html]
Exit status 1, with one line per problem, if anything is missing.
"""

import importlib
import sys
import types
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

# The modules whose public names (``__all__``) must each have a page; the
# optional ones count as soon as the package has them.
DOCUMENTED_MODULES = ["xentfast", "xentfast.info", "xentfast.sklearn"]
OPTIONAL_MODULES = ["xentfast.torch", "xentfast.dask"]
REFERENCE_DIR = "reference/generated"
# Theme templates and copied sources, not pages.
SKIP_DIRS = ("_static", "_sources")


class _Page(HTMLParser):
    """The ids, and the local URLs with their tag, of one HTML page."""

    ATTRIBUTES = {"a": "href", "img": "src", "link": "href", "script": "src",
                  "source": "src"}

    def __init__(self):
        super().__init__()
        self.ids, self.urls = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        url = attrs.get(self.ATTRIBUTES.get(tag, ""))
        if url and not urlsplit(url).scheme and not url.startswith("//"):
            self.urls.append((tag, url))


def _parse(path):
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def check_links(root):
    """Problems with internal links, fragments and images under ``root``."""
    pages = {p: _parse(p) for p in sorted(root.rglob("*.html"))
             if p.relative_to(root).parts[0] not in SKIP_DIRS}
    problems = []
    for path, page in pages.items():
        for tag, url in page.urls:
            parts = urlsplit(url)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            where = f"{path.relative_to(root)}: <{tag}> {url}"
            if not target.is_file():
                problems.append(f"{where}: no such file")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{where}: no element with that id")
    return problems, len(pages)


def public_names(module_name):
    """The public names of a module that are not themselves modules."""
    module = importlib.import_module(module_name)
    return [f"{module_name}.{name}" for name in module.__all__
            if not isinstance(getattr(module, name), types.ModuleType)]


def documented_modules():
    """DOCUMENTED_MODULES and the optional modules the package has."""
    package = Path(importlib.import_module("xentfast").__file__).parent
    return DOCUMENTED_MODULES + [m for m in OPTIONAL_MODULES
                                 if (package / (m.split(".")[1] + ".py")).is_file()]


def check_reference(root):
    """Public names without a reference page."""
    names = [n for m in documented_modules() for n in public_names(m)]
    return [f"{name}: no reference page {REFERENCE_DIR}/{name}.html"
            for name in names
            if not (root / REFERENCE_DIR / f"{name}.html").is_file()], len(names)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0] if argv else Path(__file__).parent / "_build" / "html").resolve()
    if not (root / "index.html").is_file():
        sys.exit(f"{root} holds no built documentation (index.html missing)")
    link_problems, n_pages = check_links(root)
    ref_problems, n_names = check_reference(root)
    for line in link_problems + ref_problems:
        print(line)
    status = "FAILED" if link_problems or ref_problems else "ok"
    print(f"check_html {status}: {n_pages} pages, {len(link_problems)} broken links or "
          f"images; {n_names} public names, {len(ref_problems)} without a page")
    return 1 if link_problems or ref_problems else 0


if __name__ == "__main__":
    sys.exit(main())
