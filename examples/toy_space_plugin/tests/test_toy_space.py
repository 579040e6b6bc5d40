"""The toy space passes ssnas's shipped search-space contract, and its plugin entry point works."""

from __future__ import annotations

import pytest
from toy_space_plugin.space import ToySpace

from ssnas.spaces import SPACES
from ssnas.testing.spaces import SPACE_CHECKS, Check


@pytest.mark.parametrize("check", SPACE_CHECKS, ids=lambda check: check.__name__)
def test_toy_space_meets_the_contract(check: Check) -> None:
    check(ToySpace())


def test_toy_is_registered() -> None:
    assert SPACES.get("toy") is ToySpace
    assert SPACES.create("toy").size() == 6**3
