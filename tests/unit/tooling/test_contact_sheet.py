"""The demo's contact sheet (every entry shown, failures explained, user text escaped) and its
sample photos (each listed, real, small, credited, and a valid request)."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image, ImageOps

import backdrop.demo
from backdrop.demo.contact_sheet import (
    PictureFacts,
    RenditionShot,
    SheetEntry,
    VariantShot,
    write_contact_sheet,
)
from backdrop.demo.phone_photo import BODY_SERIAL, make_phone_photo
from backdrop.demo.picture_facts import carried
from backdrop.emulator.request_rules import PRESETS, check_body
from backdrop.figures import Moment
from backdrop_fn.sidecar import parse_sidecar

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


def done(file: str, prompt: str, input_facts: PictureFacts, output_facts: PictureFacts, **more) -> SheetEntry:
    """A processed pair's entry for ``shop/<file>``, its output a PNG, as the demo links them."""
    output = "outputs/shop/" + file.rsplit(".", 1)[0] + ".png"
    return SheetEntry(
        f"shop/{file}",
        f"inputs/shop/{file}",
        output,
        prompt,
        input_facts=input_facts,
        output_facts=output_facts,
        **more,
    )


POUCH = done(
    "pouch.webp",
    "a spring kitchen counter",
    PictureFacts(640, 480, "WEBP", 26_908),
    PictureFacts(640, 480, "PNG", 171_234),
    renditions=(
        RenditionShot(
            "marketplace", "outputs/shop/pouch@marketplace.jpg", PictureFacts(2000, 2000, "JPEG", 412_345)
        ),
        RenditionShot(
            "storefront", "outputs/shop/pouch@storefront.webp", PictureFacts(400, 400, "WEBP", 6_300)
        ),
    ),
    variants=(
        VariantShot(
            number=2,
            prompt="a rustic <wooden> cafe table",
            output_path="outputs/shop/pouch.v2.png",
            facts=PictureFacts(640, 480, "PNG", 165_800),
            renditions=(
                RenditionShot(
                    "marketplace",
                    "outputs/shop/pouch.v2@marketplace.jpg",
                    PictureFacts(2000, 2000, "JPEG", 398_000),
                ),
            ),
        ),
        VariantShot(number=3, prompt="a beach", output_path=None),
    ),
)
PHONE = done(
    "phone.jpg",
    "a windowsill",
    PictureFacts(640, 512, "JPEG", 50_640),
    PictureFacts(512, 640, "PNG", 190_400),
    input_notes=("EXIF orientation 6", "GPS position", "camera serial number"),
    input_as_stored_path="as-stored/shop/phone.jpg.png",
)


