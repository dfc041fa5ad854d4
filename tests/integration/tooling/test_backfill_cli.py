"""`backdrop backfill` against the local stack's resources on moto server, as an operator runs it."""

from __future__ import annotations

import io
import json
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from backdrop.cli import main
from backdrop.local.sandbox import sandbox
from backdrop.local.stack import LOCAL_NAMES, create_resources
from backdrop.local.template import load_spec
from backdrop_fn.output import output_metadata
from backdrop_fn.pairing import Pair
from backdrop_fn.ports import ObjectInfo, StoredObject
from backdrop_fn.sidecar import parse_sidecar
from tests.integration.conftest import REGION, photo
from tests.integration.conftest import table_rows as rows

IN, OUT = LOCAL_NAMES["InputBucket"], LOCAL_NAMES["OutputBucket"]


@dataclass
class Shop:
    """The local stack's resources, its input bucket filled before any notification could be sent."""

    endpoint: str
    s3: Any
    sqs: Any
    work_queue_url: str
    capsys: pytest.CaptureFixture[str]
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # service, operation, params

    def put(self, key: str, body: bytes | dict[str, Any] | str, bucket: str = IN) -> None:
        if isinstance(body, dict):
            body = json.dumps(body)
        self.s3.put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)

    def pair(self, image: str, sidecar: str, fields: dict[str, Any]) -> None:
        self.put(image, b"image bytes: backfill never reads them")
        self.put(sidecar, fields)

    def processed(self, image: str, sidecar: str) -> None:
        """An output as the function writes it: its key, and the metadata the function gives it."""
        head = self.s3.head_object(Bucket=IN, Key=image)
        info = ObjectInfo(IN, image, head["ETag"].strip('"'), head["ContentLength"])
        got = self.s3.get_object(Bucket=IN, Key=sidecar)
        stored = StoredObject(ObjectInfo(IN, sidecar, got["ETag"].strip('"'), 0), got["Body"].read())
        metadata = output_metadata(Pair(info, b"", stored), parse_sidecar(stored.body), seed=4242)
        self.s3.put_object(
            Bucket=OUT, Key=image.rsplit(".", 1)[0] + ".png", Body=b"result", Metadata=metadata
        )

    def backfill(self, *args: str) -> tuple[int, str]:
        self.capsys.readouterr()
        code = main(["backfill", "--local", "--endpoint-url", self.endpoint, *args])
        return code, self.capsys.readouterr().out

    def queued(self) -> list[str]:
        """The image keys of every message in the work queue (taken: hidden for the rest of the test)."""
        keys = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.work_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600
            ).get("Messages", [])
            if not batch:
                return keys
            keys += [json.loads(m["Body"])["Records"][0]["s3"]["object"]["key"] for m in batch]

    def sent_batches(self) -> list[int]:
        return [len(params["Entries"]) for service, op, params in self.calls if op == "SendMessageBatch"]


@pytest.fixture
def shop(
    aws: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Shop]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the ledger's default place
    local = create_resources(load_spec(parameters={"PairSettleSeconds": "0"}), aws)
    s3, sqs = local.client("s3"), local.client("sqs")
    # What is "already there" was uploaded before anything listened: no notification of its own.
    s3.put_bucket_notification_configuration(Bucket=IN, NotificationConfiguration={})
    sqs.purge_queue(QueueUrl=local.work_queue_url)  # S3's test event
    shop = Shop(aws, s3, sqs, local.work_queue_url, capsys)
    session = boto3._get_default_session()  # the command's clients come from it

    def record(event_name: str, params: dict[str, Any], **kwargs: Any) -> None:
        _, service, operation = event_name.split(".")
        shop.calls.append((service, operation, dict(params)))

    session.events.register("before-parameter-build", record, unique_id="backfill-test")
    yield shop
    session.events.unregister("before-parameter-build", unique_id="backfill-test")


def many(shop: Shop, count: int, prefix: str = "shop/") -> list[str]:
    images = [f"{prefix}{number:03d}.png" for number in range(count)]
    for image in images:
        shop.pair(image, image + ".json", {"prompt": "on marble", "rendering_speed": "TURBO"})
    return images


