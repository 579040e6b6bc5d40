"""MBConv space (BossNAS ranking space): encoding, networks, per-(layer, op) supernet, blocks."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ssnas.errors import UserError
from ssnas.spaces import SPACES, SupportsBlocks, SupportsMutate, SupportsSupernet
from ssnas.spaces.mbconv import OPS, MBConvSpace

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def space() -> MBConvSpace:
    return MBConvSpace()


def test_registered_and_protocols(space: MBConvSpace) -> None:
    assert isinstance(SPACES.create("mbconv", preset="imagenet"), MBConvSpace)
    for protocol in (SupportsBlocks, SupportsMutate, SupportsSupernet):
        assert isinstance(space, protocol)
    assert space.size() == 4**18
    with pytest.raises(UserError):
        MBConvSpace(preset="tiny")


@given(st.lists(st.sampled_from(OPS), min_size=18, max_size=18))
def test_key_round_trip(ops: list[str]) -> None:
    space = MBConvSpace()
    arch = space.make(ops)
    assert arch.key == ":".join(ops)
    assert space.parse(arch.key) == arch


@pytest.mark.parametrize(
    "text",
    ["", ":".join(["mb6_k3"] * 17), ":".join(["mb6_k3"] * 19), ":".join(["mb6_k3"] * 17 + ["mb6_k7"]),
     ":".join(["MB6_K3"] * 18), ",".join(["mb6_k3"] * 18), ":".join(["mb6_k3"] * 17 + [" mb6_k3"])],
)
def test_parse_is_strict(space: MBConvSpace, text: str) -> None:
    with pytest.raises(UserError):
        space.parse(text)


def test_blocks_and_paths(space: MBConvSpace) -> None:
    assert [len(b.decisions) for b in space.blocks()] == [2, 4, 4, 4, 4]
    counts = [len(space.block_paths(b)) for b in range(5)]
    assert counts == [16, 256, 256, 256, 256]
    paths = space.block_paths(1)
    assert len(set(paths)) == 256 and all(len(p) == 4 for p in paths)


def test_standalone_forward_backward(space: MBConvSpace) -> None:
    net = space.build(space.sample(random.Random(0)), num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    assert net.forward_features(x).shape == (2, net.feature_dim)
    net(x).sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_ops_change_param_count(space: MBConvSpace) -> None:
    big = sum(p.numel() for p in space.build(space.make(["mb6_k5"] * 18)).parameters())
    small = sum(p.numel() for p in space.build(space.make(["mb3_k3"] * 18)).parameters())
    assert small < big


def test_imagenet_preset_resolution() -> None:
    space = MBConvSpace(preset="imagenet")
    supernet = space.build_block_supernet()
    paths = [space.block_paths(b)[0] for b in range(5)]
    out = supernet.forward_blocks(torch.randn(1, 3, 64, 64), paths)
    assert out.shape == (1, 192, 2, 2)  # total stride 32


def test_forward_blocks_shapes(space: MBConvSpace) -> None:
    supernet = space.build_block_supernet()
    x = torch.randn(2, 3, 32, 32)
    rng = random.Random(1)
    expected = [(16, 32), (24, 16), (40, 8), (56, 8), (96, 4)]
    paths: list[tuple[str, ...]] = []
    for block, (channels, size) in enumerate(expected):
        paths.append(rng.choice(space.block_paths(block, paths)))
        assert supernet.forward_blocks(x, paths).shape == (2, channels, size, size)
    with pytest.raises(ValueError):
        supernet.forward_blocks(x, [("mb6_k3",)])


@pytest.mark.parametrize("train", [True, False])
def test_supernet_path_equals_standalone(space: MBConvSpace, train: bool) -> None:
    torch.manual_seed(0)
    supernet = space.build_block_supernet()
    arch = space.sample(random.Random(5))
    net = space.build(arch)
    net.stem.load_state_dict(supernet.stem.state_dict())
    net.head.load_state_dict(supernet.head.state_dict())
    for layer, candidates, op in zip(net.layers, supernet.candidates, arch.choices):
        layer.load_state_dict(candidates[OPS.index(op)].state_dict())
    supernet.train(train)
    net.train(train)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(supernet.forward_features(x, arch=arch), net.forward_features(x))


def test_one_hot_op_weights_equal_the_path(space: MBConvSpace) -> None:
    torch.manual_seed(0)
    supernet = space.build_supernet().eval()
    arch = space.sample(random.Random(2))
    one_hot = torch.zeros(18, 4)
    for i, op in enumerate(arch.choices):
        one_hot[i, OPS.index(op)] = 1.0
    x = torch.randn(2, 3, 32, 32)
    mixed = supernet.forward_features(x, op_weights=one_hot)
    torch.testing.assert_close(mixed, supernet.forward_features(x, arch=arch))
    with pytest.raises(ValueError):
        supernet.forward_features(x, op_weights=torch.zeros(18, 3))


def test_mutate_changes_one_layer(space: MBConvSpace) -> None:
    arch = space.sample(random.Random(0))
    child = space.mutate(arch, random.Random(0))
    assert sum(a != b for a, b in zip(arch.choices, child.choices)) == 1
