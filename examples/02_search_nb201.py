"""Search NAS-Bench-201 from Python, then plot what the search rated against the benchmark.

    python examples/02_search_nb201.py --data ../shared/data/cifar10-jpeg --out runs/example-nb201

The default search (evolution over the label-free rating) writes its run folder as
`ssnas search` does; the plot puts each rated cell's score against its NAS-Bench-201 test
accuracy (known because the images are CIFAR-10), the found cell in red.
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import ssnas  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", default="../shared/data/cifar10-jpeg")
parser.add_argument("--out", default="runs/example-nb201")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                    help="more search settings, e.g. ratings=40 channels=4 cells=1")
args = parser.parse_args()
settings = {k: int(v) if v.isdigit() else v for k, v in (item.split("=", 1) for item in args.set)}

result = ssnas.search(args.data, space="nb201", seed=args.seed, out=args.out, **settings)
print(f"found {result.arch} (score {result.best.score:.3f}) in {result.seconds:.0f} s; run folder {result.run_dir}")

known = [c for c in result.candidates if "cifar10_test" in c.truth]
if known:
    plt.scatter([c.score for c in known], [c.truth["cifar10_test"] for c in known], s=12, label="rated cells")
    plt.scatter([result.best.score], [result.best.truth["cifar10_test"]], c="red", s=40, label="found")
    plt.xlabel("label-free score"), plt.ylabel("NAS-Bench-201 cifar10_test (%)"), plt.legend()
    plt.savefig(result.run_dir / "score_vs_truth.png", dpi=120)
    print(f"found cell: cifar10_test {result.best.truth['cifar10_test']:.2f}; plot {result.run_dir / 'score_vs_truth.png'}")
else:
    print("no ground truth for these images (the NB201 table is CIFAR-10's), so no plot")
