"""The contact sheet in a real browser: at phone width (420 px) nothing runs off the right edge.

The page is laid out by headless Chromium. A copy of it carries a small script, run at the end of
the body, that writes the page's scroll width and the viewport's width into the DOM, which
`--dump-dom` prints. (The sheet itself has no scripts; only the copy measured here does.)

CI installs the browser (`apt-get install chromium-headless-shell`, see .ci/run), and there a
missing browser fails the test. Elsewhere the test is skipped, saying why.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from backdrop.demo.contact_sheet import (
    PictureFacts,
    RenditionShot,
    SheetEntry,
    VariantShot,
    write_contact_sheet,
)
from backdrop.figures import Moment

BROWSERS = (
    "chromium-headless-shell",
    "chrome-headless-shell",
    "chromium",
    "chromium-browser",
    "google-chrome",
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
MEASURE = """<script>
  const root = document.documentElement;
  const edges = [...document.querySelectorAll("body *")].map(e => e.getBoundingClientRect().right);
  const widest = Math.max(0, ...edges);
  document.body.setAttribute("data-measured",
    [root.scrollWidth, root.clientWidth, window.innerWidth, Math.ceil(widest)].join(" "));
</script>
</body>"""


def find_browser() -> str:
    """The browser's path; fails in CI when there is none, skips elsewhere."""
    named = os.environ.get("BACKDROP_BROWSER")
    found = shutil.which(named) if named else next(filter(None, map(shutil.which, BROWSERS)), None)
    if found:
        return found
    reason = (
        f"no headless browser found (looked for {named or ', '.join(BROWSERS)}); "
        "install one with `apt-get install chromium-headless-shell` or set BACKDROP_BROWSER"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must lay the contact sheet out in a browser, but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> str:
    return find_browser()


def picture(path: Path, size: tuple[int, int], colour: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture(scope="module")
def sheet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sheet with wide pictures, a long key, an unbroken prompt, a long error message, and a
    pair with three variants and their renditions."""
    folder = tmp_path_factory.mktemp("sheet")
    picture(folder / "inputs/shop/wide.jpg", (1200, 400), "#c98")
    picture(folder / "outputs/shop/wide.png", (1200, 400), "#8ac")
    picture(folder / "inputs/shop/tall.png", (300, 900), "#9c8")
    long_key = "shop/" + "a-very-long-product-name-without-spaces" * 3 + ".jpg"
    entries = [
        SheetEntry("shop/wide.jpg", "inputs/shop/wide.jpg", "outputs/shop/wide.png", "a" * 300),
        SheetEntry(long_key, "inputs/shop/tall.png", None, "studio", "invalid_sidecar", "sead: " + "x" * 400),
        SheetEntry("shop/not-a-photo.jpg", None, None, None, "invalid_image", "starts with '%PDF-1.7'"),
        SheetEntry(
            "shop/wide.jpg",
            "inputs/shop/wide.jpg",
            "outputs/shop/wide.png",
            "b" * 200,
            output_facts=PictureFacts(1200, 400, "PNG", 123_456),
            input_notes=(
                "EXIF orientation 6",
                "Display P3 colour profile",
                "GPS position",
                "camera serial number",
            ),
            renditions=tuple(
                RenditionShot(
                    f"marketplace-{n}-" + "x" * 40,
                    "outputs/shop/wide.png",
                    PictureFacts(2000, 2000, "JPEG", 9),
                )
                for n in range(4)
            ),
            variants=tuple(
                VariantShot(n, "c" * 200, "outputs/shop/wide.png", PictureFacts(1200, 400, "PNG", 1_234_567))
                for n in (2, 3)
            ),
        ),
    ]
    summary = [
        ("Uploads (images, sidecars, one repeat)", "19"),
        ("Failed, by class (in the DLQ)", "invalid_image: 1, invalid_sidecar: 1, rate_limited: 12"),
        ("Estimated cost at Segmind's prices", "$0.525"),
    ]
    run = [
        Moment(at=1_796_000_000.0 + 0.5 * n, calls=1, failed=n % 5 == 0, spend_usd=0.075) for n in range(40)
    ]
    page = write_contact_sheet(folder, entries, title="Backdrop demo", summary=summary, timeline=run)
    measured = folder / "measured.html"
    measured.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE), encoding="utf-8")
    return measured


def measure(browser: str, page: Path, width: int) -> tuple[int, int, int, int]:
    """(scroll width, client width, viewport width, rightmost edge of any element) at `width`."""
    with tempfile.TemporaryDirectory() as profile:
        finished = subprocess.run(
            [
                browser,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},900",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    found = re.search(r'data-measured="(\d+) (\d+) (\d+) (-?\d+)"', finished.stdout)
    assert found, f"no measurement from the browser (exit {finished.returncode}):\n{finished.stderr[-2000:]}"
    scroll, client, viewport, widest = map(int, found.groups())
    return scroll, client, viewport, widest


@pytest.mark.parametrize("width", [420, 1280])
def test_the_contact_sheet_fits_the_window_width(browser: str, sheet: Path, width: int):
    scroll, client, viewport, widest = measure(browser, sheet, width)
    assert viewport == width, f"the browser laid the page out {viewport} px wide, not {width}"
    assert scroll <= client, f"at {width} px the page is {scroll} px wide: it scrolls sideways"
    assert widest <= client, f"at {width} px an element reaches {widest} px, past the {client} px window"