def test_the_plan_counts_pairs_by_speed_and_what_is_processed_waiting_or_invalid(shop: Shop):
    for name in ("t1", "t2", "t3", "p1"):
        shop.pair(f"{name}.png", f"{name}.png.json", {"prompt": "p", "rendering_speed": "TURBO"})
    for name in ("q1", "q2"):
        shop.pair(f"{name}.jpg", f"{name}.json", {"prompt": "p", "rendering_speed": "QUALITY"})
    shop.pair("d1.webp", "d1.webp.json", {"prompt": "p"})
    shop.processed("p1.png", "p1.png.json")
    shop.put("w1.png", b"waits for its sidecar")
    shop.pair("bad.png", "bad.png.json", {"prompt": "p", "seed": 5})
    shop.put("lonely.json", {"prompt": "p"})
    shop.put("readme.txt", "not an image")

    code, shown = shop.backfill("--dry-run")

    assert code == 0
    table = rows(shown)
    # pairs found, already processed, sent by an earlier run, to send, estimated cost
    assert table["TURBO ($0.037)"] == ["4", "1", "0", "3", "$0.111"]
    assert table["QUALITY ($0.113)"] == ["2", "0", "0", "2", "$0.226"]
    assert table["DEFAULT ($0.075)"] == ["1", "0", "0", "1", "$0.075"]
    assert table["invalid sidecar"][:1] == ["1"]
    assert table["all"] == ["8", "1", "0", "6", "$0.412"]
    for line in (
        "objects listed             19",
        "waiting for a sidecar       1",
        "sidecars without an image   1",
    ):
        assert " ".join(line.split()) in " ".join(shown.split())
    assert "bad.png: bad.png.json: seed: must be between 100 and 999999" in shown
    assert "Dry run: nothing was sent." in shown


def test_a_dry_run_sends_nothing_and_writes_no_sidecar(shop: Shop, tmp_path: Path):
    many(shop, 3)
    shop.put("shop/new.png", b"image")
    manifest = tmp_path / "m.csv"
    manifest.write_text("key,prompt\nshop/new.png,on marble\n")

    assert shop.backfill("--dry-run")[0] == 0
    assert shop.backfill("--dry-run", "--manifest", str(manifest))[0] == 0

    assert shop.queued() == []
    assert shop.sent_batches() == []
    assert not [params for _, op, params in shop.calls if op == "PutObject"]


def test_more_than_50_pairs_are_sent_only_once_confirmed(shop: Shop, monkeypatch: pytest.MonkeyPatch):
    many(shop, 51)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    code, shown = shop.backfill()
    assert (code, shop.queued()) == (4, [])
    assert "Send 51 pairs (estimated $1.887) to the work queue?" in shown

    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # a pipe: nobody to ask
    code, shown = shop.backfill()
    assert (code, shop.queued()) == (4, [])
    assert "Pass --yes" in " ".join(shown.split())

    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    assert shop.backfill()[0] == 0
    assert len(shop.queued()) == 51


