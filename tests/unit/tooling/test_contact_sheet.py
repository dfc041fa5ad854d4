"""The demo's contact sheet (every entry shown, failures explained, user text escaped) and its
sample photos (each listed, real, small, credited, and a valid request)."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

import backdrop.demo
from backdrop.demo.contact_sheet import SheetEntry, write_contact_sheet
from backdrop.emulator.request_rules import PRESETS, check_body
from backdrop.figures import Moment

DONE = SheetEntry(
    name="shop/coffee.jpg",
    input_path="inputs/shop/coffee.jpg",
    output_path="outputs/shop/coffee.png",
    prompt="an espresso on a cafe terrace",
)
SPACED = SheetEntry(
    name="shop/schuh ü & co.jpg",
    input_path="inputs/shop/schuh ü & co.jpg",
    output_path="outputs/shop/schuh ü & co.png",
    prompt='a "quoted" prompt',
)
TYPO = SheetEntry(
    name="shop/typo-<b>coffee</b>.jpg",
    input_path="inputs/shop/typo-<b>coffee</b>.jpg",
    output_path=None,
    prompt="an espresso",
    error_class="invalid_sidecar",
    error_message='unknown field "sead" <script>alert(1)</script> & more',
)
FAKE = SheetEntry(
    name="shop/not-a-photo.jpg",
    input_path=None,
    output_path=None,
    prompt=None,
    error_class="invalid_image",
    error_message="cannot identify image file",
)
SUMMARY = [
    ("Processed", "2"),
    ("Failed, by class", "invalid_image: 1, invalid_sidecar: 1"),
    ("Cost", "$0.160"),
]


class Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def attribute(self, tag: str, name: str) -> list[str]:
        return [attrs[name] or "" for t, attrs in self.tags if t == tag and name in attrs]


# The function's counts over a 12-second run: three calls (one a 503, its price given back), and
# one pair failed.
RUN = [
    Moment(at=1_796_000_000.0, calls=1, failed=0, spend_usd=0.075),
    Moment(at=1_796_000_004.5, calls=1, failed=1, spend_usd=0.0),
    Moment(at=1_796_000_012.0, calls=1, failed=0, spend_usd=0.113),
]


def sheet(
    tmp_path, entries=(DONE, SPACED, TYPO, FAKE), summary=SUMMARY, timeline=RUN
) -> tuple[str, Collector]:
    path = write_contact_sheet(
        tmp_path / "out", list(entries), title="Backdrop <demo>", summary=summary, timeline=timeline
    )
    assert path == tmp_path / "out" / "index.html"
    page = path.read_text(encoding="utf-8")
    parsed = Collector()
    parsed.feed(page)
    return page, parsed


def test_every_entry_and_the_summary_appear(tmp_path):
    page, parsed = sheet(tmp_path)
    text = " ".join(parsed.text)
    for entry in (DONE, SPACED, TYPO, FAKE):
        assert entry.name in text
    for label, value in SUMMARY:
        assert label in text
        assert value in text
    assert "an espresso on a cafe terrace" in text
    assert 'a "quoted" prompt' in text
    assert page.index("Processed") < page.index("shop/coffee.jpg")  # the summary comes first
    assert len(re.findall(r'<section class="card', page)) == 4


def test_inputs_and_outputs_are_linked_by_relative_paths(tmp_path):
    _, parsed = sheet(tmp_path)
    sources = parsed.attribute("img", "src")
    assert "inputs/shop/coffee.jpg" in sources
    assert "outputs/shop/coffee.png" in sources
    assert "inputs/shop/schuh%20%C3%BC%20%26%20co.jpg" in sources
    assert "outputs/shop/schuh%20%C3%BC%20%26%20co.png" in sources
    assert "inputs/shop/typo-%3Cb%3Ecoffee%3C/b%3E.jpg" in sources
    assert set(parsed.attribute("a", "href")) == set(sources)
    assert all(not s.startswith(("/", "http:", "https:", "file:")) for s in sources)
    assert len(sources) == 5  # the fake has no input picture, the failures no output


def test_failures_show_their_class_and_escaped_message(tmp_path):
    page, parsed = sheet(tmp_path)
    text = " ".join(parsed.text)
    assert "invalid_sidecar" in text
    assert "invalid_image" in text
    assert 'unknown field "sead" <script>alert(1)</script> & more' in text  # shown as text...
    assert "<script>" not in page  # ...never as markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "<b>coffee</b>" not in page
    assert "cannot identify image file" in text
    assert "not an image" in text
    assert page.count('class="card failed"') == 2


def test_the_page_is_self_contained(tmp_path):
    page, parsed = sheet(tmp_path)
    assert "<style>" in page
    assert not [t for t, _ in parsed.tags if t in ("script", "link", "iframe")]
    assert "http://" not in page
    assert "https://" not in page
    assert "Backdrop &lt;demo&gt;" in page


def test_a_chart_shows_calls_failures_and_spend_over_the_run(tmp_path):
    page, parsed = sheet(tmp_path)
    labels = parsed.attribute("svg", "aria-label")
    assert labels == [
        "API calls over the run: 3 in 12.0 s",
        "Failures over the run: 1 in 12.0 s",
        "Estimated spend over the run: $0.188 in 12.0 s",
    ]
    assert page.index('class="summary"') < page.index('class="chart"') < page.index('class="cards"')
    text = " ".join(parsed.text)
    assert "0 s" in text
    assert "12.0 s" in text


def test_each_line_is_its_running_total_stepping_up_when_it_changed(tmp_path):
    _, parsed = sheet(tmp_path)
    calls, failures, _ = [d for d in parsed.attribute("path", "d") if not d.endswith("Z")]
    # Calls: 1 at 0 s, 2 at 4.5 s (112.5 of 300 units), 3 at 12 s; a third, two thirds, all of the
    # 60 units above the floor at 64.
    assert calls == "M0.0,64.0 L0.0,44.0 L112.5,44.0 L112.5,24.0 L300.0,24.0 L300.0,4.0"
    assert failures == "M0.0,64.0 L112.5,64.0 L112.5,4.0 L300.0,4.0"


def test_a_run_that_counted_nothing_has_no_chart(tmp_path):
    page, parsed = sheet(tmp_path, timeline=[])
    assert 'class="chart"' not in page
    assert parsed.attribute("svg", "aria-label") == []


def test_an_empty_sheet_is_still_a_page(tmp_path):
    page, _ = sheet(tmp_path, entries=(), summary=[])
    assert "<html" in page
    assert "No inputs." in page


# -- the sample photos ---------------------------------------------------------------------------

SAMPLES = Path(backdrop.demo.__file__).parent / "samples"
MANIFEST = json.loads((SAMPLES / "manifest.json").read_text(encoding="utf-8"))
PICTURES = sorted(p.name for p in SAMPLES.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})


def test_the_manifest_lists_every_sample_once():
    files = [entry["file"] for entry in MANIFEST]
    assert len(files) == len(set(files))
    assert sorted(files) == PICTURES
    assert 6 <= len(files) <= 8


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_each_sample_opens_and_is_small(entry):
    path = SAMPLES / entry["file"]
    assert path.is_file()
    assert path.stat().st_size <= 120 * 1024
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert max(image.size) <= 640
        assert image.format in {"JPEG", "PNG", "WEBP"}


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_each_manifest_entry_is_a_request_the_api_accepts(entry):
    assert set(entry) <= {"file", "prompt", "seed", "rendering_speed", "color_palette"}
    assert isinstance(entry["seed"], int)
    assert 100 <= entry["seed"] <= 999999
    palette = entry.get("color_palette")
    if palette and "name" in palette:
        assert palette["name"] in PRESETS
    body = {k: v for k, v in entry.items() if k != "file"}
    body["image"] = base64.b64encode((SAMPLES / entry["file"]).read_bytes()).decode()
    check_body(body)  # raises RequestRejected for a broken rule


def test_the_formats_are_mixed():
    formats = {Image.open(SAMPLES / name).format for name in PICTURES}
    assert formats == {"JPEG", "PNG", "WEBP"}


def test_every_sample_is_credited():
    attribution = (SAMPLES / "ATTRIBUTION.md").read_text(encoding="utf-8")
    for name in PICTURES:
        rows = [line for line in attribution.splitlines() if line.startswith(f"| `{name}` |")]
        assert len(rows) == 1, name
        assert "Public domain" in rows[0] or "CC0" in rows[0] or "this repository" in rows[0], name


def test_no_fixed_width_is_wider_than_a_phone(tmp_path):
    """A phone shows 320-420 px: no width, minimum width or grid track may ask for more than 320 px
    unless it gives way to the window (`min(100%, 560px)`). The browser test measures the layout."""
    page, _ = sheet(tmp_path)
    style = page[page.index("<style>") : page.index("</style>")]
    asked = re.findall(r"(?<!max-)(?:width|flex-basis)\s*:\s*(\d+)px|minmax\((\d+)px", style)
    too_wide = [int(a or b) for a, b in asked if int(a or b) > 320]
    assert too_wide == []
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
