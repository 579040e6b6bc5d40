"""NATS-Bench size space: encoding, networks, slimmable supernet, blocks, FLOPs."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ssnas.errors import UserError
from ssnas.spaces import SPACES, SupportsBlocks, SupportsEnumerate, SupportsMutate
from ssnas.spaces.cost import count_macs
from ssnas.spaces.nats_size import WIDTHS, NatsSizeSpace

torch.set_num_threads(1)
WIDTH_TEXT = st.sampled_from([str(w) for w in WIDTHS])


@pytest.fixture
def space() -> NatsSizeSpace:
    return NatsSizeSpace()


def test_registered_and_protocols(space: NatsSizeSpace) -> None:
    assert isinstance(SPACES.create("nats-size"), NatsSizeSpace)
    for protocol in (SupportsBlocks, SupportsEnumerate, SupportsMutate):
        assert isinstance(space, protocol)
    assert space.size() == 32768
    archs = list(space.enumerate())
    assert len(archs) == len(set(archs)) == 32768
    assert archs[0].key == "8:8:8:8:8" and archs[-1].key == "64:64:64:64:64"


@given(st.lists(WIDTH_TEXT, min_size=5, max_size=5))
def test_key_round_trip(widths: list[str]) -> None:
    space = NatsSizeSpace()
    arch = space.make(widths)
    assert arch.key == ":".join(widths)
    assert space.parse(arch.key) == arch


@pytest.mark.parametrize(
    "text",
    ["", "64:32:48:16", "64:32:48:16:64:8", "64:32:48:16:65", "064:32:48:16:64",
     " 64:32:48:16:64", "64:32:48:16:0", "a:b:c:d:e", "64,32,48,16,64", "64:32:48::64"],
)
def test_parse_is_strict(space: NatsSizeSpace, text: str) -> None:
    with pytest.raises(UserError):
        space.parse(text)


@given(st.text(max_size=30))
def test_parse_never_crashes_unexpectedly(text: str) -> None:
    space = NatsSizeSpace()
    try:
        arch = space.parse(text)
    except UserError:
        return
    assert arch.key == text


def test_sample_and_mutate_are_seeded(space: NatsSizeSpace) -> None:
    a = [space.sample(random.Random(3)) for _ in range(2)]
    assert a[0] == a[1]
    child = space.mutate(a[0], random.Random(0))
    assert sum(x != y for x, y in zip(child.choices, a[0].choices)) == 1


def test_standalone_network_shapes(space: NatsSizeSpace) -> None:
    arch = space.parse("16:24:32:40:48")
    net = space.build(arch, num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    assert net.feature_dim == 48
    assert net.forward_features(x).shape == (2, 48)
    logits = net(x)
    assert logits.shape == (2, 10)
    logits.sum().backward()
    # exact-width weights: no hidden 64-wide tensors in a standalone network
    assert max(p.shape[0] for p in net.parameters()) <= 48


def test_widths_change_param_count(space: NatsSizeSpace) -> None:
    small = sum(p.numel() for p in space.build(space.parse("8:8:8:8:8")).parameters())
    big = sum(p.numel() for p in space.build(space.parse("64:64:64:64:64")).parameters())
    assert small < big


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("key", ["64:32:48:16:64", "8:64:8:64:8", "24:24:40:40:56"])
def test_slimmable_equals_standalone_with_sliced_weights(space: NatsSizeSpace, key: str, train: bool) -> None:
    """The supernet at widths w is the standalone net of widths w with the first-c weights."""
    torch.manual_seed(0)
    supernet = space.build_block_supernet()
    with torch.no_grad():  # non-trivial BN affine + running stats so eval mode is tested too
        for name, tensor in supernet.state_dict().items():
            if tensor.is_floating_point() and ("bn" in name):
                tensor.uniform_(0.5, 1.5)
    arch = space.parse(key)
    net = space.build(arch)
    full = supernet.state_dict()
    sliced = {}
    for name, tensor in net.state_dict().items():
        sliced[name] = full[name][tuple(slice(0, n) for n in tensor.shape)]
    net.load_state_dict(sliced)
    supernet.train(train)
    net.train(train)
    x = torch.randn(4, 3, 32, 32)
    expected = net.forward_features(x)
    got = supernet.forward_features(x, arch)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    paths = [arch.choices[:2], arch.choices[2:4], arch.choices[4:]]
    pooled = supernet.body.pool(supernet.forward_blocks(x, paths))
    torch.testing.assert_close(pooled, expected, rtol=1e-4, atol=1e-5)


def test_blocks_and_paths() -> None:
    space = NatsSizeSpace()
    assert [b.decisions for b in space.blocks()] == [("C0", "C1"), ("C2", "C3"), ("C4",)]
    assert [len(space.block_paths(b)) for b in range(3)] == [64, 64, 8]
    c100 = NatsSizeSpace(block_layers=(2, 1, 2))
    assert [len(c100.block_paths(b)) for b in range(3)] == [64, 8, 64]
    with pytest.raises(UserError):
        NatsSizeSpace(block_layers=(2, 2, 2))


def test_forward_blocks_shapes(space: NatsSizeSpace) -> None:
    supernet = space.build_block_supernet()
    x = torch.randn(2, 3, 32, 32)
    assert supernet.forward_blocks(x, [("8", "16")]).shape == (2, 16, 16, 16)
    assert supernet.forward_blocks(x, [("8", "16"), ("24", "32")]).shape == (2, 32, 8, 8)
    out = supernet.forward_blocks(x, [("8", "16"), ("24", "32"), ("40",)])
    assert out.shape == (2, 40, 8, 8)
    out.mean().backward()
    assert supernet.body.stem_conv.weight.grad is not None
    with pytest.raises(ValueError):
        supernet.forward_blocks(x, [("8",)])


@pytest.mark.parametrize("key", ["64:64:64:64:64", "8:16:24:32:40", "32:32:8:8:64"])
def test_flops_matches_counted_macs(space: NatsSizeSpace, key: str) -> None:
    arch = space.parse(key)
    counted = count_macs(space.build(arch, num_classes=10), torch.zeros(1, 3, 32, 32))
    assert space.flops(arch) == counted
