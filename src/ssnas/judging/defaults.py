"""Per-space defaults of the second stage (the judge), chosen on the development half (docs/benchmarks.md).

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
    combine: partners averaged with the signal by rank: "stage1" (the stage-1 score) and / or a
        structural cost of `ssnas.rating.STRUCTURAL` ("params", "flops"); () = the signal alone.
    image_passes: backbone passes per candidate when the time budget allows.
    shortlist: at most this many candidates judged.
    network: network-size overrides of the space for the judge (nb201: C, N); {} = the space's own.
    """

    objective: str
    signal: str
    combine: tuple[str, ...]
    image_passes: int
    shortlist: int
    network: dict[str, int] = field(default_factory=dict)


JUDGE_DEFAULTS: dict[str, JudgeDefaults] = {
    # nb201: the lowest pick regret (random shortlists of 10) among every label-free (training, signal) of
    # bench_shortlist on the 25 best development-half cells by az-nas: SimCLR for 8,000 passes, then
    # AZ-NAS trainability on the trained weights (benchmarks/results/judge_choice_nb201.json)
    "nb201": JudgeDefaults("simclr", "trained-az-trainability", (), 8_000, 10, {"C": 16, "N": 1}),
    # no ground truth to choose with: the fallback judge on a smaller DARTS network than stage 1's (C=32, 8 cells)
    "darts": JudgeDefaults("rotation", "pretext-accuracy", ("stage1",), 32_000, 10, {"C": 16, "layers": 5}),
}
# Spaces without a development half to choose on: UnNAS's rotation accuracy averaged with the stage-1 score.
# Not measured anywhere; on NB201 it did not order the stage-1 pools either (docs/benchmarks.md).
FALLBACK_JUDGE = JudgeDefaults("rotation", "pretext-accuracy", ("stage1",), 32_000, 10, {})


def judge_defaults(space: str) -> JudgeDefaults:
    """What the second stage uses on `space` when nothing is given."""
    return JUDGE_DEFAULTS.get(space, FALLBACK_JUDGE)


__all__ = ["FALLBACK_JUDGE", "JUDGE_DEFAULTS", "JudgeDefaults", "judge_defaults"]
