"""Per-space defaults of the second stage (the judge), chosen on the development half (README).

`benchmarks/bench_shortlist.py` measures every signal, training budget and network size on the
best cells of the development half by the stage-1 ranker; the choice below is the one with
the lowest pick regret there, and the evaluation half reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class JudgeDefaults:
    """What the second stage uses on a space when the user names nothing.

    objective: the self-supervised training of each candidate (`ssnas.judging.JUDGE_OBJECTIVES`).
    signal: the `Judgement.signals` entry that ranks the shortlist (higher is better).
    with_stage1: rank by the mean of the signal's rank and the stage-1 score's rank.
    image_passes: backbone passes per candidate when the time budget allows.
    shortlist: at most this many candidates judged.
    network: network-size overrides of the space for the judge (nb201: C, N); {} = the space's own.
    """

    objective: str
    signal: str
    with_stage1: bool
    image_passes: int
    shortlist: int
    network: dict[str, int] = field(default_factory=dict)


JUDGE_DEFAULTS: dict[str, JudgeDefaults] = {
    "nb201": JudgeDefaults("rotation", "pretext-accuracy", True, 32_000, 10, {"C": 16, "N": 1}),
    # no ground truth to choose with: NB201's choice on a smaller DARTS network than stage 1's (C=32, 8 cells)
    "darts": JudgeDefaults("rotation", "pretext-accuracy", True, 32_000, 10, {"C": 16, "layers": 5}),
}
FALLBACK_JUDGE = JudgeDefaults("rotation", "pretext-accuracy", True, 32_000, 10, {})


def judge_defaults(space: str) -> JudgeDefaults:
    """What the second stage uses on `space` when nothing is given."""
    return JUDGE_DEFAULTS.get(space, FALLBACK_JUDGE)


__all__ = ["FALLBACK_JUDGE", "JUDGE_DEFAULTS", "JudgeDefaults", "judge_defaults"]
