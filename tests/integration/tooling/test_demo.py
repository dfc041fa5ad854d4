"""`backdrop demo` end to end: real photos in, their subjects kept, their backgrounds replaced."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from backdrop.completion_events import PROCESSED
from backdrop.demo.phone_photo import BODY_SERIAL, GPS_IFD
from backdrop.demo.picture_facts import carried
from backdrop.demo.run import SAMPLES

PRICES = {"TURBO": 0.037, "DEFAULT": 0.075, "QUALITY": 0.113}


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The installed `backdrop demo` command, in its own process, as a user runs it."""
    out = tmp_path_factory.mktemp("demo") / "out"
    command = [str(Path(sys.executable).parent / "backdrop"), "demo", "--out", str(out), "--latency", "0"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    (out / "terminal.txt").write_text(finished.stdout)
    return out


def mean_difference(a: Image.Image, b: Image.Image, box: tuple[int, int, int, int]) -> float:
    diff = ImageChops.difference(a.convert("RGB").crop(box), b.convert("RGB").crop(box))
    return sum(ImageStat.Stat(diff).mean) / 3


def test_every_sample_has_an_output_and_every_bad_upload_a_reason(demo_out: Path):
    manifest = json.loads((SAMPLES / "manifest.json").read_text())
    for sample in manifest:
        stem = sample["file"].rsplit(".", 1)[0]
        assert (demo_out / "outputs" / "shop" / f"{stem}.png").is_file()
    failures = {
        record["source"]["key"]: record["error"]["class"]
        for record in json.loads((demo_out / "failures.json").read_text())
    }
    assert failures == {
        "shop/not-a-photo.jpg": "invalid_image",
        f"shop/typo-{manifest[0]['file']}": "invalid_sidecar",
    }


def test_the_product_shot_keeps_its_subject_and_loses_its_background(demo_out: Path):
    # The pouch stands on a pink studio backdrop; its sidecar asks for a teal palette.
    before = Image.open(demo_out / "inputs" / "shop" / "coffee_pouch.webp")
    after = Image.open(demo_out / "outputs" / "shop" / "coffee_pouch.png")
    assert before.size == after.size
    width, height = before.size
    subject = (width * 2 // 5, height * 2 // 5, width * 3 // 5, height * 3 // 5)  # the pouch's middle
    corner = (0, 0, width // 8, height // 8)  # studio backdrop
    assert mean_difference(before, after, subject) < 12
    assert mean_difference(before, after, corner) > 25


def test_the_contact_sheet_shows_inputs_outputs_and_failures(demo_out: Path):
    page = (demo_out / "index.html").read_text()
    assert 'src="inputs/shop/dropper_bottle.jpg"' in page
    assert 'src="outputs/shop/dropper_bottle.png"' in page
    assert "invalid_sidecar" in page
    assert "sead: unknown field" in page
    assert "Estimated cost" in page


def paid_calls(manifest: list[dict]) -> list[str]:
    """The rendering speed of each paid call the manifest asks for: one a variant."""
    return [
        variant.get("rendering_speed", sample.get("rendering_speed", "DEFAULT"))
        for sample in manifest
        for variant in sample.get("variants") or [{}]
    ]


def processed_events(demo_out: Path, key: str) -> dict[int, dict]:
    told = json.loads((demo_out / "events.json").read_text())
    return {
        event["detail"]["variant"]: event["detail"]
        for event in told
        if event["detail-type"] == PROCESSED and event["detail"]["input"]["key"] == key
    }


def test_the_contact_sheet_charts_the_run_as_the_function_counted_it(demo_out: Path):
    manifest = json.loads((SAMPLES / "manifest.json").read_text())
    page = (demo_out / "index.html").read_text()
    # One paid call a variant, the two bad uploads failed before any call, and the spend they add up to.
    calls = paid_calls(manifest)
    spend = sum(PRICES[speed] for speed in calls)
    assert len(calls) == len(manifest) + 1  # the product with two variants
    assert f'aria-label="API calls over the run: {len(calls)} in ' in page
    assert 'aria-label="Failures over the run: 2 in ' in page
    assert f'aria-label="Estimated spend over the run: ${spend:.3f} in ' in page


def test_the_function_logs_went_to_a_file_and_the_terminal_got_a_summary(demo_out: Path):
    log = (demo_out / "function.log").read_text()
    assert '"message":"processed"' in log
    assert '"ImagesProcessed"' in log
    terminal = (demo_out / "terminal.txt").read_text()
    assert '"level"' not in terminal
    assert "Estimated cost" in terminal
    assert "invalid_sidecar" in terminal


def test_the_product_with_two_variants_paid_two_calls_and_got_its_renditions_at_their_sizes(demo_out: Path):
    events = processed_events(demo_out, "shop/coffee_pouch.webp")
    assert sorted(events) == [1, 2]
    assert [events[n]["cost"]["paid_calls"] for n in (1, 2)] == [1, 1]
    assert {events[n]["cost"]["pair_estimated_usd"] for n in (1, 2)} == {2 * PRICES["DEFAULT"]}
    assert [events[n]["output"]["key"] for n in (1, 2)] == [
        "shop/coffee_pouch.png",
        "shop/coffee_pouch.v2.png",
    ]
    sizes = {}
    for variant in events.values():
        for rendition in variant["renditions"]:
            path = demo_out / "outputs" / rendition["key"]
            assert path.stat().st_size == rendition["bytes"]
            with Image.open(path) as image:
                sizes[rendition["key"]] = (image.format, image.size)
    assert sizes == {
        "shop/coffee_pouch@marketplace.jpg": ("JPEG", (640, 640)),
        "shop/coffee_pouch@storefront.webp": ("WEBP", (400, 400)),
        "shop/coffee_pouch.v2@marketplace.jpg": ("JPEG", (640, 640)),
        "shop/coffee_pouch.v2@storefront.webp": ("WEBP", (400, 400)),
    }


def test_the_summary_counts_paid_results_renditions_and_files(demo_out: Path):
    manifest = json.loads((SAMPLES / "manifest.json").read_text())
    results = len(paid_calls(manifest))
    files = sorted(path for path in (demo_out / "outputs").rglob("*") if path.is_file())
    assert len(files) == results + 4
    terminal = " ".join((demo_out / "terminal.txt").read_text().split())
    assert f"Results (a paid call each, variants included) │ {results} │" in terminal
    assert "Renditions written (no paid call) │ 4 │" in terminal
    assert f"Files written to outputs/ │ {len(files)} │" in terminal
    spend = sum(PRICES[speed] for speed in paid_calls(manifest))
    assert f"Estimated cost in the completion events │ ${spend:.3f} │" in terminal


def test_the_sideways_phone_photo_comes_out_upright(demo_out: Path):
    stored = Image.open(demo_out / "inputs" / "shop" / "phone_serum.jpg")
    after = Image.open(demo_out / "outputs" / "shop" / "phone_serum.png")
    upright = Image.open(SAMPLES / "dropper_bottle.jpg")  # what the phone photo was made from
    assert stored.size == (640, 512)
    assert after.size == upright.size == (512, 640)
    width, height = upright.size
    bottle = (width * 2 // 5, height // 3, width * 3 // 5, height * 2 // 3)
    assert mean_difference(upright, after, bottle) < 12


def test_no_output_carries_the_phone_photos_gps_or_serial(demo_out: Path):
    given = carried((demo_out / "inputs" / "shop" / "phone_serum.jpg").read_bytes())
    assert {"GPS position", "camera serial number"} <= set(given)
    gps_pointer = [  # the GPS IFD's entry in the first IFD (tag, type LONG, count 1), either byte order
        GPS_IFD.to_bytes(2, "little") + b"\x04\x00\x01\x00\x00\x00",
        GPS_IFD.to_bytes(2, "big") + b"\x00\x04\x00\x00\x00\x01",
    ]
    outputs = [path for path in (demo_out / "outputs").rglob("*") if path.is_file()]
    assert len(outputs) >= 9
    for path in outputs:
        data = path.read_bytes()
        assert BODY_SERIAL.encode() not in data, path
        assert not any(pointer in data for pointer in gps_pointer), path
        assert carried(data) == (), path


def test_the_contact_sheet_shows_variants_renditions_and_the_turned_input(demo_out: Path):
    page = (demo_out / "index.html").read_text()
    text = " ".join(page.split())
    assert "Variant 2<span>640 × 480 PNG" in text
    assert "a bag of coffee beans on a rustic wooden cafe table by a rainy window" in page
    assert "<b>variant 2 · storefront</b><span>400 × 400 WEBP · " in text
    assert "<b>variant 1 · marketplace</b><span>640 × 640 JPEG · " in text
    assert 'src="as-stored/shop/phone_serum.jpg.png"' in page
    assert (demo_out / "as-stored" / "shop" / "phone_serum.jpg.png").is_file()
    assert "Input, as stored<span>640 × 512 JPEG" in text
    assert "its outputs: none of it" in page
