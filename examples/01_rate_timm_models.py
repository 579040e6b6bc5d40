"""Rate five timm models on a folder of unlabeled images, without a single label.

    pip install -e ".[timm]"
    python examples/01_rate_timm_models.py --data ../shared/data/cifar10-jpeg

Each model is built fresh (random initialisation, seed 0) and rated by a label-free ranker on
the same seeded batch of your images. What the score means across model families is not
established (docs/tutorials/rate-models.md, "What such a rating means"); treat it as a screen, not a verdict.
"""

import argparse

import ssnas

MODELS = ["timm:resnet18", "timm:mobilenetv3_small_100", "timm:efficientnet_b0", "timm:convnext_atto", "timm:regnetx_002"]

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", default="../shared/data/cifar10-jpeg", help="folder of images (labels unused)")
parser.add_argument("--images", type=int, default=512, help="images loaded (the ranker uses one batch)")
parser.add_argument("--ranker", default="az-nas-ssl")
parser.add_argument("--models", nargs="+", default=MODELS, help="timm:NAME, FILE.py or FILE.py:NAME entries")
args = parser.parse_args()

images = ssnas.load_images(args.data, limit=args.images)
ranking = ssnas.rank(",".join(args.models), images, ranker=args.ranker, seed=0)
print(f"{'model':<24} {'score':>8} {'params (M)':>11} {'MFLOPs':>9}")
for record in ranking.ordered():
    print(f"{record['name']:<24} {record['score']:8.3f} {record['params_M']:11.2f} {record['mflops']:9.1f}")
