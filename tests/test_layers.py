"""The import structure of `src/ssnas`: floors, no import from a lower floor to a higher one, and
no import cycle, neither between packages nor between the modules of one package.

Every `import ssnas...` / `from ssnas... import ...` counts, also inside functions and under
`if TYPE_CHECKING:` (a cycle a type checker must untangle is still a cycle for a reader).
A package's `__init__` importing its own modules (to register them) is not an edge of the
module graph: that is how registries fill, and `ssnas.spaces.darts` importing `SPACES` back
from `ssnas.spaces` is not a circle a reader has to follow.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Low -> high. A module may import from its own floor and the floors below, never above.
# "name" is a package (`ssnas/name/`) or a top-level module (`ssnas/name.py`).
FLOORS: list[tuple[str, ...]] = [
    ("errors", "registry", "paths", "faults", "atomic", "started", "version"),  # the ground: imports nothing of ssnas above it
    ("data",),  # datasets, split, cache, augmented views (data/views.py)
    ("spaces",),  # search spaces, their costs and compute budgets
    ("objectives",),  # self-supervised losses
    ("training",),  # train loop, checkpoints, precision, distributed
    ("runfolder",),  # run folders: config.yaml, resume checks, damaged-file errors
    ("groundtruth",),  # NB201 / NATS tables
    ("studies",),  # Optuna storages, heartbeats, the worker loop (apart from the samplers)
    ("ranking", "evaluation"),  # which architectures to rate, scores files, metrics against ground truth
    ("rating",),  # label-free signals, shared by every strategy and by `ssnas rank`; a rating's chunks,
    #               plan and sharing among workers (rating/stream.py, plan.py, shared.py over `studies`)
    ("judging",),  # brief self-supervised training of a shortlisted candidate, then its signals
    ("strategies",),  # evolution, setn, tpe, bossnas
    ("reporting",),  # figures, HTML
    ("retrain", "pretraining", "finetuning", "fitting", "export", "settings", "run"),  # workflows behind the commands
    ("api",),  # the Python API: functions over the workflows, returning data
    ("cli", "testing"),  # the commands; contract suites shipped for other people's implementations
]
FLOOR = {name: level for level, names in enumerate(FLOORS) for name in names}

# Upward imports waiting for their owner to switch (source module, imported module): remove the
# entry with the import. An entry whose import is gone fails the test, so this list only shrinks.
PENDING: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted((SRC / "ssnas").rglob("*.py"))}


def _resolve(name: str) -> str:
    """The longest known module `name` starts with (`ssnas.spaces.Architecture` -> `ssnas.spaces`)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(module: str) -> set[str]:
    """Every ssnas module `module` imports, anywhere in its body."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names]  # a submodule, or a name in `base`
        else:
            continue
        found |= {_resolve(n) for n in names if n == "ssnas" or n.startswith("ssnas.")}
    return found - {module}


IMPORTS: dict[str, set[str]] = {m: _imports(m) for m in MODULES}


def _unit(module: str) -> str:
    """The package or top-level module `module` belongs to (`ssnas.strategies.tpe` -> `strategies`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "ssnas"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def _edges() -> Iterable[tuple[str, str]]:
    for source, targets in IMPORTS.items():
        for target in targets:
            yield source, target


def test_every_package_and_top_level_module_has_a_floor() -> None:
    units = {_unit(m) for m in MODULES} - {"ssnas"}
    assert not units - set(FLOOR), f"give these a floor in FLOORS: {sorted(units - set(FLOOR))}"


def _upward() -> set[tuple[str, str]]:
    return {
        (source, target)
        for source, target in _edges()
        if _unit(source) in FLOOR and _unit(target) in FLOOR and FLOOR[_unit(target)] > FLOOR[_unit(source)]
    }


def test_no_import_from_a_lower_floor_to_a_higher_one() -> None:
    upward = [
        f"{source} ({_unit(source)}, floor {FLOOR[_unit(source)]}) imports {target} "
        f"({_unit(target)}, floor {FLOOR[_unit(target)]})"
        for source, target in sorted(_upward() - set(PENDING))
    ]
    assert not upward, "imports upward:\n" + "\n".join(upward)


def test_pending_upward_imports_are_still_there() -> None:
    gone = sorted(set(PENDING) - _upward())
    assert not gone, f"fixed, remove from PENDING: {gone}"


def test_no_import_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in _edges():
        if _unit(source) != _unit(target):
            graph[_unit(source)].add(_unit(target))
    cycles = _cycles(graph)
    assert not cycles, f"package import cycles: {cycles}"


def test_no_import_cycle_between_the_modules_of_a_package() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in _edges():
        registering = MODULES[source].name == "__init__.py" and target.startswith(source + ".")
        if not registering:
            graph[source].add(target)
    cycles = _cycles(graph)
    assert not cycles, f"module import cycles: {cycles}"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("from ssnas.spaces import Architecture", {"ssnas.spaces"}),
        ("from ssnas.strategies import tpe as _tpe", {"ssnas.strategies.tpe"}),
        ("def f():\n    import ssnas.spaces.nb201", {"ssnas.spaces.nb201"}),
        ("if TYPE_CHECKING:\n    from ssnas.strategies.base import SearchResult", {"ssnas.strategies.base"}),
        ("from . import nb201", {"ssnas.spaces.nb201"}),
        ("import numpy\nfrom optuna import Study", set()),
    ],
)
def test_imports_are_found_wherever_they_are(
    code: str, expected: set[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(MODULES, "ssnas.spaces.probe", tmp_path / "probe.py")
    (tmp_path / "probe.py").write_text(code)
    assert _imports("ssnas.spaces.probe") == expected
