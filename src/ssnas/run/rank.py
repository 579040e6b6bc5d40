"""Label-free ratings, end to end: what `ssnas.rank` / `rank_into_folder` / `rate_shared` and
`ssnas rank` run.

Read top-down:

* `RankRequest`: what a rating of a space's architectures is asked for (space, ranker, table,
  network size, engine), the settings the API functions and the command share;
* `rate_architectures`: a list of architectures in memory -> `Rated` (records, correlations);
* `rate_folder`: a whole space (or a sample) into a run folder a chunk at a time, resumable and
  shared through an Optuna storage (`FolderRequest`); `work_on_shared`: one more worker of it;
* `rate_models`: any PyTorch models (no space, no table);
* `rank_listed`, `rank_folder`, `rank_models`: `ssnas rank`'s three routes, each returning the
  report the command prints (and writing scores.csv, report.html, report.json where asked);
* `correlations`: every rating against its table, the size baseline beside it.

The `ssnas.api` types `Ranking` and `FolderRanking` are `Rated` and `FolderRated` with methods.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ssnas.errors import UserError

if TYPE_CHECKING:
    from torch import nn

    from ssnas.data.datasets import ImageSet
    from ssnas.groundtruth import BenchmarkTable
    from ssnas.rating import Ranker
    from ssnas.rating.shared import SharedStudy
    from ssnas.run.settings import SearchConfig
    from ssnas.spaces import Architecture, SearchSpace

ImagesLike = torch.Tensor | str | Path
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RankRequest:
    """How a space's architectures are rated. None: the space's measured default
    (`ssnas.rating.defaults.rank_defaults`; `channels` / `cells`: its proxy network).

    table: True = the space's own ground-truth table, a CSV path, or None / False for none.
    """

    space: str
    ranker: str | None
    aggregate: str
    table: str | Path | bool | None
    metric: str
    batch_size: int | None
    channels: int | None
    cells: int | None
    seed: int
    device: str
    workers: int

    @property
    def ranker_name(self) -> str:
        """The ranker given, else the space's."""
        from ssnas.rating.defaults import rank_defaults

        return self.ranker or rank_defaults(self.space).ranker

    @property
    def engine_batch(self) -> int:
        """Images per network: the batch size given, else the space's."""
        from ssnas.rating.defaults import rank_defaults

        return self.batch_size or rank_defaults(self.space).batch_size

    def parsed_ranker(self) -> Ranker:
        from ssnas.rating import parse_ranker

        return parse_ranker(self.ranker_name, self.aggregate)

    def network(self) -> dict[str, int]:
        """The network size rated (`ssnas.rating.defaults.network_options`)."""
        from ssnas.rating.defaults import network_options

        return network_options(self.space, self.channels, self.cells)

    def truth_table(self) -> BenchmarkTable | None:
        """The ground truth `table` names (None for none)."""
        from ssnas.groundtruth import load_space_table

        if self.table is None or self.table is False:
            return None
        return load_space_table(self.space, None if self.table is True else Path(self.table))


@dataclass(frozen=True)
class FolderRequest:
    """What `rate_folder` writes: `select` ("all", a sample size or a file of architectures), the
    chunk size (None: `ssnas.rating.stream.DEFAULT_CHUNK_SIZE`), whether a killed rating is resumed,
    and the Optuna storage and study a shared rating goes through (None: not shared)."""

    select: str | int | Path
    chunk_size: int | None
    resume: bool
    storage: str | None = None
    study: str = "ssnas-rating"
    heartbeat_interval: int | None = None

    def shared(self, workers: int) -> SharedStudy | None:
        """The shared rating's study (None: not shared); a shared rating rates in one process here."""
        from ssnas.rating.shared import SharedStudy

        if self.storage is None:
            return None
        if workers != 1:
            raise UserError("a shared rating (--storage) rates in one process here: start more `ssnas worker "
                            "--study NAME --storage URL` processes instead of --workers")  # fmt: skip
        interval = {"heartbeat_interval": self.heartbeat_interval} if self.heartbeat_interval else {}
        return SharedStudy(self.storage, self.study, **interval)


@dataclass
class Rated:
    """A rating in memory: the fields of `ssnas.api.Ranking` (which adds the methods)."""

    ranker: str
    records: list[dict[str, Any]]
    correlations: dict[str, Any] | None = None
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class FolderRated:
    """A rating written to a run folder: the fields of `ssnas.api.FolderRanking` (which adds `keys`)."""

    ranker: str
    run_dir: Path
    count: int
    rated: int
    best: dict[str, Any]
    correlations: dict[str, Any] | None
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- inputs


