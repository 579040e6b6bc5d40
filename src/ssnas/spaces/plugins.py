"""Search spaces defined outside ssnas: installed plugins and Python files.

Both routes run code that registers a class with `@SPACES.register("name")` (the class meets
`ssnas.spaces.SearchSpace`; `ssnas.testing.spaces` checks it).

**Entry points.** A distribution declares, in its pyproject.toml::

    [project.entry-points."ssnas.spaces"]
    toy = "toy_space_plugin.space"

Each entry point names a module (or an object in one, ``module:attr``); loading it imports the
module, whose decorators register its space(s). The entry point's name is, by convention, the
space's. Plugins load the first time `SPACES` is asked for its names or for a space, so
`import ssnas` stays fast. One that fails to import, registers nothing, or takes a name that is
already registered is skipped with a one-line warning naming its distribution and entry point;
asking for its space by name is then an error with that line.

**Files.** `load_space_module("my_space.py")` (`--space-module` on the command line) imports a
file that registers its space(s); anything wrong is one UserError line. The file is also listed
in $SSNAS_SPACE_MODULES, so processes started from this one (spawned rating workers, torchrun)
load it again on their first lookup.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from ssnas.errors import UserError
from ssnas.spaces import SPACES

ENTRY_POINT_GROUP = "ssnas.spaces"
MODULES_ENV = "SSNAS_SPACE_MODULES"  # os.pathsep-separated files loaded by `load_space_module`

log = logging.getLogger(__name__)
_FILES: dict[Path, list[str]] = {}  # file -> the spaces it registered (each file loads once)


def load_plugins() -> None:
    """Register the spaces of every `ssnas.spaces` entry point, then the files of $SSNAS_SPACE_MODULES."""
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        _load_entry_point(entry_point)
    for path in filter(None, os.environ.get(MODULES_ENV, "").split(os.pathsep)):
        load_space_module(path)


def _load_entry_point(entry_point: EntryPoint) -> None:
    dist = entry_point.dist
    source = f"plugin {dist.name} {dist.version}" if dist is not None else "plugin"
    where = f"{source} (entry point '{entry_point.name} = {entry_point.value}')"
    before = set(SPACES.names())
    try:
        with SPACES.origin(source):
            entry_point.load()
    except Exception as error:  # noqa: BLE001 - a broken plugin must not break every command
        _skip(entry_point.name, f"{where} failed to load: {_one_line(error)}")
        return
    if not set(SPACES.names()) - before and entry_point.name not in SPACES:
        _skip(entry_point.name, f"{where} registers no space")


def _skip(name: str, reason: str) -> None:
    SPACES.failures[name] = reason
    log.warning("ssnas: warning: search space %s; skipped", reason)


def load_space_module(path: str | Path) -> list[str]:
    """Import the Python file `path`, which registers one or more spaces; returns their names.

    UserError (one line) for a missing file, one that fails to import, one that registers no
    space, or a name that is already registered (built-in or plugin). A file runs once: one
    already imported (an installed plugin's module, the running script) is not run again.
    """
    resolved = Path(path).expanduser().resolve()
    SPACES.load_plugins()  # plugins (and $SSNAS_SPACE_MODULES) first, so a clash names what it clashes with
    if resolved in _FILES:
        return list(_FILES[resolved])
    label = f"space module {path}"
    if not resolved.is_file():
        raise UserError(f"{label}: no such file")
    if resolved.suffix != ".py":
        raise UserError(f"{label}: not a Python file (.py)")
    imported = _imported_as(resolved)
    if imported is not None:  # the file ran already (an installed plugin, the running script): no second run
        added = [n for n in SPACES.names() if getattr(SPACES.get(n), "__module__", None) == imported]
    else:
        added = _run_file(resolved, label)
    if not added:
        raise UserError(f"{label} registers no space; decorate its class with @SPACES.register(\"name\")")
    _FILES[resolved] = added
    listed = os.environ.get(MODULES_ENV, "").split(os.pathsep)
    if str(resolved) not in listed:
        os.environ[MODULES_ENV] = os.pathsep.join([*filter(None, listed), str(resolved)])
    return list(added)


def _imported_as(path: Path) -> str | None:
    """The name of an imported module whose source is `path` (`__main__` for the running script), if any."""
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and os.path.basename(file) == path.name and Path(file).resolve() == path:
            return name
    return None


def _run_file(path: Path, label: str) -> list[str]:
    """Execute `path` as a fresh module; the spaces it registered."""
    before = set(SPACES.names())
    name = "ssnas_space_module_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, "a .py file has a source loader"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickle look classes up by module name
    try:
        with SPACES.origin(f"file {path}"):
            spec.loader.exec_module(module)
    except SyntaxError as error:
        del sys.modules[name]
        raise UserError(f"{label}: syntax error on line {error.lineno}: {error.msg}") from None
    except Exception as error:  # noqa: BLE001 - whatever the file raises is its one-line error
        del sys.modules[name]
        raise UserError(f"{label}: {_one_line(error)}") from None
    return sorted(set(SPACES.names()) - before)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


__all__ = ["ENTRY_POINT_GROUP", "MODULES_ENV", "load_plugins", "load_space_module"]
