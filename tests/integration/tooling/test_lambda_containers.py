"""The local event source mapping runs each invocation in a container: a process of its own.

The function here is tests/integration/tooling/container_probe/probe.py, imported by each
container from that directory as its CodeUri; it writes what it saw to $PROBE_OUT.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backdrop.console import function_output_to
from backdrop.local.containers import Containers, FunctionCode, TmpfsUnavailable
from backdrop.local.invocation import KILLED, ContainerInfo, Outcome
from backdrop.local.poller import EventSourceMapping
from backdrop.local.sandbox import sandbox
from tests.integration.conftest import photo
from tests.integration.tooling.test_local_stack import depth, outputs, wait

PROBE = FunctionCode(Path(__file__).parent / "container_probe", "probe.handler")
MIB = 1024 * 1024


@pytest.fixture
def probe_out(tmp_path: Path) -> Path:
    out = tmp_path / "probe"
    out.mkdir()
    return out


def run_containers(queues, out: Path, *, concurrency=1, timeout=10.0, batch_size=1) -> EventSourceMapping:
    sqs, url, arn, _ = queues
    function = Containers(PROBE, {"PROBE_OUT": str(out)}, limit=concurrency)
    return EventSourceMapping(
        sqs,
        url,
        arn,
        function,
        batch_size=batch_size,
        maximum_concurrency=concurrency,
        function_timeout=timeout,
    ).start()


def seen(out: Path, body: str) -> list[dict]:
    """What the probe recorded for ``body``, in the order of its invocations in each container."""
    prefix = body.partition(":")[0]
    records = [json.loads(path.read_text()) for path in out.glob(f"{prefix}-*.json")]
    return sorted((r for r in records if r["body"] == body), key=lambda r: (r["receive_count"], r["pid"]))


def event(*bodies: str) -> dict[str, Any]:
    """An SQS event with just what the probe reads, for invoking containers without a queue."""
    return {"Records": [{"body": body, "attributes": {"ApproximateReceiveCount": "1"}} for body in bodies]}


def tmpfs_size(container: ContainerInfo) -> int | None:
    """The size of the tmpfs at the container's TMPDIR, as its own mount namespace has it (what
    this process sees there is the directory below it); None if none is mounted there."""
    for line in Path(f"/proc/{container.pid}/mountinfo").read_text().splitlines():
        mount, _, filesystem = line.partition(" - ")
        kind, _, options = filesystem.split(" ")[:3]
        if mount.split(" ")[4] == str(container.tmpdir) and kind == "tmpfs":
            (size,) = [option for option in options.split(",") if option.startswith("size=")]
            return int(size.removeprefix("size=").removesuffix("k")) * 1024
    return None


def is_our_child(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)  # a child still running (it is not reaped here)
    except ChildProcessError:
        return False  # no child of ours by that pid: it has ended and was reaped


@pytest.fixture
def stopped() -> Iterator[list[EventSourceMapping]]:
    """Mappings to stop after the test, whatever it asserted."""
    mappings: list[EventSourceMapping] = []
    yield mappings
    for mapping in mappings:
        mapping.stop()


def test_concurrent_invocations_run_in_different_processes_each_with_its_own_tmpdir(
    queues, probe_out: Path, stopped
):
    sqs, url, _, _ = queues
    for _ in range(2):
        sqs.send_message(QueueUrl=url, MessageBody="hold:2")  # each waits until both have started
    mapping = run_containers(queues, probe_out, concurrency=2)
    stopped.append(mapping)
    assert wait(lambda: depth(sqs, url) == 0)
    first, second = seen(probe_out, "hold:2")
    assert first["pid"] != second["pid"]
    assert os.getpid() not in (first["pid"], second["pid"])
    assert first["tmpdir"] != second["tmpdir"]
    for record in (first, second):
        assert record["tmpdir"] == record["TMPDIR"]  # tempfile.gettempdir() follows TMPDIR
        assert record["tmpdir"] != tempfile.gettempdir()
        # No tmp_bytes: the disk this process's temp dirs are on, with no limit of its own.
        assert record["tmp_total"] == shutil.disk_usage(tempfile.gettempdir()).total
    assert mapping.stats.cold_starts == 2


def test_a_warm_container_is_reused_and_keeps_its_module_state(queues, probe_out: Path, stopped):
    sqs, url, _, _ = queues
    mapping = run_containers(queues, probe_out, timeout=30)
    stopped.append(mapping)
    for body in ("first", "second"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
        assert wait(lambda: depth(sqs, url) == 0)
    (first,), (second,) = seen(probe_out, "first"), seen(probe_out, "second")
    assert first["pid"] == second["pid"]
    assert (first["invocations"], second["invocations"]) == (1, 2)
    assert 0 < second["remaining_ms"] <= 30_000  # the deadline holds inside the container
    assert first["request_id"] != second["request_id"]
    assert mapping.stats.cold_starts == 1
    ((container),) = mapping.containers()
    assert (container.pid, container.busy, container.invocations) == (first["pid"], False, 2)
    assert container.request_id is None  # idle


def test_the_container_gets_the_function_environment_and_nothing_of_the_parents(
    queues, probe_out: Path, stopped, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PROBE_PARENT_ONLY", "leaked")
    sqs, url, _, _ = queues
    sqs.send_message(QueueUrl=url, MessageBody="env")
    mapping = run_containers(queues, probe_out)
    stopped.append(mapping)
    assert wait(lambda: depth(sqs, url) == 0)
    (record,) = seen(probe_out, "env")  # PROBE_OUT itself came with the function's environment
    assert record["parent_only"] is None


def test_a_container_killed_mid_call_leaves_its_batch_for_a_new_container(queues, probe_out: Path, stopped):
    sqs, url, _, _ = queues
    sqs.send_message(QueueUrl=url, MessageBody="block-once")
    mapping = run_containers(queues, probe_out)
    stopped.append(mapping)
    assert wait(lambda: len(seen(probe_out, "block-once")) == 1)  # it is in the call now
    killed = mapping.kill_one_busy()
    assert killed is not None
    (blocked,) = seen(probe_out, "block-once")
    # The invocation cut short is the one whose handler was blocked: its context's request id.
    assert (killed.pid, killed.busy, killed.request_id) == (blocked["pid"], True, blocked["request_id"])
    assert killed.event is not None
    assert [record["body"] for record in killed.event["Records"]] == ["block-once"]  # the batch it ran
    assert wait(lambda: depth(sqs, url) == 0)  # received again, after the visibility timeout
    first, second = seen(probe_out, "block-once")
    assert (first["receive_count"], second["receive_count"]) == (1, 2)
    assert second["request_id"] != killed.request_id  # the retry is an invocation of its own
    assert second["pid"] != killed.pid
    assert not is_our_child(killed.pid)
    assert mapping.stats.kills == 1
    assert mapping.stats.cold_starts == 2
    assert mapping.stats.deleted == 1  # by the second invocation only
    assert mapping.kill_one_busy() is None


def test_a_container_given_tmp_bytes_has_a_tmp_of_that_size_and_cannot_write_past_it(probe_out: Path):
    function = Containers(PROBE, {"PROBE_OUT": str(probe_out)}, limit=1, tmp_bytes=16 * MIB)
    try:
        outcome = function.invoke(event("fill"), timeout=30)
        (container,) = function.containers()
        outside = list(container.tmpdir.iterdir())
        inside = Path(f"/proc/{container.pid}/root") / container.tmpdir.relative_to("/") / "fill"
        filled_inside = inside.stat().st_size
        mounted = tmpfs_size(container)
    finally:
        function.close()
    assert outcome.succeeded, outcome
    (record,) = seen(probe_out, "fill")
    (filled,) = [json.loads(path.read_text()) for path in probe_out.glob("filled-*.json")]
    assert record["pid"] == container.pid  # the process started is the runtime, not a wrapper
    assert record["tmpdir"] == str(container.tmpdir)
    assert record["tmp_total"] == mounted == 16 * MIB
    assert filled["error"] == "ENOSPC"
    assert 15 * MIB < filled["written"] <= 16 * MIB
    # What it wrote is in its own mount: from here its TMPDIR is the empty directory beneath.
    assert filled_inside == filled["written"]
    assert outside == []
    assert not is_our_child(container.pid)
    assert not container.tmpdir.exists()


def test_a_container_with_a_tmpfs_is_killed_whole_mid_call(probe_out: Path):
    function = Containers(PROBE, {"PROBE_OUT": str(probe_out)}, limit=1, tmp_bytes=16 * MIB)
    outcomes: list[Outcome] = []
    call = threading.Thread(target=lambda: outcomes.append(function.invoke(event("sleep"), timeout=60)))
    call.start()
    try:
        assert wait(lambda: len(seen(probe_out, "sleep")) == 1)
        killed = function.kill_one_busy()
        call.join(timeout=10)
    finally:
        function.close()
    (record,) = seen(probe_out, "sleep")
    assert killed is not None
    assert (killed.pid, killed.request_id) == (record["pid"], record["request_id"])
    assert outcomes == [Outcome(stopped=KILLED, cold_start=True)]
    assert not is_our_child(killed.pid)
    assert not killed.tmpdir.exists()


def refuse_mounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refusing = tmp_path / "bin"
    refusing.mkdir()
    (refusing / "mount").write_text("#!/bin/sh\necho 'mount: refused by the test' >&2\nexit 32\n")
    (refusing / "mount").chmod(0o755)
    monkeypatch.setenv("PATH", f"{refusing}{os.pathsep}{os.environ['PATH']}")  # the containers' PATH


def test_a_machine_that_cannot_mount_a_tmpfs_is_told_before_any_container_starts(
    probe_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    refuse_mounts(tmp_path, monkeypatch)
    with pytest.raises(TmpfsUnavailable, match=r"could not be mounted.*refused by the test"):
        Containers(PROBE, {"PROBE_OUT": str(probe_out)}, limit=1, tmp_bytes=16 * MIB)


def test_a_tmpfs_that_cannot_be_mounted_fails_the_containers_start(
    probe_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    function = Containers(PROBE, {"PROBE_OUT": str(probe_out)}, limit=1, tmp_bytes=16 * MIB)
    refuse_mounts(tmp_path, monkeypatch)  # after the probe: a mount that fails for one container
    try:
        outcome = function.invoke(event("env"), timeout=10)
        containers = function.containers()
    finally:
        function.close()
    assert outcome.cold_start
    assert outcome.error is not None
    assert "/tmp, a tmpfs of 16777216 bytes" in outcome.error
    assert "could not be mounted" in outcome.error
    assert seen(probe_out, "env") == []  # the handler never ran, on an unlimited /tmp or any other
    assert containers == []


def test_a_size_limited_tmp_is_refused_up_front_without_unshare_or_a_positive_size(
    probe_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    environment = {"PROBE_OUT": str(probe_out)}
    with pytest.raises(ValueError, match="positive size"):
        Containers(PROBE, environment, limit=1, tmp_bytes=0)  # tmpfs would take 0 for no limit
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there, unshare least of all
    with pytest.raises(TmpfsUnavailable, match="unshare"):
        Containers(PROBE, environment, limit=1, tmp_bytes=16 * MIB)
    Containers(PROBE, environment, limit=1).close()  # without tmp_bytes, unshare is not needed


def test_an_invocation_past_its_timeout_is_killed_and_deletes_nothing(queues, probe_out: Path, stopped):
    sqs, url, _, dlq_url = queues
    sqs.send_message(QueueUrl=url, MessageBody="sleep")
    mapping = run_containers(queues, probe_out, timeout=1.0)
    stopped.append(mapping)
    assert wait(lambda: depth(sqs, dlq_url) == 1, timeout=60)  # three receives, then the DLQ
    attempts = seen(probe_out, "sleep")
    assert [a["receive_count"] for a in attempts] == [1, 2, 3]
    assert len({a["pid"] for a in attempts}) == 3  # each needed a new container: a cold start
    assert not any(is_our_child(a["pid"]) for a in attempts)
    assert mapping.stats.timeouts == 3
    assert mapping.stats.cold_starts == 3
    assert mapping.stats.deleted == 0


def test_a_failing_invocation_deletes_nothing_and_its_container_stays_warm(queues, probe_out: Path, stopped):
    sqs, url, _, dlq_url = queues
    sqs.send_message(QueueUrl=url, MessageBody="crash")
    mapping = run_containers(queues, probe_out)
    stopped.append(mapping)
    assert wait(lambda: depth(sqs, dlq_url) == 1)
    assert len({record["pid"] for record in seen(probe_out, "crash")}) == 1
    assert mapping.stats.invocation_errors == 3
    assert mapping.stats.cold_starts == 1
    assert mapping.stats.deleted == 0


def test_a_handler_that_cannot_be_imported_is_an_invocation_error(queues, probe_out: Path, stopped):
    sqs, url, arn, dlq_url = queues
    sqs.send_message(QueueUrl=url, MessageBody="anything")
    missing = FunctionCode(PROBE.code_uri, "no_such_module.handler")
    mapping = EventSourceMapping(
        sqs,
        url,
        arn,
        Containers(missing, {"PROBE_OUT": str(probe_out)}, limit=1),
        batch_size=1,
        maximum_concurrency=1,
        function_timeout=10,
    ).start()
    stopped.append(mapping)
    assert wait(lambda: depth(sqs, dlq_url) == 1)
    assert mapping.stats.invocation_errors == 3
    assert mapping.stats.deleted == 0
    assert mapping.containers() == []


def test_stopping_leaves_no_container_processes_and_no_temp_dirs(queues, probe_out: Path):
    sqs, url, _, _ = queues
    for _ in range(2):
        sqs.send_message(QueueUrl=url, MessageBody="hold:2")
    mapping = run_containers(queues, probe_out, concurrency=2)
    try:
        assert wait(lambda: depth(sqs, url) == 0)
        containers = mapping.containers()
    finally:
        mapping.stop()
    assert len(containers) == 2
    assert all(
        Path(record["tmpdir"]).parent == containers[0].tmpdir.parent for record in seen(probe_out, "hold:2")
    )
    for container in containers:
        assert not is_our_child(container.pid)
        assert not container.tmpdir.exists()
    assert not containers[0].tmpdir.parent.exists()
    assert mapping.containers() == []


def test_the_handlers_stdout_lands_in_the_parents_fd_1(queues, probe_out: Path, tmp_path: Path):
    sqs, url, _, _ = queues
    line = f"a line from the container {uuid.uuid4()}"
    log = tmp_path / "function.log"
    with function_output_to(log):  # fd 1 is the log file from here: containers started now inherit it
        mapping = run_containers(queues, probe_out)
        try:
            sqs.send_message(QueueUrl=url, MessageBody=f"print:{line}")
            assert wait(lambda: depth(sqs, url) == 0)
        finally:
            mapping.stop()
    assert line in log.read_text().splitlines()


@pytest.mark.parametrize("tmp_bytes", [None, 512 * MIB])
def test_the_sandbox_runs_the_real_handler_in_containers(aws: str, tmp_path: Path, tmp_bytes: int | None):
    with (
        function_output_to(tmp_path / "function.log"),
        sandbox(
            parameters={"PairSettleSeconds": "0"}, moto_endpoint=aws, container_tmp_bytes=tmp_bytes
        ) as box,
    ):
        s3 = box.stack.client("s3")
        s3.put_object(Bucket=box.stack.input_bucket, Key="c.png.json", Body=b'{"prompt": "p"}')
        s3.put_object(Bucket=box.stack.input_bucket, Key="c.png", Body=photo())
        assert box.wait_until(lambda: outputs(box) == ["c.png"], timeout=60)
        assert box.wait_until(lambda: not box.mapping.busy, timeout=10)
        containers = box.mapping.containers()
        assert containers
        assert os.getpid() not in {c.pid for c in containers}
        assert box.mapping.stats.cold_starts == len(containers)
        assert box.mapping.stats.invocation_errors == 0
        assert [tmpfs_size(c) for c in containers] == [tmp_bytes] * len(containers)
    for container in containers:
        assert not is_our_child(container.pid)
        assert not container.tmpdir.exists()
    logged = [json.loads(line) for line in (tmp_path / "function.log").read_text().splitlines() if line]
    assert any("_aws" in entry for entry in logged)  # EMF metrics, from the containers' stdout
