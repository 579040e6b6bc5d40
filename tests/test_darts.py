"""DARTS cell space: genotype text forms, flat choices, CSNAS decoding, the network."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssnas.errors import UserError
from ssnas.spaces import SPACES, SearchSpace, SupportsMutate
from ssnas.spaces.base import Architecture
from ssnas.spaces.cost import count_parameters
from ssnas.spaces.darts import (
    DARTS_OPS,
    DARTS_V1,
    DARTS_V2,
    GENOTYPE_OPS,
    DartsNetwork,
    DartsSpace,
    Genotype,
    csnas_num_edges,
    decode_csnas,
    drop_path,
)

# --------------------------------------------------------------------------- genotypes


@st.composite
def cells(draw: st.DrawFn, steps: int) -> tuple[tuple[tuple[str, int], ...], tuple[int, ...]]:
    edges: list[tuple[str, int]] = []
    for node in range(2, 2 + steps):
        a, b = draw(st.lists(st.integers(0, node - 1), min_size=2, max_size=2, unique=True))
        edges += [(draw(st.sampled_from(GENOTYPE_OPS)), a), (draw(st.sampled_from(GENOTYPE_OPS)), b)]
    concat = draw(st.lists(st.integers(2, steps + 1), min_size=1, unique=True))
    return tuple(edges), tuple(sorted(concat))


@st.composite
def genotypes(draw: st.DrawFn) -> Genotype:
    steps = draw(st.integers(1, 6))
    normal, normal_concat = draw(cells(steps))
    reduce, reduce_concat = draw(cells(steps))
    return Genotype(normal, normal_concat, reduce, reduce_concat)


@given(genotypes())
def test_genotype_repr_round_trip(genotype: Genotype) -> None:
    assert Genotype.from_text(str(genotype)) == genotype


@given(genotypes())
def test_genotype_json_round_trip(genotype: Genotype) -> None:
    assert Genotype.from_text(genotype.to_json()) == genotype


@given(st.text(max_size=200))
def test_any_text_parses_or_raises_user_error(text: str) -> None:
    try:
        Genotype.from_text(text)
    except UserError:
        pass


def test_darts_paper_forms_are_accepted() -> None:
    published = (
        "DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
        "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
        "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
    )
    assert Genotype.from_text(published) == DARTS_V2
    assert "normal_concat=range(2, 6)" in str(DARTS_V2)
    assert Genotype.from_text(str(DARTS_V2).replace("Genotype(", "genotypes.Genotype(")) == DARTS_V2


_CELL = "[('skip_connect', 0), ('sep_conv_3x3', 1)]"


def _text(normal: str = _CELL, normal_concat: str = "[2]", reduce: str = _CELL) -> str:
    return f"Genotype(normal={normal}, normal_concat={normal_concat}, reduce={reduce}, reduce_concat=[2])"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "malformed"),
        ("Genotype(normal=[", "malformed"),
        ("Genome(normal=[])", "malformed"),
        ("{not json", "JSON is malformed"),
        ("[1, 2]", "malformed"),
        (_text(normal="[('sep_conv_7x7', 0), ('skip_connect', 1)]"), "unknown op 'sep_conv_7x7'; valid ops: max_pool_3x3"),
        (_text(normal="[('none', 0), ('skip_connect', 1)]"), "'none' cannot appear"),
        (_text(normal="[('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 0)]"), "3 entries"),
        (_text(normal="[]"), "0 entries"),
        (_text(normal="[('skip_connect', 0), ('skip_connect', 2)]"), "input 2 is out of range"),
        (_text(normal="[('skip_connect', 1), ('skip_connect', 1)]"), "takes input 1 twice"),
        (_text(normal="[('skip_connect', 0), ('skip_connect', True)]"), "not an (op name, input index) pair"),
        (_text(normal="[('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 0), ('skip_connect', 1)]"), "same number"),
        (_text(normal_concat="[3]"), "out of range"),
        (_text(normal_concat="[]"), "non-empty"),
        (_text(normal_concat="range(0, 1000000000)"), "far longer"),
        (_text(normal_concat="open('x')"), "not a literal"),
        (_text().replace(", reduce_concat=[2]", ""), "missing reduce_concat"),
        (_text().replace("reduce_concat", "reduce_cat"), "unknown reduce_cat"),
        ('{"normal": [["skip_connect", 0], ["skip_connect", 1]], "normal_concat": [2]}', "missing reduce"),
    ],
)
def test_invalid_genotype_text_raises_user_error(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Genotype.from_text(text)


def test_canonical_orders_each_node_by_input() -> None:
    swapped = Genotype(
        [("skip_connect", 1), ("sep_conv_3x3", 0)], [2], [("max_pool_3x3", 0), ("avg_pool_3x3", 1)], [2]
    )
    assert swapped.canonical().normal == (("sep_conv_3x3", 0), ("skip_connect", 1))
    assert swapped.canonical().reduce == swapped.reduce


# --------------------------------------------------------------------------- the space


def test_space_is_registered_and_implements_the_protocols() -> None:
    space = SPACES.create("darts")
    assert isinstance(space, DartsSpace)
    assert isinstance(space, SearchSpace) and isinstance(space, SupportsMutate)


def test_choices_enumerate_distinct_input_pairs() -> None:
    choices = DartsSpace(steps=4).choices()
    assert len(choices) == 2 * 4 * 3
    assert choices["normal.n2.inputs"] == ("0,1",)
    assert choices["reduce.n4.inputs"] == ("0,1", "0,2", "0,3", "1,2", "1,3", "2,3")
    assert choices["normal.n5.op_a"] == GENOTYPE_OPS


@settings(max_examples=60)
@given(st.integers(1, 5), st.data())
def test_every_flat_choice_is_valid_and_round_trips(steps: int, data: st.DataObject) -> None:
    space = DartsSpace(steps=steps, multiplier=min(steps, 4))
    values = [data.draw(st.sampled_from(options)) for options in space.choices().values()]
    arch = space.make(values)
    assert space.parse(arch.key) == arch
    assert space.parse(space.genotype(arch).to_json()) == arch
    assert arch.key == str(space.genotype(arch))


def test_parse_is_order_insensitive_within_a_node() -> None:
    space = DartsSpace()
    arch = space.parse(str(DARTS_V2))
    assert space.parse(str(DARTS_V2.canonical())) == arch
    assert arch.key == str(DARTS_V2.canonical())
    assert space.genotype(arch) == DARTS_V2.canonical()


def test_parse_rejects_genotypes_that_do_not_fit_the_space() -> None:
    with pytest.raises(UserError, match="steps=5"):
        DartsSpace(steps=5).parse(str(DARTS_V2))
    with pytest.raises(UserError, match="multiplier=2"):
        DartsSpace(multiplier=2).parse(str(DARTS_V2))
    with pytest.raises(UserError, match="dil_conv_3x3"):
        DartsSpace(ops=("sep_conv_3x3", "skip_connect", "max_pool_3x3")).parse(str(DARTS_V2))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["0,1"], "takes 24 choices"),
        (["0,2"] + ["x"] * 23, "normal.n2.inputs='0,2' is invalid"),
    ],
)
def test_make_rejects_invalid_choices(values: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        DartsSpace().make(values)


def test_sample_is_seeded_and_mutate_changes_one_decision() -> None:
    space = DartsSpace()
    assert space.sample(random.Random(3)) == space.sample(random.Random(3))
    rng = random.Random(0)
    arch = space.sample(rng)
    for _ in range(50):
        child = space.mutate(arch, rng)
        assert sum(a != b for a, b in zip(arch.choices, child.choices)) == 1
        arch = child


def test_build_rejects_a_foreign_architecture() -> None:
    with pytest.raises(UserError, match="not from a darts space"):
        DartsSpace().build(Architecture("nb201", ("none",) * 6, "|none~0|+..."))


# --------------------------------------------------------------------------- CSNAS decoder


def _encoding(node_ops: list[list[str]], reduce_op: str = "sep_conv_3x3") -> list[str]:
    """Normal cell given per node (lists of len 2, 3, ...); reduce cell all `reduce_op`."""
    normal = [op for ops in node_ops for op in ops]
    return normal + [reduce_op] * len(normal)


def test_csnas_edge_counts() -> None:
    assert csnas_num_edges(4) == 14 and csnas_num_edges(5) == 20


def test_csnas_keeps_the_non_none_edges() -> None:
    nodes = [
        ["sep_conv_3x3", "dil_conv_5x5"],
        ["none", "skip_connect", "max_pool_3x3"],
        ["avg_pool_3x3", "none", "none", "sep_conv_5x5"],
        ["none", "none", "dil_conv_3x3", "none", "skip_connect"],
    ]
    expected = (
        ("sep_conv_3x3", 0), ("dil_conv_5x5", 1),
        ("skip_connect", 1), ("max_pool_3x3", 2),
        ("avg_pool_3x3", 0), ("sep_conv_5x5", 3),
        ("dil_conv_3x3", 2), ("skip_connect", 4),
    )  # fmt: skip
    for rng in [None, *(random.Random(seed) for seed in range(10))]:
        genotype = decode_csnas(_encoding(nodes), steps=4, rng=rng)
        assert genotype.normal == expected
        assert genotype.normal_concat == (2, 3, 4, 5)


def test_csnas_all_none_node_falls_back_to_random_edges_and_ops() -> None:
    nodes = [["none"] * 2, ["none"] * 3, ["none"] * 4, ["sep_conv_3x3"] + ["none"] * 4]
    deterministic = decode_csnas(_encoding(nodes), steps=4, rng=None)
    assert deterministic.normal == (
        ("max_pool_3x3", 0), ("max_pool_3x3", 1),
        ("max_pool_3x3", 0), ("max_pool_3x3", 1),
        ("max_pool_3x3", 0), ("max_pool_3x3", 1),
        ("sep_conv_3x3", 0), ("max_pool_3x3", 1),
    )  # fmt: skip
    pairs, ops = set(), set()
    for seed in range(40):
        genotype = decode_csnas(_encoding(nodes), steps=4, rng=random.Random(seed))
        assert genotype.normal[6] == ("sep_conv_3x3", 0)  # the one non-none edge is always kept
        pairs.add((genotype.normal[4][1], genotype.normal[5][1]))
        ops.update(op for op, _ in genotype.normal)
    assert pairs == {(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)}
    assert ops == set(GENOTYPE_OPS)


def test_csnas_breaks_ties_among_non_none_edges_with_the_rng() -> None:
    nodes = [["skip_connect"] * 2, ["skip_connect"] * 3, ["skip_connect"] * 4, ["skip_connect"] * 5]
    assert decode_csnas(_encoding(nodes), rng=None).normal[6:] == (("skip_connect", 0), ("skip_connect", 1))
    seen = {decode_csnas(_encoding(nodes), rng=random.Random(seed)).normal[6:] for seed in range(60)}
    assert len(seen) == 10  # all C(5, 2) input pairs of node 5


def test_csnas_steps5_integer_encoding_and_errors() -> None:
    encoding = [DARTS_OPS.index("sep_conv_5x5")] * 40
    genotype = decode_csnas(encoding, steps=5, rng=random.Random(0))
    assert genotype.steps == 5 and genotype.reduce_concat == (3, 4, 5, 6)
    assert DartsSpace(steps=5).from_genotype(genotype).space == "darts"
    with pytest.raises(UserError, match="needs 40"):
        decode_csnas(encoding[:-1], steps=5)
    with pytest.raises(UserError, match="unknown op 'conv'"):
        decode_csnas(["conv"] + encoding[1:], steps=5)


# --------------------------------------------------------------------------- network


@pytest.mark.parametrize("seed", range(4))
def test_random_genotype_forward_and_backward(seed: int) -> None:
    torch.manual_seed(seed)
    space = DartsSpace(C=8, layers=5)
    net = space.build(space.sample(random.Random(seed)), num_classes=10, drop_path_prob=0.2)
    logits = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    logits.square().mean().backward()
    grad = net.stem[0].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert net.feature_dim == 4 * 8 * 4
    assert net.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 128)


def test_reduction_cells_halve_resolution_and_double_width() -> None:
    space = DartsSpace(C=8, layers=5)
    net = space.build(space.sample(random.Random(1)))
    shapes: list[tuple[int, ...]] = []
    for cell in net.cells:
        cell.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
    net(torch.randn(2, 3, 32, 32))
    assert [cell.reduction for cell in net.cells] == [False, True, False, True, False]
    assert shapes == [(2, 32, 32, 32), (2, 64, 16, 16), (2, 64, 16, 16), (2, 128, 8, 8), (2, 128, 8, 8)]


def test_features_only_network_returns_features() -> None:
    net = DartsNetwork(DARTS_V1, C=8, layers=3)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, net.feature_dim)


def test_auxiliary_head_only_in_training() -> None:
    net = DartsNetwork(DARTS_V2, C=8, layers=5, num_classes=7, auxiliary=True)
    logits, aux_logits = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == aux_logits.shape == (2, 7)
    net.eval()
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    with pytest.raises(UserError, match="needs num_classes"):
        DartsNetwork(DARTS_V2, auxiliary=True)


def test_drop_path_zeroes_whole_samples_and_only_in_training() -> None:
    torch.manual_seed(0)
    x = torch.ones(1000, 2, 3, 3)
    out = drop_path(x, 0.3)
    per_sample = out.flatten(1)  # (B, 2*3*3)
    values = per_sample.unique()
    assert len(values) == 2 and values[0] == 0 and values[1].item() == pytest.approx(1 / 0.7)
    assert 0.2 < (per_sample[:, 0] == 0).float().mean() < 0.4
    assert (per_sample.min(1).values == per_sample.max(1).values).all()
    net = DartsNetwork(DARTS_V2, C=8, layers=3, drop_path_prob=0.5)
    x = torch.randn(4, 3, 32, 32)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    torch.manual_seed(0)
    with_drop = net(x)
    net.drop_path_prob = 0.0
    torch.manual_seed(0)
    assert not torch.allclose(with_drop, net(x))


def test_darts_v2_parameter_count() -> None:
    """DARTS reports 3.3M for DARTS-V2 (C=36, 20 cells), counting without the auxiliary head;
    its training log prints `param size = 3.349342MB`."""
    plain = DartsNetwork(DARTS_V2, C=36, layers=20, num_classes=10)
    assert count_parameters(plain) == 3_349_342
    with_aux = DartsNetwork(DARTS_V2, C=36, layers=20, num_classes=10, auxiliary=True)
    assert with_aux.auxiliary_head is not None
    assert count_parameters(with_aux) == 3_825_768
    assert count_parameters(with_aux) - count_parameters(with_aux.auxiliary_head) == 3_349_342
    assert count_parameters(DartsNetwork(DARTS_V1, C=36, layers=20, num_classes=10)) == 3_169_414


@pytest.mark.parametrize("options", [{}, {"steps": 5, "multiplier": 3, "layers": 5, "C": 8}])
def test_closed_form_costs_count_the_built_network(options: dict[str, int]) -> None:
    """`num_parameters` and `flops` (per-op counts, cached) equal counting the built 10-class network."""
    from ssnas.spaces.cost import count_macs

    space = DartsSpace(**options)
    rng = random.Random(7)
    for _ in range(4):
        arch = space.sample(rng)
        network = space.build(arch, num_classes=10)
        assert space.num_parameters(arch) == count_parameters(network)
        assert space.flops(arch) == count_macs(network, torch.zeros(1, 3, 32, 32))
