"""Name-keyed registries, one per extension point (timm-style).

>>> SPACES = Registry[type]("space")
>>> @SPACES.register("toy")
... class Toy: ...
>>> SPACES.create("toy")  # doctest: +ELLIPSIS
<...Toy object at ...>
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ssnas.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a name to a factory; `create(name, **kw)` builds one."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            return factory

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._factories[name]
        except KeyError:
            raise UserError(
                f"unknown {self.kind} {name!r}; choose from: {', '.join(self.names())}"
            ) from None

    def create(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories
