"""`ssnas worker`: join a running TPE / random search from another process or machine."""

from __future__ import annotations

from typing import Any

import click

from ssnas.cli._common import (
    TEXT, config_option, emit, json_option, precision_option, space_module_option,
)
from ssnas.run import run_worker, search_config
from ssnas.training.progress import mirror_log_to_stderr


@click.command("worker")
@click.option("--study", type=TEXT, required=True, help="Study name (printed by `ssnas search`; default 'ssnas').")
@click.option("--storage", type=TEXT, required=True, help="The search's storage: journal file, sqlite:///x.db or postgresql://...")
@click.option("--space", default="nb201", show_default=True, help="Must match the study's space.")
@space_module_option(record=True)
@click.option("--objective", default="simclr", show_default=True, help="Must match the study's objective.")
@click.option("--data", type=TEXT, default=None, help="The same images as the search [$SSNAS_DATA].")
@click.option("--preset", default="quick", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Data split seed: must match the search.")
@click.option("--device", default="auto", show_default=True)
@precision_option
@click.option("--out", type=TEXT, default="runs/worker", show_default=True, help="Folder for this worker's log.")
@config_option
@json_option
def worker_command(study: str, storage: str, as_json: bool, **options: Any) -> None:
    """Work on the trials of STUDY until the study has its requested number of completed trials."""
    mirror_log_to_stderr(True)
    payload = run_worker(search_config(strategy="tpe", progress=False, **options), study, storage)
    emit(payload, as_json, lambda p: click.echo(f"study {study}: best so far {p['best']['arch']} ({p['best']['score']:.4f})"))
