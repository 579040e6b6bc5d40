"""Spearman of a whole-space NATS-size scores.csv on each half of the table (dev: even index,
eval: odd index), with the width sum on the same cells.

    .venv/bin/python benchmarks/nats_halves.py runs/rank_stream_nats/nats-size-all/scores.csv \
        > benchmarks/results/rank_stream_nats_all_halves.json
"""

import csv
import json
import sys
from pathlib import Path

from scipy.stats import kendalltau, spearmanr

TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks" / "nats_sss.csv"
table = {r["arch_str"]: r for r in csv.DictReader(TABLE.open())}
rows = list(csv.DictReader(open(sys.argv[1])))
out = {}
for half, parity in (("dev", 0), ("eval", 1)):
    sel = [r for r in rows if int(table[r["arch"]]["index"]) % 2 == parity]
    score = [float(r["score"]) for r in sel]
    truth = [float(table[r["arch"]]["cifar10_valid"]) for r in sel]
    widths = [sum(int(w) for w in r["arch"].split(":")) for r in sel]
    out[half] = {"n": len(sel), "spearman": spearmanr(score, truth)[0], "kendall": kendalltau(score, truth)[0],
                 "width_sum_spearman": spearmanr(widths, truth)[0],
                 "cifar100_spearman": spearmanr(score, [float(table[r["arch"]]["cifar100_acc"]) for r in sel])[0],
                 "imagenet16_spearman": spearmanr(score, [float(table[r["arch"]]["imagenet16_acc"]) for r in sel])[0]}
print(json.dumps(out, indent=1))
