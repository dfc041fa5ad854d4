"""The backfill's plan: each image judged by the function's rules, counted, and spooled if it is sent."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from backdrop.backfill.assess import Assessor, Outcome, StackSettings, Verdict
from backdrop.backfill.ledger import Ledger, PairVersion, Work
from backdrop.backfill.manifest import Row
from backdrop.backfill.plan import Plan, make_plan
from backdrop.backfill.send import Sender
from backdrop.backfill.walk import Found, Listed
from backdrop_fn.errors import InfrastructureUnavailable
from backdrop_fn.events import items_from_message
from backdrop_fn.output import output_metadata
from backdrop_fn.pairing import Pair
from backdrop_fn.sidecar import parse_sidecar
from tests.unit.function.fakes import PNG_BYTES, FakeStore

IN, OUT = "shop-in", "shop-out"


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    opened = Ledger(tmp_path / "ledger.sqlite", remember_seconds=3600)
    yield opened
    opened.close()


def judge(store: FakeStore, ledger: Ledger, **settings: Any) -> Assessor:
    return Assessor(store, StackSettings(IN, OUT, **settings), ledger, outputs_indexed=False)


def found(store: FakeStore, image: str, sidecar: str | None) -> Found:
    def listed(key: str) -> Listed:
        info = store.head(IN, key)
        assert info is not None
        return Listed(key, info.etag, info.size)

    return Found(listed(image), listed(sidecar) if sidecar else None)


def processed(
    store: FakeStore, image: str, sidecar: str | None, *, default_prompt: str | None = None
) -> None:
    """An output as the function writes it, with the metadata the function gives it."""
    info = store.head(IN, image)
    assert info is not None
    stored = store.read_small(IN, sidecar, limit=65536) if sidecar else None
    parsed = (
        parse_sidecar(stored.body)
        if stored
        else parse_sidecar(json.dumps({"prompt": default_prompt}).encode())
    )
    pair = Pair(info, b"", stored, None if stored else default_prompt)
    metadata = output_metadata(pair, parsed, seed=4242)
    store.outputs[(OUT, image.rsplit(".", 1)[0] + ".png")] = {
        "body": b"result",
        "content_type": "image/png",
        "metadata": metadata,
        "version_id": "v1",
    }


def test_a_pair_whose_output_records_the_same_versions_is_already_processed(store, ledger):
    store.put(IN, "shoe.jpg", PNG_BYTES)
    store.put(IN, "shoe.jpg.json", {"prompt": "p", "rendering_speed": "QUALITY"})
    processed(store, "shoe.jpg", "shoe.jpg.json")
    verdict = judge(store, ledger).listed(found(store, "shoe.jpg", "shoe.jpg.json"))
    assert (verdict.outcome, verdict.speed) == (Outcome.PROCESSED, "QUALITY")


def test_a_changed_sidecar_or_image_is_a_new_pair_to_send(store, ledger):
    store.put(IN, "shoe.jpg", PNG_BYTES)
    store.put(IN, "shoe.jpg.json", {"prompt": "p"})
    processed(store, "shoe.jpg", "shoe.jpg.json")
    store.put(IN, "shoe.jpg.json", {"prompt": "on marble"})
    assert judge(store, ledger).listed(found(store, "shoe.jpg", "shoe.jpg.json")).outcome is Outcome.TO_SEND
    store.put(IN, "shoe.jpg.json", {"prompt": "p"})
    store.put(IN, "shoe.jpg", PNG_BYTES + b"\0")
    assert judge(store, ledger).listed(found(store, "shoe.jpg", "shoe.jpg.json")).outcome is Outcome.TO_SEND


def test_an_output_of_another_image_with_the_same_stem_is_not_this_ones(store, ledger):
    for image in ("shoe.jpg", "shoe.webp"):
        store.put(IN, image, PNG_BYTES)
    store.put(IN, "shoe.json", {"prompt": "p"})
    processed(store, "shoe.jpg", "shoe.json")  # shoe.png, from shoe.jpg
    assert judge(store, ledger).listed(found(store, "shoe.webp", "shoe.json")).outcome is Outcome.TO_SEND


def test_a_pair_sent_earlier_is_skipped_while_the_queue_could_still_hold_it(store, ledger, tmp_path):
    store.put(IN, "shoe.jpg", PNG_BYTES)
    store.put(IN, "shoe.jpg.json", {"prompt": "p"})
    first = judge(store, ledger).listed(found(store, "shoe.jpg", "shoe.jpg.json"))
    assert first.work is not None
    ledger.record_sent([first.work])
    again = judge(store, ledger).listed(found(store, "shoe.jpg", "shoe.jpg.json"))
    assert (again.outcome, again.speed) == (Outcome.SENT_EARLIER, "DEFAULT")
    resent = Assessor(store, StackSettings(IN, OUT), ledger, outputs_indexed=False, resend=True)
    assert resent.listed(found(store, "shoe.jpg", "shoe.jpg.json")).outcome is Outcome.TO_SEND
    forgetful = Ledger(tmp_path / "ledger.sqlite", remember_seconds=0)  # the queue's retention has passed
    try:
        assert (
            judge(store, forgetful).listed(found(store, "shoe.jpg", "shoe.jpg.json")).outcome
            is Outcome.TO_SEND
        )
    finally:
        forgetful.close()


def test_an_invalid_sidecar_is_counted_with_the_functions_own_message(store, ledger):
    store.put(IN, "shoe.jpg", PNG_BYTES)
    store.put(IN, "shoe.json", {"prompt": "p", "sead": 4242})
    verdict = judge(store, ledger).listed(found(store, "shoe.jpg", "shoe.json"))
    assert verdict.outcome is Outcome.INVALID
    assert verdict.detail.startswith("shoe.json: sead: unknown field (did you mean 'seed'?)")
    assert verdict.work is None


def test_the_speed_is_the_sidecars_else_the_stacks_default(store, ledger):
    store.put(IN, "a.png", PNG_BYTES)
    store.put(IN, "a.png.json", {"prompt": "p"})
    store.put(IN, "b.png", PNG_BYTES)
    store.put(IN, "b.png.json", {"prompt": "p", "rendering_speed": "DEFAULT"})
    turbo = judge(store, ledger, default_speed="TURBO")
    assert turbo.listed(found(store, "a.png", "a.png.json")).speed == "TURBO"
    assert turbo.listed(found(store, "b.png", "b.png.json")).speed == "DEFAULT"


def test_an_image_alone_waits_unless_there_is_a_default_prompt(store, ledger):
    store.put(IN, "a.png", PNG_BYTES)
    assert judge(store, ledger).listed(found(store, "a.png", None)).outcome is Outcome.WAITING
    with_prompt = judge(store, ledger, default_prompt="a plain studio", default_speed="QUALITY")
    verdict = with_prompt.listed(found(store, "a.png", None))
    assert (verdict.outcome, verdict.speed) == (Outcome.TO_SEND, "QUALITY")
    processed(store, "a.png", None, default_prompt="a plain studio")
    assert with_prompt.listed(found(store, "a.png", None)).outcome is Outcome.PROCESSED
    other_prompt = judge(store, ledger, default_prompt="a beach")
    assert other_prompt.listed(found(store, "a.png", None)).outcome is Outcome.TO_SEND


def test_a_read_that_s3_fails_is_reported_not_raised(store, ledger, monkeypatch):
    store.put(IN, "a.png", PNG_BYTES)
    store.put(IN, "a.png.json", {"prompt": "p"})

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise InfrastructureUnavailable("S3 GetObject shop-in/a.png.json: AccessDenied")

    monkeypatch.setattr(store, "read_small", refuse)
    verdict = judge(store, ledger).listed(found(store, "a.png", "a.png.json"))
    assert (verdict.outcome, verdict.key) == (Outcome.UNREADABLE, "a.png")
    assert "AccessDenied" in verdict.detail


# -- manifest rows ----------------------------------------------------------------------------------


def row(line: int, key: str, **fields: Any) -> Row:
    return Row(line, key, fields=fields)


def test_a_manifest_row_writes_its_sidecar_where_the_image_has_none(store, ledger):
    store.put(IN, "shop/a.png", PNG_BYTES)
    verdict = judge(store, ledger).row(row(2, "shop/a.png", prompt="p", rendering_speed="TURBO"))
    assert verdict.outcome is Outcome.TO_SEND
    assert verdict.work is not None
    assert verdict.work.pair.sidecar_key == "shop/a.png.json"
    assert verdict.work.sidecar_body is not None
    assert parse_sidecar(verdict.work.sidecar_body).rendering_speed.value == "TURBO"


def test_a_manifest_row_that_says_what_the_buckets_sidecar_says_uses_it_as_it_is(store, ledger):
    store.put(IN, "shop/a.png", PNG_BYTES)
    store.put(IN, "shop/a.json", '{"seed": 4242, "prompt": "  p "}')  # other order and spacing
    verdict = judge(store, ledger).row(row(2, "shop/a.png", prompt="p", seed=4242))
    assert verdict.outcome is Outcome.TO_SEND
    assert verdict.work is not None
    assert (verdict.work.pair.sidecar_key, verdict.work.sidecar_body) == ("shop/a.json", None)


def test_a_manifest_row_never_overrides_a_sidecar_that_says_otherwise(store, ledger):
    store.put(IN, "shop/a.png", PNG_BYTES)
    store.put(IN, "shop/a.json", {"prompt": "p", "rendering_speed": "QUALITY"})
    verdict = judge(store, ledger).row(row(2, "shop/a.png", prompt="p"))
    assert verdict.outcome is Outcome.CONFLICT
    assert verdict.detail.startswith("shop/a.json is already there with other fields")


def test_manifest_rows_for_a_missing_image_or_bad_fields_are_not_sent(store, ledger):
    store.put(IN, "a.png", PNG_BYTES)
    assessor = judge(store, ledger)
    assert assessor.row(row(2, "gone.png", prompt="p")).outcome is Outcome.MISSING_IMAGE
    assert assessor.row(row(3, "a.png", prompt="p")).outcome is Outcome.TO_SEND
    bad = assessor.row(row(5, "b.png", prompt="p", seed=5))
    assert (bad.outcome, bad.detail) == (Outcome.INVALID, "line 5: seed: must be between 100 and 999999")
    unreadable = assessor.row(Row(6, None, problem="a row must be a JSON object"))
    assert (unreadable.outcome, unreadable.key) == (Outcome.INVALID, "line 6")


def test_a_manifest_row_the_function_may_not_read_or_would_ignore_is_not_sent(store, ledger):
    store.put(IN, "other/a.png", PNG_BYTES)
    scoped = judge(store, ledger, input_prefix="in/")
    outside = scoped.row(row(2, "other/a.png", prompt="p"))
    assert (outside.outcome, outside.detail) == (
        Outcome.INVALID,
        "line 2: outside InputPrefix 'in/', the only keys the function may read",
    )
    beside = Assessor(store, StackSettings(IN, IN, output_prefix="results/"), ledger, outputs_indexed=False)
    result = beside.row(row(3, "results/a.png", prompt="p"))
    assert result.outcome is Outcome.INVALID
    assert "under OutputPrefix 'results/'" in result.detail


# -- the plan ---------------------------------------------------------------------------------------


def to_send(key: str, speed: str) -> Verdict:
    return Verdict(
        Outcome.TO_SEND, key, speed, work=Work(PairVersion(key, "e", key + ".json", "s"), 1, speed)
    )


def test_the_plan_counts_by_speed_and_prices_what_is_to_send_with_the_functions_table():
    plan = Plan()
    for verdict in (
        to_send("a", "TURBO"),
        to_send("b", "QUALITY"),
        to_send("c", "QUALITY"),
        Verdict(Outcome.PROCESSED, "d", "TURBO"),
        Verdict(Outcome.INVALID, "e", detail="seed: …"),
        Verdict(Outcome.WAITING, "f"),
    ):
        plan.add(verdict)
    assert plan.to_send == 3
    assert plan.pairs == 5  # the waiting image is no pair
    assert plan.cost_usd() == pytest.approx(0.037 + 2 * 0.113)
    assert plan.cost_usd("TURBO") == pytest.approx(0.037)  # the processed one costs nothing
    assert [v.key for v in plan.examples[Outcome.INVALID]] == ["e"]


def test_the_plan_keeps_the_listings_order_and_spools_only_what_is_to_send(ledger):
    verdicts = {key: to_send(key, "DEFAULT") for key in "abcdefgh"}
    verdicts["c"] = Verdict(Outcome.PROCESSED, "c", "DEFAULT")
    plan = make_plan(
        list("abcdefgh"), verdicts.__getitem__, ledger, Plan(), workers=3, stop=threading.Event()
    )
    assert plan.complete
    assert [work.pair.image_key for work in ledger.planned(chunk=2)] == list("abdefgh")


def test_a_stopped_plan_is_marked_incomplete(ledger):
    stop = threading.Event()

    def judged(key: str) -> Verdict:
        if key == "c":
            stop.set()
        return to_send(key, "DEFAULT")

    plan = make_plan(list("abcdefgh"), judged, ledger, Plan(), workers=1, stop=stop)
    assert not plan.complete
    assert plan.to_send < 8


# -- sending ----------------------------------------------------------------------------------------


class FakeSqs:
    """Accepts every entry, but for the answers a test scripts: a list of {Id: (code, sender_fault)}."""

    def __init__(self, refusals: list[dict[str, tuple[str, bool]]] | None = None) -> None:
        self.refusals = refusals or []
        self.calls: list[list[dict[str, str]]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.calls.append(Entries)
        refused = self.refusals.pop(0) if self.refusals else {}
        return {
            "Successful": [{"Id": e["Id"]} for e in Entries if e["Id"] not in refused],
            "Failed": [
                {"Id": entry, "Code": code, "SenderFault": fault, "Message": "no"}
                for entry, (code, fault) in refused.items()
            ],
        }


def works(*keys: str) -> list[Work]:
    return [
        Work(PairVersion(key, f"etag-{n}", key + ".json", "s"), 100 + n, "TURBO")
        for n, key in enumerate(keys)
    ]


def test_a_message_is_an_s3_record_the_function_reads_back_as_the_same_image():
    sqs = FakeSqs()
    Sender(sqs, "queue", None, IN, "eu-west-1").send(works("shop/schuh ü+1 %20.jpg"))
    (item,) = items_from_message(sqs.calls[0][0]["MessageBody"], frozenset({IN}))
    assert (item.bucket, item.key, item.etag) == (IN, "shop/schuh ü+1 %20.jpg", "etag-0")
    assert item.event["s3"]["configurationId"] == "backdrop-backfill"


def test_entries_sqs_failed_on_its_side_are_tried_again_and_its_refusals_are_reported():
    sqs = FakeSqs([{"1": ("ServiceUnavailable", False), "2": ("InvalidMessageContents", True)}])
    naps: list[float] = []
    result = Sender(sqs, "queue", None, IN, "eu-west-1", sleep=naps.append).send(works("a", "b", "c"))
    assert [work.pair.image_key for work in result.sent] == ["a", "b"]
    assert [(work.pair.image_key, reason) for work, reason in result.failed] == [
        ("c", "InvalidMessageContents: no")
    ]
    assert [[entry["Id"] for entry in call] for call in sqs.calls] == [["0", "1", "2"], ["1"]]
    assert naps == [0.5]


def test_an_entry_sqs_keeps_failing_is_reported_after_the_last_attempt():
    sqs = FakeSqs([{"0": ("ServiceUnavailable", False)}] * 4)
    result = Sender(sqs, "queue", None, IN, "eu-west-1", sleep=lambda _: None).send(works("a"))
    assert result.sent == []
    assert [reason for _, reason in result.failed] == ["ServiceUnavailable: no"]
    assert len(sqs.calls) == 4


class FakeS3:
    """Conditional writes, as S3 does them: If-None-Match "*" fails where an object is."""

    def __init__(self, existing: set[str]) -> None:
        self.objects = {key: b"{}" for key in existing}

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str, IfNoneMatch: str) -> Any:
        if Key in self.objects:
            raise ClientError({"Error": {"Code": "PreconditionFailed"}}, "PutObject")
        self.objects[Key] = Body
        return {"ETag": '"written"'}


def test_manifest_sidecars_are_written_before_their_messages_and_never_over_another():
    s3 = FakeS3(existing={"b.png.json"})
    sqs = FakeSqs()
    batch = [
        Work(PairVersion(key, "e", key + ".json", None), 1, "TURBO", sidecar_body=b'{"prompt": "p"}')
        for key in ("a.png", "b.png")
    ]
    result = Sender(sqs, "queue", s3, IN, "eu-west-1").send(batch)
    assert [(work.pair.sidecar_key, work.pair.sidecar_etag) for work in result.sent] == [
        ("a.png.json", "written")
    ]
    assert s3.objects["b.png.json"] == b"{}"
    assert "appeared since the plan" in result.failed[0][1]
    assert len(sqs.calls[0]) == 1
