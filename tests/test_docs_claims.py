"""What the source and the README say about themselves stays true and self-contained."""

from __future__ import annotations

import re
from pathlib import Path

from ssnas.run.presets import SPACE_STRATEGIES

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "ssnas"
TWO_STAGE = r"(?:two[-_ ]stage|TwoStage)"
# "two-stage ... the default" or "the default search ... two-stage" on one line ("not the default" is true)
DEFAULT = r"(?<!not )\bthe default\b"
CALLED_DEFAULT = re.compile(rf"{TWO_STAGE}[^\n]*{DEFAULT}|{DEFAULT}[^\n]*{TWO_STAGE}", re.IGNORECASE)


def _texts() -> dict[str, str]:
    """Every Python file of the package and the README, by path relative to the repository."""
    files = [*sorted(PACKAGE.rglob("*.py")), ROOT / "README.md"]
    return {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in files}


def test_no_source_file_cites_a_file_outside_the_repository() -> None:
    citing = [name for name, text in _texts().items() if name.startswith("src/") and "methods.md" in text]
    assert not citing, f"cite the paper and its section (or a file in the repository) instead: {citing}"


def test_two_stage_is_not_called_the_default_search() -> None:
    assert "two-stage" not in SPACE_STRATEGIES.values()  # if it becomes a default, this test goes
    claims = [f"{name}:{number}: {line.strip()}" for name, text in _texts().items()
              for number, line in enumerate(text.splitlines(), start=1) if CALLED_DEFAULT.search(line)]  # fmt: skip
    assert not claims, "\n".join(claims)
    for module in ("strategies/two_stage.py", "judging/judge.py", "run/strategies.py"):  # their own summaries
        assert "default search" not in (PACKAGE / module).read_text(encoding="utf-8").lower(), module
