"""Search spaces. Each module registers itself in `SPACES`; plugins and `--space-module` files
register theirs on the first lookup (`ssnas.spaces.plugins`)."""

from __future__ import annotations

from ssnas.registry import Registry
from ssnas.spaces.base import (
    Architecture,
    Block,
    Encoder,
    SearchSpace,
    SupportsBlocks,
    SupportsEnumerate,
    SupportsMutate,
    SupportsSupernet,
    is_degenerate,
)


def _load_plugins() -> None:
    from ssnas.spaces.plugins import load_plugins

    load_plugins()


SPACES: Registry[SearchSpace] = Registry("space", plugins=_load_plugins)


def create_space(name: str, **kwargs: object) -> SearchSpace:
    """The search space registered as `name`, built with its options (e.g. nb201's C and N).

    >>> space = create_space("nb201", C=8, N=1)
    >>> space.parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|").choices[0]
    'nor_conv_3x3'
    """
    return SPACES.create(name, **kwargs)


# One explicit import per space module (registration happens on import).
from ssnas.spaces import darts as _darts  # noqa: E402,F401
from ssnas.spaces import hytra as _hytra  # noqa: E402,F401
from ssnas.spaces import mbconv as _mbconv  # noqa: E402,F401
from ssnas.spaces import nats_size as _nats_size  # noqa: E402,F401
from ssnas.spaces import nb201 as _nb201  # noqa: E402,F401
from ssnas.spaces.plugins import ENTRY_POINT_GROUP, load_space_module  # noqa: E402

__all__ = [
    "ENTRY_POINT_GROUP",
    "SPACES",
    "Architecture",
    "Block",
    "Encoder",
    "SearchSpace",
    "SupportsBlocks",
    "SupportsEnumerate",
    "SupportsMutate",
    "SupportsSupernet",
    "create_space",
    "is_degenerate",
    "load_space_module",
]
