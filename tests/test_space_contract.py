"""Every registered search space passes the shipped contract (`ssnas.testing.spaces`): the
built-ins, any installed plugin, and the example plugin (examples/toy_space_plugin), imported
from its folder when it is not installed. A space's checks run on a small network of it.
"""

from __future__ import annotations

import importlib
import random
import sys
from pathlib import Path

import pytest
import torch

from ssnas.errors import UserError
from ssnas.spaces import SPACES, Architecture, create_space
from ssnas.testing import spaces as contract
from ssnas.testing.spaces import SPACE_CHECKS, check_space

torch.set_num_threads(1)
EXAMPLE_PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "toy_space_plugin"
SMALL = {"nb201": {"C": 8, "N": 1}, "darts": {"C": 4, "layers": 2}}  # the other built-ins are small already


def registered_spaces() -> list[str]:
    """SPACES.names(), the example plugin included (registered as its entry point would)."""
    if "toy" not in SPACES:
        sys.path.insert(0, str(EXAMPLE_PLUGIN))
        importlib.import_module("toy_space_plugin.space")
    return SPACES.names()


@pytest.mark.parametrize("check", SPACE_CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("name", registered_spaces())
def test_every_space_meets_the_contract(name: str, check: contract.Check) -> None:
    check(create_space(name, **SMALL.get(name, {})))


def test_the_example_plugin_is_among_the_checked_spaces() -> None:
    assert {"nb201", "darts", "nats-size", "hytra", "mbconv", "toy"} <= set(registered_spaces())


# ------------------------------------------------------------- the contract catches what it promises


def toy_space() -> type:
    registered_spaces()
    from toy_space_plugin.space import ToySpace

    return ToySpace


class _Features(torch.nn.Module):
    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output = output

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output


def _two_line_error(self: object, text: str) -> Architecture:
    raise UserError(f"bad architecture {text!r}\nsee the docs")


def broken(**methods: object) -> object:
    """A toy space with some methods replaced."""
    return type("Broken", (toy_space(),), methods)()


@pytest.mark.parametrize(("check", "space", "says"), [
    (contract.check_round_trip, lambda: broken(parse=lambda self, text: self.sample(random.Random(1))),
     "parse(key) changed"),
    (contract.check_keys_identify_architectures,
     lambda: broken(make=lambda self, c: Architecture("toy", tuple(c), "same")), "names both"),
    (contract.check_sample_is_seeded, lambda: broken(sample=lambda self, rng: toy_space().sample(self, random.Random())),
     "not reproducible"),
    (contract.check_malformed_text_is_a_user_error,
     lambda: broken(parse=lambda self, text: int(text)), "raised ValueError, not UserError"),
    (contract.check_malformed_text_is_a_user_error,
     lambda: broken(parse=_two_line_error), "is not one line"),
    (contract.check_features, lambda: broken(build=lambda self, arch, num_classes=None: _Features(torch.zeros(2, 4, 1))),
     "not (B, D)"),
    (contract.check_features,
     lambda: broken(build=lambda self, arch, num_classes=None: _Features(torch.full((2, 4), float("nan")))),
     "not finite"),
    (contract.check_logits, lambda: broken(build=lambda self, arch, num_classes=None: _Features(torch.zeros(2, 4))),
     "not (2, 5)"),
    (contract.check_mutate, lambda: broken(mutate=lambda self, arch, rng: arch), "never changes"),
    (contract.check_enumerate, lambda: broken(size=lambda self: 7), "size() says 7"),
])  # fmt: skip
def test_the_contract_catches_a_broken_space(check: contract.Check, space: object, says: str) -> None:
    with pytest.raises(AssertionError) as caught:
        check(space())  # type: ignore[operator]
    assert says in str(caught.value), str(caught.value)


def test_check_space_passes_a_sound_space() -> None:
    check_space(toy_space()(widths=(4, 8)))
