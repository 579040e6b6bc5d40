"""ssnas: label-free neural architecture search (CSNAS, SETN, BossNAS) on your unlabeled images.

The Python API (every command of the `ssnas` CLI calls it):

    load_images(path, limit=None)            -> (N,3,H,W) uint8 images of a folder
    search(data, space="nb201", **settings)  -> SearchResult (best architecture, candidates, run folder)
    rank(archs_or_models, data, ranker=...)  -> Ranking (records, correlations with a table)
    rank_into_folder(out, data, select="all") -> FolderRanking (a whole space, chunked, resumable;
                                                 storage=URL shares it with other processes)
    rate_shared(storage, study, data)        -> a worker of a shared rating (any machine)
    score(model_factory, images, ranker=...) -> the label-free signals of any torch.nn.Module
    finetune(pretrained, data, labels_per_class=N) -> metrics of a pretrained network fine-tuned on labels
    fit(unlabeled, labelled, time_budget=M)  -> search, pretrain, fine-tune, export in one run folder
    list_spaces(), list_rankers(), list_strategies()
    create_space(name, **options)            -> a search space (parse, sample, build networks)

>>> import ssnas
>>> images = ssnas.load_images("../shared/data/cifar10-jpeg", limit=512)   # doctest: +SKIP
>>> result = ssnas.search("../shared/data/cifar10-jpeg", space="nb201")    # doctest: +SKIP
>>> result.arch                                                            # doctest: +SKIP

Seeds, devices and threads are arguments; nothing is kept in global state. Names are loaded on
first use, so `import ssnas` (and the CLI's `--help`) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ssnas.started import PROCESS_STARTED  # first, so a time budget counts every import after it

from ssnas.version import __version__

# public name -> the module that defines it (imported on first attribute access, PEP 562)
_API = {
    "load_images": "ssnas.api", "search": "ssnas.api", "finetune": "ssnas.api", "fit": "ssnas.api", "rank": "ssnas.api", "score": "ssnas.api",
    "list_spaces": "ssnas.api", "list_rankers": "ssnas.api", "list_strategies": "ssnas.api",
    "SearchResult": "ssnas.api", "Ranking": "ssnas.api", "Candidate": "ssnas.api",
    "rank_into_folder": "ssnas.api", "FolderRanking": "ssnas.api", "rate_shared": "ssnas.api",
    "create_space": "ssnas.spaces", "Architecture": "ssnas.spaces", "SearchSpace": "ssnas.spaces",
}  # fmt: skip

__all__ = ["__version__", *_API]

if TYPE_CHECKING:
    from ssnas.api import (
        Candidate, FolderRanking, Ranking, SearchResult, finetune, fit, list_rankers, list_spaces, list_strategies, load_images, rank,
        rank_into_folder, rate_shared, score, search,
    )  # fmt: skip
    from ssnas.spaces import Architecture, SearchSpace, create_space


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ssnas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
