"""One search, end to end: settings -> data -> task -> strategy -> run folder.

Read top-down:

* `presets`: each space's strategy (each strategy's own settings, what it takes, its defaults and
  the strategy it builds, live beside it in `ssnas.strategies`, registered in `STRATEGY_SETTINGS`);
* `settings`: the shared run settings, `search_config` (refusing an option the strategy does not
  use), `resolve` and `config_dict` (config.yaml);
* `task`: images, counts, space size, budget -> `SearchTask`;
* `results`: result.json, candidates.csv, ground truth, report.html;
* `jobs`: `run_search`, `run_rank`, `run_worker`;
* `rank`: the label-free ratings behind `ssnas.rank`, `rank_into_folder`, `rate_shared` and
  `ssnas rank` (imported as `ssnas.run.rank`).

>>> payload = run_search(search_config(strategy="evolution", ratings=20, data="cifar10"))  # doctest: +SKIP
"""

from __future__ import annotations

from ssnas.run.jobs import run_rank, run_search, run_worker
from ssnas.run.presets import PRESET_SPLITS, PRESETS, SPACE_STRATEGIES, default_strategy
from ssnas.run.settings import RunSettings, SearchConfig, config_dict, resolve, search_config
from ssnas.strategies.bossnas import BossnasSettings
from ssnas.strategies.evolution import EvolutionSettings
from ssnas.strategies.settings import STRATEGY_SETTINGS, StrategySettings
from ssnas.strategies.setn import SetnSettings
from ssnas.strategies.tpe import OptunaSettings
from ssnas.run.task import build_task

__all__ = [
    "PRESETS", "PRESET_SPLITS", "SPACE_STRATEGIES", "STRATEGY_SETTINGS", "BossnasSettings", "EvolutionSettings",
    "OptunaSettings", "RunSettings", "SearchConfig", "SetnSettings", "StrategySettings", "build_task",
    "config_dict", "default_strategy", "resolve", "run_rank", "run_search", "run_worker", "search_config",
]
