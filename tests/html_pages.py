"""Reading a generated page back: its tags, headings, embedded figures, visible text and settings rows;
and rendering one in headless Chromium (the report tests and the documentation site's test)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

from cli_helpers import missing_prerequisite

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


# --- a real browser -----------------------------------------------------------------------------------------


def chromium() -> str:
    """The Chromium binary; missing in CI is a failure (`make test` installs it), elsewhere a skip."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        missing_prerequisite("Chromium not found: `make test` installs it (apt-get install chromium)")
    return found


def render(page: Path, shot: Path) -> str:
    """Screenshot `page` at 1200x2000 into `shot`; returns the DOM as Chromium parsed it."""
    browser = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--window-size=1200,2000", f"--user-data-dir={shot.parent / 'profile'}"]  # fmt: skip
    subprocess.run([*browser, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=180, check=True)
    dumped = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180,
                            check=True)  # fmt: skip
    return dumped.stdout


def assert_not_blank(shot: Path) -> None:
    """Many colours and a good share of non-white pixels: text, tables and figures were drawn."""
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 2000)
    colours = image.getcolors(maxcolors=1 << 24) or []
    white = next((count for count, colour in colours if colour == (255, 255, 255)), 0)
    assert len(colours) > 200, f"{len(colours)} colours: the page looks blank"
    assert 1 - white / (image.width * image.height) > 0.05, "almost every pixel is white"
