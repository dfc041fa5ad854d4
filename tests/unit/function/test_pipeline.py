"""The pipeline's rules against in-memory ports: pairing, money, failures, output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import unquote

import pytest

from backdrop_fn import images
from backdrop_fn.adapters.kept_answers import DiskKeptAnswers
from backdrop_fn.delivery import Delivery
from backdrop_fn.errors import (
    ApiNotFound,
    ApiTimeout,
    AuthFailed,
    BadRequest,
    InsufficientCredits,
    NotEnoughTime,
    OutputWriteFailed,
    RateLimited,
    ServerError,
)
from backdrop_fn.events import WorkItem
from backdrop_fn.images import JPEG, WEBP
from backdrop_fn.outcome import Status
from backdrop_fn.timing import Deadline, TimeBudget
from tests.unit.function.conftest import BUCKET, OUTPUT_BUCKET, World, statuses
from tests.unit.function.fakes import JPEG_BYTES, PNG_BYTES, WEBP_BYTES, noisy_png

SIDECAR = {"prompt": "a sunny beach", "seed": 1234}


# -- pairing ------------------------------------------------------------------------------------


def test_image_then_sidecar_processes_once_both_are_there(world: World):
    world.upload("shop/shoe-1.jpg", JPEG_BYTES)
    assert statuses(world.event("shop/shoe-1.jpg")) == [Status.AWAITING_SIDECAR]
    assert world.api.calls == 0
    world.upload("shop/shoe-1.jpg.json", SIDECAR)
    assert statuses(world.event("shop/shoe-1.jpg.json")) == [Status.PROCESSED]
    assert world.api.calls == 1
    assert (OUTPUT_BUCKET, "shop/shoe-1.png") in world.store.outputs


def test_sidecar_then_image_waits_for_the_image_then_processes(world: World):
    world.upload("shop/shoe-1.json", SIDECAR)
    assert statuses(world.event("shop/shoe-1.json")) == [Status.AWAITING_IMAGE]
    world.upload("shop/shoe-1.jpg", JPEG_BYTES)
    assert statuses(world.event("shop/shoe-1.jpg")) == [Status.PROCESSED]
    assert world.api.payloads[0]["prompt"] == "a sunny beach"


def test_waiting_for_a_sidecar_is_counted_and_is_not_a_failure(world: World):
    world.upload("a.png", PNG_BYTES)
    world.event("a.png")
    assert world.metrics.total("AwaitingSidecar") == 1
    assert world.dlq.sent == []
    assert world.metrics.failures == []


@pytest.mark.parametrize("sidecar_key", ["shop/shoe-1.jpg.json", "shop/shoe-1.json"])
def test_both_sidecar_names_are_found(world: World, sidecar_key: str):
    world.upload("shop/shoe-1.jpg", JPEG_BYTES)
    world.upload(sidecar_key, {"prompt": f"from {sidecar_key}"})
    world.event("shop/shoe-1.jpg")
    assert world.api.payloads[0]["prompt"] == f"from {sidecar_key}"


def test_full_name_sidecar_wins_over_the_stem_sidecar(world: World):
    world.upload("shoe.jpg", JPEG_BYTES)
    world.upload("shoe.json", {"prompt": "stem"})
    world.upload("shoe.jpg.json", {"prompt": "full name"})
    world.event("shoe.json")
    world.event("shoe.jpg.json")
    assert [p["prompt"] for p in world.api.payloads] == ["full name"]


def test_a_stem_sidecar_serves_every_image_of_that_stem_and_one_output_key_has_one_owner(world: World):
    world.upload("look.jpg", JPEG_BYTES)
    world.upload("look.webp", WEBP_BYTES)
    world.upload("lookalike.png", PNG_BYTES)
    world.upload("look.json", SIDECAR)
    outcomes = world.event("look.json")
    assert sorted((o.image_key, o.status) for o in outcomes) == [
        ("look.jpg", Status.PROCESSED),
        ("look.webp", Status.FAILED),  # its output would be look.png too
    ]
    assert world.api.calls == 1
    ((record, error_class),) = world.dlq.sent
    assert error_class == "invalid_image"
    assert "'look.jpg'" in record["error"]["message"]


def test_a_second_image_with_the_same_output_key_fails_before_paying(world: World):
    world.upload("shop/shoe.jpg", JPEG_BYTES)
    world.upload("shop/shoe.jpg.json", SIDECAR)
    assert statuses(world.event("shop/shoe.jpg")) == [Status.PROCESSED]
    world.upload("shop/shoe.webp", WEBP_BYTES)
    world.upload("shop/shoe.webp.json", SIDECAR)
    assert statuses(world.event("shop/shoe.webp")) == [Status.FAILED]
    assert world.api.calls == 1
    assert world.output("shop/shoe.png")["body"] == world.api.image  # the first result stands
    ((record, error_class),) = world.dlq.sent
    assert (error_class, record["source"]["key"]) == ("invalid_image", "shop/shoe.webp")
    assert "belongs to 'shop/shoe.jpg'" in record["error"]["message"]


def test_a_new_version_of_the_owner_keeps_its_output_key(world: World):
    world.upload("shoe.jpg", JPEG_BYTES)
    world.upload("shoe.jpg.json", SIDECAR)
    world.event("shoe.jpg")
    world.upload("shoe.jpg.json", {**SIDECAR, "prompt": "a snowy mountain"})
    assert statuses(world.event("shoe.jpg.json")) == [Status.PROCESSED]
    assert world.api.calls == 2


def test_an_output_key_whose_owner_was_deleted_passes_to_the_next_image(world: World):
    world.upload("shoe.jpg", JPEG_BYTES)
    world.upload("shoe.jpg.json", SIDECAR)
    world.event("shoe.jpg")
    world.store.delete(BUCKET, "shoe.jpg")
    world.upload("shoe.webp", WEBP_BYTES)
    world.upload("shoe.webp.json", SIDECAR)
    assert statuses(world.event("shoe.webp")) == [Status.PROCESSED]
    assert world.api.calls == 2


def test_default_prompt_processes_an_image_without_sidecar(world: World):
    world.configure(default_prompt="plain white studio")
    world.upload("a.jpg", JPEG_BYTES)
    assert statuses(world.event("a.jpg")) == [Status.PROCESSED]
    assert world.api.payloads[0]["prompt"] == "plain white studio"
    assert world.api.payloads[0]["rendering_speed"] == "DEFAULT"


def test_uppercase_image_extension_is_an_image(world: World):
    world.upload("A.JPG", JPEG_BYTES)
    world.upload("A.JPG.json", SIDECAR)
    assert statuses(world.event("A.JPG")) == [Status.PROCESSED]
    assert (OUTPUT_BUCKET, "A.png") in world.store.outputs


@pytest.mark.parametrize("key", ["folder/", "notes.txt", "data.JSON", ""])
def test_folders_and_other_files_are_ignored(world: World, key: str):
    assert statuses(world.event(key)) == [Status.IGNORED]
    assert world.api.calls == 0
    assert world.dlq.sent == []


# -- money: at most one paid call per (image version, sidecar version) --------------------------


def test_duplicate_event_makes_no_second_api_call(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.event("a.jpg")
    assert statuses(world.event("a.jpg")) == [Status.DUPLICATE]
    assert world.api.calls == 1
    assert world.metrics.total("DuplicatesSkipped") == 1


def test_events_of_both_halves_make_one_api_call(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    assert statuses(world.event("a.jpg.json")) == [Status.PROCESSED]
    assert statuses(world.event("a.jpg")) == [Status.DUPLICATE]
    assert world.api.calls == 1


def test_changed_sidecar_makes_a_new_call(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.event("a.jpg.json")
    world.upload("a.jpg.json", {**SIDECAR, "prompt": "a snowy mountain"})
    assert statuses(world.event("a.jpg.json")) == [Status.PROCESSED]
    assert [p["prompt"] for p in world.api.payloads] == ["a sunny beach", "a snowy mountain"]


def test_changed_image_makes_a_new_call(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.event("a.jpg")
    world.upload("a.jpg", JPEG_BYTES + b"new version")
    assert statuses(world.event("a.jpg")) == [Status.PROCESSED]
    assert world.api.calls == 2


def test_a_pair_being_processed_elsewhere_is_a_duplicate_for_the_other_event(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)

    def api_sees_a_concurrent_duplicate(payload, deadline):
        assert statuses(world.event("a.jpg.json")) == [Status.DUPLICATE]
        return original(payload, deadline)

    original = world.api.replace_background
    world.api.replace_background = api_sees_a_concurrent_duplicate
    world.event("a.jpg")
    assert len(world.api.payloads) == 1


def test_a_failed_pair_is_not_dead_lettered_twice_by_duplicate_events(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", "{not json")
    world.event("a.jpg")
    world.event("a.jpg.json")
    world.event("a.jpg")
    assert len(world.dlq.sent) == 1


def test_a_redrive_after_the_pair_was_fixed_and_processed_makes_no_call(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", {"prompt": "x", "seed": 1})
    world.event("a.jpg")
    world.upload("a.jpg.json", SIDECAR)  # the user fixes the sidecar: its event processes the pair
    world.event("a.jpg.json")
    assert world.api.calls == 1
    assert statuses(world.event("a.jpg", replay_of="redrive-1")) == [Status.DUPLICATE]
    assert world.api.calls == 1


def test_a_stem_sidecar_redrive_pays_only_for_the_image_that_failed(world: World):
    world.upload("look.jpg", JPEG_BYTES)
    world.upload("look.png", PNG_BYTES)  # its output key is look.jpg's: refused, never paid
    world.upload("look.json", SIDECAR)
    world.api.errors = [InsufficientCredits("API 406", http_status=406)]
    outcomes = world.event("look.json")
    assert sorted((o.image_key, o.error_class) for o in outcomes) == [
        ("look.jpg", "insufficient_credits"),
        ("look.png", "invalid_image"),
    ]
    world.event("look.json", replay_of="redrive-1")
    world.event("look.json", replay_of="redrive-1")
    assert world.api.calls == 2  # the first call, and one for the redriven paid failure
    assert world.output("look.png")["body"] == world.api.image


def test_a_redriven_failure_is_processed_again(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.api.errors = [InsufficientCredits("API 406: no credits", http_status=406)]
    world.event("a.jpg")
    assert [cls for _, cls in world.dlq.sent] == ["insufficient_credits"]
    replay = world.dlq.records[0]
    assert statuses(world.event("a.jpg", replay_of="2026-11-27T10:00:00Z/req-1/1")) == [Status.PROCESSED]
    assert world.api.calls == 2
    assert replay["event"]["s3"]["object"]["key"] == "a.jpg"


# -- bad input: the right class, no paid call ---------------------------------------------------


@pytest.mark.parametrize(
    ("sidecar", "expected"),
    [
        ("{not json", "not valid JSON"),
        ({"seed": 1234}, "prompt: is required"),
        ({"prompt": "x", "seed": 99}, "seed: must be between 100 and 999999"),
        ({"prompt": "x", "sead": 1234}, "sead: unknown field (did you mean 'seed'?)"),
        (
            {"prompt": "x", "rendering_speed": "FAST"},
            "rendering_speed: must be 'TURBO', 'DEFAULT' or 'QUALITY'",
        ),
        ("{" + '"prompt": "' + "x" * 70_000 + '"}', "the limit is 65,536"),
    ],
)
def test_invalid_sidecar_goes_to_the_dlq_without_a_paid_call(world: World, sidecar, expected: str):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", sidecar)
    assert statuses(world.event("a.jpg")) == [Status.FAILED]
    assert world.api.calls == 0
    ((record, error_class),) = world.dlq.sent
    assert error_class == "invalid_sidecar" == record["error"]["class"]
    assert expected in record["error"]["message"]
    assert record["error"]["retryable"] is False


def test_non_image_bytes_named_jpg_are_an_invalid_image(world: World):
    world.upload("fake.jpg", b"GIF89a not what the name says")
    world.upload("fake.jpg.json", SIDECAR)
    world.event("fake.jpg")
    ((record, error_class),) = world.dlq.sent
    assert error_class == "invalid_image"
    assert "not a JPEG, PNG or WebP image" in record["error"]["message"]
    assert world.api.calls == 0


def test_a_png_named_jpg_is_still_an_image(world: World):
    world.upload("mislabelled.jpg", PNG_BYTES)
    world.upload("mislabelled.jpg.json", SIDECAR)
    assert statuses(world.event("mislabelled.jpg")) == [Status.PROCESSED]


def test_image_over_max_image_bytes_fails_having_read_only_its_first_bytes(world: World):
    world.configure(max_image_bytes=100)
    world.upload("big.png", PNG_BYTES + b"\x00" * 200)
    world.upload("big.png.json", SIDECAR)
    world.event("big.png")
    ((record, error_class),) = world.dlq.sent
    assert error_class == "invalid_image"
    assert "MAX_IMAGE_BYTES" in record["error"]["message"]
    assert world.store.reads == [("big.png", images.HEAD_BYTES)]  # the read that found its size
    assert world.api.calls == 0


def test_image_deleted_before_processing_is_a_missing_object(world: World):
    world.upload("gone.jpg.json", SIDECAR)
    outcomes = world.event("gone.jpg")
    assert statuses(outcomes) == [Status.FAILED]
    assert world.dlq.sent[0][1] == "missing_object"
    world.event("gone.jpg")
    assert len(world.dlq.sent) == 1


def test_missing_style_reference_object_fails_before_the_call(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", {"prompt": "x", "style_reference_images": ["styles/nope.png"]})
    world.event("a.jpg")
    assert world.dlq.sent[0][1] == "missing_object"
    assert world.api.calls == 0


def test_sidecar_metadata_too_large_for_s3_fails_before_the_call(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", {"prompt": "x", "metadata": {"notes": "y" * 2100}})
    world.event("a.jpg")
    assert world.dlq.sent[0][1] == "invalid_sidecar"
    assert "shorten the sidecar's metadata" in world.dlq.records[0]["error"]["message"]
    assert world.api.calls == 0


def test_a_long_non_ascii_key_is_recorded_without_blaming_the_sidecar(world: World):
    key = "商品/" + "靴" * 150 + ".jpg"  # ~1,350 bytes of metadata once percent-encoded, twice over
    world.upload(key, JPEG_BYTES)
    world.upload(key + ".json", SIDECAR)
    assert statuses(world.event(key)) == [Status.PROCESSED]
    metadata = world.output(key[:-4] + ".png")["metadata"]
    assert unquote(metadata["source-key"]) == key
    assert "sidecar-key" not in metadata  # a nice-to-have that gave way to S3's 2 KB


def test_a_record_with_too_little_time_left_is_not_started(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    item = WorkItem(BUCKET, "a.jpg", None, None, {})
    with pytest.raises(NotEnoughTime):
        world.pipeline.process(item, Delivery(Deadline(20), "r", attempt=5, max_attempts=5, message_id="m1"))
    assert world.api.calls == 0
    assert world.dlq.sent == []
    assert world.claims.done == {}  # nothing claimed: the next receive starts afresh


def test_a_direct_event_with_too_little_time_left_is_dead_lettered_as_a_timeout(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    item = WorkItem(BUCKET, "a.jpg", None, None, {})
    assert statuses(world.pipeline.process(item, Delivery(Deadline(20), "r"))) == [
        Status.FAILED
    ]  # no message
    assert world.api.calls == 0
    ((record, error_class),) = world.dlq.sent
    assert (error_class, record["error"]["retryable"]) == ("timeout", True)


# -- API failures: class, retry or DLQ ----------------------------------------------------------

PERMANENT = [
    (BadRequest("API 400: bad", http_status=400), "bad_request"),
    (AuthFailed("API 401: no", http_status=401), "auth"),
    (ApiNotFound("API 404: no", http_status=404), "not_found"),
    (InsufficientCredits("API 406: no", http_status=406), "insufficient_credits"),
]
TRANSIENT = [
    (RateLimited("API 429", http_status=429), "rate_limited"),
    (ServerError("API 502", http_status=502), "server_error"),
    (ApiTimeout("slow"), "timeout"),
]


@pytest.mark.parametrize(("error", "error_class"), PERMANENT)
def test_permanent_api_errors_go_to_the_dlq_at_once(world: World, error, error_class: str):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.api.errors = [error]
    assert statuses(world.event("a.jpg", attempt=1, final=False)) == [Status.FAILED]
    record = world.dlq.records[0]
    assert record["error"]["class"] == error_class
    assert record["error"]["http_status"] == error.http_status
    assert world.metrics.failures == [error_class]


@pytest.mark.parametrize(("error", "error_class"), TRANSIENT)
def test_transient_api_errors_are_retried_until_the_last_attempt(world: World, error, error_class: str):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.api.errors = [error, error]
    with pytest.raises(type(error)):
        world.event("a.jpg", attempt=1, final=False)
    assert world.dlq.sent == []
    # The claim was released: the last attempt calls again, fails, and dead-letters.
    assert statuses(world.event("a.jpg", attempt=5, final=True)) == [Status.FAILED]
    assert world.dlq.records[0]["error"] == {
        "class": error_class,
        "message": error.message,
        "http_status": error.http_status,
        "retryable": True,
    }
    assert world.dlq.records[0]["attempts"] == 5


def test_a_transient_failure_then_success_writes_the_output(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.api.errors = [ServerError("API 500", http_status=500)]
    with pytest.raises(ServerError):
        world.event("a.jpg", final=False)
    assert statuses(world.event("a.jpg", attempt=2, final=False)) == [Status.PROCESSED]
    assert world.dlq.sent == []


def fail_the_first_write(world: World, *, message_id: str, reason: str = "SlowDown") -> None:
    """``a.jpg``'s first receive pays, but S3 does not take the answer: the message is left on the queue."""
    world.store.fail_writes_with = OutputWriteFailed(reason, retryable=True)
    with pytest.raises(OutputWriteFailed, match=f"paid for but could not be stored: {reason}"):
        world.event("a.jpg", attempt=1, final=False, message_id=message_id)


