"""The documentation site (mkdocs.yml, docs/): `mkdocs build --strict` passes, its pages render in
headless Chromium (a screenshot that is not blank), the API reference documents the public
functions and the CLI reference every command, the tutorials' code is the examples the tests run,
and every README link into docs/ lands on a page and an anchor that exist."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import missing_prerequisite
from html_pages import assert_not_blank, render
from ssnas.cli.main import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS = Path(sys.executable).parent / "mkdocs"
# What `import ssnas` exports as functions: each must be documented on the API page.
API_FUNCTIONS = ["load_images", "search", "rank", "score", "rank_into_folder", "rate_shared", "list_spaces",
                 "list_rankers", "list_strategies"]  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as `make test` builds it: strict, so a broken link, anchor, snippet or reference fails."""
    if not MKDOCS.exists():
        missing_prerequisite("mkdocs not installed: `make test` installs the dev extra (pip install -e '.[dev]')")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([str(MKDOCS), "build", "--strict", "--site-dir", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_every_page_of_the_navigation_is_built(site: Path) -> None:
    pages = sorted(str(path.relative_to(DOCS).with_suffix(".html")) for path in DOCS.rglob("*.md"))
    missing = [page for page in pages if not (site / page).is_file()]
    assert not missing and len(pages) >= 14, (pages, missing)
    # the other engineer's figures of the default search against its time budget go here
    assert "Search against its time budget" in (site / "benchmarks.html").read_text()


@pytest.mark.parametrize("page", ["index.html", "reference/api.html"])
def test_pages_render_in_headless_chromium(site: Path, tmp_path: Path, page: str) -> None:
    dom = render(site / page, tmp_path / "shot.png")
    assert_not_blank(tmp_path / "shot.png")
    if page == "index.html":
        assert "Getting started" in dom and "make demo" in dom
    else:  # each public function documented, with its docstring's example as a code block, not a quote
        html = (site / page).read_text()
        for name in API_FUNCTIONS:
            assert f'id="ssnas.api.{name}"' in dom, name
        assert "Search `space` without labels" in html.replace("<code>", "`").replace("</code>", "`")
        assert "<blockquote>" not in html


def test_the_cli_reference_documents_every_command(site: Path) -> None:
    html = (site / "reference" / "cli.html").read_text()
    missing = [name for name in COMMANDS if f'id="ssnas-{name}"' not in html]
    assert not missing
    assert "--time-budget" in html and "--max-flops" in html  # options come from the click commands


def test_tutorial_code_is_the_examples_the_tests_run() -> None:
    """A Python (or TOML) block in a tutorial is a snippet of a file under examples/ (which
    tests/test_examples.py and the example plugin's own tests run), never code nothing runs."""
    blocks = {f"{path.name}: {block[:60]!r}": block for path in (DOCS / "tutorials").glob("*.md")
              for block in re.findall(r"```(?:python|toml)\n(.*?)```", path.read_text(), flags=re.S)}  # fmt: skip
    assert blocks
    for where, block in blocks.items():
        included = re.fullmatch(r'--8<-- "(examples/[^"]+)"\n', block)
        assert included and (ROOT / included.group(1)).is_file(), where


def test_readme_links_into_the_docs_land_on_a_page_and_an_anchor(site: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)\s]+)\)", readme)
    assert len(links) >= 20
    for link in links:
        path, _, anchor = link.partition("#")
        assert (ROOT / path).is_file(), link
        if path.endswith(".md"):
            page = site / Path(path).relative_to("docs").with_suffix(".html")
            assert not anchor or f'id="{anchor}"' in page.read_text(), link


def test_readme_lists_every_command_and_stays_short() -> None:
    readme = (ROOT / "README.md").read_text()
    assert [name for name in COMMANDS if f"| `ssnas {name}` |" not in readme] == []
    assert len(readme.splitlines()) <= 250
    assert "docs/budget_curve_nb201.png" in readme and "docs/benchmarks.md#budget-curve" in readme  # the default search, as a plot
