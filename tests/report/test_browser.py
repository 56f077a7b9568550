"""report.html in a real browser: Debian's chromium, headless, opens the page of the shipped data.

It must render (a screenshot that is not blank, light and dark), hold its charts in the DOM
the browser built, and ask for nothing outside itself: every src, href and url() in that DOM
is a #fragment or inline data. Skipped only where chromium is missing and this is not CI
(CI=true fails instead: .ci/run installs it). ``MAPREDUCE_LOGS_SCREENSHOT=PATH`` keeps a copy of
the light screenshot (docs/report.png is made that way).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from typing import Any

import pytest

from mapreduce_logs.cli import main

SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "data")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio"]
CHARTS = ("levels-chart", "hours-chart", "timeline-chart", "services-chart", "users-chart")


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed, and CI must run the browser test (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    return found


@pytest.fixture(scope="module")
def page(tmp_path_factory: Any) -> tuple[str, str]:
    """(chromium, the report of the shipped data)."""
    chromium = _chromium()
    out = tmp_path_factory.mktemp("browser") / "out"
    with contextlib.chdir(os.path.dirname(SHIPPED)):  # the page names data/input.txt
        assert main(["run", "data", "--out", str(out), "--quiet", "--workers", "1"]) == 0
    return chromium, str(out / "report.html")


def _browse(chromium: str, tmp: Any, *args: str) -> subprocess.CompletedProcess[bytes]:
    profile = tmp / f"profile-{len(os.listdir(tmp))}"
    return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, timeout=180, check=False)


def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, bytes per pixel, the pixels' bytes) of an 8-bit RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        out += line
        prev = line
    return width, height, bpp, bytes(out)


def _colours(png: bytes, step: int = 7) -> tuple[set[tuple[int, ...]], tuple[int, ...]]:
    """The colours of a sample of the pixels, and the top-left one (the background)."""
    width, height, bpp, pixels = decode_png(png)
    seen: set[tuple[int, ...]] = set()
    for y in range(0, height, step):
        for x in range(0, width, step):
            at = (y * width + x) * bpp
            seen.add(tuple(pixels[at : at + 3]))
    return seen, tuple(pixels[:3])


def test_the_page_renders_light_and_dark(page: tuple[str, str], tmp_path: Any) -> None:
    chromium, report = page
    shots = {}
    for mode, extra in (("light", []), ("dark", ["--force-dark-mode"])):
        shot = tmp_path / f"{mode}.png"
        done = _browse(chromium, tmp_path, *extra, "--window-size=1100,2600",
                       f"--screenshot={shot}", f"file://{report}")
        assert shot.exists(), done.stderr.decode(errors="replace")[-2000:]
        colours, background = _colours(shot.read_bytes())
        assert len(colours) >= 20, f"{mode}: a blank page ({len(colours)} colours)"
        shots[mode] = background
    assert sum(shots["light"]) > 600 and sum(shots["dark"]) < 150, shots
    keep = os.environ.get("MAPREDUCE_LOGS_SCREENSHOT")
    if keep:
        shutil.copy(tmp_path / "light.png", keep)


class DomFacts(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def test_the_dom_holds_the_charts_and_nothing_leaves(page: tuple[str, str], tmp_path: Any) -> None:
    chromium, report = page
    done = _browse(chromium, tmp_path, f"file://{report}", "--dump-dom")
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    dom = DomFacts()
    dom.feed(done.stdout.decode("utf-8"))
    ids = {attrs.get("id") for _, attrs in dom.tags}
    for chart in CHARTS:
        assert chart in ids, chart
    svgs = [attrs for tag, attrs in dom.tags if tag == "svg"]
    assert all(a.get("role") == "img" and a.get("aria-labelledby") for a in svgs)
    assert sum(tag == "rect" for tag, _ in dom.tags) > 24
    assert any(tag == "path" and a.get("class") == "lines" for tag, a in dom.tags)
    # Nothing fetched: no element that loads, and every reference inline or in the page.
    loaders = {"script", "link", "img", "iframe", "object", "embed", "video", "audio", "source",
               "image", "use", "base", "form", "input"}
    assert not loaders & {tag for tag, _ in dom.tags}
    for tag, attrs in dom.tags:
        for name, value in attrs.items():
            if name in ("src", "href", "xlink:href", "srcset", "action", "poster", "data"):
                assert value.startswith(("#", "data:")), (tag, name, value)
            assert "url(" not in value or re.fullmatch(r".*url\((['\"]?)(#|data:).*", value), value
    css = "".join(dom.styles) + "".join(a.get("style", "") for _, a in dom.tags)
    assert "@import" not in css
    for ref in re.findall(r"url\(\s*['\"]?([^'\")]*)", css):
        assert ref.startswith(("#", "data:")), ref
    # The anomalies drawn on the timeline link to their rows.
    bands = [a for tag, a in dom.tags if tag == "a" and a.get("href", "").startswith("#a")]
    assert bands and all(a["href"][1:] in ids for a in bands)
