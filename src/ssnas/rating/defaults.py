"""Per-space defaults of label-free rating, each measured on the development half (docs/benchmarks.md).

`ssnas rank` rates on a proxy network where one kept the development-half correlation and cut
the cost; a search rates on the network its caller sizes (the search's own settings).
"""

from __future__ import annotations

from dataclasses import dataclass

from ssnas.errors import UserError


@dataclass(frozen=True)
class RatingDefaults:
    """What a space is rated with when the user names nothing.

    ranker: ranker expression (`ssnas.rating.aggregate.parse_ranker`).
    batch_size: unlabeled images per network.
    network: network-size overrides of the space (nb201: C, N); {} = the space's own network.
    """

    ranker: str
    batch_size: int
    network: dict[str, int]


# `ssnas rank`: nb201 chosen on 300 development cells at C=8, N=1 (rankers_nb201_dev.json);
# nats-size on its development half (rankers_nats_dev.json).
RANK_DEFAULTS: dict[str, RatingDefaults] = {
    "nb201": RatingDefaults("az-nas-ssl", 32, {"C": 8, "N": 1}),
    "nats-size": RatingDefaults("az-synflow", 16, {}),
}
FALLBACK_RANK = RatingDefaults("az-nas-ssl", 32, {})

# Searches rating at initialisation (evolution, tpe/random rating trials) on the network the
# search sizes itself (nb201: C=16, N=5).
SEARCH_DEFAULTS: dict[str, RatingDefaults] = {
    # nb201: the best declared ranker by Spearman on 300 development cells at C=16, N=5 with 64 images
    # (az-nas 0.881, az-nas-ssl 0.868, meco+synflow 0.833; benchmarks/results/rankers_nb201_dev_c16n5.json).
    "nb201": RatingDefaults("az-nas", 64, {}),
    "nats-size": RatingDefaults("az-synflow", 16, {}),
}
FALLBACK_SEARCH = RatingDefaults("meco+synflow", 64, {})  # spaces without a table: no FLOPs needed


def rank_defaults(space: str) -> RatingDefaults:
    """What `ssnas rank` uses on `space` when no ranker, batch size or network size is given."""
    return RANK_DEFAULTS.get(space, FALLBACK_RANK)


def search_defaults(space: str) -> RatingDefaults:
    """What a search rating at initialisation uses on `space` when no --ranker is given."""
    return SEARCH_DEFAULTS.get(space, FALLBACK_SEARCH)


def network_options(space: str, channels: int | None = None, cells: int | None = None) -> dict[str, int]:
    """`ssnas rank`'s network size on `space`: its default proxy, then --channels / --cells (nb201)."""
    options = dict(rank_defaults(space).network)
    given = {"C": channels, "N": cells}
    if any(v is not None for v in given.values()) and space != "nb201":
        raise UserError(f"--channels/--cells size the nb201 network; space {space!r} has fixed widths")
    for key, value in given.items():
        if value is not None:
            if value < 1:
                raise UserError(f"network size {key} must be >= 1, got {value}")
            options[key] = value
    return options
