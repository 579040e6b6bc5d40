"""report.html of real (tiny) runs, `ssnas report` and `ssnas compare` through the CLI, and both pages
rendered in headless Chromium (a screenshot that is not blank, every embedded figure decoded)."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from PIL import Image

from cli_helpers import copy_cifar_subset, run_ssnas
from html_pages import assert_not_blank, embedded_pngs, parse, render, settings_rows, visible_text

pytestmark = pytest.mark.realdata

TINY = ["--num-images", "256", "--holdout-images", "64", "--channels", "8", "--cells", "1", "--rating-batch-size", "16",
        "--precision", "fp32", "--no-progress"]  # fmt: skip
EVOLUTION = ["--strategy", "evolution", "--ratings", "12", "--population", "6", *TINY]
TWO_STAGE = ["--strategy", "two-stage", "--ratings", "8", "--population", "4", *TINY, "--shortlist", "2",
             "--judge-budget", "2000", "--judge-objective", "rotation", "--judge-signal", "pretext-accuracy",
             "--judge-combine", "stage1"]  # fmt: skip
SEARCH_SECTIONS = ["Summary", "Found architecture", "Search trajectory", "Score against cost",
                   "Score against ground truth", "Top 10 candidates (every signal)", "Settings"]  # fmt: skip
# evolution adds the best so far against elapsed time (a figure and a table) after its trajectory
EVOLUTION_SECTIONS = [*SEARCH_SECTIONS[:3], "Best so far against time", *SEARCH_SECTIONS[3:]]
NOT_A_NUMBER = re.compile(r"\bnan\b|\binf\b|n/a", re.IGNORECASE)


@pytest.fixture(scope="module")
def runs(shared_data: Path, nb201_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four tiny runs on 320 real CIFAR-10 images: evolution, evolution within a FLOPs budget,
    two-stage, and a rank run (zero-cost ranker)."""
    root = tmp_path_factory.mktemp("report-runs")
    data = copy_cifar_subset(shared_data, root / "cifar", per_class=32) / "train"
    env = {"SSNAS_CACHE": str(root / "cache"), "SSNAS_NB201_TABLE": str(nb201_csv), "OMP_NUM_THREADS": "1"}
    commands = {
        "evolution": ["search", "--data", str(data), *EVOLUTION],
        "budget": ["search", "--data", str(data), *EVOLUTION, "--max-flops", "30", "--seed", "1"],
        "two-stage": ["search", "--data", str(data), *TWO_STAGE],
        "rank": ["rank", "--ranker", "synflow", "--sample", "12", "--no-progress"],
    }
    for name, command in commands.items():
        done = run_ssnas(*command, "--out", str(root / name), env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    return {name: root / name for name in commands}


def check_search_report(folder: Path, sections: list[str], figures: int) -> str:
    """The page's sections and figures, settings = config.yaml's keys, no number left out; its text."""
    path = folder / "report.html"
    parser = parse(path)
    assert parser.external == []
    assert parser.headings == sections
    assert len(embedded_pngs(parser)) == figures
    assert settings_rows(path) == list(yaml.safe_load((folder / "config.yaml").read_text()))
    text = visible_text(path)
    assert not NOT_A_NUMBER.search(text), NOT_A_NUMBER.search(text)
    return text


def test_evolution_report_shows_the_search(runs: dict[str, Path]) -> None:
    text = check_search_report(runs["evolution"], EVOLUTION_SECTIONS, figures=5)  # cell, trajectory, time, cost, truth
    assert "the order rated (the &#x27;order&#x27; column of candidates.csv)" in text
    assert re.search(r"Spearman -?\d\.\d{3}, Kendall -?\d\.\d{3} over 12 candidates", text)
    assert re.search(r"cifar10_valid \(ground truth\)</td><td>\d+\.\d\d \(rank [\d,]+ of 15,625", text)
    assert "no budget was set" in text


def test_budgeted_report_draws_the_budget(runs: dict[str, Path]) -> None:
    text = check_search_report(runs["budget"], EVOLUTION_SECTIONS, figures=5)
    assert re.search(r"The pick: \d+(\.\d+)? MFLOPs, the budget 30\.", text)
    assert "budget: flops</td><td>" in text and "at most 30 (within)" in text
    assert "max_flops" in settings_rows(runs["budget"] / "report.html")


def test_two_stage_report_shows_both_stages(runs: dict[str, Path]) -> None:
    rated = len((runs["two-stage"] / "candidates.csv").read_text().splitlines()) - 1  # --ratings 8: fewer than 10
    sections = [*SEARCH_SECTIONS[:5], "Stage 2: the judged shortlist", f"Top {rated} candidates (every signal)",
                "Settings"]  # fmt: skip
    text = check_search_report(runs["two-stage"], sections, figures=5)  # + the judged candidates' training curves
    assert "Stage 1 rates without training; stage 2 trains each shortlisted candidate briefly and picks." in text
    assert "picked" in text and "pretext-accuracy" in text and "x axis is the stage-1 score" in text


def test_rank_report_gains_cost_and_settings(runs: dict[str, Path]) -> None:
    path = runs["rank"] / "report.html"
    parser = parse(path)
    assert parser.headings == ["Correlation with ground truth", "Score against ground truth", "Score against cost",
                               "Top 10 by score", "Settings"]  # fmt: skip
    assert len(embedded_pngs(parser)) == 2
    assert not NOT_A_NUMBER.search(visible_text(path))


@pytest.mark.parametrize("name", ["evolution", "two-stage"])
def test_ssnas_report_rebuilds_the_same_page(runs: dict[str, Path], name: str, tmp_path: Path) -> None:
    folder = runs[name]
    done = run_ssnas("report", str(folder), "--out", str(tmp_path / "again.html"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"report: {tmp_path / 'again.html'}"
    before, after = parse(folder / "report.html"), parse(tmp_path / "again.html")
    assert after.headings == before.headings
    assert len(embedded_pngs(after)) == len(embedded_pngs(before))
    assert settings_rows(tmp_path / "again.html") == settings_rows(folder / "report.html")
    assert visible_text(tmp_path / "again.html") == visible_text(folder / "report.html")  # the same words and numbers


def test_ssnas_compare_puts_runs_side_by_side(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "compare.html"
    done = run_ssnas("compare", str(runs["evolution"]), str(runs["budget"]), str(runs["two-stage"]), "--out", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["run", "space", "strategy", "seed"]
    assert [line.split()[0] for line in lines[1:4]] == ["evolution", "budget", "two-stage"]
    differ = next(line for line in lines if line.startswith("settings that differ:"))
    assert "max_flops = (not set) | 30.0 | (not set)" in differ and "seed = 0 | 1 | 0" in differ
    assert "out =" not in differ  # where a run was written is not a setting of the search
    parser = parse(out)
    assert parser.headings == ["Runs", "Settings that differ", "Search trajectories", "Found architectures"]
    assert len(embedded_pngs(parser)) == 1 + 3  # the overlaid trajectories, one cell per run
    assert not NOT_A_NUMBER.search(visible_text(out))


def _unfinished(root: Path, evolution: Path) -> Path:
    folder = root / "unfinished"
    folder.mkdir()
    for name in ("config.yaml", "result.json"):
        shutil.copy(evolution / name, folder / name)
    return folder


def _corrupt(root: Path, evolution: Path) -> Path:
    folder = root / "corrupt"
    shutil.copytree(evolution, folder)
    (folder / "result.json").write_text("{not json")
    return folder


@pytest.mark.parametrize(("case", "message"), [
    ("missing", "is not a folder; give the --out folder of a search"),
    ("empty", "is not a run folder (no config.yaml, result.json, candidates.csv)"),
    ("unfinished", "misses candidates.csv (the search did not finish?)"),
    ("corrupt", "result.json cannot be read (JSONDecodeError"),
    ("rank", "holds a rank run (scores.csv), not a search"),
    ("out-is-a-folder", "is a folder; give the page's file name"),
])  # fmt: skip
def test_ssnas_report_refuses_in_one_line(runs: dict[str, Path], tmp_path: Path, case: str, message: str) -> None:
    folders = {
        "missing": lambda: tmp_path / "nowhere", "empty": lambda: tmp_path,
        "unfinished": lambda: _unfinished(tmp_path, runs["evolution"]),
        "corrupt": lambda: _corrupt(tmp_path, runs["evolution"]),
        "rank": lambda: runs["rank"], "out-is-a-folder": lambda: runs["evolution"],
    }  # fmt: skip
    extra = ["--out", str(tmp_path)] if case == "out-is-a-folder" else []
    done = run_ssnas("report", str(folders[case]()), *extra)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("ssnas: error: ") and message in done.stderr


def test_ssnas_compare_refuses_in_one_line(runs: dict[str, Path], tmp_path: Path) -> None:
    alone = run_ssnas("compare", str(runs["evolution"]), "--out", str(tmp_path / "c.html"))
    assert alone.returncode == 1 and alone.stderr == "ssnas: error: give at least two run folders to compare\n"
    bad = run_ssnas("compare", str(runs["evolution"]), str(tmp_path / "nowhere"), "--out", str(tmp_path / "c.html"))
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "nowhere is not a folder" in bad.stderr
    assert not (tmp_path / "c.html").exists()


def test_help_of_report_and_compare() -> None:
    listing = run_ssnas("--help")
    assert "report" in listing.stdout and "compare" in listing.stdout
    for command in ("report", "compare"):
        done = run_ssnas(command, "--help")
        assert done.returncode == 0 and "RUN_DIR" in done.stdout and "--out" in done.stdout


# --- a real browser -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["evolution", "two-stage", "compare"])
def test_pages_render_in_headless_chromium(runs: dict[str, Path], tmp_path: Path, name: str) -> None:
    if name == "compare":
        page = tmp_path / "compare.html"
        assert run_ssnas("compare", str(runs["evolution"]), str(runs["two-stage"]), "--out", str(page)).returncode == 0
    else:
        page = runs[name] / "report.html"
    dom = render(page, tmp_path / "shot.png")
    assert_not_blank(tmp_path / "shot.png")
    parser = parse(page)
    assert re.findall(r"<h2>([^<]*)</h2>", dom) == [h.replace("&", "&amp;") for h in parser.headings]
    assert dom.count('<img alt="') == len(parser.images)  # every figure is in the page Chromium built
    for png in embedded_pngs(parser):
        figure = Image.open(io.BytesIO(png))
        figure.load()  # decodes, or raises
        assert figure.width > 100 and figure.height > 100


def test_embedded_figures_are_base64_pngs(runs: dict[str, Path]) -> None:
    """The page holds its figures itself: data URIs only, no file beside it is needed."""
    text = (runs["evolution"] / "report.html").read_text()
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert uris and all(base64.b64decode(u).startswith(b"\x89PNG") for u in uris)
    assert json.loads((runs["evolution"] / "result.json").read_text())["scored_by"].startswith("the label-free rating")
