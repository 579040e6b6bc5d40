"""The Python API: what the `ssnas` commands do, as functions that return data.

Every function takes its seed, device and threads as arguments and leaves no global state
behind (torch's thread count and random state are put back). These functions and the CLI run
the same workflows (`ssnas.run`), so the same settings give the same results from either side.

>>> import ssnas
>>> images = ssnas.load_images("cifar10-jpeg", limit=256)            # doctest: +SKIP
>>> ranking = ssnas.rank(["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
...                       "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"],
...                      data=images, ranker="az-nas-ssl")               # doctest: +SKIP
>>> ranking.best["name"]                                              # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ssnas.errors import UserError
from ssnas.reporting.record import Candidate
from ssnas.run import rank as _rank
from ssnas.run.rank import FolderRated, FolderRequest, ImagesLike, RankRequest, Rated

if TYPE_CHECKING:
    from ssnas.spaces import Architecture


@contextmanager
def using_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `threads` inside the block and put back afterwards (None: unchanged)."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise UserError(f"threads must be >= 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_images(path: str | Path, *, split: str = "train", resolution: int = 32, limit: int | None = None,
                seed: int = 0, skip_corrupt: bool = False) -> torch.Tensor:  # fmt: skip
    """Unlabeled images of a folder (or "cifar10" / "cifar100") as a (N,3,H,W) uint8 tensor.

    Class subfolders are allowed but their names are never used; a folder with `train/` and
    `test/` is split by them. Decoded folders are cached, so a second call is fast.

    Args:
        path: an image folder, or "cifar10" / "cifar100".
        split: "train" or "test" (folders with train/ and test/ subfolders).
        resolution: image side in pixels.
        limit: keep this many images, drawn without replacement with `seed` (None: all).
        skip_corrupt: leave unreadable files out with a warning instead of failing.

    >>> images = ssnas.load_images("../shared/data/cifar10-jpeg", limit=512)  # doctest: +SKIP
    >>> images.shape, images.dtype                                           # doctest: +SKIP
    (torch.Size([512, 3, 32, 32]), torch.uint8)
    """
    from ssnas.data.datasets import load_dataset

    dataset = load_dataset(str(path), split=split, resolution=resolution, skip_corrupt=skip_corrupt)
    if limit is not None:
        dataset = dataset.subset(limit, seed)
    return dataset.images


# ----------------------------------------------------------------------------- listing


def list_spaces() -> list[str]:
    """Names of the search spaces (built-in and plugins).

    >>> "nb201" in ssnas.list_spaces()
    True
    """
    from ssnas.spaces import SPACES

    return SPACES.names()


def list_rankers() -> list[str]:
    """Names of the label-free rankers; ensembles join them with '+' (e.g. "meco+naswot").

    >>> "az-nas" in ssnas.list_rankers()
    True
    """
    from ssnas.rating import ranker_names

    return ranker_names()


def list_strategies() -> list[str]:
    """Names of the search strategies.

    >>> "evolution" in ssnas.list_strategies()
    True
    """
    from ssnas.run import STRATEGY_SETTINGS

    return list(STRATEGY_SETTINGS)


# ----------------------------------------------------------------------------- search


@dataclass
class SearchResult:
    """What a search found. `best` is `candidates[0]`; `run_dir` holds result.json,
    candidates.csv, report.html and config.yaml; `payload` is result.json's content;
    `settings` is config.yaml (every setting the run used).

    >>> result = ssnas.search("cifar10-jpeg", space="nats-size", seed=1)  # doctest: +SKIP
    >>> result.arch, result.run_dir / "report.html"                      # doctest: +SKIP
    >>> import pandas; pandas.DataFrame(result.to_records()).head()      # doctest: +SKIP
    """

    best: Candidate
    candidates: list[Candidate]
    run_dir: Path
    seconds: float
    settings: dict[str, Any]
    payload: dict[str, Any]

    @property
    def arch(self) -> str:
        """The found architecture's string (what `ssnas train` / `export` take)."""
        return self.best.arch

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per candidate, best first (`pandas.DataFrame(result.to_records())`)."""
        return [{"rank": i, "arch": c.arch, "score": c.score, **c.signals, **c.truth}
                for i, c in enumerate(self.candidates, start=1)]  # fmt: skip


def search(data: str | Path | None = None, *, space: str = "nb201", strategy: str | None = None, seed: int = 0,
           out: str | Path | None = None, device: str = "auto", precision: str = "auto", threads: int | None = None,
           resume: bool = False, progress: bool = False, started: float | None = None,
           **settings: Any) -> SearchResult:  # fmt: skip
    """Search `space` without labels on the images of `data` and write a run folder.

    The same settings as `ssnas search` (option names with underscores: `ratings=200`,
    `max_flops=50`, `time_budget=15`, `skip_corrupt=True`, ...); an option the strategy does not
    use is refused before any work. `out` defaults to a new folder under runs/. A `time_budget`
    counts from `started` (`time.monotonic()`; None = this call; `ssnas search` passes its process's start).

    Returns:
        SearchResult: the best architecture, every candidate best first, the run folder.

    >>> result = ssnas.search("../shared/data/cifar10-jpeg", space="nb201", seed=0)  # doctest: +SKIP
    >>> result.arch, result.best.truth.get("cifar10_test")                            # doctest: +SKIP
    """
    from ssnas.run import run_search, search_config
    from ssnas.run.results import read_search

    data_text = None if data is None else str(data)
    out_text = None if out is None else str(out)  # None: a new folder under runs/ (`ssnas.runfolder.new_run_dir`)
    config = search_config(space=space, strategy=strategy, data=data_text, seed=seed, out=out_text, device=device,
                           precision=precision, resume=resume, progress=progress, **settings)  # fmt: skip
    with using_threads(threads):
        payload = run_search(config, started)
    candidates, saved = read_search(config, payload)
    return SearchResult(candidates[0], candidates, config.run.out_dir, float(payload["seconds"]), saved, payload)


def finetune(pretrained: str | Path, data: str | Path = "cifar10", *, labels_per_class: int | None = None,
             out: str | Path | None = None, seed: int = 0, device: str = "auto", precision: str = "auto",
             threads: int | None = None, resume: bool = False, progress: bool = False, **settings: Any) -> dict[str, Any]:
    """Fine-tune the network of a `pretrain` run folder on the labelled images of `data` (a folder with
    train/ and test/ class folders, or cifar10): a linear probe fits a fresh head, then the whole
    network trains with SimCLR's fine-tuning recipe (`ssnas.finetuning`). `labels_per_class` keeps a
    seeded, class-balanced subset; `settings`: preset ("quick" | "paper": a GPU's batch and SimCLR's
    epochs), epochs, batch_size, lr, max_steps, skip_corrupt.

    Returns:
        The run's metrics.json: test_accuracy, linear_probe_accuracy, history, out (the run folder), ...

    >>> metrics = ssnas.finetune("runs/pretrain", "labelled/", labels_per_class=50)  # doctest: +SKIP
    >>> metrics["test_accuracy"], metrics["linear_probe_accuracy"]                    # doctest: +SKIP
    """
    from ssnas.finetuning import finetune as run_finetune

    with using_threads(threads):
        return run_finetune(pretrained, str(data), labels_per_class, out, resume, seed=seed, device=device,
                            precision=precision, progress=progress, **settings)  # fmt: skip


def fit(data: str | Path, labels: str | Path, *, labels_per_class: int | None = None,
        time_budget: float | None = None, out: str | Path | None = None, seed: int = 0, device: str = "auto",
        precision: str = "auto", threads: int | None = None, resume: bool = False, progress: bool = False,
        **settings: Any) -> dict[str, Any]:  # fmt: skip
    """From unlabeled images to an exported model: label-free search on `data`, self-supervised
    pretraining of the found network on every image of `data`, fine-tuning on the labelled images of
    `labels` (train/ and test/ class folders; `labels_per_class` keeps a seeded, balanced subset),
    TorchScript export and a report (`ssnas.fitting`). `time_budget` minutes are split across the
    stages (`ssnas.fitting.SHARES`); `settings`: the other fields of `ssnas.fitting.FitConfig`
    (space, strategy, search_options, objective, preset = "quick" | "paper" (the papers' settings for
    every stage, a GPU), pretrain_epochs, finetune_epochs, channels, ...).

    Returns:
        The run's metrics.json: test_accuracy, linear_probe_accuracy, probes, model (model.ts), out, ...

    >>> metrics = ssnas.fit("unlabeled/", "labelled/", labels_per_class=50, time_budget=60)  # doctest: +SKIP
    >>> metrics["test_accuracy"], metrics["model"]                                           # doctest: +SKIP
    """
    from ssnas.fitting import FitConfig
    from ssnas.fitting import fit as run_fit

    config = FitConfig(data=str(data), labels=str(labels), labels_per_class=labels_per_class, time_budget=time_budget,
                       out=None if out is None else str(out), seed=seed, device=device, precision=precision,
                       resume=resume, progress=progress, **settings)  # fmt: skip
    with using_threads(threads):
        return run_fit(config)


# ----------------------------------------------------------------------------- rank / score


@dataclass
class Ranking(Rated):
    """Label-free scores of architectures or models, best first in `ordered()`, as given in `records`.

    records: one dict per architecture / model in input order: `name`, `score`, each signal,
        cost columns (`params_M`, `mflops`) and the ground-truth metric when a table is given.
    correlations: Kendall, Spearman, top-k and regret against the table (None without one),
        with the parameter-count baseline on the same architectures under "baseline".

    >>> ranking = ssnas.rank("timm:resnet18,timm:efficientnet_b0", images)  # doctest: +SKIP
    >>> ranking.best["name"]; ranking.to_csv("scores.csv")                # doctest: +SKIP
    """

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def ordered(self) -> list[dict[str, Any]]:
        """Records best first (stable for ties)."""
        return sorted(self.records, key=lambda r: -r["score"])

    @property
    def best(self) -> dict[str, Any]:
        """The record with the highest score."""
        return self.ordered()[0]

    @property
    def scores(self) -> list[float]:
        return [r["score"] for r in self.records]

    def to_csv(self, path: str | Path | None = None) -> str:
        """The records as CSV text (written to `path` when given)."""
        names = list(dict.fromkeys(k for r in self.records for k in r))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.records)
        if path is not None:
            Path(path).write_text(text.getvalue())
        return text.getvalue()

    def to_dataframe(self) -> Any:
        """A pandas DataFrame of the records (pandas is not a dependency of ssnas: install it)."""
        try:
            import pandas
        except ImportError:
            raise UserError("to_dataframe needs pandas: pip install pandas") from None
        return pandas.DataFrame(self.records)


ArchsOrModels = Sequence["str | Architecture"] | Mapping[str, Callable[[], nn.Module]] | str


def rank(archs_or_models: ArchsOrModels, data: ImagesLike | None = None, *, ranker: str | None = None,
         space: str = "nb201", table: str | Path | bool | None = None, metric: str = "cifar10_valid",
         batch_size: int | None = None, channels: int | None = None, cells: int | None = None,
         aggregate: str = "mean-rank", seed: int = 0, device: str = "cpu", threads: int | None = None,
         workers: int = 1, image_size: int | None = None, max_params: float | None = None,
         max_flops: float | None = None, max_latency_ms: float | None = None,
         progress: Callable[[int, int], None] | None = None) -> Ranking:  # fmt: skip
    """Score architectures of a search space, or any PyTorch models, without labels.

    Args:
        archs_or_models: architecture strings (or `Architecture`s) of `space`; or a mapping of
            name -> factory returning a freshly initialised `nn.Module`; or a models spec as
            `ssnas rank --models` takes it ("timm:resnet18,timm:efficientnet_b0", "my_models.py").
        data: (N,3,H,W) uint8 images or a folder; needed by every ranker but params / flops / synflow.
        ranker: ranker or ensemble ("az-nas", "meco+naswot"); default: the space's measured one.
        table: architectures only: True = the space's own ground-truth table, or a CSV path;
            adds the metric per record and the correlations.
        channels: architectures only: the channels of the network rated (default: the space's proxy).
        cells: architectures only: the cells of the network rated (default: the space's proxy).
        image_size: models only: rate at SxS (default: the images' size); timm ViTs are built for it.
        max_params: models only: a budget in M parameters; models over a budget are measured,
            listed in `info["excluded"]` and not rated.
        max_flops: models only: a budget in MFLOPs at the rated size (as `max_params`).
        max_latency_ms: models only: a budget in ms per image here (as `max_params`).

    >>> r = ssnas.rank(["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    ...                 "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
    ...                 "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"],
    ...                data=images, table=True)                                 # doctest: +SKIP
    >>> r.correlations["spearman"]                                             # doctest: +SKIP
    """
    images, _ = _rank.as_images(data)
    with using_threads(threads):
        if isinstance(archs_or_models, (str, Mapping)):
            budget = {"max_params": max_params, "max_flops": max_flops, "max_latency_ms": max_latency_ms}
            rated = _rank.rate_models(archs_or_models, images, ranker, batch_size, aggregate, seed, image_size,
                                      budget, progress)  # fmt: skip
            return Ranking(**vars(rated))
        if image_size is not None or any(v is not None for v in (max_params, max_flops, max_latency_ms)):
            raise UserError("image_size and the max_* budgets apply to models; a search applies budgets to a space")
        return rank_architectures(list(archs_or_models), images, ranker=ranker, space=space, table=table,
                                  metric=metric, batch_size=batch_size, channels=channels, cells=cells,
                                  aggregate=aggregate, seed=seed, device=device, workers=workers,
                                  progress=progress)  # fmt: skip


def rank_architectures(archs: Sequence[str | Architecture], images: torch.Tensor | None, *, ranker: str | None,
                       space: str, table: str | Path | bool | None, metric: str, batch_size: int | None,
                       channels: int | None, cells: int | None, aggregate: str, seed: int, device: str = "cpu",
                       workers: int = 1, progress: Callable[[int, int], None] | None = None) -> Ranking:  # fmt: skip
    """`rank` on architectures of `space` (what `ssnas rank --archs/--sample/--all` runs)."""
    request = RankRequest(space, ranker, aggregate, table, metric, batch_size, channels, cells, seed, device, workers)
    return Ranking(**vars(_rank.rate_architectures(archs, images, request, progress)))


@dataclass
class FolderRanking(FolderRated):
    """A rating written to a run folder by `rank_into_folder`: `run_dir` holds config.yaml, the
    chunks under ratings/, scores.csv (every architecture, selection order) and, with a table,
    report.html. `rated` of the `count` architectures were rated by this call (the rest were in the
    folder already); `best` is the top {"name", "score"}.

    >>> done = ssnas.rank_into_folder("runs/nb201-all", images, table=True)  # doctest: +SKIP
    >>> done.best["name"], done.count, done.correlations["kendall_tau"]      # doctest: +SKIP
    """

    def keys(self) -> Iterator[str]:
        """The architecture strings in selection order (scores.csv's `arch` column), read from the chunks."""
        from ssnas.rating.stream import iter_keys

        return iter_keys(self.run_dir)


def rank_into_folder(out: str | Path, data: ImagesLike | None = None, *, select: str | int | Path = "all",
                     space: str = "nb201", ranker: str | None = None, table: str | Path | bool | None = None,
                     metric: str = "cifar10_valid", batch_size: int | None = None, channels: int | None = None,
                     cells: int | None = None, aggregate: str = "mean-rank", seed: int = 0, device: str = "cpu",
                     threads: int | None = None, workers: int = 1, chunk_size: int | None = None, resume: bool = False,
                     progress: Callable[[int, int], None] | None = None, storage: str | None = None,
                     study: str = "ssnas-rating", heartbeat_interval: int | None = None,
                     skip_corrupt: bool = False) -> FolderRanking:  # fmt: skip
    """Rate a whole space (or a sample of one too large to list) into the run folder `out`, a chunk
    at a time: memory stays flat in the number of architectures, a killed rating continues with
    `resume=True` and ends with the same scores.csv (`ssnas.rating.stream`).

    Args:
        select: "all" (every non-degenerate architecture), N (that many drawn with `seed`), or a
            file of architectures.
        table: True = the space's own ground-truth table (correlations and report.html), a CSV
            path, or None / False for none (spaces without a table: scores.csv only).
        chunk_size: architectures per chunk file (default 128): what a kill can lose.
        storage: share the rating through this Optuna storage (journal file, SQLite,
            PostgreSQL URL) with any number of `rate_shared` workers (`ssnas worker`); this call
            rates chunks too, waits for all, and writes the same folder as a one-process rating.
        study: the name of the shared rating's study in `storage`.
        heartbeat_interval: seconds between a shared rating's heartbeats; a killed worker's chunk
            is taken again after twice this (default 20).
        skip_corrupt: leave unreadable files of a `data` folder out (`info["skipped_images"]`).

    >>> r = ssnas.rank_into_folder("runs/nb201-all", images, select="all", table=True, workers=2)  # doctest: +SKIP
    >>> r.correlations["spearman_rho"], r.run_dir / "scores.csv"                                 # doctest: +SKIP
    """
    request = RankRequest(space, ranker, aggregate, table, metric, batch_size, channels, cells, seed, device, workers)
    folder = FolderRequest(select, chunk_size, resume, storage, study, heartbeat_interval)
    with using_threads(threads):
        done = _rank.rate_folder(out, data, request, folder, progress=progress, skip_corrupt=skip_corrupt)
    return FolderRanking(**vars(done))


def rate_shared(storage: str, study: str = "ssnas-rating", data: ImagesLike | None = None, *,
                threads: int | None = None, progress: Callable[[int, int], None] | None = None,
                skip_corrupt: bool = False) -> dict[str, Any]:  # fmt: skip
    """Work on the shared rating `study` in `storage` (started by `rank_into_folder(..., storage=...)`,
    or `ssnas rank --storage`) until every chunk is rated; returns what this worker did. The rating's
    settings come from the study; `data` must hold the images it was started with (checked);
    `skip_corrupt` leaves unreadable files of a `data` folder out ("skipped_images").

    >>> ssnas.rate_shared("postgresql://ssnas@db-host/ssnas", "nb201-all", "cifar10")  # doctest: +SKIP
    {'study': 'nb201-all', 'chunks_rated': 31, 'architectures_rated': 3968, 'chunks': 120, ...}
    """
    with using_threads(threads):
        return _rank.work_on_shared(storage, study, data, progress=progress, skip_corrupt=skip_corrupt)


def size_baseline(space: Any, archs: Sequence[Architecture]) -> list[float]:
    """The size yardstick of `archs` (the baseline every ranking is shown beside): the parameter count
    where the space counts it; the sum of the widths on nats-size; else the parameters of each
    built 10-class network (plugin spaces)."""
    return _rank.size_baseline(space, archs)


def score(model_factory: Callable[[], nn.Module], images: ImagesLike, ranker: str = "az-nas-ssl", *,
          batch_size: int = 32, seed: int = 0, device: str = "cpu", threads: int | None = None) -> dict[str, float]:  # fmt: skip
    """Label-free signals of one model built by `model_factory` (a fresh initialisation under `seed`).

    Rankers compare networks: an ensemble's combined score (az-nas, mean-rank) only means
    something against other networks, so this returns each signal the ranker reads, plus
    `params_M` and `mflops`. Use `rank` to order several models.

    >>> import torchvision  # doctest: +SKIP
    >>> ssnas.score(lambda: torchvision.models.resnet18(num_classes=10), images, ranker="naswot")  # doctest: +SKIP
    {'naswot': 1234.5, 'params_M': 11.2, 'mflops': 556.0}
    """
    ranking = rank({"model": model_factory}, images, ranker=ranker, batch_size=batch_size, seed=seed, device=device,
                   threads=threads)  # fmt: skip
    record = dict(ranking.records[0])
    record.pop("name", None)
    record.pop("score", None)
    return {k: float(v) for k, v in record.items() if isinstance(v, (int, float))}


__all__ = [
    "Candidate", "FolderRanking", "Ranking", "SearchResult", "finetune", "fit", "list_rankers", "list_spaces", "list_strategies",
    "load_images", "rank", "rank_architectures", "rank_into_folder", "score", "search", "size_baseline", "using_threads",
]
