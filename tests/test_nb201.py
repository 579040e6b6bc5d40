"""NAS-Bench-201 space: encoding, enumeration, networks, cost and the supernet."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssnas.errors import UserError
from ssnas.spaces import (
    SPACES,
    SearchSpace,
    SupportsEnumerate,
    SupportsMutate,
    SupportsSupernet,
    create_space,
    is_degenerate,
)
from ssnas.spaces.bn import recalibrate_bn
from ssnas.spaces.cost import count_macs, count_parameters
from ssnas.spaces.nb201 import DECISIONS, OP_NAMES, NB201Space
from ssnas.spaces.nb201 import _run_dag as nb201_run_dag

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
choice_lists = st.lists(st.sampled_from(OP_NAMES), min_size=6, max_size=6)


@pytest.fixture(scope="module")
def space() -> NB201Space:
    return NB201Space()


@pytest.fixture(scope="module")
def rows(nb201_csv: Path) -> list[dict[str, str]]:
    with nb201_csv.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_registered_and_implements_protocols() -> None:
    space = SPACES.create("nb201")
    for protocol in (SearchSpace, SupportsEnumerate, SupportsMutate, SupportsSupernet):
        assert isinstance(space, protocol)
    assert list(space.choices()) == ["edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"]
    assert all(list(ops) == list(OP_NAMES) for ops in space.choices().values())


# -- encoding -----------------------------------------------------------------------------


def test_parse_reads_edges_in_benchmark_order(space: NB201Space) -> None:
    arch = space.parse(BEST)
    assert arch.choices == (
        "nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_1x1",
    )
    assert arch.key == BEST == str(arch) == space.format(arch)
    assert dict(zip(DECISIONS, arch.choices))["edge_3_2"] == "nor_conv_1x1"


@given(choice_lists)
def test_format_then_parse_round_trips(choices: list[str]) -> None:
    space = NB201Space()
    arch = space.make(choices)
    assert space.parse(space.format(arch)) == arch
    assert space.parse(arch.key).key == arch.key


def test_every_benchmark_string_round_trips(space: NB201Space, rows: list[dict[str, str]]) -> None:
    for row in rows:
        assert space.format(space.parse(row["arch_str"])) == row["arch_str"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (BEST.replace("nor_conv_1x1", "conv_5x5"), "unknown op 'conv_5x5'; valid ops: none, skip_connect"),
        ("|none~0|+|none~0|none~1|", "expected 3 nodes"),
        (BEST + "+|none~0|", "expected 3 nodes"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 must have 2 incoming edges"),
        ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "must come from node 0"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~3|", "must come from node 2"),
        ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", "must look like 'op~src'"),
        ("none~0+|none~0|none~1|+|none~0|none~1|none~2|", "must look like '|op~src|...|'"),
        ("garbage", "expected 3 nodes"),
        ("", "expected 3 nodes"),
    ],
)
def test_parse_rejects_malformed_strings_with_reason(space: NB201Space, text: str, reason: str) -> None:
    with pytest.raises(UserError, match="bad NB201 architecture") as info:
        space.parse(text)
    assert reason in str(info.value)


@given(st.text(alphabet="|+~0123 nonekip_cvg", max_size=60))
@settings(max_examples=300)
def test_parse_accepts_only_canonical_strings(text: str) -> None:
    space = NB201Space()
    try:
        arch = space.parse(text)
    except UserError:
        return
    assert arch.key == text.strip()


def test_make_validates(space: NB201Space) -> None:
    with pytest.raises(UserError, match="needs 6 edge ops"):
        space.make(["none"] * 5)
    with pytest.raises(UserError, match="unknown NB201 op 'max_pool_3x3'"):
        space.make(["none"] * 5 + ["max_pool_3x3"])


# -- enumeration, sampling, mutation ------------------------------------------------------


def test_enumerate_covers_the_benchmark_once(space: NB201Space, rows: list[dict[str, str]]) -> None:
    keys = [arch.key for arch in space.enumerate()]
    assert len(keys) == space.size() == 15_625 == len(set(keys))
    assert keys[:2] == [
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|",
    ]
    assert set(keys) == {row["arch_str"] for row in rows}


def test_degenerate_cells_are_exactly_the_chance_level_ones(
    space: NB201Space, rows: list[dict[str, str]]
) -> None:
    flagged = {row["index"] for row in rows if space.is_degenerate(space.parse(row["arch_str"]))}
    chance = {row["index"] for row in rows if float(row["cifar10_test"]) == 10.0}
    assert len(flagged) == 341
    assert flagged == chance


def test_is_degenerate_by_hand(space: NB201Space) -> None:
    assert space.is_degenerate(space.make(["none"] * 6))
    # 0 -> 1 -> 2 exists but nothing reaches node 3 from a reached node.
    assert space.is_degenerate(space.make(["skip_connect", "none", "skip_connect", "none", "none", "none"]))
    assert not space.is_degenerate(space.make(["skip_connect", "none", "skip_connect", "none", "none", "avg_pool_3x3"]))
    assert not space.is_degenerate(space.make(["none", "none", "none", "nor_conv_1x1", "none", "none"]))


def test_is_degenerate_for_any_space(space: NB201Space) -> None:
    """`ssnas.spaces.is_degenerate`: the space's own check, False for spaces without degenerate cells."""
    assert is_degenerate(space, space.make(["none"] * 6))
    assert not is_degenerate(space, space.make(["none", "none", "none", "nor_conv_1x1", "none", "none"]))
    darts = create_space("darts")
    assert not is_degenerate(darts, darts.sample(random.Random(0)))


