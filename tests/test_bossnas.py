"""BossNAS: ensemble bootstrapping, fair path sampling, population-centre rating, block-wise search."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssnas.objectives import Batch
from ssnas.objectives.ensemble import EnsembleBootstrap, cosine_head, ensemble_target, view_pairs
from ssnas.spaces import create_space
from ssnas.strategies.base import SearchTask
from ssnas.strategies.bossnas import (
    BlockStage,
    BossNAS,
    PathSampler,
    PrefixCache,
    RatingData,
    WholeNetworkBlock,
    default_sampling,
    fair_paths,
    layer_options,
    rate_paths,
)
from ssnas.training.loop import TrainConfig

torch.set_num_threads(1)

TINY = dict(neck_width=16, hidden_dim=32, out_dim=16, pred_hidden_dim=32, rating_batches=1,
            rating_batch_size=8, recal_batch_size=8)  # fmt: skip


def _config(**overrides: object) -> TrainConfig:
    base = dict(epochs=1, batch_size=32, lr=0.05, progress=False, device="cpu", precision="fp32", channels_last=False)
    return TrainConfig(**{**base, **overrides})  # type: ignore[arg-type]


def _images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _task(space_name: str, tmp_path: object = None, num_images: int = 64, **space_kwargs: object) -> SearchTask:
    return SearchTask(
        space=create_space(space_name, **space_kwargs), images=_images(num_images, 0), holdout_images=_images(16, 1),
        views="crop-flip", train=_config(), out_dir=tmp_path,  # type: ignore[arg-type]
    )  # fmt: skip


# ---------------------------------------------------------------- the objective


def test_ensemble_target_is_the_mean_of_normalised_embeddings() -> None:
    e1 = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    e2 = torch.tensor([[0.0, 2.0], [0.0, -5.0]])
    expected = torch.tensor([[0.3, 0.9], [0.5, -0.5]])  # ([.6,.8]+[0,1])/2, ([1,0]+[0,-1])/2
    assert torch.allclose(ensemble_target([e1, e2]), expected)


def test_cosine_head_is_minus_two_cos() -> None:
    p, z = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    assert cosine_head(p, z).item() == pytest.approx(-2 / math.sqrt(2))


class _ToyPaths(nn.Module):
    """forward_features(x, path=k) = W_k GAP(x): a different linear map per path."""

    feature_dim = 4

    def __init__(self) -> None:
        super().__init__()
        self.maps = nn.ModuleDict({str(k): nn.Linear(3, 4) for k in range(3)})

    def forward_features(self, x: torch.Tensor, path: int) -> torch.Tensor:
        return self.maps[str(path)](x.mean(dim=(2, 3)))


def _expected_ensemble_loss(
    model: nn.Module, objective: EnsembleBootstrap, paths: list[dict[str, int]], views: list[torch.Tensor], shared: bool
) -> float:
    pairs = [(views[0], views[1])] * 2 if shared else [(views[0], views[1]), (views[2], views[3])]
    t1 = sum(F.normalize(objective.target_projection(v1, **kw), dim=1) for (v1, _), kw in zip(pairs, paths)) / 2
    t2 = sum(F.normalize(objective.target_projection(v2, **kw), dim=1) for (_, v2), kw in zip(pairs, paths)) / 2
    expected = 0.0
    for (v1, v2), kw in zip(pairs, paths):
        for v, t in ((v1, t2), (v2, t1)):
            p = F.normalize(objective.online_prediction(model, v, **kw), dim=1)
            expected += float((-2 * (p * F.normalize(t, dim=1)).sum(dim=1)).mean())
    return expected


@pytest.mark.parametrize("shared", [True, False])
def test_ensemble_loss_predicts_every_paths_ensemble_of_the_other_view(shared: bool) -> None:
    torch.manual_seed(0)
    model, objective = _ToyPaths(), EnsembleBootstrap(hidden_dim=8, out_dim=4, pred_hidden_dim=8)
    objective.setup(model, 4, 8)
    paths = [{"path": 0}, {"path": 2}]
    views = [torch.randn(6, 3, 4, 4) for _ in range(2 if shared else 4)]
    objective.eval()  # BN on running statistics, so each call is a pure function
    model.eval()
    loss = objective(model, Batch(views, torch.arange(6)), paths=paths)
    with torch.no_grad():
        expected = _expected_ensemble_loss(model, objective, paths, views, shared)
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_view_pairs_rejects_a_wrong_number_of_views() -> None:
    with pytest.raises(ValueError, match="3 views for 2 paths"):
        view_pairs([torch.zeros(1)] * 3, 2)


# ---------------------------------------------------------------- path sampling


def test_fair_sampling_uses_each_option_once_per_layer() -> None:
    space = create_space("nats-size")
    candidates = space.block_paths(0)
    count, fair = default_sampling(candidates, None)
    assert (count, fair) == (8, True)
    generator = torch.Generator().manual_seed(3)
    sampler = PathSampler(candidates, count, fair)
    for _ in range(20):
        paths = [kw["path"] for kw in sampler.model_kwargs(0, generator)["paths"]]
        for layer in range(2):
            assert Counter(p[layer] for p in paths) == Counter({str(w): 1 for w in range(8, 72, 8)})


def test_fair_sampling_of_fewer_paths_never_repeats_an_option() -> None:
    options = [["a", "b", "c", "d"], ["x", "y", "z", "w"]]
    paths = fair_paths(options, 3, torch.Generator().manual_seed(0))
    assert all(len({p[layer] for p in paths}) == 3 for layer in range(2))


def test_nb201_fair_sampling_draws_only_candidate_cells() -> None:
    block_space = WholeNetworkBlock(create_space("nb201"))
    candidates = block_space.block_paths(0)
    count, fair = default_sampling(candidates, None)
    assert (count, fair) == (5, True)  # 5 ops per edge; degenerate cells excluded, so redraws
    sampler, generator, allowed = PathSampler(candidates, count, fair), torch.Generator().manual_seed(0), set(candidates)
    for _ in range(20):
        paths = sampler.sample(generator)
        assert all(p in allowed for p in paths)
        assert all(len({p[e] for p in paths}) == 5 for e in range(6))


def test_hytra_samples_distinct_valid_paths_after_the_chosen_prefix() -> None:
    space = create_space("hytra", restricted=True)
    prefix = [("conv@8", "conv@16", "conv@16", "att@16")]
    candidates = space.block_paths(1, prefix)
    count, fair = default_sampling(candidates, None)
    assert (count, fair) == (4, False)
    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        paths = PathSampler(candidates, count, fair).sample(generator)
        assert len(set(paths)) == 4
        for path in paths:  # the space's own rule check (non-increasing resolution, restricted steps)
            space.make([*prefix[0], *path, *(["att@32"] * 8)])


def test_layer_options_keeps_first_appearance_order() -> None:
    assert layer_options([("b", "x"), ("a", "x"), ("b", "y")]) == [["b", "a"], ["x", "y"]]


# ---------------------------------------------------------------- stages and rating


def _stage(block: int, fixed: list[tuple[str, ...]]) -> tuple[BlockStage, EnsembleBootstrap, RatingData]:
    torch.manual_seed(0)
    space = create_space("nats-size")
    supernet = space.build_block_supernet()
    images = torch.randn(8, 3, 16, 16)
    stage = BlockStage(supernet, fixed, space.block_paths(block, fixed), 16, images[:2])
    objective = EnsembleBootstrap(hidden_dim=32, out_dim=16, pred_hidden_dim=32)
    objective.setup(stage, stage.feature_dim, 8)
    data = RatingData(images, [(torch.randn(8, 3, 16, 16), torch.randn(8, 3, 16, 16))])
    return stage, objective, data


def test_block_stage_freezes_exactly_the_prefix() -> None:
    stage, _, _ = _stage(1, [("16", "32")])
    body = stage.supernet.body
    stage.forward_features(torch.randn(4, 3, 16, 16), path=("8", "40")).sum().backward()
    prefix = [*body.stem_conv.parameters(), *body.stem_bn.parameters(), *body.layers[0].parameters(),
              *body.layers[1].parameters()]  # fmt: skip
    assert all(p.grad is None for p in prefix)  # frozen: no gradient, so no optimizer update
    assert not body.layers[1].conv_a.conv.weight.requires_grad
    assert body.layers[2].edges[0].conv.weight.grad is not None
    assert body.layers[3].conv_a.conv.weight.grad is not None
    assert body.layers[4].edges[0].conv.weight.grad is None  # later blocks do not run
    assert sorted(stage.adapters, key=int) == [str(w) for w in range(8, 72, 8)]  # block 1 ends on C3
    assert stage.forward_features(torch.randn(2, 3, 16, 16), path=("8", "40")).shape == (2, 16)


def test_rating_does_not_depend_on_candidate_order() -> None:
    stage, objective, data = _stage(1, [("16", "32")])
    paths = [("8", "8"), ("64", "16"), ("24", "48"), ("40", "40")]
    before = {k: v.clone() for k, v in stage.state_dict().items()}
    forward = rate_paths(stage, objective, paths, data, signals=("meco",))
    backward = rate_paths(stage, objective, paths[::-1], data, signals=("meco",))
    for path in paths:
        for name in ("loss", "centre-distance", "meco"):
            assert forward[path][name] == pytest.approx(backward[path][name], rel=1e-4, abs=1e-5)
    assert len({round(v["loss"], 6) for v in forward.values()}) == 4  # the paths are told apart
    after = stage.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics restored


def test_rating_centre_is_the_mean_of_raw_target_projections() -> None:
    stage, objective, data = _stage(2, [("16", "32"), ("24", "48")])
    paths = [("8",), ("64",)]
    values = rate_paths(stage, objective, paths, data)
    # A population of one path: the centre is its own projection.
    alone = rate_paths(stage, objective, paths[:1], data)
    assert alone[paths[0]]["centre-distance"] == pytest.approx(-4.0, abs=1e-4)
    assert values[paths[0]]["centre-distance"] > -4.0


# ---------------------------------------------------------------- end to end


def test_tiny_nats_search_trains_every_block_and_returns_a_valid_architecture(tmp_path: object) -> None:
    task = _task("nats-size", tmp_path)
    boss = BossNAS(**TINY, population=2, shared_views=True, paths_per_step=2)
    result = boss.search(task)
    arch = result.best.arch
    assert task.space.parse(arch.key) == arch
    assert result.info["block_paths"] == [":".join(arch.choices[:2]), ":".join(arch.choices[2:4]), arch.choices[4]]
    for k in range(3):
        assert (tmp_path / f"block{k}" / "checkpoint.pt").exists()  # type: ignore[operator]
        assert len(result.info["train_history"][k]) == 1
    assert result.best.score == max(c.score for c in result.candidates)
    assert result.best.score == pytest.approx(-sum(result.best.details.values()))


def test_prefix_weights_do_not_move_while_a_later_block_trains() -> None:
    task = _task("nats-size", num_images=32)
    boss = BossNAS(**TINY, population=2, shared_views=False, paths_per_step=2)
    seen: dict[int, dict[str, torch.Tensor]] = {}
    original = BlockStage.__init__

    def spy(self: BlockStage, supernet: nn.Module, *args: object) -> None:
        seen[len(seen)] = {k: v.clone() for k, v in supernet.body.layers[0].state_dict().items() if "weight" in k}
        original(self, supernet, *args)  # type: ignore[arg-type]

    BlockStage.__init__ = spy  # type: ignore[method-assign]
    try:
        run = boss.run_blocks(task)
    finally:
        BlockStage.__init__ = original  # type: ignore[method-assign]
    final = {k: v for k, v in run.stages[-1].supernet.body.layers[0].state_dict().items() if "weight" in k}
    assert any(not torch.equal(seen[0][k], seen[1][k]) for k in final)  # block 0 trained in stage 0
    assert all(torch.equal(seen[1][k], final[k]) for k in final)  # and frozen afterwards


def test_additive_rating_is_minus_the_sum_of_block_losses() -> None:
    task = _task("nats-size", num_images=32)
    boss = BossNAS(**TINY, population=0, shared_views=True, paths_per_step=2, signals=("meco",))
    space = task.space
    archs = [space.parse(k) for k in ("8:16:24:32:40", "8:16:64:64:8", "64:64:24:32:8")]
    scored = boss.rate(task, archs)
    assert [s.arch for s in scored] == archs
    for s in scored:
        blocks = [s.details[f"block{k}"] for k in range(3)]
        assert s.score == pytest.approx(-sum(blocks))
        assert s.details["loss"] == pytest.approx(sum(blocks))
    assert scored[0].details["block0"] == scored[1].details["block0"]  # one loss per block path
    assert scored[1].details["block2"] == scored[2].details["block2"]
    assert math.isfinite(scored[0].details["meco"]) and "centre-distance" in scored[0].details


def test_nb201_is_rated_as_one_block() -> None:
    space = create_space("nb201")
    task = SearchTask(space=space, images=_images(32, 0), holdout_images=_images(16, 1), views="crop-flip",
                      train=_config())  # fmt: skip
    archs = [a for a in (space.sample(random.Random(s)) for s in range(12)) if not space.is_degenerate(a)][:3]  # type: ignore[attr-defined]
    boss = BossNAS(**TINY, population=0, shared_views=True, supernet={"C": 4, "N": 1})
    scored = boss.rate(task, archs)
    assert len({s.score for s in scored}) == 3
    assert all(s.score == pytest.approx(-s.details["block0"]) for s in scored)


def test_additive_rating_of_a_path_outside_the_greedy_candidates_is_a_user_error() -> None:
    from ssnas.errors import UserError

    task = _task("hytra", num_images=16, restricted=True)
    space = task.space
    boss = BossNAS(**TINY, population=1, paths_per_step=1, shared_views=True)
    # Whichever block-0 path wins, one of the two block-1 paths cannot follow it (one step per layer).
    a = space.parse(":".join(["conv@4"] * 8 + ["conv@8"] * 4 + ["conv@16"] * 4))
    b = space.parse(":".join(["conv@8"] * 4 + ["conv@16"] * 4 + ["conv@32"] * 8))
    with pytest.raises(UserError, match="not a candidate"):
        boss.run_blocks(task, [[a.choices[:4], b.choices[:4]], [a.choices[4:8], b.choices[4:8]], [], []])


def test_a_finished_search_resumes_to_the_same_result_without_retraining(tmp_path: object) -> None:
    task = _task("nats-size", tmp_path, num_images=32)
    boss = BossNAS(**TINY, population=2, shared_views=True, paths_per_step=2)
    first = boss.search(task)
    task.resume = True
    second = boss.search(task)
    assert second.best == first.best
    assert second.info["train_history"] == first.info["train_history"]
    assert second.info["train_seconds"] < first.info["train_seconds"]  # no step ran again


# ---------------------------------------------------------------- prefix cache


def test_cached_prefix_trains_to_the_same_losses_and_weights() -> None:
    """Frozen blocks run once per view batch with the cache, once per path without: same
    training losses, same parameters, same ratings (only the frozen BNs' running statistics,
    which nothing reads, see fewer updates)."""
    runs, caches = [], []
    original = BlockStage.forward_features

    def spy(self: BlockStage, x: torch.Tensor, path: tuple[str, ...]) -> torch.Tensor:
        if self.cache is not None and self.cache not in caches:
            caches.append(self.cache)
        return original(self, x, path)

    BlockStage.forward_features = spy  # type: ignore[method-assign]
    try:
        for cache in (True, False):
            task = _task("nats-size", num_images=32)
            boss = BossNAS(**TINY, population=2, shared_views=True, paths_per_step=2, cache_prefix=cache)
            runs.append(boss.run_blocks(task))
    finally:
        BlockStage.forward_features = original  # type: ignore[method-assign]
    cached, plain = runs
    assert [r.result.history for r in cached.records] == [r.result.history for r in plain.records]  # type: ignore[union-attr]
    assert [r.ratings for r in cached.records] == [r.ratings for r in plain.records]
    a, b = cached.stages[-1], plain.stages[-1]
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name
    assert caches and all(c.hits > 0 for c in caches)  # the EMA target reuses the online prefix's outputs
    target = cached.objectives[-1].target_model
    assert target is not None and target.cache is None and target.supernet is not a.supernet
    assert all(s.cache is None for s in cached.stages)  # switched off after training


def test_cached_prefix_gives_the_same_outputs_and_gradients_on_hytra() -> None:
    space = create_space("hytra", restricted=True)
    torch.manual_seed(0)
    supernet = space.build_block_supernet()
    x = torch.randn(4, 3, 32, 32)
    fixed = [space.block_paths(0)[0]]
    stage = BlockStage(supernet, fixed, space.block_paths(1, fixed), 16, x[:2])
    paths = space.block_paths(1, fixed)[:2]
    results = []
    for cache in (PrefixCache(), None):
        stage.cache = cache
        stage.zero_grad(set_to_none=True)
        outputs = [stage.forward_features(x, path) for path in paths]
        sum(o.square().sum() for o in outputs).backward()
        results.append((outputs, {n: p.grad for n, p in stage.named_parameters() if p.grad is not None}))
    (cached, cached_grads), (plain, plain_grads) = results
    for a, b in zip(cached, plain):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert cached_grads.keys() == plain_grads.keys() and cached_grads
    for name, grad in plain_grads.items():
        torch.testing.assert_close(cached_grads[name], grad, rtol=0, atol=0)
