"""The search-space contract: checks every space passes, built-in or plugin.

Each check takes a space instance and raises AssertionError naming what is broken. Run them
all with `check_space(space)`, or one pytest test per check::

    import pytest
    from ssnas.testing.spaces import SPACE_CHECKS

    @pytest.mark.parametrize("check", SPACE_CHECKS, ids=lambda check: check.__name__)
    def test_my_space(check):
        check(MySpace(width=8))  # a small network keeps the build checks fast

ssnas runs the same checks over every registered space (tests/test_space_contract.py), so an
installed plugin is tested the moment it registers.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Callable

import torch
from torch import nn

from ssnas.errors import UserError
from ssnas.spaces.base import (
    Architecture,
    SearchSpace,
    SupportsEnumerate,
    SupportsMutate,
)

SAMPLES = 8  # architectures drawn per check
BATCH = 2  # images per forward pass (BatchNorm in train mode needs two)
IMAGE_SIZE = 32
NUM_CLASSES = 5
FULL_ENUMERATION = 50_000  # spaces up to this size are enumerated completely
MALFORMED = ("", "   ", "not an architecture", "\x00\x01", "?|?|?")

Check = Callable[[SearchSpace], None]  # one contract check: AssertionError when `space` breaks it


def _samples(space: SearchSpace, seed: int = 0, count: int = SAMPLES) -> list[Architecture]:
    rng = random.Random(seed)
    return [space.sample(rng) for _ in range(count)]


def _images(batch: int = BATCH, size: int = IMAGE_SIZE) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))  # (B,3,H,W)


def check_choices(space: SearchSpace) -> None:
    """`name` is a non-empty string; `choices()` maps decision names to non-empty, distinct string options, stably."""
    assert isinstance(space.name, str) and space.name.strip(), f"space name {space.name!r} must be a non-empty string"
    choices = space.choices()
    assert len(choices) > 0, f"{space.name}: choices() is empty"
    for decision, options in choices.items():
        assert isinstance(decision, str), f"{space.name}: decision name {decision!r} is not a string"
        assert len(options) > 0, f"{space.name}: decision {decision!r} has no options"
        assert all(isinstance(o, str) for o in options), f"{space.name}: options of {decision!r} must be strings"
        assert len(set(options)) == len(options), f"{space.name}: decision {decision!r} repeats an option"
    again = space.choices()
    assert list(again) == list(choices) and all(list(again[d]) == list(choices[d]) for d in choices), (
        f"{space.name}: choices() differs between calls")


def check_round_trip(space: SearchSpace) -> None:
    """Sampled architectures belong to the space, and `parse(key)` / `make(choices)` give them back with the same key."""
    decisions = list(space.choices().items())
    for arch in _samples(space):
        assert isinstance(arch, Architecture), f"{space.name}: sample() returned {type(arch).__name__}"
        assert arch.space == space.name, f"{space.name}: sampled architecture says space {arch.space!r}"
        assert len(arch.choices) == len(decisions), (
            f"{space.name}: {len(arch.choices)} choices for {len(decisions)} decisions")
        for (decision, options), value in zip(decisions, arch.choices):
            assert value in options, f"{space.name}: {decision}={value!r} is not one of its options"
        assert isinstance(arch.key, str) and arch.key.strip(), f"{space.name}: empty key for {arch.choices}"
        assert "\n" not in arch.key, f"{space.name}: key {arch.key!r} spans lines"
        parsed = space.parse(arch.key)
        assert parsed == arch and parsed.key == arch.key, f"{space.name}: parse(key) changed {arch.key!r}"
        made = space.make(arch.choices)
        assert made == arch and made.key == arch.key, f"{space.name}: make(choices) changed {arch.key!r}"


def check_keys_identify_architectures(space: SearchSpace) -> None:
    """Equal choices give equal keys and different choices different keys (the key names one architecture)."""
    by_key: dict[str, tuple[str, ...]] = {}
    for arch in _samples(space, seed=1, count=4 * SAMPLES):
        seen = by_key.setdefault(arch.key, arch.choices)
        assert seen == arch.choices, f"{space.name}: key {arch.key!r} names both {seen} and {arch.choices}"
        assert space.make(list(arch.choices)).key == arch.key, f"{space.name}: make() gives another key for {arch.key!r}"


def check_sample_is_seeded(space: SearchSpace) -> None:
    """`sample(rng)` draws from `rng`: the same seed gives the same architectures; different draws differ."""
    first, second = _samples(space, seed=7), _samples(space, seed=7)
    assert [a.key for a in first] == [a.key for a in second], f"{space.name}: sample() is not reproducible from its rng"
    if _size(space) > 1:
        assert len({a.key for a in _samples(space, seed=3, count=4 * SAMPLES)}) > 1, (
            f"{space.name}: {4 * SAMPLES} samples are all the same architecture")


def check_malformed_text_is_a_user_error(space: SearchSpace) -> None:
    """`parse` of malformed text and `make` of wrong choices raise a one-line UserError (the CLI prints it)."""
    for text in MALFORMED:
        _expect_user_error(space, f"parse({text!r})", functools.partial(space.parse, text))
    choices = list(_samples(space, count=1)[0].choices)
    _expect_user_error(space, "make() with one choice missing", lambda: space.make(choices[:-1]))
    _expect_user_error(space, "make() with one choice too many", lambda: space.make([*choices, choices[-1]]))
    _expect_user_error(space, "make() with an unknown option",
                       lambda: space.make(["no such option", *choices[1:]]))  # fmt: skip


def _expect_user_error(space: SearchSpace, what: str, call: Callable[[], object]) -> None:
    try:
        call()
    except UserError as error:
        message = str(error)
        assert message.strip() and "\n" not in message.strip(), f"{space.name}: {what}: message {message!r} is not one line"
        return
    except Exception as error:  # the check reports what was raised instead
        raise AssertionError(f"{space.name}: {what} raised {type(error).__name__}, not UserError: {error}") from error
    raise AssertionError(f"{space.name}: {what} was accepted")


def check_features(space: SearchSpace) -> None:
    """`build(arch)` is an nn.Module whose `forward_features` maps (B,3,32,32) images to finite (B, D) features."""
    for arch in _samples(space, seed=2, count=2):
        network = space.build(arch)
        assert isinstance(network, nn.Module), f"{space.name}: build() returned {type(network).__name__}"
        forward_features = getattr(network, "forward_features", None)
        assert callable(forward_features), f"{space.name}: the network has no forward_features"
        with torch.no_grad():
            features = forward_features(_images())  # (B, D)
        assert isinstance(features, torch.Tensor) and features.dim() == 2 and features.shape[0] == BATCH, (
            f"{space.name}: forward_features gave shape {tuple(getattr(features, 'shape', ()))}, not (B, D)")
        assert torch.isfinite(features).all(), f"{space.name}: forward_features of {arch.key!r} is not finite"
        dim = getattr(network, "feature_dim", None)
        assert dim is None or dim == features.shape[1], f"{space.name}: feature_dim {dim} but features of width {features.shape[1]}"


def check_logits(space: SearchSpace) -> None:
    """`build(arch, num_classes)` is a classifier: `forward` gives finite (B, num_classes) logits."""
    arch = _samples(space, seed=4, count=1)[0]
    network = space.build(arch, num_classes=NUM_CLASSES)
    with torch.no_grad():
        logits = network(_images())  # (B, num_classes)
    assert isinstance(logits, torch.Tensor) and tuple(logits.shape) == (BATCH, NUM_CLASSES), (
        f"{space.name}: forward gave shape {tuple(getattr(logits, 'shape', ()))}, not ({BATCH}, {NUM_CLASSES})")
    assert torch.isfinite(logits).all(), f"{space.name}: logits of {arch.key!r} are not finite"


def check_mutate(space: SearchSpace) -> None:
    """SupportsMutate: children stay in the space, are reproducible from the rng and differ from their parent."""
    if not isinstance(space, SupportsMutate):
        return
    parents = _samples(space, seed=5)
    children = [space.mutate(parent, random.Random(i)) for i, parent in enumerate(parents)]
    again = [space.mutate(parent, random.Random(i)) for i, parent in enumerate(parents)]
    assert [c.key for c in children] == [c.key for c in again], f"{space.name}: mutate() is not reproducible from its rng"
    for parent, child in zip(parents, children):
        assert space.parse(child.key) == child == space.make(child.choices), (
            f"{space.name}: mutate({parent.key!r}) left the space: {child.key!r}")
    if _size(space) > 1:
        assert any(c != p for p, c in zip(parents, children)), f"{space.name}: mutate() never changes anything"


def check_enumerate(space: SearchSpace) -> None:
    """SupportsEnumerate: `enumerate()` is deterministic, without repeats, and (up to 50,000) counts `size()`."""
    if not isinstance(space, SupportsEnumerate):
        return
    size = space.size()
    assert isinstance(size, int) and size >= 1, f"{space.name}: size() is {size!r}"
    head = [a.key for a in itertools.islice(space.enumerate(), 100)]
    assert head == [a.key for a in itertools.islice(space.enumerate(), 100)], f"{space.name}: enumerate() order changes"
    if size > FULL_ENUMERATION:
        assert len(set(head)) == len(head), f"{space.name}: enumerate() repeats an architecture"
        return
    keys = [a.key for a in space.enumerate()]
    assert len(keys) == size, f"{space.name}: enumerate() gives {len(keys)} architectures, size() says {size}"
    assert len(set(keys)) == size, f"{space.name}: enumerate() repeats an architecture"
    every = set(keys)
    assert all(a.key in every for a in _samples(space)), f"{space.name}: sample() gives an architecture enumerate() lacks"


def check_is_degenerate(space: SearchSpace) -> None:
    """An `is_degenerate(arch)` method, where a space has one, answers a bool."""
    method = getattr(space, "is_degenerate", None)
    if method is None:
        return
    assert callable(method), f"{space.name}: is_degenerate is not a method"
    for arch in _samples(space):
        assert isinstance(method(arch), bool), f"{space.name}: is_degenerate({arch.key!r}) is not a bool"


def _size(space: SearchSpace) -> int:
    if isinstance(space, SupportsEnumerate):
        return space.size()
    size = 1
    for options in space.choices().values():
        size *= len(options)
    return size


SPACE_CHECKS: tuple[Check, ...] = (
    check_choices, check_round_trip, check_keys_identify_architectures, check_sample_is_seeded,
    check_malformed_text_is_a_user_error, check_features, check_logits, check_mutate, check_enumerate,
    check_is_degenerate,
)  # fmt: skip


def check_space(space: SearchSpace) -> None:
    """Every check of `SPACE_CHECKS` on `space` (AssertionError at the first broken one)."""
    for check in SPACE_CHECKS:
        check(space)


__all__ = [
    "SPACE_CHECKS", "Check", "check_choices", "check_enumerate", "check_features", "check_is_degenerate",
    "check_keys_identify_architectures", "check_logits", "check_malformed_text_is_a_user_error", "check_mutate",
    "check_round_trip", "check_sample_is_seeded", "check_space",
]  # fmt: skip
