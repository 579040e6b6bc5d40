"""Reading a generated page back: its tags, headings, embedded figures, visible text and settings rows."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

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


def visible_text(path: Path) -> str:
    """The page without its embedded images (base64 can spell anything)."""
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", path.read_text())


def settings_rows(path: Path) -> list[str]:
    """The first cell of each row of the Settings section's table."""
    settings = path.read_text().split("<h2>Settings</h2>", 1)[1].split("</section>", 1)[0]
    return re.findall(r"<tr><td>([^<]*)</td>", settings)
