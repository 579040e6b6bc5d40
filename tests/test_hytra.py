"""HyTra space (BossNAS): rules, per-block path lists, networks, weight-sharing supernet."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssnas.errors import UserError
from ssnas.spaces import SPACES, SupportsBlocks, SupportsMutate
from ssnas.spaces.hytra import (
    BOSSNET_T0,
    OPTIONS,
    PRESETS,
    HytraSpace,
    _make_op,
    _op_key,
    layer_plan,
)

torch.set_num_threads(1)
SCALE_LEVEL = {"4": 0, "8": 1, "16": 2, "32": 3}


def levels(path: tuple[str, ...]) -> list[int]:
    return [SCALE_LEVEL[o.split("@")[1]] for o in path]


@pytest.fixture(scope="module")
def free() -> HytraSpace:
    return HytraSpace()


@pytest.fixture(scope="module")
def restricted() -> HytraSpace:
    return HytraSpace(restricted=True)


def test_registered_and_protocols(free: HytraSpace) -> None:
    assert isinstance(SPACES.create("hytra", preset="imagenet", restricted=True), HytraSpace)
    assert isinstance(free, SupportsBlocks) and isinstance(free, SupportsMutate)
    assert [len(b.decisions) for b in free.blocks()] == [4, 4, 4, 4]


def _previous_ending_at(level: int) -> list[tuple[str, ...]]:
    """A block-0 path that ends at `level` (valid under both rules)."""
    ladder = ["conv@4", "conv@8", "conv@16", "conv@32"]
    return [tuple(ladder[: level + 1] + [ladder[level]] * (3 - level))]


@pytest.mark.parametrize(
    ("is_restricted", "counts"), [(False, [201, 129, 80, 16]), (True, [51, 99, 80, 16])]
)
def test_path_counts_by_start_scale(is_restricted: bool, counts: list[int]) -> None:
    space = HytraSpace(restricted=is_restricted)
    later = [len(space.block_paths(1, _previous_ending_at(lv))) for lv in (1, 2, 3)]
    got = [len(space.block_paths(0))] + later
    assert got == counts


@pytest.mark.parametrize("is_restricted", [False, True])
def test_every_candidate_path_respects_the_resolution_rule(is_restricted: bool) -> None:
    space = HytraSpace(restricted=is_restricted)
    for block in range(4):
        starts = [None] if block == 0 else [0, 1, 2, 3]
        for start in starts:
            previous = [] if start is None else _previous_ending_at(start)
            if block > 1:  # pad earlier blocks with paths staying at `start`
                scale = ("conv@4", "conv@8", "conv@16", "conv@32")[start]
                previous = previous + [(scale,) * 4] * (block - 1)
            paths = space.block_paths(block, previous)
            assert len(set(paths)) == len(paths) > 0
            before = -1 if start is None else start
            for path in paths:
                lv = levels(path)
                steps = [b - a for a, b in zip([max(before, 0)] + lv, lv)]
                assert all(s >= 0 for s in steps), path  # resolution never increases
                if is_restricted:
                    assert all(s <= 1 for s in steps), path
                assert all(o.startswith("conv") for o, v in zip(path, lv) if v < 2), path  # no att above 1/16
                space.make([o for p in previous for o in p] + list(path) + [path[-1]] * 4 * (3 - block))


def test_block_paths_needs_previous(free: HytraSpace) -> None:
    with pytest.raises(ValueError):
        free.block_paths(2, _previous_ending_at(1))


@given(st.integers(0, 10**6))
@settings(max_examples=50, deadline=None)
def test_key_round_trip(seed: int) -> None:
    for space in (HytraSpace(), HytraSpace(restricted=True)):
        arch = space.sample(random.Random(seed))
        assert arch.key == ":".join(arch.choices)
        assert space.parse(arch.key) == arch


@pytest.mark.parametrize(
    ("text", "free_ok"),
    [
        ("", False),
        (":".join(["conv@4"] * 15), False),
        (":".join(["conv@4"] * 17), False),
        (":".join(["conv@8", "conv@4"] + ["conv@4"] * 14), False),  # resolution goes up
        (":".join(["att@8"] * 16), False),  # no attention at 1/8
        (":".join(["conv@64"] * 16), False),
        (":".join(["Conv@4"] * 16), False),
        (":".join(["conv@4"] * 15 + ["conv@32 "]), False),
        (":".join(["conv@16"] * 16), True),  # stem -> 1/16 jumps two steps
        (":".join(["conv@4"] * 8 + ["conv@32"] * 8), True),  # 1/4 -> 1/32 in one layer
    ],
)
def test_parse_is_strict(free: HytraSpace, restricted: HytraSpace, text: str, free_ok: bool) -> None:
    with pytest.raises(UserError):
        restricted.parse(text)
    if free_ok:
        assert free.parse(text).key == text
    else:
        with pytest.raises(UserError):
            free.parse(text)


def test_bossnet_t0_is_valid(restricted: HytraSpace) -> None:
    arch = restricted.parse(BOSSNET_T0)
    assert sum(o.startswith("att") for o in arch.choices) == 9


def test_mutate_stays_valid(restricted: HytraSpace) -> None:
    rng = random.Random(0)
    arch = restricted.sample(rng)
    for _ in range(20):
        child = restricted.mutate(arch, rng)
        assert sum(a != b for a, b in zip(arch.choices, child.choices)) == 1
        arch = restricted.parse(child.key)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_architectures_train_step(free: HytraSpace, seed: int) -> None:
    arch = free.sample(random.Random(seed))
    net = free.build(arch, num_classes=10)
    x = torch.randn(4, 3, 32, 32)
    feats = net.forward_features(x)
    assert feats.shape == (4, net.feature_dim)
    loss = torch.nn.functional.cross_entropy(net(x), torch.arange(4))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in net.parameters())


def test_forward_blocks_shapes(free: HytraSpace) -> None:
    supernet = free.build_block_supernet()
    x = torch.randn(2, 3, 32, 32)
    channels = PRESETS["cifar"].channels
    rng = random.Random(3)
    for _ in range(3):
        paths: list[tuple[str, ...]] = []
        for block in range(4):
            paths.append(rng.choice(free.block_paths(block, paths)))
            level = levels(paths[-1])[-1]
            out = supernet.forward_blocks(x, paths)
            assert out.shape == (2, channels[level], 32 >> level, 32 >> level)
    out.mean().backward()
    with pytest.raises(ValueError):
        supernet.forward_blocks(x, [("conv@4",) * 3])


@pytest.mark.parametrize("train", [True, False])
def test_supernet_path_equals_standalone(free: HytraSpace, train: bool) -> None:
    torch.manual_seed(0)
    supernet = free.build_block_supernet()
    for module in supernet.modules():  # non-zero residual branches so the bodies matter
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
    arch = free.sample(random.Random(7))
    net = free.build(arch)
    net.stem.load_state_dict(supernet.stem.state_dict())
    for layer, (module, (option, in_level)) in enumerate(zip(net.layers, layer_plan(arch.choices))):
        module.load_state_dict(supernet.ops[_op_key(layer, option, in_level)].state_dict())
    supernet.train(train)
    net.train(train)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(supernet.forward_features(x, arch), net.forward_features(x))


def test_restricted_supernet_rejects_jumps(restricted: HytraSpace) -> None:
    supernet = restricted.build_block_supernet()
    with pytest.raises(ValueError):
        supernet.forward_blocks(torch.randn(1, 3, 32, 32), [("conv@16",) * 4])


def test_ops_zero_init_and_heads() -> None:
    imagenet = PRESETS["imagenet"]
    assert _make_op(imagenet, "att@32", 3).body[0].heads == 8
    assert _make_op(imagenet, "att@16", 1).body[0].heads == 4
    op = _make_op(PRESETS["cifar"], "att@16", 1).eval()  # 64 -> 128 ch, stride 2
    x = torch.randn(1, 64, 16, 16)
    # zero-initialised last BN: a fresh op is relu(shortcut(x))
    torch.testing.assert_close(op(x), torch.relu(op.shortcut(x)))
    assert op(x).shape == (1, 128, 8, 8)


def test_imagenet_preset_resolutions() -> None:
    space = HytraSpace(preset="imagenet", restricted=True)
    net = space.build(space.parse(":".join(["conv@4"] * 15 + ["conv@8"]))).eval()
    with torch.no_grad():
        out = net.layers(net.stem(torch.randn(1, 3, 64, 64)))
    assert out.shape == (1, 512, 8, 8)
    assert set(OPTIONS) == {"att@32", "conv@32", "att@16", "conv@16", "conv@8", "conv@4"}