@given(st.integers(0, 2**32 - 1))
def test_sample_and_mutate_are_seeded(seed: int) -> None:
    space = NB201Space()
    arch = space.sample(random.Random(seed))
    assert arch == space.sample(random.Random(seed))
    child = space.mutate(arch, random.Random(seed))
    assert child == space.mutate(arch, random.Random(seed))
    changed = [e for e, (a, b) in enumerate(zip(arch.choices, child.choices)) if a != b]
    assert len(changed) == 1


# -- networks and cost --------------------------------------------------------------------


def test_network_contract_shapes() -> None:
    space = NB201Space(C=8, N=1)
    arch = space.parse(BEST)
    net = space.build(arch, num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    assert net.feature_dim == 32
    assert net.forward_features(x).shape == (2, 32)
    assert net(x).shape == (2, 10)
    assert space.build(arch).forward(x).shape == (2, 32)


def test_parameter_counts_match_every_benchmark_cell(
    space: NB201Space, rows: list[dict[str, str]]
) -> None:
    """15,421 cells match params_M exactly. The other 204 table entries are not the count
    of one network: in the source file they are the mean over 3 per-seed records, some of
    which belong to a different cell (199 equal (2 * ours + another cell's count) / 3)."""
    all_counts = {space.num_parameters(arch) for arch in space.enumerate()}
    mismatched, explained = 0, 0
    for row in rows:
        ours = space.num_parameters(space.parse(row["arch_str"]))
        table = float(row["params_M"]) * 1e6
        if abs(ours - table) <= 1.0:  # i.e. equal to 1e-6 M
            continue
        mismatched += 1
        other = 3 * table - 2 * ours
        explained += abs(other - round(other)) < 1e-2 and round(other) in all_counts
    assert mismatched == 204
    assert explained == 199
    assert space.num_parameters(space.parse(BEST)) == 1_073_466  # index 6111, params_M 1.073466


@pytest.mark.parametrize("seed", range(20))
def test_built_network_has_the_counted_parameters(space: NB201Space, seed: int) -> None:
    arch = space.sample(random.Random(seed))
    assert count_parameters(space.build(arch, num_classes=10)) == space.num_parameters(arch)


@pytest.mark.parametrize("seed", range(3))
def test_flops_match_a_full_forward(seed: int) -> None:
    space = NB201Space(C=8, N=2)
    arch = space.sample(random.Random(seed))
    net = space.build(arch, num_classes=10)
    assert count_macs(net, torch.zeros(1, 3, 32, 32)) == space.flops(arch)
    assert space.flops(space.make(["nor_conv_3x3"] * 6)) > space.flops(space.make(["nor_conv_1x1"] * 6))


# -- supernet ----------------------------------------------------------------------------


@pytest.fixture
def small() -> NB201Space:
    torch.manual_seed(0)
    return NB201Space(C=4, N=1)


def test_supernet_path_equals_its_extracted_network(small: NB201Space) -> None:
    supernet = small.build_supernet(num_classes=5)
    x = torch.randn(8, 3, 16, 16)
    for seed in range(4):
        arch = small.sample(random.Random(seed))
        subnet = small.extract_subnet(supernet, arch)
        torch.testing.assert_close(subnet(x), supernet(x, arch=arch))
        # The extracted weights fit a freshly built network of the same flags.
        fresh = small.build(arch, num_classes=5, affine=False, track_running_stats=False)
        fresh.load_state_dict(subnet.state_dict())
        torch.testing.assert_close(fresh(x), supernet(x, arch=arch))


def test_supernet_paths_differ_and_share_weights(small: NB201Space) -> None:
    supernet = small.build_supernet()
    x = torch.randn(4, 3, 16, 16)
    a = small.parse(BEST)
    b = small.mutate(a, random.Random(1))
    assert not torch.allclose(supernet.forward_features(x, arch=a), supernet.forward_features(x, arch=b))
    before = count_parameters(supernet)
    supernet.forward_features(x, arch=b)
    assert count_parameters(supernet) == before


def test_one_hot_mixture_equals_the_path(small: NB201Space) -> None:
    supernet = small.build_supernet(num_classes=3)
    x = torch.randn(4, 3, 16, 16)
    arch = small.parse(BEST)
    one_hot = torch.nn.functional.one_hot(torch.tensor(small.op_indices(arch)), len(OP_NAMES)).float()
    torch.testing.assert_close(supernet(x, op_weights=one_hot), supernet(x, arch=arch))


def test_mixture_gives_gradients_to_the_op_weights(small: NB201Space) -> None:
    supernet = small.build_supernet()
    alpha = (1e-3 * torch.randn(6, 5)).requires_grad_()
    supernet(torch.randn(4, 3, 16, 16), op_weights=alpha.softmax(dim=-1)).pow(2).mean().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0


def _cells(supernet: torch.nn.Module) -> list[torch.nn.Module]:
    return [layer for layer, is_cell in zip(supernet.layers, supernet.is_cell) if is_cell]


def test_fused_mixture_equals_the_plain_weighted_sum(small: NB201Space) -> None:
    """The fused mixture (shared ReLU/pool, stacked convs, `none` dropped) computes
    `sum_k w[e, k] * op_k(h)` per edge: same outputs and same gradients to the op weights."""
    supernet = small.build_supernet(num_classes=5)
    x = torch.randn(8, 3, 16, 16)
    alpha = torch.randn(6, 5, requires_grad=True)  # far from uniform, so every weight matters
    fused = supernet(x, op_weights=alpha.softmax(dim=-1))
    (fused_grad,) = torch.autograd.grad(fused.square().sum(), alpha)

    h = supernet.stem(x)
    for layer, is_cell in zip(supernet.layers, supernet.is_cell):
        h = layer.weighted_sum(h, alpha.softmax(dim=-1)) if is_cell else layer(h)
    plain = supernet.classifier(supernet.lastact(h).mean(dim=(2, 3)))
    (plain_grad,) = torch.autograd.grad(plain.square().sum(), alpha)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused_grad, plain_grad, rtol=1e-4, atol=1e-5)
    assert plain_grad.abs().sum() > 0