def test_yes_sends_without_asking_and_50_pairs_need_no_question(shop: Shop, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # would refuse, were it asked
    many(shop, 50, prefix="fifty/")
    assert shop.backfill("--prefix", "fifty/")[0] == 0
    many(shop, 60, prefix="sixty/")
    assert shop.backfill("--prefix", "sixty/", "--yes")[0] == 0
    assert len(shop.queued()) == 110


def test_max_cost_refuses_an_estimate_above_it_and_sends_nothing(shop: Shop):
    many(shop, 30)  # 30 × $0.037 = $1.11
    code, shown = shop.backfill("--yes", "--max-cost", "1.00")
    assert code == 3
    assert "Refused: the estimated cost $1.110 is over --max-cost $1.00" in " ".join(shown.split())
    assert shop.queued() == []
    assert shop.backfill("--yes", "--max-cost", "1.11")[0] == 0
    assert len(shop.queued()) == 30


def test_pairs_go_to_the_work_queue_ten_to_a_batch_as_s3_records(shop: Shop):
    images = many(shop, 33)
    code, shown = shop.backfill("--yes")
    assert code == 0
    assert shop.sent_batches() == [10, 10, 10, 3]
    assert sorted(shop.queued()) == images  # URL-encoded as S3 does: these keys need none
    assert "sent to the work queue" in shown


def test_after_an_interruption_a_run_again_sends_only_the_rest(shop: Shop):
    images = many(shop, 57)
    sent_batches = 0

    def interrupt_during_the_third_batch(**kwargs: Any) -> None:
        nonlocal sent_batches
        sent_batches += 1
        if sent_batches == 3:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C: the batch on its way is finished first

    session = boto3._get_default_session()
    session.events.register(
        "before-call.sqs.SendMessageBatch", interrupt_during_the_third_batch, unique_id="int"
    )
    try:
        code, shown = shop.backfill("--yes")
    finally:
        session.events.unregister("before-call.sqs.SendMessageBatch", unique_id="int")
    assert code == 130
    assert rows(shown)["sent to the work queue"][0] == "30"
    assert rows(shown)["not sent yet"][0] == "27"
    first = shop.queued()
    assert len(first) == 30

    code, shown = shop.backfill("--yes")
    assert code == 0
    assert rows(shown)["all"][:4] == ["57", "0", "30", "27"]  # found, processed, sent earlier, to send
    assert sorted(first + shop.queued()) == images  # each once


def test_a_manifest_writes_missing_sidecars_beside_their_images_and_sends_them(shop: Shop, tmp_path: Path):
    shop.put("shop/a.png", b"image")
    shop.put("shop/b.png", b"image")
    shop.pair("shop/c.png", "shop/c.json", {"prompt": "already said", "rendering_speed": "TURBO"})
    shop.pair("shop/d.png", "shop/d.png.json", {"prompt": "the shop's own"})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "\n".join(
            json.dumps(row)
            for row in (
                {"key": "shop/a.png", "prompt": "on marble", "metadata": {"sku": "A-1"}},
                {"key": "shop/b.png", "prompt": "on sand", "rendering_speed": "QUALITY"},
                {"key": "shop/c.png", "prompt": "already said", "rendering_speed": "TURBO"},
                {"key": "shop/d.png", "prompt": "something else"},
                {"key": "shop/gone.png", "prompt": "p"},
                {"key": "shop/e.png", "prompt": "p", "sead": 4242},
                {"key": "shop/a.png", "prompt": "on marble, again"},
            )
        )
    )
    code, shown = shop.backfill("--yes", "--manifest", str(manifest))
    assert code == 0
    assert rows(shown)["all"][:4] == ["6", "0", "0", "3"]  # the repeated row is an invalid pair
    assert sorted(shop.queued()) == ["shop/a.png", "shop/b.png", "shop/c.png"]
    written = json.loads(shop.s3.get_object(Bucket=IN, Key="shop/a.png.json")["Body"].read())
    assert written == {"prompt": "on marble", "metadata": {"sku": "A-1"}}
    kept = json.loads(shop.s3.get_object(Bucket=IN, Key="shop/d.png.json")["Body"].read())
    assert kept == {"prompt": "the shop's own"}
    flat = " ".join(shown.split())
    assert "shop/d.png: shop/d.png.json is already there with other fields" in flat
    assert "image not in the bucket" in flat
    assert "sead: unknown field" in flat
    assert "shop/a.png: line 7: repeats line 1" in flat

    code, shown = shop.backfill("--yes", "--manifest", str(manifest))
    assert rows(shown)["all"][:4] == ["6", "0", "3", "0"]  # the sidecars written are the pairs sent


