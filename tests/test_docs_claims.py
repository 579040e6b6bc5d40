"""What the source, the README and the documentation site (docs/) say about themselves stays true
and self-contained."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import ssnas
from ssnas.run.presets import SPACE_STRATEGIES

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "ssnas"
TWO_STAGE = r"(?:two[-_ ]stage|TwoStage)"
# "two-stage ... the default" or "the default search ... two-stage" on one line ("not the default" is true)
DEFAULT = r"(?<!not )\bthe default\b"
CALLED_DEFAULT = re.compile(rf"{TWO_STAGE}[^\n]*{DEFAULT}|{DEFAULT}[^\n]*{TWO_STAGE}", re.IGNORECASE)


def _texts() -> dict[str, str]:
    """Every Python file of the package, the README and the docs' pages, by path relative to the repository."""
    files = [*sorted(PACKAGE.rglob("*.py")), ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in files}


def test_no_source_file_cites_a_file_outside_the_repository() -> None:
    citing = [name for name, text in _texts().items() if name.startswith("src/") and "methods.md" in text]
    assert not citing, f"cite the paper and its section (or a file in the repository) instead: {citing}"


def test_two_stage_is_not_called_the_default_search() -> None:
    assert "two-stage" not in SPACE_STRATEGIES.values()  # if it becomes a default, this test goes
    claims = [f"{name}:{number}: {line.strip()}" for name, text in _texts().items()
              for number, line in enumerate(text.splitlines(), start=1) if CALLED_DEFAULT.search(line)]  # fmt: skip
    assert not claims, "\n".join(claims)
    for module in ("strategies/two_stage.py", "judging/judge.py", "strategies/settings.py"):  # their own summaries
        assert "default search" not in (PACKAGE / module).read_text(encoding="utf-8").lower(), module


def _api_call(node: ast.AST) -> str | None:
    """NAME when `node` is a call `ssnas.NAME(...)`."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
        return node.func.attr if node.func.value.id == "ssnas" else None
    return None


def test_the_readme_python_example_is_true_to_the_api() -> None:
    """Each `ssnas.NAME(...)` of the README's Python blocks names a public function whose signature
    takes those arguments, and each attribute read from its result exists on the type it returns."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    returns: dict[str, type] = {}  # variable -> the class its `ssnas.NAME(...)` returns
    calls = 0
    for node in (node for block in blocks for node in ast.walk(ast.parse(block))):
        if isinstance(node, ast.Assign) and (name := _api_call(node.value)):
            annotation = str(inspect.signature(getattr(ssnas, name)).return_annotation)  # e.g. "SearchResult"
            returned = getattr(ssnas, annotation) if annotation in ssnas.__all__ else object
            returns.update({target.id: returned for target in node.targets if isinstance(target, ast.Name)})
        if name := _api_call(node):
            assert isinstance(node, ast.Call) and name in ssnas.__all__, f"ssnas.{name} is not public"
            keywords = {keyword.arg: None for keyword in node.keywords if keyword.arg}
            inspect.signature(getattr(ssnas, name)).bind(*[None] * len(node.args), **keywords)
            calls += 1
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in returns:
            cls = returns[node.value.id]
            fields = getattr(cls, "__dataclass_fields__", {})
            assert node.attr in fields or hasattr(cls, node.attr), f"{cls.__name__} has no {node.attr}"
    assert calls >= 3
