"""SETN pieces: the evaluator distribution, the evaluator step, and label-free rating."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from ssnas.objectives import Batch, create_objective
from ssnas.spaces import create_space
from ssnas.strategies.evaluator import ArchitectureDistribution
from ssnas.rating import frozen_batch_norm
from ssnas.strategies.supernet_rating import RatingConfig, combine_by_rank, rate_architectures
from ssnas.strategies.setn import SetnConfig, SetnHook
from ssnas.rating import SIGNALS


def _signal(name: str):
    """A signal as a function (model, images) -> float, through its family's pass."""
    return lambda model, images: SIGNALS.of(name).compute(model, images)[name]


effective_rank = _signal("effective-rank")
from ssnas.training.loop import TrainConfig
from ssnas.training.precision import resolve_precision
from ssnas.training.seeding import seeded


@pytest.fixture
def space():
    return create_space("nb201", C=4, N=1)


def test_top_k_equals_brute_force_sort(space) -> None:
    evaluator = ArchitectureDistribution(space, init_std=1.0, generator=torch.Generator().manual_seed(0))
    options = list(space.choices().values())
    everything = [space.make(c) for c in itertools.product(*options)]
    brute = sorted(everything, key=evaluator.log_prob, reverse=True)[:25]
    fast = evaluator.top_k(25)
    assert [a for a, _ in fast] == brute
    assert [lp for _, lp in fast] == pytest.approx([evaluator.log_prob(a) for a in brute], abs=1e-9)


def test_sample_distinct_is_distinct_and_seeded(space) -> None:
    evaluator = ArchitectureDistribution(space, generator=torch.Generator().manual_seed(0))
    first = evaluator.sample_distinct(50, torch.Generator().manual_seed(1))
    again = evaluator.sample_distinct(50, torch.Generator().manual_seed(1))
    assert len(set(first)) == 50 and first == again


def test_sampling_follows_the_distribution(space) -> None:
    evaluator = ArchitectureDistribution(space)
    with torch.no_grad():
        evaluator.logits.zero_()
        evaluator.logits[:, 3] = 5.0  # nor_conv_3x3 everywhere, p ~ 0.97 per edge
    draws = [evaluator.sample(torch.Generator().manual_seed(i)) for i in range(40)]
    share = sum(c == "nor_conv_3x3" for a in draws for c in a.choices) / (40 * 6)
    assert share > 0.9


def test_evaluator_step_moves_only_the_logits(space, tiny_images) -> None:
    supernet = space.build_supernet()
    objective = create_objective("simclr", hidden_dim=16, out_dim=8)
    objective.setup(supernet, supernet.feature_dim, len(tiny_images))
    evaluator = ArchitectureDistribution(space, generator=torch.Generator().manual_seed(0))
    before_logits = evaluator.logits.detach().clone()
    before_weights = [p.detach().clone() for p in supernet.parameters()]
    views = lambda images, g: [images.float() / 255 + 0.01 * torch.randn(images.shape, generator=g) for _ in range(2)]
    hook = SetnHook(space, supernet, objective, evaluator, tiny_images, None, views, SetnConfig(evaluator_lr=0.1),
                    resolve_precision("fp32", torch.device("cpu")), seed=0)
    batch = Batch(views(tiny_images[:8], torch.Generator()), torch.arange(8))
    hook.after_step(0, batch)
    assert not torch.equal(evaluator.logits.detach(), before_logits)
    assert all(torch.equal(a, b) for a, b in zip(before_weights, supernet.parameters()))
    state = hook.state_dict()
    other = ArchitectureDistribution(space)
    hook2 = SetnHook(space, supernet, objective, other, tiny_images, None, views, SetnConfig(),
                     resolve_precision("fp32", torch.device("cpu")), seed=5)
    hook2.load_state_dict(state)
    assert torch.equal(other.logits, evaluator.logits)


def test_uniform_weight_step_covers_every_op(space) -> None:
    hook = SetnHook(space, torch.nn.Identity(), None, ArchitectureDistribution(space), torch.zeros(1, 3, 8, 8),
                    None, None, SetnConfig(), None, seed=0)  # type: ignore[arg-type]
    generator = torch.Generator().manual_seed(0)
    seen = {c for _ in range(60) for c in hook.model_kwargs(0, generator)["arch"].choices}
    assert seen == set(space.choices()["edge_1_0"])


