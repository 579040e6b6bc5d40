"""VKDNW (`ssnas.rating.vkdnw`): the Fisher information of a few weights under the network's own
predictions, checked in closed form on a linear softmax model; its decile entropy by hand; BN held
at the batch's statistics and put back; seeded, independent of candidate order, on supernet paths."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from ssnas.rating import EngineConfig, SIGNALS, network_signals, parse_ranker, score_architectures
from ssnas.rating import vkdnw
from ssnas.rating.registry import CannotRate
from ssnas.spaces import create_space
from ssnas.training.seeding import seeded

CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
    "|skip_connect~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
]


def _cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU())  # fmt: skip


def test_fisher_of_a_linear_softmax_model_is_the_closed_form(monkeypatch: pytest.MonkeyPatch) -> None:
    """f = A x + a (a Linear on the flattened image), z = W f + c: dz/dA_ij = W[:, i] x_j and
    dz/da_i = W[:, i], so F = mean_b J_b^T (diag p_b - p_b p_b^T) J_b is known exactly. Two entries
    per tensor (first and last): A_00, A_{4,11}, a_0, a_4."""
    monkeypatch.setattr(vkdnw, "PER_TENSOR", 2)
    with seeded(1):
        linear = nn.Linear(12, 5)
    model = nn.Sequential(nn.Flatten(), linear)
    images = torch.randn(6, 3, 2, 2, generator=torch.Generator().manual_seed(2))
    fisher, layers = vkdnw.fisher_information(model, images, seed=7)

    x = images.reshape(6, 12).double()
    weight, bias = (t.double() for t in vkdnw.classifier(5, vkdnw.CLASSES, 7))  # (K, 5), (K,)
    z = (x @ linear.weight.detach().double().T + linear.bias.detach().double()) @ weight.T + bias  # (B, K)
    p = torch.softmax(z, dim=1)
    expected = torch.zeros(4, 4, dtype=torch.float64)
    for b in range(6):
        jacobian = torch.stack([weight[:, 0] * x[b, 0], weight[:, 4] * x[b, 11], weight[:, 0], weight[:, 4]], dim=1)
        expected += jacobian.T @ (torch.diag(p[b]) - torch.outer(p[b], p[b])) @ jacobian / 6
    assert layers == 2
    torch.testing.assert_close(fisher, expected, rtol=1e-5, atol=1e-9)


def test_decile_entropy_by_hand() -> None:
    """Eigenvalues 0..9: decile j sits at position 0.9 j, so q_j = 0.9 j and H = ln 45 - sum_j j ln j / 45;
    equal eigenvalues give ln 9; one nonzero decile or none give 0."""
    by_hand = math.log(45) - sum(j * math.log(j) for j in range(1, 10)) / 45
    assert vkdnw.decile_entropy(torch.arange(10.0)) == pytest.approx(by_hand, rel=1e-12)
    assert vkdnw.decile_entropy(torch.full((7,), 3.0)) == pytest.approx(math.log(9), rel=1e-12)
    assert vkdnw.decile_entropy(torch.tensor([0.0] * 9 + [1.0])) == 0.0  # only q_9 = 0.1 is nonzero
    assert vkdnw.decile_entropy(torch.zeros(5)) == 0.0
    assert vkdnw.decile_entropy(torch.tensor([-1e-12, 1.0, 1.0])) == pytest.approx(  # rounding below 0 counts as 0
        vkdnw.decile_entropy(torch.tensor([0.0, 1.0, 1.0])))


def test_train_mode_batch_norm_is_held_at_the_batch_statistics_and_put_back() -> None:
    """In train mode each image is rated with BN on the batch's (biased) statistics held fixed: the
    same Fisher information as the network in eval mode with those statistics as running ones.
    Running statistics, the batch counter and the modes are as before."""
    with seeded(0):
        model = _cnn()
    images = torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    held = copy.deepcopy(model).eval()
    x = images
    with torch.no_grad():
        for layer in held:
            if isinstance(layer, nn.BatchNorm2d):
                layer.running_mean = x.mean(dim=(0, 2, 3))
                layer.running_var = x.var(dim=(0, 2, 3), unbiased=False)
            x = layer(x)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fisher, layers = vkdnw.fisher_information(model.train(), images, seed=0)
    expected, _ = vkdnw.fisher_information(held, images, seed=0)
    torch.testing.assert_close(fisher, expected, rtol=1e-4, atol=1e-10)
    assert layers == 8  # 2 conv weights + biases, 2 BN weights + biases
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_values_are_seeded_and_do_not_depend_on_candidate_order() -> None:
    space = create_space("nb201", C=4, N=1)
    archs = [space.parse(cell) for cell in CELLS]
    images = torch.randint(0, 256, (12, 3, 32, 32), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    config = EngineConfig(batch_size=8, seed=3)
    forward = score_architectures(space, archs, "vkdnw+vkdnw-entropy", images, config).columns
    again = score_architectures(space, archs, "vkdnw+vkdnw-entropy", images, config).columns
    backward = score_architectures(space, archs[::-1], "vkdnw+vkdnw-entropy", images, config).columns
    other_seed = score_architectures(space, archs, "vkdnw-entropy", images, EngineConfig(batch_size=8, seed=4)).columns
    assert forward == again
    assert all(forward[name] == backward[name][::-1] for name in forward)
    assert forward["vkdnw-entropy"] != other_seed["vkdnw-entropy"]
    assert all(0 <= h <= math.log(9) for h in forward["vkdnw-entropy"])


def test_vkdnw_orders_by_trainable_layers_then_entropy() -> None:
    """VKDNW_single = aleph + H / ln 10: aleph decides, H breaks its ties (H <= ln 9 < ln 10)."""
    space = create_space("nb201", C=4, N=1)
    images = torch.randint(0, 256, (8, 3, 32, 32), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    columns = score_architectures(space, [space.parse(c) for c in CELLS], "vkdnw+vkdnw-layers+vkdnw-entropy", images,
                                  EngineConfig(batch_size=8)).columns  # fmt: skip
    with seeded(0):
        counts = [len(list(space.build(space.parse(c)).parameters())) for c in CELLS]
    assert columns["vkdnw-layers"] == [float(c) for c in counts]  # standalone: every tensor reaches the output
    for value, layers, entropy in zip(columns["vkdnw"], columns["vkdnw-layers"], columns["vkdnw-entropy"]):
        assert value == layers + entropy / math.log(10) and layers <= value < layers + 1
    assert parse_ranker("vkdnw").leaves() == ["vkdnw"]
    assert parse_ranker("vkdnw-agg").leaves() == ["vkdnw", "az-expressivity", "az-trainability", "flops"]


def test_supernet_path_counts_only_the_path_and_leaves_the_supernet_as_it_was() -> None:
    space = create_space("nb201", C=4, N=1)
    with seeded(0):
        supernet = space.build_supernet()
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    paths = [network_signals(supernet, ["vkdnw-layers", "vkdnw"], images, seed=0, arch=space.parse(c)) for c in CELLS]
    layers = [values["vkdnw-layers"][0] for values in paths]
    assert layers[2] < layers[1] < layers[0] < len(list(supernet.parameters()))  # pools < mixed < all conv3x3
    assert all(math.isfinite(values["vkdnw"][0]) for values in paths)
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())


def test_a_network_without_trainable_parameters_is_refused_in_one_line() -> None:
    with pytest.raises(CannotRate, match=r"^vkdnw reads the parameters") as error:
        SIGNALS.of("vkdnw").compute(nn.Sequential(nn.AvgPool2d(2), nn.Flatten()), torch.randn(4, 3, 8, 8))
    assert "\n" not in str(error.value)