def test_fused_path_trains_like_the_plain_path(small: NB201Space) -> None:
    """A path through the fused cells gives the plain modules' outputs and weight gradients,
    `none` edges included (their sources' ops still get zero gradients, as with `Zero`)."""
    x = torch.randn(8, 3, 16, 16)
    arch = small.make(["nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "none", "nor_conv_1x1", "none"])
    supernet = small.build_supernet(num_classes=5)
    supernet(x, arch=arch).square().sum().backward()
    fused = {n: p.grad for n, p in supernet.named_parameters()}

    index = small.op_indices(arch)
    supernet.zero_grad(set_to_none=True)
    h = supernet.stem(x)
    for layer, is_cell in zip(supernet.layers, supernet.is_cell):
        h = nb201_run_dag(h, lambda e, v, cell=layer: cell.edges[e][index[e]](v)) if is_cell else layer(h)
    supernet.classifier(supernet.lastact(h).mean(dim=(2, 3))).square().sum().backward()
    plain = {n: p.grad for n, p in supernet.named_parameters()}
    assert [n for n, g in fused.items() if g is None] == [n for n, g in plain.items() if g is None]
    for name, grad in plain.items():
        if grad is not None:
            torch.testing.assert_close(fused[name], grad, rtol=1e-4, atol=1e-5)


def test_tracked_batch_norm_takes_the_plain_route(small: NB201Space) -> None:
    supernet = small.build_supernet(affine=True, track_running_stats=True)
    x, w = torch.randn(4, 3, 16, 16), torch.rand(6, 5)
    h = supernet.stem(x)
    cell = _cells(supernet)[0]
    torch.testing.assert_close(cell(h, op_weights=w), cell.weighted_sum(h, w), rtol=0, atol=0)


def test_supernet_rejects_ambiguous_calls(small: NB201Space) -> None:
    supernet = small.build_supernet()
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(ValueError, match="exactly one"):
        supernet(x)
    with pytest.raises(ValueError, match="exactly one"):
        supernet(x, arch=small.parse(BEST), op_weights=torch.ones(6, 5))
    with pytest.raises(ValueError, match=r"shape \(6, 5\)"):
        supernet(x, op_weights=torch.ones(5, 6))


def test_recalibrated_supernet_matches_recalibrated_extracted_network(small: NB201Space) -> None:
    supernet = small.build_supernet(num_classes=5)
    arch = small.parse(BEST)
    train_x, test_x = torch.randn(16, 3, 16, 16), torch.randn(4, 3, 16, 16)
    recalibrate_bn(supernet, train_x, arch=arch)
    subnet = recalibrate_bn(small.extract_subnet(supernet, arch), train_x)
    assert not supernet.training and not subnet.training
    torch.testing.assert_close(subnet(test_x), supernet(test_x, arch=arch))


def test_recalibrate_bn_averages_the_given_batches() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 1)
    model = torch.nn.Sequential(conv, torch.nn.BatchNorm2d(4, momentum=0.3), torch.nn.BatchNorm2d(4, track_running_stats=False))
    batches = [torch.randn(8, 3, 5, 5) + i for i in range(2)]
    recalibrate_bn(model, batches)
    with torch.no_grad():
        means = torch.stack([conv(b).mean(dim=(0, 2, 3)) for b in batches])
    assert not model.training
    torch.testing.assert_close(model[1].running_mean, means.mean(dim=0))
    assert model[1].momentum == 0.3
    assert model[2].track_running_stats and model[2].running_mean is not None
