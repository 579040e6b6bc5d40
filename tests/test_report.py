"""report.html: self-contained, well-formed, with the figures a person needs."""

from __future__ import annotations

import html
import json
import random
import re
from pathlib import Path

import pytest
import yaml

from html_pages import PNG, embedded_pngs, parse, settings_rows, visible_text
from ssnas.reporting import architecture_figure, write_rank_report, write_search_report
from ssnas.run.results import candidates_csv
from ssnas.spaces import SPACES, create_space
from ssnas.strategies.base import ScoredArch, SearchResult


def _fake_setn_run(folder: Path, count: int = 12) -> list[ScoredArch]:
    """A SETN-like run folder written by hand: no rating order, a loss curve, the op distribution."""
    space = create_space("nb201")
    rng = random.Random(0)
    candidates = [ScoredArch(space.sample(rng), 1.0 - i / 10, {"meco": 0.5 - i / 100, "naswot": 1000.0 + i})
                  for i in range(count)]  # fmt: skip
    probabilities = {name: {op: 1 / len(ops) for op in ops} for name, ops in space.choices().items()}
    info = {"train_history": [5.2, 5.0, 4.9], "op_probabilities": probabilities}
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"space": "nb201", "strategy": "setn", "seed": 0, "precision": "fp32", "rating": ["meco", "naswot"]}
    (folder / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    best = candidates[0]
    payload = {"best": {"arch": best.arch.key, "score": best.score}, "ground_truth": None, "strategy": "setn",
               "space": "nb201", "seed": 0, "seconds": 3.0, "info": info, "ground_truth_note": "no table"}  # fmt: skip
    (folder / "result.json").write_text(json.dumps(payload))
    (folder / "candidates.csv").write_text(candidates_csv(SearchResult(best, candidates, info), {}))
    return candidates


def test_search_report_is_self_contained_with_every_section(tmp_path: Path) -> None:
    candidates = _fake_setn_run(tmp_path)
    path = write_search_report(tmp_path)
    parser = parse(path)
    assert parser.external == []  # nothing outside the page
    # architecture, trajectory (the training loss: SETN records no rating order), cost, op distribution
    assert len(embedded_pngs(parser)) == 4
    assert parser.headings == ["Summary", "Found architecture", "Search trajectory", "Score against cost",
                               "Score against ground truth", "Top 10 candidates (every signal)",
                               "Evaluator op distribution", "Settings"]  # fmt: skip
    text = path.read_text()
    assert "records no rating order; shown instead: the training loss" in text
    assert "Not drawn: no table" in text  # no ground truth: the reason, not an empty figure
    assert "meco" in text and "naswot" in text and candidates[0].arch.key in text
    assert "no budget was set" in text
    assert settings_rows(path) == ["space", "strategy", "seed", "precision", "rating"]  # config.yaml's keys only


def test_a_search_without_rating_order_or_history_says_what_is_shown(tmp_path: Path) -> None:
    _fake_setn_run(tmp_path)
    payload = json.loads((tmp_path / "result.json").read_text())
    payload["info"].pop("train_history")
    (tmp_path / "result.json").write_text(json.dumps(payload))
    text = html.unescape(write_search_report(tmp_path).read_text())
    assert "shown instead: every candidate's score, best first" in text
    assert "Training loss" not in text


def test_rank_report_has_the_scatter_the_correlations_and_the_cost(tmp_path: Path) -> None:
    space = create_space("nb201")
    keys = list(dict.fromkeys(space.sample(random.Random(i)).key for i in range(20)))
    scores = [float(i) for i in range(len(keys))]
    truth = [80.0 + i / 2 for i in range(len(keys))]
    top = {"ndcg": 1.0, "ndcg_k": len(keys), "pick_at_10": 89.1, "pick_at_10_oracle": 89.1}
    report = {"metric": "cifar10_valid", "kendall_tau": 1.0, "spearman_rho": 1.0, "pearson_r": 1.0, "batch_size": 64, **top,
              "baseline": {"kendall_tau": 0.2, "spearman_rho": 0.3, "pearson_r": 0.3, **top, "pick_at_10": 85.2}}  # fmt: skip
    path = write_rank_report(tmp_path, "meco", keys, scores, truth, report)
    parser = parse(path)
    assert len(embedded_pngs(parser)) == 2  # score against ground truth, score against cost (space found from the keys)
    assert parser.headings == ["Correlation with ground truth", "Score against ground truth", "Score against cost",
                               f"Top {min(10, len(keys))} by score", "Settings"]  # fmt: skip
    text = visible_text(path)
    assert "kendall_tau" in text and "params baseline" in text and "Pareto front" in text
    assert f"ndcg@{len(keys)}" in text and "pick_at_10 (perfect ranker)" in text and "85.2" in text
    assert settings_rows(path) == ["metric", "batch_size"]  # what the ranker ran with (no config.yaml here)
    assert not re.search(r"\bnan\b|n/a", text, re.IGNORECASE)


def test_rank_report_of_keys_no_space_parses_says_why_there_is_no_cost(tmp_path: Path) -> None:
    keys = [f"arch{i}" for i in range(5)]
    path = write_rank_report(tmp_path, "meco", keys, [float(i) for i in range(5)], [80.0 + i for i in range(5)],
                             {"metric": "cifar10_valid", "kendall_tau": 1.0})  # fmt: skip
    assert len(embedded_pngs(parse(path))) == 1
    assert "no cost is computed" in path.read_text()


@pytest.mark.parametrize("name", SPACES.names())
def test_every_space_has_an_architecture_drawing(name: str) -> None:
    arch = create_space(name).sample(random.Random(1))
    assert architecture_figure(arch).startswith(PNG)
