"""`backdrop run DIR` and `backdrop watch DIR` on a stack: the local one (the function in its
containers, the emulator as the API), reached with --local, or found by --stack NAME in moto's
CloudFormation, as on AWS."""

from __future__ import annotations

import io
import json
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from rich.console import Console

from backdrop import targets
from backdrop.cli import main
from backdrop.completion_events import CompletionEvent
from backdrop.drop.outcomes import Outcome, Pending, of_event
from backdrop.drop.stack_folder import StackFolder
from backdrop.drop.target import DropTarget
from backdrop.drop.watching import StackWatch
from backdrop.emulator import EmulatorSettings
from backdrop.local.sandbox import Sandbox, sandbox
from backdrop.local.stack import LOCAL_API_KEY, LOCAL_NAMES
from tests.integration.conftest import REGION, photo
from tests.integration.conftest import table_rows as rows
from tests.integration.tooling.test_backfill_cli import deploy

IN, OUT = LOCAL_NAMES["InputBucket"], LOCAL_NAMES["OutputBucket"]
PATIENCE = 60.0


def running_stack(aws: str, latency: float = 0.0) -> Any:
    settings = EmulatorSettings(api_keys={LOCAL_API_KEY}, latency_seconds=latency)
    return sandbox(parameters={"PairSettleSeconds": "0"}, emulator_settings=settings, moto_endpoint=aws)


@pytest.fixture
def box(aws: str) -> Iterator[Sandbox]:
    with running_stack(aws) as running:
        yield running


@pytest.fixture
def slow_box(aws: str) -> Iterator[Sandbox]:
    with running_stack(aws, latency=2.0) as running:
        yield running


def pair(folder: Path, name: str, fields: dict[str, Any] | None = None, sidecar: str | None = None) -> None:
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(photo("JPEG" if name.endswith(".jpg") else "PNG"))
    fields = {"prompt": "on a beach", "rendering_speed": "TURBO"} if fields is None else fields
    (folder / (sidecar or name + ".json")).write_text(json.dumps(fields))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    made = tmp_path / "drop"
    made.mkdir()
    return made


def run(capsys: pytest.CaptureFixture[str], aws: str, folder: Path, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["run", str(folder), "--local", "--endpoint-url", aws, *args])
    shown = capsys.readouterr()
    return code, shown.out + shown.err


def input_keys(box: Sandbox) -> list[str]:
    listed = box.stack.client("s3").list_objects_v2(Bucket=IN).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def billed(box: Sandbox) -> int:
    return len([request for request in box.emulator.requests if request.billed])


def subscriptions_left(box: Sandbox) -> tuple[list[str], list[str]]:
    """The run's own rules and queues still there: none, once a run has ended."""
    rules = box.stack.client("events").list_rules(NamePrefix="backdrop-drop-")["Rules"]
    queues = box.stack.client("sqs").list_queues(QueueNamePrefix="backdrop-drop-").get("QueueUrls", [])
    return [rule["Name"] for rule in rules], queues


def test_run_brings_every_result_and_failure_back_and_exits_1_when_one_failed(
    box: Sandbox, aws: str, folder: Path, capsys: pytest.CaptureFixture[str]
):
    pair(folder, "shop/red shoe.jpg", sidecar="shop/red shoe.json")  # the stem's sidecar
    pair(folder, "mug.png", {"prompt": "a cafe", "rendering_speed": "QUALITY"})
    pair(folder, "bad.png", {"prompt": "x", "seed": 3})
    (folder / "lonely.png").write_bytes(photo())  # no sidecar: waits, not sent

    code, shown = run(capsys, aws, folder)

    assert code == 1, shown
    out = folder / "out"
    assert (out / "shop" / "red shoe.png").exists()
    assert (out / "mug.png").exists()
    failure = json.loads((out / "failed" / "bad.png.error.json").read_text())
    assert failure["error"]["class"] == "invalid_sidecar"
    assert "Outcomes: completion events on bus 'default'" in shown
    assert rows(shown)["processed"][0] == "2"
    assert rows(shown)["failed"] == ["1", "invalid_sidecar 1"]
    assert rows(shown)["waiting for a sidecar"][0] == "1"
    flat = " ".join(shown.split())
    assert "✓ mug.png → out/mug.png (" in flat
    assert "$0.113)" in flat
    assert "✗ bad.png: invalid_sidecar — seed: must be between 100 and 999999" in flat
    assert "Estimated cost $0.150; wall time" in flat  # TURBO 0.037 + QUALITY 0.113
    assert "lonely.png" not in input_keys(box)
    assert billed(box) == 2
    assert subscriptions_left(box) == ([], [])