def figure_texts(page: str) -> list[str]:
    """Each figure's text, its tags dropped and its spaces joined."""
    figures = re.findall(r"<figure.*?</figure>", page, flags=re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", figure).split()) for figure in figures]


def test_variants_stand_side_by_side_each_with_its_prompt_and_size(tmp_path):
    page, parsed = sheet(tmp_path, entries=(POUCH,))
    figures = figure_texts(page)
    assert figures[:4] == [
        "Input 640 × 480 WEBP · 26.9 KB",
        "Variant 1 640 × 480 PNG · 171.2 KB",
        "Variant 2 640 × 480 PNG · 165.8 KB a rustic &lt;wooden&gt; cafe table",  # the prompt escaped
        "no output Variant 3 a beach",
    ]
    assert 'class="card wide"' in page  # the whole row: input and three variants side by side
    assert "outputs/shop/pouch.v2.png" in parsed.attribute("img", "src")


def test_renditions_show_their_name_format_pixel_size_and_bytes(tmp_path):
    page, parsed = sheet(tmp_path, entries=(POUCH,))
    renditions = page[page.index('class="renditions"') :]
    assert figure_texts(renditions) == [
        "variant 1 · marketplace 2000 × 2000 JPEG · 412.3 KB",
        "variant 1 · storefront 400 × 400 WEBP · 6.3 KB",
        "variant 2 · marketplace 2000 × 2000 JPEG · 398.0 KB",
    ]
    sources = parsed.attribute("img", "src")
    assert "outputs/shop/pouch%40marketplace.jpg" in sources
    assert "outputs/shop/pouch.v2%40marketplace.jpg" in sources


def test_a_pair_without_variants_names_its_renditions_alone(tmp_path):
    plain = SheetEntry(
        "shop/a.jpg",
        "inputs/shop/a.jpg",
        "outputs/shop/a.png",
        "a studio",
        renditions=(
            RenditionShot("1000x1000", "outputs/shop/a@1000x1000.jpg", PictureFacts(1000, 1000, "JPEG", 999)),
        ),
    )
    page, _ = sheet(tmp_path, entries=(plain,))
    assert figure_texts(page) == ["Input", "Output", "1000x1000 1000 × 1000 JPEG · 999 B"]
    assert 'class="card wide"' not in page


def test_a_sideways_input_is_shown_as_stored_beside_its_upright_output(tmp_path):
    page, parsed = sheet(tmp_path, entries=(PHONE,))
    assert figure_texts(page) == [
        "Input, as stored 640 × 512 JPEG · 50.6 KB",
        "Output 512 × 640 PNG · 190.4 KB",
    ]
    # The copy without EXIF is shown (browsers would turn the input upright); the input is linked.
    assert parsed.attribute("img", "src") == ["as-stored/shop/phone.jpg.png", "outputs/shop/phone.png"]
    assert parsed.attribute("a", "href") == ["inputs/shop/phone.jpg", "outputs/shop/phone.png"]
    text = " ".join(" ".join(parsed.text).split())
    assert (
        "The input carried EXIF orientation 6 GPS position camera serial number its outputs: none of it"
        in text
    )


def test_what_an_output_still_carries_is_called_out(tmp_path):
    leaky = replace(PHONE, output_notes=("GPS position",))
    _, parsed = sheet(tmp_path, entries=(leaky,))
    text = " ".join(" ".join(parsed.text).split())
    assert "its outputs still carry GPS position" in text
    assert "none of it" not in text


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


def calls_of(entry: dict) -> list[dict]:
    """The API request bodies (without the image) a manifest entry's sidecar makes: one a variant."""
    fields = {k: v for k, v in entry.items() if k not in {"file", "variants", "renditions"}}
    return [{**fields, **variant} for variant in entry.get("variants") or [{}]]


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_each_manifest_entry_is_a_request_the_api_accepts(entry):
    assert set(entry) <= {
        "file",
        "prompt",
        "seed",
        "rendering_speed",
        "color_palette",
        "variants",
        "renditions",
    }
    image = base64.b64encode((SAMPLES / entry["file"]).read_bytes()).decode()
    for body in calls_of(entry):
        assert isinstance(body["seed"], int)
        assert 100 <= body["seed"] <= 999999
        palette = body.get("color_palette")
        if palette and "name" in palette:
            assert palette["name"] in PRESETS
        check_body({**body, "image": image})  # raises RequestRejected for a broken rule


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_each_manifest_entry_is_a_sidecar_the_function_accepts(entry):
    sidecar = {k: v for k, v in entry.items() if k != "file"}
    parse_sidecar(json.dumps(sidecar).encode())  # raises InvalidSidecar for an unknown or bad field


def test_one_product_asks_for_two_variants_with_two_renditions_each():
    (product,) = [entry for entry in MANIFEST if "variants" in entry]
    assert len(product["variants"]) == 2
    assert len({body["prompt"] for body in calls_of(product)}) == 2
    renditions = {r["name"]: r for r in product["renditions"]}
    assert set(renditions) == {"marketplace", "storefront"}
    assert (renditions["marketplace"]["format"], renditions["marketplace"]["fit"]) == ("jpeg", "pad")
    assert (renditions["storefront"]["format"], renditions["storefront"]["fit"]) == ("webp", "cover")
    # The emulator answers at the input's size, and a rendition is never larger than its result
    # (but for pad's canvas): a box the result fills shows the rendition's own size.
    with Image.open(SAMPLES / product["file"]) as image:
        assert renditions["storefront"]["width"] <= min(image.size)
        assert renditions["marketplace"]["width"] >= max(image.size)


def test_the_phone_photo_is_stored_sideways_with_a_p3_profile_gps_and_a_serial():
    data = (SAMPLES / "phone_serum.jpg").read_bytes()
    assert carried(data) == (
        "EXIF orientation 6",
        "Display P3 v4 colour profile",
        "GPS position",
        "camera serial number",
    )
    with (
        Image.open(SAMPLES / "dropper_bottle.jpg") as upright,
        Image.open(SAMPLES / "phone_serum.jpg") as phone,
    ):
        assert phone.size == (upright.height, upright.width)
        assert ImageOps.exif_transpose(phone).size == upright.size
    assert BODY_SERIAL.encode() in data
    assert "phone_serum.jpg" in {entry["file"] for entry in MANIFEST}


def test_the_phone_photo_is_what_its_script_makes():
    assert make_phone_photo() == (SAMPLES / "phone_serum.jpg").read_bytes()


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
