"""`ssnas search`: the main job. Options map onto `ssnas.run.search_config`: run settings shared by
every strategy, and each strategy's own (an option the chosen strategy does not use is refused)."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from ssnas.cli._common import (
    BATCH, NON_NEGATIVE_FLOAT, POSITIVE, POSITIVE_FLOAT, SPACE, TEXT, config_option, emit, json_option, out_help,
    search_precision_option, skip_corrupt_option, space_module_option,
)
from ssnas.judging import SIGNAL_NAMES
from ssnas.objectives import OBJECTIVES
from ssnas.api import search
from ssnas.run import PRESETS, SPACE_STRATEGIES
from ssnas.started import PROCESS_STARTED
from ssnas.strategies import STRATEGIES
from ssnas.strategies.evolution import EVOLUTION_PLANS
from ssnas.strategies.proxy import LOSSES, TRIAL_OBJECTIVES
from ssnas.strategies.supernet_rating import ALL_SIGNALS
from ssnas.training.distributed import is_main_process
from ssnas.training.loop import OPTIMIZERS
from ssnas.training.progress import mirror_log_to_stderr

TRAINS = "setn, tpe/random ssl-proxy trials, bossnas"  # the strategies taking the training options


@click.command("search")
@click.option("--space", type=SPACE, default="nb201", show_default=True, help="Search space (see `ssnas spaces`).")
@space_module_option(record=True)
@click.option("--strategy", type=click.Choice(STRATEGIES.names()), default=None,
              help="How candidates are proposed [per space: " + ", ".join(f"{space} {name}" for space, name in SPACE_STRATEGIES.items())
                   + "]. Each takes its own options (below); one it does not use is refused.")
@click.option("--objective", type=click.Choice(OBJECTIVES.names()), default=None,
              help="setn, tpe/random ssl-proxy trials: training objective [simclr]; supervised needs labelled data "
                   "(one subfolder per class). evolution rates at initialisation and bossnas trains ensemble-byol: "
                   "neither takes one.")
@click.option("--data", type=TEXT, default=None,
              help="Image folder (flat or class subfolders) or cifar10/cifar100 [default: $SSNAS_DATA, else cifar10].")
@skip_corrupt_option
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="quick", show_default=True,
              help="quick: minutes on a 2-core CPU (docs: benchmarks, speed); paper: the papers' settings, for a GPU.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=TEXT, default="auto", show_default=True, help="auto | cpu | cuda | cuda:N.")
@search_precision_option
@click.option("--out", type=TEXT, default=None, help=out_help("search-SPACE-sSEED"))
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--no-progress", "no_progress", is_flag=True, help="No progress bar.")
@click.option("--num-images", type=POSITIVE, default=None,
              help="Unlabeled training images [quick: 80% of the folder, up to 5,000; tpe/random: 1% of it; "
                   "at least the strategy's floor].")
@click.option("--holdout-images", type=POSITIVE, default=None,
              help="Held-out unlabeled images [quick: 20% of the folder, up to 1,024; tpe/random: 256; at least "
                   "the strategy's floor].")
@click.option("--epochs", type=POSITIVE, default=None, help=f"{TRAINS}: training epochs [preset; tpe/random 10].")
@click.option("--batch-size", type=BATCH, default=None, help=f"{TRAINS}: [preset]")
@click.option("--lr", type=POSITIVE_FLOAT, default=None, help=f"{TRAINS}: [preset]")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None, help=f"{TRAINS}: [preset: sgd]")
@click.option("--weight-decay", type=NON_NEGATIVE_FLOAT, default=None, help=f"{TRAINS}: [preset]")
@click.option("--channels", type=POSITIVE, default=None,
              help="Network width C on nb201 (evolution, tpe/random: each network; setn, bossnas: the supernet) and "
                   "darts (evolution, tpe/random) [preset; evolution on nb201 16; darts 32].")
@click.option("--cells", type=POSITIVE, default=None,
              help="Cells per stage N (nb201), cells in all (darts); where --channels applies [preset; evolution on nb201 5; darts 8].")
@click.option("--select-num", type=POSITIVE, default=None, help="setn: candidates rated; bossnas on nb201: cells in the population [preset].")
@click.option("--evaluator-every", type=POSITIVE, default=None, help="setn: evaluator step every n weight steps [preset].")
@click.option("--signals", type=click.Choice(ALL_SIGNALS), multiple=True,
              help=f"setn: label-free signal(s) rating the candidates (on the supernet; init-*: the candidate's own "
                   f"network at initialisation), repeatable "
                   f"[preset: {' + '.join(PRESETS['quick']['signals'])}].")
@click.option("--rating", type=click.Choice(ALL_SIGNALS), multiple=True, hidden=True)  # --signals' old name,
#              still read: scripts, and the config.yaml of older setn runs given to --config
@click.option("--trials", type=POSITIVE, default=None, help="tpe/random: completed trials wanted [preset].")
@click.option("--storage", type=TEXT, default=None, help="tpe/random: journal file, sqlite:///x.db or postgresql://... [run folder journal].")
@click.option("--study", type=TEXT, default=None, help="tpe/random: study name [ssnas].")
@click.option("--trial-objective", type=click.Choice(TRIAL_OBJECTIVES), default=None,
              help="tpe/random: ssl-proxy (CSNAS: train each trial, the paper's setting) or rating (label-free, no training) [ssl-proxy].")
@click.option("--proxy-loss", type=click.Choice(LOSSES), default=None,
              help="tpe/random ssl-proxy trials: holdout (the objective's loss on held-out images) or train "
                   "(the final epoch's training loss, as the CSNAS code reports) [holdout].")
@click.option("--ranker", type=TEXT, default=None,
              help="two-stage, evolution, tpe/random rating trials: a ranker expression, e.g. az-nas-ssl or meco+synflow "
                   "(see `ssnas rank --help`) [the space's search default].")
@click.option("--ratings", type=POSITIVE, default=None,
              help="two-stage (stage 1), evolution: architectures rated; with --time-budget, at most this many [100 without a time budget].")
@click.option("--islands", type=POSITIVE, default=None,
              help="two-stage (stage 1), evolution: independent aging evolutions run in turn, their best pooled [nb201 under a time budget: 4; else 1].")
@click.option("--final-shortlist", type=click.IntRange(min=0), default=None,
              help="two-stage (stage 1), evolution: the best N of everything rated are rated again under two more "
                   "seeds, and the best mean rank is the pick (0: off) [nb201 under a time budget: 10; else 0].")
@click.option("--population", type=POSITIVE, default=None, help="two-stage (stage 1), evolution: REA population size [20].")
@click.option("--rating-batch-size", type=BATCH, default=None, help="two-stage, evolution, tpe/random rating trials: held-out images per rated network [the space's search default].")
@click.option("--time-budget", type=float, default=None,
              help="evolution, two-stage, tpe/random: minutes the whole run may take. evolution: the ratings that fit "
                   "are planned from the speed of the first ones (kept on --resume), the best so far is in best.json; "
                   "two-stage: the shortlist and the training per candidate follow from the speed measured at the "
                   "start [15]; tpe/random: no trial starts after it [evolution on nb201: "
                   f"{EVOLUTION_PLANS['nb201'][0]:g} without --ratings; two-stage 15; else none].")
@click.option("--shortlist", type=int, default=None,
              help="two-stage: candidates of stage 1 judged by brief self-supervised training [as many as fit, up to 10].")
@click.option("--judge-budget", type=int, default=None,
              help="two-stage: backbone passes (images x rotations or views) each judged candidate trains for "
                   "[8,000 on nb201 (SimCLR), 32,000 elsewhere; less when the time budget is short].")
@click.option("--judge-objective", type=click.Choice(("rotation", "simclr")), default=None,
              help="two-stage: the judge's self-supervised training: rotation (UnNAS's pretext task) or simclr "
                   "(CSNAS's objective) [nb201: simclr, chosen on the development half; elsewhere rotation].")
@click.option("--judge-signal", type=click.Choice(SIGNAL_NAMES), default=None,
              help="two-stage: what ranks the judged candidates, measured after their training [nb201: "
                   "trained-az-trainability; elsewhere pretext-accuracy].")
@click.option("--judge-combine", type=click.Choice(("stage1", "params", "flops")), multiple=True,
              help="two-stage: partners averaged with --judge-signal by rank, repeatable [nb201: none; elsewhere stage1].")
@click.option("--table", type=TEXT, default=None,
              help="Benchmark CSV: look the found cells up in it even when the data is not CIFAR-10 [found automatically for CIFAR-10].")
@click.option("--max-flops", type=float, default=None,
              help="Budget: MFLOPs per 32x32 image (millions of multiply-accumulates, the NAS-Bench-201 convention).")
@click.option("--max-params", type=float, default=None, help="Budget: millions of parameters (10-class network).")
@click.option("--max-latency-ms", type=float, default=None,
              help="Budget: ms per image, batch 1, fp32, this machine's CPU and torch threads (measured, cached per arch).")
@config_option
@json_option
def search_command(as_json: bool, no_progress: bool, signals: tuple[str, ...], rating: tuple[str, ...],
                   judge_combine: tuple[str, ...], **options: Any) -> None:
    """Search an architecture without labels and write a run folder.

    The run folder (--out, else a new one under runs/) gets config.yaml (every setting the run
    used, resolved: `--config` takes it back), search.log, result.json, candidates.csv, report.html
    and what the strategy keeps (evolution.json; SETN checkpoint.pt and op_distribution.png;
    study.journal). Progress goes to search.log, and to stderr when stderr is not a terminal (a bar
    when it is).
    """
    mirror_log_to_stderr(not no_progress and is_main_process())
    result = search(**options, signals=signals or None, rating=rating or None,
                    judge_combine=judge_combine or None, progress=not no_progress and not as_json,
                    started=PROCESS_STARTED)  # the budget counts the whole command
    if is_main_process():  # under torchrun, one report
        emit(result.payload, as_json, lambda p: _render(p, str(result.run_dir)))


def _render(payload: dict[str, Any], out: str) -> None:
    console = Console()
    best = payload["best"]
    console.print(f"[bold]best architecture[/bold] {best['arch']}")
    console.print(f"score {best['score']:.4f} from {payload['num_candidates']} candidates in {payload['seconds']:.0f} s")
    truth = payload.get("ground_truth")
    if truth:
        console.print(
            "reference accuracy of this architecture (benchmark table, not measured on your data): "
            + ", ".join(f"{k} {v:.2f}" for k, v in truth.items() if k.startswith("cifar") or k.startswith("imagenet"))
        )
    else:
        console.print("ground truth: none known for this data")
    budget = payload.get("budget")
    if budget:
        console.print("budget: " + ", ".join(
            f"{m} {budget['cost'][m]:.4g} of {limit:g} {budget['units'][m]}" for m, limit in budget["limits"].items()))
    console.print(f"run folder: {out}")