def test_a_manifest_with_a_column_that_is_no_field_is_refused_before_anything(shop: Shop, tmp_path: Path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("key,prompt,sead\na.png,p,4242\n")
    assert shop.backfill("--manifest", str(manifest))[0] == 2
    assert not [op for service, op, _ in shop.calls if service == "s3" and op != "HeadBucket"]


def test_only_the_named_buckets_are_read_and_only_sidecars_are_written(shop: Shop, tmp_path: Path):
    for decoy in ("backdrop-in-local-archive", "shop-private"):
        shop.s3.create_bucket(Bucket=decoy)
        shop.pair("shop/x.png", "shop/x.png.json", {"prompt": "p"})
        shop.put("shop/x.png", b"image", bucket=decoy)
        shop.put("shop/x.png.json", {"prompt": "p"}, bucket=decoy)
    shop.put("shop/y.png", b"image")
    manifest = tmp_path / "m.csv"
    manifest.write_text("key,prompt\nshop/y.png,p\n")

    assert shop.backfill("--yes", "--prefix", "shop/")[0] == 0
    assert shop.backfill("--yes", "--manifest", str(manifest))[0] == 0

    s3_calls = [(op, params) for service, op, params in shop.calls if service == "s3"]
    assert {params["Bucket"] for _, params in s3_calls} == {IN, OUT}
    assert {op for op, params in s3_calls if params["Bucket"] == OUT} == {"ListObjectsV2"}
    writes = [
        (op, params["Key"])
        for op, params in s3_calls
        if op not in ("ListObjectsV2", "HeadObject", "GetObject", "HeadBucket")
    ]
    assert writes == [("PutObject", "shop/y.png.json")]


STACK_TEMPLATE = {
    "Resources": {"Nothing": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
    "Outputs": {
        "InputBucketName": {"Value": IN},
        "OutputBucketName": {"Value": OUT},
        "WorkQueueUrl": {"Value": "WORK_QUEUE_URL"},
    },
}


def deploy(
    shop: Shop,
    name: str,
    parameters: dict[str, str],
    *,
    input_bucket: str = IN,
    output_bucket: str = OUT,
    outputs: dict[str, str] | None = None,
) -> None:
    """A stack in moto's CloudFormation with a Backdrop stack's outputs (and ``outputs``) and these
    parameters."""
    template = json.loads(json.dumps(STACK_TEMPLATE).replace("WORK_QUEUE_URL", shop.work_queue_url))
    template["Outputs"]["InputBucketName"]["Value"] = input_bucket
    template["Outputs"]["OutputBucketName"]["Value"] = output_bucket
    template["Outputs"].update({output: {"Value": value} for output, value in (outputs or {}).items()})
    template["Parameters"] = {parameter: {"Type": "String"} for parameter in parameters}
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
    )


def backfill_stack(shop: Shop, *args: str, stack: str = "shop") -> tuple[int, str]:
    """The command against a deployed stack, by its name: its exit code and all it printed."""
    code = main(["backfill", "--stack", stack, "--endpoint-url", shop.endpoint, "--region", REGION, *args])
    shown = shop.capsys.readouterr()
    return code, shown.out + shown.err


def test_a_deployed_stack_is_found_by_name_with_its_output_prefix_and_default_speed(shop: Shop):
    deploy(
        shop,
        "shop",
        {"OutputPrefix": "processed/", "DefaultPrompt": "  ", "DefaultRenderingSpeed": "quality"},
    )
    shop.pair("a.png", "a.png.json", {"prompt": "p"})
    shop.pair("b.png", "b.png.json", {"prompt": "p", "rendering_speed": "QUALITY"})
    shop.put("c.png", b"no sidecar, and a blank DefaultPrompt is none")
    shop.processed("b.png", "b.png.json")
    head = shop.s3.head_object(Bucket=OUT, Key="b.png")  # where OutputPrefix puts b's output
    shop.s3.copy_object(Bucket=OUT, Key="processed/b.png", CopySource={"Bucket": OUT, "Key": "b.png"})
    shop.s3.delete_object(Bucket=OUT, Key="b.png")
    assert head["Metadata"]["source-key"] == "b.png"

    code, shown = backfill_stack(shop, "--yes")
    assert code == 0
    assert rows(shown)["QUALITY ($0.113)"] == ["2", "1", "0", "1", "$0.113"]  # a.png at the stack's default
    assert shop.queued() == ["a.png"]


def existing_bucket(shop: Shop, parameters: dict[str, str]) -> None:
    """A shop's own bucket as the stack's input and output (ExistingInputBucket, OutputToInputBucket)."""
    shop.s3.create_bucket(Bucket="shop-assets")
    deploy(shop, "shop", parameters, input_bucket="shop-assets", output_bucket="shop-assets")


def test_in_an_existing_bucket_only_keys_under_input_prefix_are_listed(shop: Shop):
    existing_bucket(shop, {"InputPrefix": "backdrop/incoming/", "OutputPrefix": "backdrop/results/"})
    for key in ("backdrop/incoming/a.png", "backdrop/incoming/b.png", "catalogue/c.png"):
        shop.put(key, b"image", bucket="shop-assets")
        shop.put(key + ".json", {"prompt": "p", "rendering_speed": "TURBO"}, bucket="shop-assets")

    code, shown = backfill_stack(shop, "--yes")

    assert code == 0
    assert rows(shown)["all"][:4] == ["2", "0", "0", "2"]  # catalogue/c.png is no input of this stack
    assert sorted(shop.queued()) == ["backdrop/incoming/a.png", "backdrop/incoming/b.png"]
    code, shown = backfill_stack(shop, "--prefix", "catalogue/")
    assert code == 2
    assert "outside the stack's InputPrefix 'backdrop/incoming/'" in shown


def test_results_kept_beside_the_inputs_are_never_taken_for_inputs(shop: Shop):
    existing_bucket(shop, {"OutputPrefix": "backdrop/results/"})
    shop.put("shop/a.png", b"image", bucket="shop-assets")
    shop.put("shop/a.png.json", {"prompt": "p"}, bucket="shop-assets")
    shop.put("backdrop/results/shop/old.png", b"a result, no sidecar", bucket="shop-assets")

    code, shown = backfill_stack(shop, "--yes")

    assert code == 0
    assert rows(shown)["all"][:4] == ["1", "0", "0", "1"]
    assert "results under OutputPrefix 1 ignored: never inputs" in " ".join(shown.split())
    assert "waiting for a sidecar 0" in " ".join(shown.split())
    assert shop.queued() == ["shop/a.png"]


def test_a_bucket_that_cannot_be_listed_stops_the_plan_and_nothing_is_sent(shop: Shop):
    deploy(shop, "broken", {}, output_bucket="no-such-output-bucket")
    many(shop, 3)
    code, shown = backfill_stack(shop, "--yes", stack="broken")
    assert code == 1
    assert "Planning stopped: An error occurred (NoSuchBucket)" in " ".join(shown.split())
    assert shop.queued() == []


def test_without_a_local_stack_it_says_how_to_start_one(capsys: pytest.CaptureFixture[str]):
    assert main(["backfill", "--local", "--endpoint-url", "http://127.0.0.1:9"]) == 2
    assert "backdrop watch" in capsys.readouterr().err


def test_backfilled_pairs_are_processed_by_the_function_and_a_run_again_finds_them_done(
    aws: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    with sandbox(parameters={"PairSettleSeconds": "0"}, moto_endpoint=aws) as box:
        s3 = box.stack.client("s3")
        s3.put_bucket_notification_configuration(Bucket=IN, NotificationConfiguration={})
        for name, speed in (("shop/a b.jpg", "TURBO"), ("shop/c.png", "QUALITY"), ("shop/ü.webp", "DEFAULT")):
            s3.put_object(
                Bucket=IN,
                Key=name,
                Body=photo("JPEG" if name.endswith("jpg") else "PNG" if name.endswith("png") else "WEBP"),
            )
            s3.put_object(
                Bucket=IN,
                Key=name + ".json",
                Body=json.dumps({"prompt": "on marble", "rendering_speed": speed}),
            )
        s3.put_object(Bucket=IN, Key="shop/bad.png", Body=photo())
        s3.put_object(Bucket=IN, Key="shop/bad.png.json", Body=json.dumps({"prompt": "p", "sead": 1}))
        where = ["backfill", "--local", "--endpoint-url", aws, "--ledger", str(tmp_path / "ledger.sqlite")]

        assert main([*where, "--yes"]) == 0

        def outputs() -> list[str]:
            return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=OUT).get("Contents", []))

        assert box.wait_until(lambda: outputs() == ["shop/a b.png", "shop/c.png", "shop/ü.png"], timeout=60)
        assert len([request for request in box.emulator.requests if request.billed]) == 3
        capsys.readouterr()
        assert main([*where, "--yes", "--resend"]) == 0  # even ignoring the ledger: the outputs say done
        shown = capsys.readouterr().out
    assert rows(shown)["all"][:4] == ["4", "3", "0", "0"]
    assert "Nothing to send." in shown
    assert len([request for request in box.emulator.requests if request.billed]) == 3