def as_images(data: ImagesLike | None, skip_corrupt: bool = False) -> tuple[torch.Tensor | None, int]:
    """The images of `data` (a tensor, a folder or a dataset name) and how many unreadable files
    `skip_corrupt` left out of a folder."""
    if data is None or isinstance(data, torch.Tensor):
        if data is not None and (data.dtype != torch.uint8 or data.dim() != 4):
            raise UserError(f"images must be a (N,3,H,W) uint8 tensor, got {data.dtype} {tuple(data.shape)}")
        return data, 0
    from ssnas.data.datasets import load_dataset

    dataset = load_dataset(str(data), skip_corrupt=skip_corrupt)
    return dataset.images, dataset.num_skipped


def data_spec(data: str | None, ranker: str) -> str:
    """--data or $SSNAS_DATA; a one-line error naming both when neither is given."""
    from ssnas.paths import DATA_ENV

    spec = data or os.environ.get(DATA_ENV)
    if not spec:
        raise UserError(f"ranker {ranker!r} scores networks on images: give --data FOLDER (or set ${DATA_ENV})")
    return spec


def _ranker_images(data: str | None, ranker: str, skip_corrupt: bool) -> ImageSet:
    """The images of --data or $SSNAS_DATA, (N,3,32,32) uint8 (the training split; no labels are used),
    and how many unreadable files --skip-corrupt left out (`num_skipped`)."""
    from ssnas.data.datasets import load_dataset

    return load_dataset(data_spec(data, ranker), skip_corrupt=skip_corrupt)


def _check_images(ranker: Ranker, name: str, images: torch.Tensor | None) -> None:
    if images is None and ranker.needs_images:
        raise UserError(f"ranker {name!r} scores networks on images: give data (a folder or a uint8 tensor)")


# ----------------------------------------------------------------------------- correlations


def size_baseline(space: Any, archs: Sequence[Architecture]) -> list[float]:
    """The size yardstick of `archs`: the parameter count where the space counts it; the sum of the
    widths on nats-size; else the parameters of each built 10-class network (plugin spaces)."""
    from ssnas.rating import STRUCTURAL

    if callable(getattr(space, "num_parameters", None)):
        return list(STRUCTURAL.get("params")(space, list(archs)))
    if space.name == "nats-size":
        return [float(sum(int(w) for w in arch.choices)) for arch in archs]
    return [float(sum(p.numel() for p in space.build(arch, num_classes=10).parameters())) for arch in archs]