def test_run_waits_for_every_variant_and_brings_back_each_with_its_renditions(
    box: Sandbox, aws: str, folder: Path, capsys: pytest.CaptureFixture[str]
):
    scenes = {
        "prompt": "on a beach",
        "rendering_speed": "TURBO",
        "variants": [{}, {"prompt": "in the snow", "rendering_speed": "QUALITY"}],
        "renditions": [{"name": "thumb", "format": "webp", "width": 16}],
    }
    pair(folder, "boot.png", scenes)

    code, shown = run(capsys, aws, folder)

    assert code == 0, shown
    out = folder / "out"
    for name in ("boot.png", "boot.v2.png", "boot@thumb.webp", "boot.v2@thumb.webp"):
        assert (out / name).exists(), name
    assert rows(shown)["processed"][0] == "1"  # one pair, both its variants
    assert "Estimated cost $0.150; wall time" in " ".join(shown.split())  # TURBO 0.037 + QUALITY 0.113


def test_run_skips_pairs_already_in_out_with_same_etags(
    box: Sandbox, aws: str, folder: Path, capsys: pytest.CaptureFixture[str]
):
    pair(folder, "a.png")
    pair(folder, "b.png")
    assert run(capsys, aws, folder)[0] == 0
    uploaded = len(box.stack.client("s3").list_object_versions(Bucket=IN).get("Versions", []))

    code, shown = run(capsys, aws, folder)
    assert code == 0
    assert rows(shown)["skipped: done before"][0] == "2"
    assert rows(shown)["processed"][0] == "0"
    assert len(box.stack.client("s3").list_object_versions(Bucket=IN).get("Versions", [])) == uploaded

    (folder / "b.png.json").write_text(json.dumps({"prompt": "in a forest", "rendering_speed": "TURBO"}))
    code, shown = run(capsys, aws, folder)
    assert code == 0
    assert (rows(shown)["processed"][0], rows(shown)["skipped: done before"][0]) == ("1", "1")
    assert billed(box) == 3


def test_run_brings_back_what_the_stack_finished_without_sending_it_again(
    box: Sandbox, aws: str, folder: Path, capsys: pytest.CaptureFixture[str]
):
    pair(folder, "cup.png")
    s3 = box.stack.client("s3")
    for name in ("cup.png.json", "cup.png"):  # sent by a run that was stopped before its outcome
        s3.put_object(Bucket=IN, Key=name, Body=(folder / name).read_bytes())
    assert box.wait_until(lambda: "Contents" in s3.list_objects_v2(Bucket=OUT), timeout=PATIENCE)

    code, shown = run(capsys, aws, folder)

    assert code == 0, shown
    assert rows(shown)["answered by the stack already"][0] == "1"
    assert (folder / "out" / "cup.png").exists()
    assert billed(box) == 1
    assert "↑" not in shown  # nothing uploaded
    assert "Estimated cost $0.000" in shown  # paid for by the run that sent it


