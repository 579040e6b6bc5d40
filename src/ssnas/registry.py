"""Name-keyed registries, one per extension point (timm-style).

>>> SPACES = Registry[type]("space")
>>> @SPACES.register("toy")
... class Toy: ...
>>> SPACES.create("toy")  # doctest: +ELLIPSIS
<...Toy object at ...>
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from ssnas.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a name to a factory; `create(name, **kw)` builds one.

    `plugins`, when given, runs once before the first lookup (`names`, `get`, `in`) and
    registers names defined outside the package (entry points, files), so importing the
    registry stays cheap. A plugin that failed is recorded in `failures` (name -> one line):
    asking for that name raises its line instead of "unknown". `origins` says who registered
    each name: the factory's module, or the source named with `origin(...)` while it loaded.
    """

    def __init__(self, kind: str, plugins: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._plugins = plugins
        self._source: str | None = None
        self.failures: dict[str, str] = {}
        self.origins: dict[str, str] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice (first by {self.origins[name]})")
            self._factories[name] = factory
            self.origins[name] = self._source or str(getattr(factory, "__module__", "?"))
            return factory

        return decorator

    @contextmanager
    def origin(self, source: str) -> Iterator[None]:
        """Names registered inside the block are recorded as coming from `source`."""
        previous, self._source = self._source, source
        try:
            yield
        finally:
            self._source = previous

    def load_plugins(self) -> None:
        """Run the `plugins` hook if it has not run yet (every lookup calls this first)."""
        if self._plugins is not None:
            load, self._plugins = self._plugins, None  # once, and not again from inside `load`
            load()

    def get(self, name: str) -> Callable[..., T]:
        self.load_plugins()
        try:
            return self._factories[name]
        except KeyError:
            if name in self.failures:
                raise UserError(f"{self.kind} {name!r} is unavailable: {self.failures[name]}") from None
            failed = f" ({len(self.failures)} plugin(s) failed to load: {', '.join(self.failures)})" if self.failures else ""
            raise UserError(f"unknown {self.kind} {name!r}; choose from: {', '.join(self.names())}{failed}") from None

    def create(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return name in self._factories