def test_rating_is_order_independent_and_leaves_bn_untouched(space, tiny_images) -> None:
    with seeded(0):
        supernet = space.build_supernet()
    archs = [space.sample(random.Random(i)) for i in range(6)]
    config = RatingConfig(signals=("meco", "naswot"), batches=1, batch_size=8)
    train = TrainConfig(device="cpu", precision="fp32")
    buffers = {k: v.clone() for k, v in supernet.state_dict().items()}
    forward = rate_architectures(space, supernet, None, archs, tiny_images, config, train)
    backward = rate_architectures(space, supernet, None, archs[::-1], tiny_images, config, train)
    by_arch = {s.arch: s.details for s in backward}
    for s in forward:
        assert s.details == pytest.approx(by_arch[s.arch])
    assert all(torch.equal(buffers[k], v) for k, v in supernet.state_dict().items())


def test_frozen_batch_norm_keeps_running_stats() -> None:
    norm = torch.nn.BatchNorm2d(3)
    model = torch.nn.Sequential(norm)
    model.eval()
    with frozen_batch_norm(model):
        assert norm.training
        model(torch.randn(4, 3, 5, 5) * 10 + 3)
    assert not norm.training
    assert torch.equal(norm.running_mean, torch.zeros(3)) and torch.equal(norm.running_var, torch.ones(3))


def test_combine_by_rank() -> None:
    assert combine_by_rank({"a": [3.0, 1.0, 2.0]}) == [3.0, 1.0, 2.0]
    combined = combine_by_rank({"a": [3.0, 1.0, 2.0], "b": [30.0, 20.0, 10.0]})
    assert combined == pytest.approx([1.0, 0.5, 0.5])


def test_effective_rank_of_rank_one_and_isotropic_features() -> None:
    class Fixed(torch.nn.Module):
        def __init__(self, features: torch.Tensor) -> None:
            super().__init__()
            self.features = features

        def forward_features(self, x: torch.Tensor) -> torch.Tensor:
            return self.features

    direction = torch.randn(1, 16)
    rank_one = torch.linspace(-1, 1, 64)[:, None] * direction
    assert effective_rank(Fixed(rank_one), torch.zeros(64)) == pytest.approx(1.0, abs=1e-3)
    isotropic = torch.linalg.qr(torch.randn(64, 16))[0] * 8  # orthonormal columns, equal singular values
    isotropic = isotropic - isotropic.mean(0)
    assert effective_rank(Fixed(isotropic), torch.zeros(64)) > 14.0


def test_naswot_prefers_distinguishable_activations() -> None:
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.relu = torch.nn.ReLU()

        def forward_features(self, x: torch.Tensor) -> torch.Tensor:
            return self.relu(x.flatten(1))

    naswot = _signal("naswot")
    distinct = naswot(Net(), torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0)))
    identical = naswot(Net(), torch.randn(1, 3, 4, 4).repeat(8, 1, 1, 1))
    assert distinct > identical


def test_meco_is_higher_for_decorrelated_channels() -> None:
    meco = _signal("meco")
    conv = torch.nn.Conv2d(3, 6, 1, bias=False)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = conv

        def forward_features(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).mean((2, 3))

    image = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        conv.weight.copy_(torch.randn(6, 3, 1, 1, generator=torch.Generator().manual_seed(1)))
    spread = meco(Net(), image)
    with torch.no_grad():
        conv.weight.copy_(torch.ones(6, 3, 1, 1))  # every channel the same map: correlation 1
    collapsed = meco(Net(), image)
    assert spread >= collapsed


@pytest.mark.parametrize("name", ["nb201", "nats-size", "mbconv", "hytra", "darts"])
def test_activation_signals_are_finite_on_every_space(name: str) -> None:
    import math

    from ssnas.spaces import create_space as make

    kwargs = {"nb201": {"C": 4, "N": 1}, "darts": {"C": 4, "layers": 3}}.get(name, {})
    space = make(name, **kwargs)
    with seeded(0):
        network = space.build(space.sample(random.Random(0)))
    images = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with frozen_batch_norm(network):
        for signal in ("naswot", "meco"):
            assert math.isfinite(_signal(signal)(network, images)), (name, signal)
