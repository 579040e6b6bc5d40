"""The second stage of a search: train each shortlisted candidate briefly without labels, then measure it."""

from ssnas.judging.judge import JUDGE_OBJECTIVES, SIGNAL_NAMES, JudgeConfig, Judgement, judge_network

__all__ = ["JUDGE_OBJECTIVES", "SIGNAL_NAMES", "JudgeConfig", "Judgement", "judge_network"]
