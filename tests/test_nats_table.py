"""ssnas's nats-size strings and networks against NATS-Bench's own table (nats_sss.csv)."""

from __future__ import annotations

from pathlib import Path

import torch

from ssnas.groundtruth.tables import TABLES
from ssnas.spaces import create_space


def test_enumeration_order_and_strings_match_the_benchmark_index(shared_data: Path) -> None:
    table = TABLES.create("nats-sss", path=shared_data / "benchmarks" / "nats_sss.csv")
    space = create_space("nats-size")
    archs = list(space.enumerate())
    assert len(archs) == len(table) == 32768
    assert [a.key for a in archs] == table.keys()
    assert list(table.indices()) == list(range(32768))
    assert table.query("64:64:64:64:64", "cifar10_valid") == max(table.column("cifar10_valid"))


def test_network_widths_follow_the_string_position_by_position() -> None:
    """Position i of 'C0:C1:C2:C3:C4' is the output width of layer i (cell, reduction, cell, reduction, cell)."""
    network = create_space("nats-size").build(create_space("nats-size").parse("8:16:24:32:40"))
    widths: list[int] = []
    handles = [m.register_forward_hook(lambda _m, _i, out: widths.append(out.shape[1])) for m in network.feature_layers()]
    network.forward_features(torch.zeros(2, 3, 32, 32))
    for handle in handles:
        handle.remove()
    assert widths == [8, 8, 16, 24, 32, 40]  # stem (C0), then the five layers
