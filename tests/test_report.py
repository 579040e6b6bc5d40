"""report.html: self-contained, well-formed, with the figures a person needs."""

from __future__ import annotations

import base64
import random
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ssnas.reporting import architecture_figure, write_rank_report, write_search_report
from ssnas.spaces import SPACES, create_space
from ssnas.strategies.base import ScoredArch, SearchResult

PNG = b"\x89PNG\r\n\x1a\n"


class Collect(HTMLParser):
    """Tags, image sources, headings and any reference to a file outside the page."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.images: list[str] = []
        self.headings: list[str] = []
        self.external: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        elif tag not in ("meta", "br"):
            self.open.append(tag)
        for name in ("src", "href"):
            if values.get(name) and not str(values[name]).startswith("data:"):
                self.external.append(str(values[name]))
        self._in_heading = tag == "h2"

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()
        self._in_heading = False

    def handle_data(self, data: str) -> None:
        if self._in_heading:
            self.headings.append(data)


def parse(path: Path) -> Collect:
    parser = Collect()
    parser.feed(path.read_text())
    parser.close()
    assert parser.open == [], f"unclosed tags: {parser.open}"
    return parser


def embedded_pngs(parser: Collect) -> list[bytes]:
    images = [base64.b64decode(src.split(",", 1)[1]) for src in parser.images if src.startswith("data:image/png")]
    assert all(image.startswith(PNG) for image in images)
    return images


def test_search_report_is_self_contained_with_every_section(tmp_path: Path) -> None:
    space = create_space("nb201")
    rng = random.Random(0)
    candidates = [ScoredArch(space.sample(rng), 1.0 - i / 10, {"meco": 0.5 - i / 100, "naswot": 1000.0 + i}) for i in range(12)]
    probabilities = {name: {op: 1 / len(ops) for op in ops} for name, ops in space.choices().items()}
    result = SearchResult(candidates[0], candidates, {"train_history": [5.2, 5.0, 4.9], "op_probabilities": probabilities})
    settings = {"strategy": "setn", "space": "nb201", "rating": ["meco", "naswot"], "precision": "fp32"}
    path = write_search_report(tmp_path, settings, result, {"seconds": 3.0, "ground_truth_note": "none"}, {})
    parser = parse(path)
    assert parser.external == []  # nothing outside the page
    assert len(embedded_pngs(parser)) == 3  # architecture, loss curve, op distribution
    assert {"Found architecture", "Training loss", "Evaluator op distribution"} <= set(parser.headings)
    text = path.read_text()
    assert "meco" in text and "naswot" in text and candidates[0].arch.key in text
    assert text.count("<tr>") == 1 + 10 + 1 + 4  # candidates header + top 10, settings header + 4 rows


def test_rank_report_has_the_scatter_and_the_correlations(tmp_path: Path) -> None:
    keys = [f"arch{i}" for i in range(20)]
    scores = [float(i) for i in range(20)]
    truth = [80.0 + i / 2 for i in range(20)]
    report = {"metric": "cifar10_valid", "kendall_tau": 1.0, "spearman_rho": 1.0, "pearson_r": 1.0,
              "baseline": {"kendall_tau": 0.2, "spearman_rho": 0.3, "pearson_r": 0.3}}  # fmt: skip
    parser = parse(write_rank_report(tmp_path, "meco", keys, scores, truth, report))
    assert len(embedded_pngs(parser)) == 1
    text = (tmp_path / "report.html").read_text()
    assert "kendall_tau" in text and "params baseline" in text


@pytest.mark.parametrize("name", SPACES.names())
def test_every_space_has_an_architecture_drawing(name: str) -> None:
    arch = create_space(name).sample(random.Random(1))
    assert architecture_figure(arch).startswith(PNG)
