"""`backdrop demo` end to end: real photos in, their subjects kept, their backgrounds replaced."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from backdrop.demo.run import SAMPLES


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


def test_the_contact_sheet_charts_the_run_as_the_function_counted_it(demo_out: Path):
    manifest = json.loads((SAMPLES / "manifest.json").read_text())
    page = (demo_out / "index.html").read_text()
    # One paid call a sample, the two bad uploads failed before any call, and the spend they add up to.
    spend = sum(
        {"TURBO": 0.037, "DEFAULT": 0.075, "QUALITY": 0.113}[s.get("rendering_speed", "DEFAULT")]
        for s in manifest
    )
    assert f'aria-label="API calls over the run: {len(manifest)} in ' in page
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
