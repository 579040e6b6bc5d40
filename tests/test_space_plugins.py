"""Spaces from outside ssnas: `ssnas.spaces` entry points (a real `*.dist-info`, as pip leaves one,
on PYTHONPATH of a fresh process) and `--space-module FILE.py` through the real CLI, with the
example plugin, example 03 and the one-line errors of broken ones."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _labelled_folder import make_labelled_folder
from cli_helpers import run_ssnas

from ssnas.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PLUGIN = ROOT / "examples" / "toy_space_plugin"
EXAMPLE_SCRIPT = ROOT / "examples" / "03_space_plugin.py"
TINY_SEARCH = ["--ratings", "6", "--population", "3", "--num-images", "32", "--holdout-images", "32",
               "--no-progress", "--json"]  # fmt: skip


def fake_install(site: Path, dist: str, entry_points: dict[str, str]) -> dict[str, str]:
    """What `pip install` leaves for importlib.metadata: `site/<dist>-0.1.0.dist-info` declaring
    `ssnas.spaces` entry points. Returns the environment of a process that sees it (and the
    example plugin's source)."""
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[ssnas.spaces]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    path = os.pathsep.join([str(site), str(EXAMPLE_PLUGIN), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path.rstrip(os.pathsep), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 random 32x32 PNGs (two class folders, never read as labels)."""
    return make_labelled_folder(tmp_path_factory.mktemp("images"), train=64, test=2) / "train"


# ----------------------------------------------------------------------------- entry points


def test_an_installed_plugin_registers_on_first_lookup_and_meets_the_contract(tmp_path: Path) -> None:
    env = fake_install(tmp_path / "site", "ssnas-toy-space", {"toy": "toy_space_plugin.space"})
    script = """
import json, sys
from ssnas.spaces import SPACES, create_space
from ssnas.testing.spaces import check_space
imported_early = "toy_space_plugin.space" in sys.modules  # `import ssnas.spaces` stays cheap
names = SPACES.names()
check_space(create_space("toy"))
print(json.dumps({"early": imported_early, "names": names, "origin": SPACES.origins["toy"]}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          check=False, env={**os.environ, **env})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr, done.stderr
    found = json.loads(done.stdout)
    assert not found["early"] and "toy" in found["names"] and found["origin"] == "plugin ssnas-toy-space 0.1.0"
    listed = run_ssnas("spaces", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)["spaces"]}
    assert rows["toy"]["size"] == 216 and rows["toy"]["source"] == "plugin ssnas-toy-space 0.1.0"
    assert rows["nb201"]["source"] == "built-in"


def test_broken_plugins_are_skipped_with_one_line_each_and_refused_by_name(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "clashing_space.py").write_text(
        "from ssnas.spaces import SPACES\n\n@SPACES.register('nb201')\nclass Clash:\n    name = 'nb201'\n")
    (site / "empty_space.py").write_text("'''Registers nothing.'''\n")
    env = fake_install(site, "ssnas-broken", {"gone": "no_such_module_for_ssnas", "nb201": "clashing_space",
                                              "empty": "empty_space"})  # fmt: skip
    listed = run_ssnas("spaces", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert {"nb201", "darts", "nats-size", "hytra", "mbconv"} <= {row["name"] for row in json.loads(listed.stdout)["spaces"]}
    warnings = listed.stderr.strip().splitlines()
    assert len(warnings) == 3, listed.stderr
    assert all(line.startswith("ssnas: warning: search space plugin ssnas-broken 0.1.0 (entry point '") for line in warnings)
    assert any("'gone = no_such_module_for_ssnas') failed to load: ModuleNotFoundError" in line for line in warnings)
    assert any("'nb201 = clashing_space') failed to load: ValueError: space 'nb201' is registered twice" in line
               for line in warnings)  # fmt: skip
    assert any("'empty = empty_space') registers no space" in line for line in warnings)

    refused = run_ssnas("search", "--space", "gone", "--out", str(tmp_path / "run"), env=env)
    assert refused.returncode == 2 and not (tmp_path / "run").exists()
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("ssnas: error: Invalid value for '--space': space 'gone' is unavailable: plugin ssnas-broken")
    assert "ModuleNotFoundError" in last


# ----------------------------------------------------------------------------- --space-module


@pytest.mark.parametrize(("content", "says"), [
    (None, "no such file"),
    ("def broken(:\n", "syntax error on line 1"),
    ("import no_such_module_for_ssnas\n", "ModuleNotFoundError: No module named 'no_such_module_for_ssnas'"),
    ("x = 1\n", "registers no space; decorate its class with @SPACES.register"),
    ("from ssnas.spaces import SPACES\n\n@SPACES.register('nb201')\nclass Mine:\n    pass\n",
     "space 'nb201' is registered twice (first by ssnas.spaces.nb201)"),
])  # fmt: skip
def test_a_bad_space_module_is_one_line_and_exit_1(content: str | None, says: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    path = tmp_path / "my_space.py"
    if content is not None:
        path.write_text(content)
    for command in (["spaces"], ["search", "--space", "nb201", "--out", str(tmp_path / "run")], ["rank", "--sample", "2"]):
        with pytest.raises(SystemExit) as done:
            main([*command, "--space-module", str(path)])
        assert done.value.code == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"ssnas: error: space module {path}"), lines
        assert says in lines[0], lines[0]
    assert not (tmp_path / "run").exists()


def test_example_03_searches_its_own_space_and_the_cli_repeats_it(images: Path, tmp_path: Path) -> None:
    """The example script (`ssnas.run` from Python) registers `mini` from its own file; config.yaml records the
    file, so `ssnas search --config` finds the space again, and `--space-module` names it directly."""
    env = {"SSNAS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    settings = ["ratings=6", "population=3", "num_images=32", "holdout_images=32"]
    done = subprocess.run([sys.executable, str(EXAMPLE_SCRIPT), "--data", str(images), "--out", str(tmp_path / "api"),
                           "--set", *settings], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, **env})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "found " in done.stdout and "among 6 rated architectures" in done.stdout
    config = (tmp_path / "api" / "config.yaml").read_text()
    assert f"space_module: {EXAMPLE_SCRIPT}\n" in config and "strategy: evolution\n" in config  # plugins default to evolution
    api_best = json.loads((tmp_path / "api" / "result.json").read_text())["best"]["arch"]

    again = run_ssnas("search", "--config", str(tmp_path / "api" / "config.yaml"), "--out", str(tmp_path / "config"),
                      "--no-progress", "--json", env=env)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["best"]["arch"] == api_best  # same settings, same seed, same space

    flags = run_ssnas("search", "--space-module", str(EXAMPLE_SCRIPT), "--space", "mini", "--strategy", "random",
                      "--trial-objective", "rating", "--trials", "3", "--num-images", "32", "--holdout-images", "32",
                      "--data", str(images), "--out", str(tmp_path / "random"), "--no-progress", "--json", env=env)  # fmt: skip
    assert flags.returncode == 0, flags.stderr
    payload = json.loads(flags.stdout)
    assert payload["space"] == "mini" and payload["num_candidates"] == 3


def test_a_plugin_space_searches_from_the_cli(images: Path, tmp_path: Path) -> None:
    """The example plugin's module as a --space-module file: the default strategy (evolution, with its
    generic rating) runs on it, and resuming the finished run with the same flags is accepted."""
    module = EXAMPLE_PLUGIN / "toy_space_plugin" / "space.py"
    env = {"SSNAS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    command = ["search", "--space-module", str(module), "--space", "toy", "--data", str(images),
               "--out", str(tmp_path / "run"), *TINY_SEARCH]  # fmt: skip
    done = run_ssnas(*command, env=env)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["space"] == "toy" and payload["strategy"] == "evolution"
    assert re.fullmatch(r"(w\d+k\d-){2}w\d+k\d", payload["best"]["arch"]), payload["best"]["arch"]
    resumed = run_ssnas(*command, "--resume", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["best"]["arch"] == payload["best"]["arch"]
    forgotten = run_ssnas("search", "--space", "toy", "--out", str(tmp_path / "run"), "--resume", env=env)
    assert forgotten.returncode == 2 and "unknown space 'toy'" in forgotten.stderr


def test_rank_rates_a_plugin_space_against_its_own_table(images: Path, tmp_path: Path) -> None:
    """A space from a file with a table CSV of its own: `ssnas rank` correlates, next to the parameter
    count of each built network (a plugin space has no `num_parameters`)."""
    archs = ["w8k3-w8k3-w8k3", "w16k3-w16k5-w16k3", "w32k5-w32k5-w32k5", "w8k5-w16k3-w32k3"]
    table = tmp_path / "toy.csv"
    table.write_text("index,arch_str,cifar10_test\n" + "".join(f"{i},{a},{50 + 5 * i}\n" for i, a in enumerate(archs)))
    (tmp_path / "archs.txt").write_text("\n".join(archs) + "\n")
    done = run_ssnas("rank", "--space-module", str(EXAMPLE_PLUGIN / "toy_space_plugin" / "space.py"), "--space", "toy",
                     "--archs", str(tmp_path / "archs.txt"), "--table", str(table), "--metric", "cifar10_test",
                     "--ranker", "meco", "--data", str(images), "--no-progress", "--json",
                     env={"SSNAS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["count"] == 4 and report["baseline"]["n"] == 4