def test_a_paid_answer_whose_write_fails_for_a_while_is_written_again_in_the_same_call(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.store.fail_writes_with = OutputWriteFailed("SlowDown", retryable=True)
    world.store.writes_to_fail = 3
    assert statuses(world.event("a.jpg", attempt=1, final=False, message_id="m1")) == [Status.PROCESSED]
    assert world.clock.sleeps == [2.0, 4.0, 8.0]
    assert world.api.calls == 1
    assert world.output("a.png")["body"] == world.api.image


def test_a_failing_output_write_is_given_up_with_time_left_for_the_message_s_retry(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.store.fail_writes_with = OutputWriteFailed("SlowDown", retryable=True)
    with pytest.raises(OutputWriteFailed, match="paid for but could not be stored"):
        world.event("a.jpg", attempt=1, final=False, message_id="m1")
    assert world.clock.sleeps[:5] == [2.0, 4.0, 8.0, 16.0, 16.0]  # doubling, up to a cap
    assert 300 - world.clock.now >= TimeBudget().write_retry_reserve_seconds
    assert 300 - world.clock.now < TimeBudget().write_retry_reserve_seconds + 16.0


def test_a_kept_answer_gone_before_its_write_is_not_written_again_in_the_call(world: World, tmp_path: Path):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    fail_the_first_write(world, message_id="m1")
    world.clock.sleeps.clear()
    world.store.fail_writes_with = None
    (kept_body,) = (tmp_path / "kept-answers").glob("*.body")
    original_find = world.kept.find

    def found_then_gone(pair_id: str):
        found = original_find(pair_id)
        kept_body.unlink()  # another thread of a local run stored it meanwhile
        return found

    world.kept.find = found_then_gone  # type: ignore[method-assign]
    with pytest.raises(OutputWriteFailed, match="the kept answer could not be read"):
        world.event("a.jpg", attempt=2, final=False, message_id="m1")
    assert world.clock.sleeps == []


def test_a_write_the_bucket_refuses_is_not_tried_again_in_the_call(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.store.fail_writes_with = OutputWriteFailed("AccessDenied", retryable=False)
    assert statuses(world.event("a.jpg", attempt=1, final=False, message_id="m1")) == [Status.FAILED]
    assert world.clock.sleeps == []


def test_a_failed_output_write_is_retried_from_the_kept_answer_without_paying_again(
    world: World, tmp_path: Path
):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", {"prompt": "a beach"})  # no seed: the function chooses one
    fail_the_first_write(world, message_id="m1")  # left on the queue (docs/REFERENCE.md#retries)
    assert world.dlq.sent == []
    world.store.fail_writes_with = None
    world.seed = 99  # a new call would choose another seed
    assert statuses(world.event("a.jpg", attempt=2, final=False, message_id="m1")) == [Status.PROCESSED]
    assert world.api.calls == 1
    assert world.metrics.total("KeptAnswersReused") == 1
    output = world.output("a.png")
    assert output["body"] == world.api.image
    assert output["metadata"]["seed"] == "4242"  # the metadata of the answer that was paid for
    assert list((tmp_path / "kept-answers").iterdir()) == []  # stored, so no longer kept
    assert statuses(world.event("a.jpg", attempt=3, final=False, message_id="m1")) == [Status.DUPLICATE]


def test_the_other_halfs_event_stores_a_kept_answer_and_the_retry_is_then_a_duplicate(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    fail_the_first_write(world, message_id="image-message")
    world.store.fail_writes_with = None
    assert statuses(world.event("a.jpg.json", final=False, message_id="sidecar-message")) == [
        Status.PROCESSED
    ]
    assert statuses(world.event("a.jpg", attempt=2, final=False, message_id="image-message")) == [
        Status.DUPLICATE
    ]
    assert world.api.calls == 1


def test_an_output_bucket_that_refuses_the_write_is_dead_lettered_at_once(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.store.fail_writes_with = OutputWriteFailed("AccessDenied", retryable=False)
    assert statuses(world.event("a.jpg", attempt=1, final=False, message_id="m1")) == [Status.FAILED]
    ((record, error_class),) = world.dlq.sent
    assert (error_class, record["error"]["retryable"]) == ("output_write", False)
    # Not retried into a second paid call; a redrive once the bucket is fixed stores the kept answer.
    world.store.fail_writes_with = None
    assert statuses(world.event("a.jpg", replay_of="dlq-message-1", message_id="m2")) == [Status.PROCESSED]
    assert world.api.calls == 1


def test_an_output_write_failing_on_the_last_attempt_is_dead_lettered_and_a_redrive_pays_nothing(
    world: World,
):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    fail_the_first_write(world, message_id="m1", reason="AccessDenied")
    assert statuses(world.event("a.jpg", attempt=5, final=True, message_id="m1")) == [Status.FAILED]
    ((record, error_class),) = world.dlq.sent
    assert error_class == "output_write"
    assert record["error"]["retryable"] is True
    assert record["attempts"] == 5
    assert "paid for but could not be stored: AccessDenied" in record["error"]["message"]
    world.store.fail_writes_with = None  # the user fixed the bucket, then redrove the record
    assert statuses(world.event("a.jpg", replay_of="dlq-message-1", message_id="m2")) == [Status.PROCESSED]
    assert world.api.calls == 1


def test_a_retry_in_a_container_without_the_kept_answer_pays_again(world: World, tmp_path: Path):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    fail_the_first_write(world, message_id="m1")
    world.store.fail_writes_with = None
    world.kept = DiskKeptAnswers(tmp_path / "another-container")
    assert statuses(world.event("a.jpg", attempt=2, final=False, message_id="m1")) == [Status.PROCESSED]
    assert world.api.calls == 2  # the retry the contract asks for, where no copy is


def test_answers_waiting_for_a_broken_output_bucket_do_not_evict_each_other(world: World, tmp_path: Path):
    world.api.image = noisy_png(64, 64)
    world.kept = DiskKeptAnswers(tmp_path / "small-keep", max_bytes=int(len(world.api.image) * 2.5))
    world.store.fail_writes_with = OutputWriteFailed("SlowDown", retryable=True)
    messages = {}
    for number in (1, 2, 3):
        key = f"p{number}.jpg"
        world.upload(key, JPEG_BYTES)
        world.upload(f"{key}.json", SIDECAR)
        with pytest.raises(OutputWriteFailed) as failed:
            world.event(key, attempt=1, final=False, message_id=f"m{number}")
        messages[key] = failed.value.message
    assert "it is kept in this container" in messages["p1.jpg"]
    assert "it is kept in this container" in messages["p2.jpg"]
    assert "could not be kept on local disk (no room" in messages["p3.jpg"]  # never said to be kept
    assert world.metrics.total("PaidAnswersLost") == 1
    world.store.fail_writes_with = None  # the bucket is back; each message comes back once
    for number in (1, 2, 3):
        assert statuses(world.event(f"p{number}.jpg", attempt=2, message_id=f"m{number}")) == [
            Status.PROCESSED
        ]
    assert world.api.calls == 4  # three pairs, and one counted second purchase
    assert world.metrics.total("KeptAnswersReused") == 2


def test_a_direct_event_whose_output_write_fails_is_dead_lettered_at_once(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.store.fail_writes_with = OutputWriteFailed("SlowDown", retryable=True)
    assert statuses(world.event("a.jpg")) == [Status.FAILED]  # no message: no later attempt
    assert [error_class for _, error_class in world.dlq.sent] == ["output_write"]


def test_an_answer_with_no_room_on_disk_is_stored_from_memory_and_bought_once(world: World, tmp_path: Path):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the keep's directory should be")
    world.kept = DiskKeptAnswers(blocker)
    assert statuses(world.event("a.jpg", attempt=1, final=False, message_id="m1")) == [Status.PROCESSED]
    assert [output["body"] for output in world.store.outputs.values()] == [world.api.image]
    assert world.api.calls == 1
    assert world.metrics.total("PaidAnswersLost") == 0


def test_an_answer_held_in_memory_whose_write_fails_is_a_counted_loss_bought_once_more(
    world: World, tmp_path: Path
):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.kept = DiskKeptAnswers(tmp_path / "full-disk", reserve_bytes=10**18)
    world.store.fail_writes_with = OutputWriteFailed("SlowDown", retryable=True)
    with pytest.raises(
        OutputWriteFailed,
        match=r"kept on local disk \(no room, or the disk failed\), so the retry buys it once more",
    ):
        world.event("a.jpg", attempt=1, final=False, message_id="m1")
    assert world.metrics.total("PaidAnswersLost") == 1
    world.store.fail_writes_with = None
    assert statuses(world.event("a.jpg", attempt=2, final=False, message_id="m1")) == [Status.PROCESSED]
    assert world.api.calls == 2
    assert world.metrics.total("PaidAnswersLost") == 1  # counted when lost, not again by the retry


def test_a_dlq_record_fits_in_one_sqs_message_whatever_its_error_says(world: World):
    fields = {f"f{index}": 1 for index in range(4000)}  # a sidecar of 4,000 unknown fields, < 64 KiB
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", {"prompt": "x", **fields})
    world.event("a.jpg")
    ((record, error_class),) = world.dlq.sent
    assert error_class == "invalid_sidecar"
    assert len(json.dumps(record).encode()) < 16 * 1024
    assert "more problems" in record["error"]["message"]


def test_an_output_key_s3_would_refuse_fails_before_the_call(world: World):
    world.configure(output_prefix="p/" * 300)
    world.upload("a" * 500 + ".jpg", JPEG_BYTES)
    world.upload("a" * 500 + ".jpg.json", SIDECAR)
    world.event("a" * 500 + ".jpg")
    assert world.dlq.records[0]["error"]["class"] == "output_write"
    assert world.dlq.records[0]["error"]["retryable"] is False
    assert world.api.calls == 0


def test_an_unexpected_bug_ends_in_one_internal_dlq_record(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.api.errors = [ZeroDivisionError("oops")]  # type: ignore[list-item]
    world.event("a.jpg", final=False)
    assert world.dlq.sent[0][1] == "internal"
    assert "ZeroDivisionError" in world.dlq.records[0]["error"]["message"]


# -- the request and the output -----------------------------------------------------------------


def test_request_carries_every_sidecar_field(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload(
        "a.jpg.json",
        {
            "prompt": "  neon city  ",
            "rendering_speed": "TURBO",
            "magic_prompt": "OFF",
            "seed": 777,
            "style_codes": ["0A1B2C3D"],
            "color_palette": {"members": [{"color_hex": "#ff0000", "color_weight": 0.5}]},
        },
    )
    world.event("a.jpg")
    payload = world.api.payloads[0]
    assert payload == {
        "image": f"https://{BUCKET}.s3.example/a.jpg?expires=600",
        "prompt": "neon city",
        "rendering_speed": "TURBO",
        "magic_prompt": "OFF",
        "seed": 777,
        "style_codes": ["0A1B2C3D"],
        "style_reference_images": [],
        "color_palette": {"members": [{"color_hex": "#ff0000", "color_weight": 0.5}]},
    }


def test_url_mode_reads_only_the_ends_of_a_large_image(world: World):
    big = noisy_png(600, 600)
    assert len(big) > 500_000
    world.upload("a.png", big)
    world.upload("a.png.json", SIDECAR)
    world.event("a.png")
    assert world.store.reads == [("a.png", images.HEAD_BYTES), ("a.png", -images.TAIL_BYTES)]
    assert world.api.calls == 1


def test_base64_mode_streams_the_image_into_the_request(world: World):
    import base64

    world.configure(image_transfer="base64")
    big = noisy_png(600, 600)
    world.upload("a.png", big)
    world.upload("a.png.json", SIDECAR)
    world.event("a.png")
    assert base64.b64decode(world.api.payloads[0]["image"]) == big
    # Checked by its ends, then read once, as a stream, while the request is sent.
    assert world.store.reads == [
        ("a.png", images.HEAD_BYTES),
        ("a.png", -images.TAIL_BYTES),
        ("a.png", "stream"),
    ]


def test_style_reference_keys_become_urls_and_https_urls_pass_through(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("styles/ref.png", PNG_BYTES)
    world.upload(
        "a.jpg.json",
        {"prompt": "x", "style_reference_images": ["styles/ref.png", "https://cdn.example.com/s.jpg"]},
    )
    world.event("a.jpg")
    assert world.api.payloads[0]["style_reference_images"] == [
        f"https://{BUCKET}.s3.example/styles/ref.png?expires=600",
        "https://cdn.example.com/s.jpg",
    ]


def test_an_omitted_seed_is_chosen_and_recorded(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", {"prompt": "x"})
    world.event("a.jpg")
    assert world.api.payloads[0]["seed"] == world.seed
    assert world.output("a.png")["metadata"]["seed"] == str(world.seed)


@pytest.mark.parametrize(
    ("image", "image_type", "key", "content_type"),
    [
        (JPEG_BYTES, JPEG, "shop/shoe-1.jpg", "image/jpeg"),
        (WEBP_BYTES, WEBP, "shop/shoe-1.webp", "image/webp"),
    ],
)
def test_output_extension_and_content_type_follow_the_returned_image(
    world: World, image, image_type, key, content_type
):
    world.api.image, world.api.image_type = image, image_type
    world.upload("shop/shoe-1.png", PNG_BYTES)
    world.upload("shop/shoe-1.json", SIDECAR)
    world.event("shop/shoe-1.png")
    assert world.output(key)["content_type"] == content_type
    assert world.output(key)["body"] == image


def test_output_prefix_is_put_in_front_of_the_key(world: World):
    world.configure(output_prefix="processed/")
    world.upload("shop/a.webp", WEBP_BYTES)
    world.upload("shop/a.webp.json", SIDECAR)
    world.event("shop/a.webp")
    assert (OUTPUT_BUCKET, "processed/shop/a.png") in world.store.outputs


def test_output_metadata_records_source_prompt_and_sidecar_metadata(world: World):
    image_etag = world.upload("shop/schuh ü.jpg", JPEG_BYTES)
    world.upload(
        "shop/schuh ü.jpg.json",
        {"prompt": "a sunny beach", "seed": 1234, "metadata": {"SKU": "A-1", "name": "Größe 42"}},
    )
    world.event("shop/schuh ü.jpg")
    metadata = world.output("shop/schuh ü.png")["metadata"]
    assert metadata["source-bucket"] == BUCKET
    assert metadata["source-key"] == "shop/schuh%20%C3%BC.jpg"
    assert unquote(metadata["source-key"]) == "shop/schuh ü.jpg"
    assert metadata["source-etag"] == image_etag
    assert metadata["prompt-sha256"] == hashlib.sha256(b"a sunny beach").hexdigest()
    assert metadata["rendering-speed"] == "DEFAULT"
    assert metadata["seed"] == "1234"
    assert metadata["sku"] == "A-1"
    assert unquote(metadata["name"]) == "Größe 42"
    assert all(value.isascii() for value in metadata.values())


def test_success_is_counted_with_its_bytes(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.event("a.jpg")
    assert world.metrics.total("ImagesProcessed") == 1
    assert world.metrics.total("OutputBytes") == len(PNG_BYTES)


def test_default_rendering_speed_applies_only_when_the_sidecar_gives_none(world: World):
    world.configure(default_rendering_speed="TURBO")
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", {"prompt": "x"})
    world.upload("b.jpg", JPEG_BYTES)
    world.upload("b.jpg.json", {"prompt": "x", "rendering_speed": "QUALITY"})
    world.event("a.jpg")
    world.event("b.jpg")
    assert [p["rendering_speed"] for p in world.api.payloads] == ["TURBO", "QUALITY"]
    assert world.output("a.png")["metadata"]["rendering-speed"] == "TURBO"


@pytest.mark.parametrize(
    ("outputs", "key"),
    [
        ({"output_bucket": BUCKET}, "result.png"),
        (
            {"output_bucket": BUCKET, "input_buckets": {BUCKET}, "output_prefix": "backdrop/"},
            "backdrop/a.png",
        ),
    ],
    ids=[
        "from an output bucket of its own (wired wrong)",
        "under OUTPUT_PREFIX in a bucket shared with inputs",
    ],
)
def test_an_event_for_one_of_our_results_is_acknowledged_unprocessed_and_counted(
    world: World, outputs: dict, key: str
):
    world.configure(**outputs, default_prompt="anything")  # a result taken for an input would be paid for
    world.upload(key, PNG_BYTES)
    world.upload(key + ".json", SIDECAR)
    outcomes = [*world.event(key), *world.event(key + ".json")]
    assert statuses(outcomes) == [Status.IGNORED, Status.IGNORED]
    assert world.api.calls == 0
    assert world.dlq.sent == []
    assert world.metrics.total("OutputEventsIgnored") == 2


def test_in_a_bucket_shared_with_inputs_an_input_is_processed_and_its_result_goes_under_the_prefix(
    world: World,
):
    world.configure(output_bucket=BUCKET, input_buckets={BUCKET}, output_prefix="backdrop/")
    world.upload("shop/a.jPg", JPEG_BYTES)
    world.upload("shop/a.jPg.json", SIDECAR)
    assert statuses(world.event("shop/a.jPg")) == [Status.PROCESSED]
    assert (BUCKET, "backdrop/shop/a.png") in world.store.outputs
    assert world.metrics.total("OutputEventsIgnored") == 0


def test_an_empty_image_is_an_invalid_image(world: World):
    world.upload("empty.jpg", b"")
    world.upload("empty.jpg.json", SIDECAR)
    world.event("empty.jpg")
    assert world.dlq.records[0]["error"]["class"] == "invalid_image"
    assert "is empty" in world.dlq.records[0]["error"]["message"]
    assert world.api.calls == 0


def test_an_image_s3_refuses_to_read_gives_one_record_whatever_the_number_of_events(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    from backdrop_fn.errors import InternalError

    world.upload("cold.jpg", JPEG_BYTES)
    world.upload("cold.jpg.json", SIDECAR)

    def archived(bucket: str, key: str, *, first_bytes: int):
        raise InternalError(f"S3 GetObject s3://{bucket}/{key} failed: InvalidObjectState")

    monkeypatch.setattr(world.store, "peek", archived)
    outcomes = [*world.event("cold.jpg"), *world.event("cold.jpg.json"), *world.event("cold.jpg")]
    assert [o.status for o in outcomes] == [Status.FAILED, Status.DUPLICATE, Status.DUPLICATE]
    ((record, error_class),) = world.dlq.sent
    assert (error_class, record["source"]["key"]) == ("internal", "cold.jpg")
    assert world.api.calls == 0
    # A redrive of that record is the user asking again: it is tried, and recorded once more.
    world.event("cold.jpg", replay_of="redrive-1")
    world.event("cold.jpg", replay_of="redrive-1")
    assert len(world.dlq.sent) == 2


def test_a_dlq_outage_on_a_failure_before_the_claim_is_tried_once_and_comes_back(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    from backdrop_fn.errors import InfrastructureUnavailable, InternalError

    world.upload("cold.jpg", JPEG_BYTES)

    def archived(bucket: str, key: str, *, first_bytes: int):
        raise InternalError(f"S3 GetObject s3://{bucket}/{key} failed: InvalidObjectState")

    monkeypatch.setattr(world.store, "peek", archived)
    attempts = []

    def dlq_down(body: str, *, error_class) -> None:
        attempts.append(error_class)
        raise InfrastructureUnavailable("could not write the DLQ record: EndpointConnectionError")

    monkeypatch.setattr(world.dlq, "send", dlq_down)
    with pytest.raises(InfrastructureUnavailable):
        world.event("cold.jpg")
    assert len(attempts) == 1


# -- the newest version wins ----------------------------------------------------------------------


def test_a_slow_call_for_an_older_sidecar_does_not_replace_the_newer_result(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", {"prompt": "v1", "seed": 111})

    def sidecar_v2_arrives_and_is_processed() -> None:
        world.upload("a.jpg.json", {"prompt": "v2", "seed": 222})
        assert statuses(world.event("a.jpg.json")) == [Status.PROCESSED]

    world.api.while_answering.append(sidecar_v2_arrives_and_is_processed)
    assert statuses(world.event("a.jpg")) == [Status.SUPERSEDED]  # v1's call finished last
    assert world.output("a.png")["metadata"]["seed"] == "222"
    assert world.api.calls == 2  # each version bought once
    assert world.metrics.total("ResultsSuperseded") == 1


def test_a_result_superseded_before_the_newer_one_is_written_gives_way_to_it(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", {"prompt": "v1", "seed": 111})
    world.api.while_answering.append(lambda: world.upload("a.jpg.json", {"prompt": "v2", "seed": 222}))
    assert statuses(world.event("a.jpg")) == [Status.SUPERSEDED]
    assert ("out-bucket", "a.png") not in world.store.outputs  # withdrawn: nothing older to restore
    assert statuses(world.event("a.jpg.json")) == [Status.PROCESSED]
    assert world.output("a.png")["metadata"]["seed"] == "222"


def test_a_newer_image_supersedes_a_result_of_the_older_one(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.api.while_answering.append(lambda: world.upload("a.jpg", noisy_png(8, 8)))
    assert statuses(world.event("a.jpg")) == [Status.SUPERSEDED]
    assert ("out-bucket", "a.png") not in world.store.outputs


def test_a_sidecar_that_appears_supersedes_a_default_prompt_result(world: World):
    world.configure(default_prompt="a plain studio")
    world.upload("a.jpg", JPEG_BYTES)
    world.api.while_answering.append(lambda: world.upload("a.jpg.json", SIDECAR))
    assert statuses(world.event("a.jpg")) == [Status.SUPERSEDED]


def test_an_unchanged_pair_keeps_its_result_and_a_deleted_sidecar_changes_nothing(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.api.while_answering.append(lambda: world.store.delete(BUCKET, "a.jpg.json"))
    assert statuses(world.event("a.jpg")) == [Status.PROCESSED]
    assert world.output("a.png")["metadata"]["seed"] == "1234"
    assert world.metrics.total("ResultsSuperseded") == 0