def test_run_asks_before_more_than_50_new_pairs_and_max_cost_refuses(
    box: Sandbox, aws: str, folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    for number in range(51):
        pair(folder, f"p{number:02d}.png")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    code, shown = run(capsys, aws, folder)
    assert code == 4
    assert "Send 51 pairs (estimated $1.887) to the local stack at" in " ".join(shown.split())

    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # a pipe: nobody to ask
    code, shown = run(capsys, aws, folder)
    assert code == 4
    assert "Pass --yes" in " ".join(shown.split())

    code, shown = run(capsys, aws, folder, "--yes", "--max-cost", "1.50")
    assert code == 3
    assert "Refused: the estimated cost $1.887 is over --max-cost $1.50" in " ".join(shown.split())
    assert input_keys(box) == []
    assert subscriptions_left(box) == ([], [])


def test_run_timeout_lists_the_unfinished_pairs_which_finish_on_the_stack(
    slow_box: Sandbox, aws: str, folder: Path, capsys: pytest.CaptureFixture[str]
):
    pair(folder, "slow.png")

    code, shown = run(capsys, aws, folder, "--timeout", "0.5")

    assert code == 5, shown
    assert rows(shown)["unfinished"][0] == "1"
    assert "Still on their way" in shown
    assert "  slow.png" in shown
    s3 = slow_box.stack.client("s3")
    assert slow_box.wait_until(lambda: "Contents" in s3.list_objects_v2(Bucket=OUT), timeout=PATIENCE)
    code, shown = run(capsys, aws, folder)  # brings it back, at no charge
    assert code == 0
    assert (folder / "out" / "slow.png").exists()
    assert billed(slow_box) == 1


def test_ctrl_c_in_run_stops_sending_prints_the_summary_and_loses_nothing(
    slow_box: Sandbox, aws: str, folder: Path, capsys: pytest.CaptureFixture[str]
):
    for name in ("a.png", "b.png", "c.png", "d.png"):
        pair(folder, name)
    puts = 0

    def ctrl_c_at_the_second_pair(**kwargs: Any) -> None:
        nonlocal puts
        puts += 1
        if puts == 4:  # the second pair's image, on its way
            signal.raise_signal(signal.SIGINT)

    session = boto3._get_default_session()  # the command's local clients come from it
    session.events.register("before-call.s3.PutObject", ctrl_c_at_the_second_pair, unique_id="ctrl-c")
    try:
        code, shown = run(capsys, aws, folder)
    finally:
        session.events.unregister("before-call.s3.PutObject", unique_id="ctrl-c")

    assert code == 130, shown
    assert rows(shown)["not sent"][0] == "2"
    assert rows(shown)["unfinished"][0] == "2"  # sent: they finish on the stack
    assert "Interrupted (Ctrl-C)." in shown
    assert input_keys(slow_box) == ["a.png", "a.png.json", "b.png", "b.png.json"]
    assert subscriptions_left(slow_box) == ([], [])
    s3 = slow_box.stack.client("s3")
    done = lambda: len(s3.list_objects_v2(Bucket=OUT).get("Contents", [])) == 2  # noqa: E731
    assert slow_box.wait_until(done, timeout=PATIENCE)

    code, shown = run(capsys, aws, folder)  # the rest, and the two that finished meanwhile
    assert code == 0, shown
    assert rows(shown)["answered by the stack already"][0] == "2"
    assert rows(shown)["processed"][0] == "4"
    assert billed(slow_box) == 4


def refuse_rules(session: Any) -> Callable[[], None]:
    """The caller may not create EventBridge rules (AccessDenied), as a narrow IAM policy has it."""

    def refuse(**kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutRule")

    session.events.register("before-call.events.PutRule", refuse, unique_id="no-rules")
    return lambda: session.events.unregister("before-call.events.PutRule", unique_id="no-rules")


def test_without_leave_to_subscribe_run_polls_the_output_bucket_and_leaves_the_dlq_as_it_was(
    box: Sandbox, aws: str, folder: Path, capsys: pytest.CaptureFixture[str]
):
    pair(folder, "ok.png")
    pair(folder, "bad.png", {"prompt": "x", "seed": 3})
    allow = refuse_rules(boto3._get_default_session())
    try:
        code, shown = run(capsys, aws, folder)
    finally:
        allow()
    assert code == 1, shown
    flat = " ".join(shown.split())
    assert "No completion events (no subscription to its events" in flat
    assert "polling instead" in flat
    assert "Outcomes: polling the output bucket" in flat
    assert (folder / "out" / "ok.png").exists()
    assert (folder / "out" / "failed" / "bad.png.error.json").exists()
    assert subscriptions_left(box) == ([], [])  # the queue made before the refusal is gone too
    sqs = box.stack.client("sqs")
    left = sqs.get_queue_attributes(
        QueueUrl=box.stack.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert left["Attributes"]["ApproximateNumberOfMessages"] == "1"  # read, not taken


def test_run_on_a_stack_by_name_touches_no_bucket_but_its_own(
    box: Sandbox,
    aws: str,
    folder: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    deploy(
        box.stack,  # a stack's work queue, which run does not need, and its DLQ
        "shop",
        {"EventBusName": "default", "InputPrefix": ""},
        outputs={"DeadLetterQueueUrl": box.stack.dlq_url},
    )
    s3 = box.stack.client("s3")
    for decoy in ("shop-private", "backdrop-in-local-archive"):  # the same names, elsewhere
        s3.create_bucket(Bucket=decoy)
        s3.put_object(Bucket=decoy, Key="drop/a.png", Body=b"not ours")
        s3.put_object(Bucket=decoy, Key="a.png", Body=b"not ours")
    pair(folder, "a.png")
    pair(folder, "bad.png", {"prompt": "x", "seed": 3})
    buckets: list[tuple[str, str]] = []
    sessions = targets.aws_session

    def recorded(args: Any) -> boto3.session.Session:
        session = sessions(args)
        session.events.register(
            "before-parameter-build.s3",
            lambda params, event_name, **_: buckets.append((event_name.split(".")[-1], params.get("Bucket"))),
        )
        return session

    monkeypatch.setattr(targets, "aws_session", recorded)
    where = ["--stack", "shop", "--endpoint-url", aws, "--region", REGION]

    capsys.readouterr()
    code = main(["run", str(folder), *where, "--prefix", "drop/"])
    shown = capsys.readouterr().out
    assert code == 1, shown
    assert (folder / "out" / "a.png").exists()  # laid out as the folder is, without --prefix
    assert (folder / "out" / "failed" / "bad.png.error.json").exists()
    assert {bucket for _, bucket in buckets} == {IN, OUT}
    assert {operation for operation, bucket in buckets if bucket == IN} == {"PutObject"}
    assert sorted(key for key in input_keys(box)) == [
        "drop/a.png",
        "drop/a.png.json",
        "drop/bad.png",
        "drop/bad.png.json",
    ]


# -- watch ------------------------------------------------------------------------------------------


def local_target(box: Sandbox) -> DropTarget:
    stack = box.stack
    return DropTarget(
        stack.client("s3"),
        stack.client("sqs"),
        stack.client("events"),
        "the local stack",
        stack.input_bucket,
        stack.output_bucket,
        stack.dlq_url,
    )


def after_a_step(watching: StackWatch, done: Callable[[], bool]) -> Callable[[], bool]:
    """``done``, asked after each step of the watch (for ``Sandbox.wait_until``)."""

    def check() -> bool:
        watching.step()
        return done()

    return check


def test_watch_on_a_stack_sends_settled_pairs_and_says_what_waits_and_what_is_a_free_duplicate(
    box: Sandbox, folder: Path, tmp_path: Path
):
    from backdrop.drop.outcomes import subscribe

    log = tmp_path / "console.txt"
    console = Console(file=open(log, "w"), width=300)  # noqa: SIM115
    outcomes, why_not = subscribe(local_target(box), "")
    assert why_not == ""
    try:
        drop = StackFolder(local_target(box), folder, folder / "out", console, outcomes)
        watching = StackWatch(drop)
        (folder / "shoe.png").write_bytes(photo())
        assert box.wait_until(
            after_a_step(watching, lambda: "waiting for its sidecar" in log.read_text()), timeout=PATIENCE
        )
        assert input_keys(box) == []  # a pair is sent whole
        (folder / "shoe.png.json").write_text(json.dumps({"prompt": "a beach", "rendering_speed": "TURBO"}))
        pair(folder, "bad.png", {"prompt": "x", "seed": 3})
        assert box.wait_until(
            after_a_step(watching, lambda: drop.counts["processed"] == 1 and drop.counts["failed"] == 1),
            timeout=PATIENCE,
        )
        (folder / "shoe.png").write_bytes(photo())  # saved again, unchanged
        assert box.wait_until(after_a_step(watching, lambda: drop.counts["skipped"] == 1), timeout=PATIENCE)
    finally:
        outcomes.close()
    console.file.close()
    said = log.read_text()
    assert "↑ shoe.png.json" in said
    assert "↑ shoe.png" in said
    assert "✓ shoe.png → out/shoe.png (" in said
    assert ", $0.037)" in said
    assert "✗ bad.png: invalid_sidecar — seed: must be between 100 and 999999" in said
    assert "shoe.png: duplicate, no charge (unchanged since its result in out/: not sent again)" in said
    assert (folder / "out" / "failed" / "bad.png.error.json").exists()
    assert billed(box) == 1
    assert subscriptions_left(box) == ([], [])


class NamedOutcomes:
    """Completion events as a stack with variants and renditions would publish them."""

    how = "given"

    def __init__(self, events: list[CompletionEvent]) -> None:
        self.events = events

    def take(self, pending: Any) -> list[Outcome]:
        taken, self.events = [of_event(event) for event in self.events], []
        return taken

    def close(self) -> None:
        pass


def test_every_object_an_event_names_is_brought_back_renditions_included(
    box: Sandbox, folder: Path, tmp_path: Path
):
    s3 = box.stack.client("s3")
    for key in ("shop/shoe-1.png", "shop/shoe-1@2000x2000.jpg", "shop/shoe-1@amazon.webp"):
        s3.put_object(Bucket=OUT, Key=key, Body=key.encode())
    detail = {
        "input": {"bucket": IN, "key": "shop/shoe-1.jpg", "etag": '"abc"'},
        "sidecar": {"key": "shop/shoe-1.jpg.json", "etag": "def"},
        "output": {"bucket": OUT, "key": "shop/shoe-1.png"},
        "renditions": [{"key": "shop/shoe-1@2000x2000.jpg"}, {"key": "shop/shoe-1@amazon.webp"}],
        "cost": {"estimated_usd": 0.075},
    }
    outcomes = NamedOutcomes([CompletionEvent("Backdrop Image Processed", detail)])
    console = Console(file=open(tmp_path / "console.txt", "w"), width=300)  # noqa: SIM115
    drop = StackFolder(local_target(box), folder, folder / "out", console, outcomes)
    drop.pending["shop/shoe-1.jpg"] = Pending("shop/shoe-1.jpg", "abc", "shop/shoe-1.jpg.json", "def")

    assert drop.learn() == 1

    for key in ("shop/shoe-1.png", "shop/shoe-1@2000x2000.jpg", "shop/shoe-1@amazon.webp"):
        assert (folder / "out" / key).read_bytes() == key.encode()
    assert drop.cost_usd == pytest.approx(0.075)


def test_run_with_the_buckets_given_and_no_event_bus_polls_and_brings_everything_back(
    box: Sandbox, aws: str, folder: Path, capsys: pytest.CaptureFixture[str]
):
    pair(folder, "a.png")
    pair(folder, "bad.png", {"prompt": "x", "seed": 3})
    where = [
        "--input-bucket",
        IN,
        "--output-bucket",
        OUT,
        "--dlq-url",
        box.stack.dlq_url,
        "--event-bus",
        "none",
    ]

    code = main(["run", str(folder), *where, "--endpoint-url", aws, "--region", REGION])

    shown = " ".join(capsys.readouterr().out.split())
    assert code == 1, shown
    assert "No completion events (the stack publishes no completion events): polling instead." in shown
    assert (folder / "out" / "a.png").exists()
    assert json.loads((folder / "out" / "failed" / "bad.png.error.json").read_text())["error"]["class"] == (
        "invalid_sidecar"
    )
    assert subscriptions_left(box) == ([], [])  # none was made
    assert main(["run", str(folder), "--input-bucket", IN, "--endpoint-url", aws, "--region", REGION]) == 2
    assert "go together" in " ".join(capsys.readouterr().err.split())