def correlations(space: SearchSpace, archs: Sequence[Architecture], scores: Sequence[float], table: BenchmarkTable,
                 metric: str, ranker: str, keys: Sequence[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """`ssnas.ranking.report.correlate` of `scores` against `table` (rows `keys`, default the
    architectures' keys), with the size baseline on the same architectures beside it (none for the
    "params" ranker: it is the baseline)."""
    from ssnas.ranking.report import correlate

    baseline = size_baseline(space, archs) if ranker != "params" else None
    return correlate([a.key for a in archs] if keys is None else keys, scores, table, metric, baseline=baseline)


# ----------------------------------------------------------------------------- the API's ratings


def rate_architectures(archs: Sequence[str | Architecture], images: torch.Tensor | None, request: RankRequest,
                       progress: Progress | None = None) -> Rated:  # fmt: skip
    """Rate `archs` of `request.space` in memory; with a table, each record gets its metric and the
    rating its correlations."""
    from ssnas.rating import EngineConfig, resized, score_architectures
    from ssnas.spaces import Architecture, create_space

    searched = create_space(request.space)
    parsed_archs = [a if isinstance(a, Architecture) else searched.parse(a) for a in archs]
    if not parsed_archs:
        raise UserError("no architectures to rank")
    truth_table = request.truth_table()
    name = request.ranker_name
    parsed = request.parsed_ranker()
    _check_images(parsed, name, images)
    options = request.network()
    engine = EngineConfig(batch_size=request.engine_batch, seed=request.seed, device=request.device)
    started = time.perf_counter()
    scores = score_architectures(resized(searched, options), parsed_archs, parsed, images, engine, progress=progress,
                                 workers=request.workers)  # fmt: skip
    seconds = time.perf_counter() - started
    records: list[dict[str, Any]] = [
        {"name": arch.key, "score": scores.score[i], **{c: values[i] for c, values in scores.columns.items()}}
        for i, arch in enumerate(parsed_archs)
    ]
    found = None
    if truth_table is not None:
        for record in records:
            record[request.metric] = truth_table.query(record["name"], request.metric)
        found = correlations(searched, parsed_archs, scores.score, truth_table, request.metric, name)
    info = {"seconds_per_arch": scores.seconds_per_arch(), "proxy_network": options, "batch_size": engine.batch_size,
            "workers": request.workers, "nonfinite": scores.nonfinite}  # fmt: skip
    return Rated(name, records, found, seconds, info)


def rate_folder(out: str | Path, data: ImagesLike | None, request: RankRequest, folder: FolderRequest, *,
                progress: Progress | None = None, skip_corrupt: bool = False) -> FolderRated:  # fmt: skip
    """Rate `folder.select` of `request.space` into the run folder `out` a chunk at a time
    (`ssnas.rating.stream`); with a table, the correlations and report.html."""
    from ssnas.rating.plan import plan_rating
    from ssnas.rating.stream import DEFAULT_CHUNK_SIZE, rate_into_folder
    from ssnas.spaces import create_space
    from ssnas.studies import masked_url

    out = Path(out)
    searched = create_space(request.space)
    truth_table = request.truth_table()
    name = request.ranker_name
    parsed = request.parsed_ranker()
    images, skipped = as_images(data, skip_corrupt)
    _check_images(parsed, name, images)
    options = request.network()
    chunk_size = folder.chunk_size or DEFAULT_CHUNK_SIZE
    shared = folder.shared(request.workers)
    started = time.perf_counter()
    plan = plan_rating(searched, folder.select, images, ranker=name, aggregate=request.aggregate, seed=request.seed,
                       batch_size=request.engine_batch, network=options, device=request.device,
                       data=None if data is None or isinstance(data, torch.Tensor) else str(data),
                       chunk_size=chunk_size, workers=request.workers)  # fmt: skip
    settings = plan.settings
    if shared is not None:
        settings = {**settings, "storage": masked_url(folder.storage), "study": folder.study}  # type: ignore[arg-type]
    done = rate_into_folder(out, settings, plan.archs, plan.count, plan.job, parsed, chunk_size=chunk_size,
                            workers=request.workers, resume=folder.resume, progress=progress, shared=shared)  # fmt: skip
    info = {"seconds_per_arch": done.seconds_per_arch, "proxy_network": options, "batch_size": plan.settings["batch_size"],
            "workers": request.workers, "nonfinite": done.nonfinite, "chunk_size": chunk_size, "rated_now": done.rated,
            "skipped_images": skipped}  # fmt: skip
    found = None
    if truth_table is not None:
        found = _folder_report(out, searched, list(done.keys()), done.scores, truth_table, request.metric, name, info)
    best = {"name": done.best[0], "score": done.best[1]}
    return FolderRated(name, out, done.count, done.rated, best, found, time.perf_counter() - started, info)


def _folder_report(out: Path, space: SearchSpace, keys: list[str], scores: list[float], table: BenchmarkTable,
                   metric: str, ranker: str, info: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The correlations of a rated folder, and its report.html."""
    from ssnas.reporting import write_rank_report

    found = correlations(space, [space.parse(key) for key in keys], scores, table, metric, ranker, keys)
    report = {**found, "ranker": ranker, **info}
    write_rank_report(out, ranker, keys, scores, [table.query(key, metric) for key in keys], report)
    return found


def work_on_shared(storage: str, study: str, data: ImagesLike | None, *, progress: Progress | None = None,
                   skip_corrupt: bool = False) -> dict[str, Any]:  # fmt: skip
    """Rate chunks of the shared rating `study` in `storage` until every chunk is rated; what this
    worker did. The settings come from the study; `data` must hold the images it was started with."""
    from ssnas.rating import parse_ranker
    from ssnas.rating.plan import plan_from_settings
    from ssnas.rating.shared import SharedStudy, join_rating, work_on_chunks
    from ssnas.rating.stream import ChunkRater
    from ssnas.spaces import create_space
    from ssnas.studies import masked_url, worker_label

    started = time.perf_counter()
    probe = SharedStudy(storage, study)
    _, _, settings = join_rating(probe)
    shared = SharedStudy(storage, study, heartbeat_interval=int(settings.get("heartbeat_interval", probe.heartbeat_interval)))
    study_handle, liveness, settings = join_rating(shared)
    images, skipped = as_images(data, skip_corrupt)
    if images is None and parse_ranker(settings["ranker"], settings["aggregate"]).needs_images:
        raise UserError(f"the rating's ranker {settings['ranker']!r} scores networks on images: give the same --data "
                        "as the rating was started with")  # fmt: skip
    plan = plan_from_settings(create_space(settings["space"]), settings, images)
    rater = ChunkRater(plan.archs, plan.chunk_size, plan.job, plan.count)

    def report(state: Any) -> None:
        if progress is not None:
            progress(sum(rater.size(k) for k in state.texts), rater.count)

    rated = work_on_chunks(study_handle, liveness, rater, shared, worker_label(), report)
    return {"study": study, "storage": masked_url(storage), "chunks": rater.chunks, "chunks_rated": len(rated),
            "architectures_rated": sum(rater.size(k) for k in rated), "count": rater.count,
            "ranker": settings["ranker"], "space": settings["space"], "skipped_images": skipped,
            "seconds": time.perf_counter() - started}  # fmt: skip


def rate_models(models: str | Mapping[str, Callable[[], nn.Module]], images: torch.Tensor | None, ranker: str | None,
                batch_size: int | None, aggregate: str, seed: int, image_size: int | None,
                budget: dict[str, float | None], progress: Progress | None) -> Rated:  # fmt: skip
    """Rate the models of a spec ("timm:resnet18,my_models.py") or of a name -> factory mapping;
    models over `budget` are measured, listed in `info["excluded"]` and not rated."""
    from ssnas.rating import EngineConfig, parse_ranker
    from ssnas.rating.defaults import FALLBACK_RANK
    from ssnas.rating.models import load_model_factories, score_models
    from ssnas.spaces.budget import IMAGE_SIZE, Budget

    name = ranker or FALLBACK_RANK.ranker
    parsed = parse_ranker(name, aggregate)
    _check_images(parsed, name, images)
    size = image_size or (int(images.shape[-1]) if images is not None else IMAGE_SIZE)
    factories = load_model_factories(models, image_size=size) if isinstance(models, str) else dict(models)
    limits = Budget(budget["max_flops"], budget["max_params"], budget["max_latency_ms"])
    engine = EngineConfig(batch_size=batch_size or FALLBACK_RANK.batch_size, seed=seed)
    started = time.perf_counter()
    scored = score_models(factories, parsed, images, engine, image_size=size, budget=limits or None, progress=progress)
    info = {"excluded": scored.excluded, "budget": limits.limits(), "image_size": size, "batch_size": engine.batch_size,
            "nonfinite": scored.nonfinite, "seconds_per_model": scored.seconds_per_model()}  # fmt: skip
    return Rated(name, scored.records(), None, time.perf_counter() - started, info)


# ----------------------------------------------------------------------------- `ssnas rank`'s routes


@dataclass(frozen=True)
class _Scored:
    """Scores of listed architectures (a ranker's or a trained strategy's) before the report."""

    name: str
    archs: list[Architecture]
    scores: list[float]
    columns: dict[str, list[float]]
    extra: dict[str, Any]
    out: Path | None


def rank_listed(request: RankRequest, select: Path | int | str, *, strategy: dict[str, Any] | None, data: str | None,
                skip_corrupt: bool, out: Path | None, bar: bool) -> dict[str, Any] | None:  # fmt: skip
    """`ssnas rank --archs/--sample/--all` without a run folder of chunks: a ranker's rating in
    memory, or (`strategy`: its `search_config` settings) a trained strategy's into a new run folder;
    then the correlations against the table, scores.csv (into `out`) and report.html (a folder).
    None under torchrun on a process other than 0 (process 0 writes and reports)."""
    from ssnas.groundtruth import load_space_table
    from ssnas.spaces import create_space
    from ssnas.training.distributed import is_main_process

    space = create_space(request.space)
    given = request.table
    assert given is not False, "rank_listed correlates against a table (None or True: the space's own)"
    table_path = None if given is None or given is True else Path(given)
    table = load_space_table(request.space, table_path)  # before any work: a space without a table is refused
    if strategy is None:
        scored = _rate_listed(space, request, select, data, skip_corrupt, out, bar)
    else:
        scored = _rate_with_strategy(space, request, select, strategy, table_path, out)
    if not is_main_process():
        return None
    return _listed_report(scored, space, table, request.metric)


def _rate_listed(space: SearchSpace, request: RankRequest, select: Path | int | str, data: str | None,
                 skip_corrupt: bool, out: Path | None, bar: bool) -> _Scored:  # fmt: skip
    from ssnas.rating import threads_per_worker
    from ssnas.ranking.selection import all_architectures, read_architectures, sample_architectures
    from ssnas.training.progress import StageProgress

    if isinstance(select, Path):
        selection = read_architectures(space, select)
    elif isinstance(select, int):
        selection = sample_architectures(space, select, request.seed)
    else:
        selection = all_architectures(space)
    name = request.ranker_name
    dataset = _ranker_images(data, name, skip_corrupt) if request.parsed_ranker().needs_images else None
    started = time.perf_counter()
    with StageProgress("ranking", len(selection), "architectures", bar=bar) as progress:
        rated = rate_architectures(selection, None if dataset is None else dataset.images,
                                   replace(request, ranker=name, table=None),
                                   lambda done, total: progress.update(done, force_line=done == total))  # fmt: skip
    columns = {c: [r[c] for r in rated.records] for c in rated.records[0] if c not in ("name", "score")}
    extra = {"seconds_per_arch": rated.info["seconds_per_arch"], "wall_seconds": time.perf_counter() - started,
             "proxy_network": rated.info["proxy_network"], "batch_size": rated.info["batch_size"],
             "workers": request.workers, "nonfinite": rated.info["nonfinite"],
             "threads_per_worker": threads_per_worker(request.workers),
             "skipped_images": 0 if dataset is None else dataset.num_skipped}  # fmt: skip
    return _Scored(name, selection, [r["score"] for r in rated.records], columns, extra, out)


def _rate_with_strategy(space: SearchSpace, request: RankRequest, select: Path | int | str, strategy: dict[str, Any],
                        table_path: Path | None, out: Path | None) -> _Scored:  # fmt: skip
    """Train what the strategy `strategy["strategy"]` needs (`ssnas.run.jobs.run_rank`) and rate
    the listed architectures with it into a run folder (`out`, else a new one)."""
    from ssnas.ranking.selection import read_architectures
    from ssnas.run.jobs import run_rank
    from ssnas.run.settings import search_config
    from ssnas.runfolder import out_or_new

    if not isinstance(select, (Path, int)):
        raise UserError("--all is for zero-cost rankers; a strategy rates --archs FILE or --sample N")
    name, seed = strategy["strategy"], request.seed
    config: SearchConfig = search_config(
        **strategy, space=request.space, seed=seed, batch_size=request.batch_size, channels=request.channels,
        cells=request.cells, table=str(table_path) if table_path else None,
        out=str(out_or_new(out, strategy["resume"], "rank", name, request.space, f"s{seed}")),  # no --out: a new folder
    )  # fmt: skip
    texts = [a.key for a in read_architectures(space, select)] if isinstance(select, Path) else None
    scored, _, skipped = run_rank(config, texts, select if isinstance(select, int) else None, seed)
    out = config.run.out_dir
    return _Scored(name, [s.arch for s in scored], [s.score for s in scored], {},
                   {"out": str(out), "skipped_images": skipped}, out)  # fmt: skip


def _listed_report(scored: _Scored, space: SearchSpace, table: BenchmarkTable, metric: str) -> dict[str, Any]:
    """The correlations (refusals such as too few cells before any write), then scores.csv and,
    in a run folder, report.html."""
    from ssnas.ranking.selection import write_scores
    from ssnas.reporting import write_rank_report

    keys, out = [a.key for a in scored.archs], scored.out
    report = correlations(space, scored.archs, scored.scores, table, metric, scored.name)
    if out is not None:
        write_scores(out / "scores.csv" if out.suffix != ".csv" else out, list(zip(keys, scored.scores)), scored.columns)
    report["ranker"] = scored.name
    report.update(scored.extra)
    if out is not None and out.suffix != ".csv":  # a run folder gets report.html
        write_rank_report(out, scored.name, keys, list(scored.scores), [table.query(key, metric) for key in keys], report)
    return report


def rank_folder(out: Path, request: RankRequest, folder: FolderRequest, *, data: str | None, skip_corrupt: bool,
                bar: bool) -> dict[str, Any]:  # fmt: skip
    """`ssnas rank --out FOLDER`: `rate_folder` (the space's own table where it has one), then the
    report: the correlations with a table, else the count and the best architecture."""
    from ssnas.groundtruth.tables import space_table
    from ssnas.rating import threads_per_worker
    from ssnas.runfolder import check_out
    from ssnas.training.progress import LazyProgress

    table = request.table if request.table is not None else True if space_table(request.space) else None
    name = request.ranker_name
    check_out(out, folder.resume)  # before loading images
    spec = data_spec(data, name) if request.parsed_ranker().needs_images else None  # data-free: no images
    started = time.perf_counter()
    with LazyProgress("ranking", "architectures", bar=bar) as progress:
        done = rate_folder(out, spec, replace(request, ranker=name, table=table), folder, progress=progress.update,
                           skip_corrupt=skip_corrupt)  # fmt: skip
    extra = {**done.info, "wall_seconds": time.perf_counter() - started,
             "threads_per_worker": threads_per_worker(request.workers), "out": str(out)}  # fmt: skip
    if done.correlations is not None:
        return {**done.correlations, "ranker": name, **extra}
    if not done.info["rated_now"] and not folder.resume:  # pragma: no cover - a fresh rating rates something
        raise UserError(f"nothing was rated into {out}")
    return {"ranker": name, "count": done.count, "best": {"arch": done.best["name"], "score": done.best["score"]},
            **extra}  # fmt: skip


def rank_models(models: str, request: RankRequest, *, image_size: int | None, budget: dict[str, float | None],
                data: str | None, skip_corrupt: bool, out: Path | None, bar: bool) -> dict[str, Any]:  # fmt: skip
    """`ssnas rank --models SPEC`: rate the models (`request`'s ranker, aggregate, batch size and
    seed; no space, no table) and report; with `out`, scores.csv and report.json."""
    from ssnas.rating import parse_ranker
    from ssnas.rating.defaults import FALLBACK_RANK
    from ssnas.spaces.budget import UNITS, cpu_model
    from ssnas.training.progress import StageProgress

    name = request.ranker or FALLBACK_RANK.ranker
    dataset = _ranker_images(data, name, skip_corrupt) if parse_ranker(name, request.aggregate).needs_images else None
    started = time.perf_counter()
    with StageProgress("rating", len(models.split(",")), "models", bar=bar) as progress:

        def update(done: int, total: int) -> None:
            progress.total = total  # a file entry may hold several factories
            progress.update(done, force_line=done == total)

        rated = rate_models(models, None if dataset is None else dataset.images, name, request.batch_size,
                            request.aggregate, request.seed, image_size, budget, update)  # fmt: skip
    records, info = rated.records, rated.info
    report: dict[str, Any] = {
        "ranker": name, "count": len(records), "best": sorted(records, key=lambda r: -r["score"])[0]["name"],
        "models": records, "excluded": info["excluded"], "budget": info["budget"],
        "units": {"params_M": UNITS["params"], "mflops": "MFLOPs", "latency_ms": UNITS["latency_ms"]},
        "image_size": info["image_size"], "batch_size": info["batch_size"], "seed": request.seed,
        "nonfinite": info["nonfinite"], "seconds_per_model": info["seconds_per_model"],
        "wall_seconds": time.perf_counter() - started, "threads": torch.get_num_threads(), "cpu": cpu_model(),
        "skipped_images": 0 if dataset is None else dataset.num_skipped,
    }  # fmt: skip
    if out is not None:
        _write_models(out, records, report)
    return report


def _write_models(out: Path, records: list[dict[str, Any]], report: dict[str, Any]) -> None:
    """`scores.csv` (model, score, each signal, costs; the order given) and `report.json` in the folder
    `out`, or only the CSV when `out` ends in .csv."""
    from ssnas.atomic import write_atomic

    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=["model", *list(records[0])[1:]])
    writer.writeheader()
    writer.writerows({"model": r["name"], **{k: v for k, v in r.items() if k != "name"}} for r in records)
    if out.suffix == ".csv":
        write_atomic(out, text.getvalue())
        return
    write_atomic(out / "scores.csv", text.getvalue())
    write_atomic(out / "report.json", json.dumps(report, indent=2) + "\n")


__all__ = [
    "FolderRated", "FolderRequest", "ImagesLike", "RankRequest", "Rated", "as_images", "correlations", "data_spec", "rank_folder",
    "rank_listed", "rank_models", "rate_architectures", "rate_folder", "rate_models", "size_baseline",
    "work_on_shared",
]
