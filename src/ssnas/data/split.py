"""How many of a folder's images a search trains on and holds out: shares that fit the folder.

A preset states each count as a `Share` of the folder (a fraction with a floor and a cap),
so one preset works on a 2,000-image folder and on CIFAR-10's 50,000. A count given by the
user is taken as is; the other one then gets its share of what is left. A folder too small
for the floors is refused with one line naming the minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

from ssnas.errors import UserError


@dataclass(frozen=True)
class Share:
    """`fraction` of a folder's images, at least `floor`, at most `cap` (None = no cap)."""

    fraction: float
    floor: int
    cap: int | None = None

    def of(self, total: int) -> int:
        wanted = max(self.floor, round(self.fraction * total))
        return wanted if self.cap is None else min(wanted, self.cap)

    def describe(self) -> str:
        cap = f", cap {self.cap:,}" if self.cap is not None else ""
        return f"{100 * self.fraction:g}% of the folder, floor {self.floor:,}{cap}"


@dataclass(frozen=True)
class Split:
    """The counts a run uses and a sentence saying why."""

    num_images: int
    holdout_images: int
    reason: str


def fit_split(total: int, train: int | Share, holdout: int | Share, source: str = "the folder") -> Split:
    """Training and held-out counts for a folder of `total` images.

    Args:
        total: images in the folder.
        train, holdout: a count given by the user (int, used as is) or the preset's `Share`.
        source: the folder's name, for messages.

    Raises:
        UserError: the folder holds fewer images than the counts (or their floors) need.
    """
    minimum = _least(train) + _least(holdout)
    if total < minimum:
        raise UserError(
            f"{source} has {total:,} images; a search needs at least {minimum:,} "
            f"({_least(train):,} training + {_least(holdout):,} held-out){_hint(train, holdout)}"
        )
    if isinstance(holdout, Share) and isinstance(train, int):  # the user's count first, the share of the rest
        holdout_count = min(holdout.of(total), total - train)
        num_images = train
    else:
        holdout_count = holdout if isinstance(holdout, int) else holdout.of(total)
        num_images = train if isinstance(train, int) else min(train.of(total), total - holdout_count)
    reasons = []
    for name, rule, count in (("training", train, num_images), ("held-out", holdout, holdout_count)):
        reasons.append(f"{count:,} {name} ({'given' if isinstance(rule, int) else rule.describe()})")
        if isinstance(rule, Share) and count < rule.floor:
            raise UserError(
                f"{source} has {total:,} images; after {total - count:,} for the other part only {count:,} "
                f"remain for {name} images, below the floor of {rule.floor:,}{_hint(train, holdout)}"
            )
    if num_images + holdout_count > total:
        raise UserError(
            f"{source} has {total:,} images; this run needs {num_images + holdout_count:,} "
            f"(num_images {num_images:,} + holdout_images {holdout_count:,})"
        )
    return Split(num_images, holdout_count, f"of {total:,} images: " + ", ".join(reasons))


def _least(rule: int | Share) -> int:
    return rule if isinstance(rule, int) else rule.floor


def _hint(train: int | Share, holdout: int | Share) -> str:
    if isinstance(train, int) or isinstance(holdout, int):
        return "; lower --num-images / --holdout-images or use a larger folder"
    return "; use a larger folder"
