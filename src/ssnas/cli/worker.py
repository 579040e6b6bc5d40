"""`ssnas worker`: join a running TPE / random search, or a shared rating, from another process or machine."""

from __future__ import annotations

import os
from typing import Any

import click

from ssnas.cli._common import (
    TEXT,
    config_option,
    emit,
    json_option,
    out_help,
    precision_option,
    skip_corrupt_option,
    space_module_option,
)
from ssnas.run import run_worker, search_config
from ssnas.runfolder import out_or_new
from ssnas.training.progress import LazyProgress, mirror_log_to_stderr


@click.command("worker")
@click.option("--study", type=TEXT, required=True, help="Study name: a search's (printed by `ssnas search`; default 'ssnas') or a shared "
                   "rating's (`ssnas rank --storage`; default 'ssnas-rating').")
@click.option("--storage", type=TEXT, required=True, help="The search's or rating's storage: journal file, sqlite:///x.db or postgresql://...")
@click.option("--space", default="nb201", show_default=True, help="Must match the study's space.")
@space_module_option(record=True)
@click.option("--objective", default="simclr", show_default=True, help="Must match the study's objective.")
@click.option("--data", type=TEXT, default=None, help="The same images as the search or rating [$SSNAS_DATA].")
@skip_corrupt_option
@click.option("--preset", default="quick", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Data split seed: must match the search.")
@click.option("--device", default="auto", show_default=True)
@precision_option
@click.option("--out", type=TEXT, default=None, help=out_help("worker-STUDY", "Folder for this worker's log"))
@config_option
@json_option
def worker_command(study: str, storage: str, as_json: bool, **options: Any) -> None:
    """Work on the trials of STUDY until the study has its requested number of completed trials.

    STUDY may also be a shared rating (`ssnas rank --all --out DIR --storage URL --study STUDY`):
    the worker then takes chunks of architectures and rates them with the rating's own settings
    (space, ranker, network; --data must hold the same images) until every chunk is rated."""
    mirror_log_to_stderr(True)
    from ssnas.rating.shared import study_kind
    from ssnas.studies import check_study

    check_study(study, storage)
    if study_kind(storage, study) == "rating":
        from ssnas.api import rate_shared
        from ssnas.paths import DATA_ENV

        data = options["data"] or os.environ.get(DATA_ENV)
        with LazyProgress("rating", "architectures", bar=not as_json) as bar:
            done = rate_shared(storage, study, data, progress=bar.update, skip_corrupt=options["skip_corrupt"])
        emit(done, as_json, lambda p: click.echo(f"rating {study}: {p['chunks_rated']} of {p['chunks']} chunks "
                                                 f"({p['architectures_rated']} architectures) rated by this worker; "
                                                 "every chunk is rated"))  # fmt: skip
        return
    options["out"] = str(out_or_new(options["out"], False, "worker", study))
    payload = run_worker(search_config(strategy="tpe", progress=False, **options), study, storage)
    emit(payload, as_json, lambda p: click.echo(f"study {study}: best so far {p['best']['arch']} ({p['best']['score']:.4f})"))
