"""Each adapter against the real-shaped service it wraps: moto in server mode, the emulator."""

from __future__ import annotations

import io
import json
import socketserver
import threading
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import requests
from botocore.config import Config

from backdrop.emulator import Emulator, Reply
from backdrop.local.context import LocalLambdaContext
from backdrop_fn.adapters.claims import IdempotencyClaims
from backdrop_fn.adapters.s3 import S3ObjectStore
from backdrop_fn.adapters.secrets import SecretsManagerApiKey
from backdrop_fn.adapters.segmind import RetryPolicy, SegmindClient
from backdrop_fn.adapters.work_queue import SqsWorkQueue
from backdrop_fn.errors import (
    ApiTimeout,
    AuthFailed,
    ClaimInProgress,
    ClaimNotReleased,
    InfrastructureUnavailable,
    NotEnoughTime,
    OutputWriteFailed,
    RateLimited,
    ServerError,
)
from backdrop_fn.outcome import Outcome, Status
from backdrop_fn.ports import ApiKey
from backdrop_fn.timing import Deadline
from backdrop_fn.wiring import aws_client
from tests.integration.conftest import API_KEY, REGION, photo
from tests.unit.function.fakes import PNG_BYTES, FakeClock, RecordingMetrics

PROCESSED = Outcome(status=Status.PROCESSED, image_key="a.jpg", output_key="a.png")

BUCKET = "adapter-bucket"

# -- S3 -----------------------------------------------------------------------------------------


@pytest.fixture
def s3(aws: str):
    client = aws_client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def test_read_small_never_reads_past_its_limit(s3):
    s3.put_object(Bucket=BUCKET, Key="big.json", Body=b"x" * 100_000)
    found = S3ObjectStore(s3).read_small(BUCKET, "big.json", limit=1000)
    assert found is not None
    assert (found.info.size, len(found.body)) == (100_000, 1001)


def test_peek_gives_the_version_and_first_bytes_in_one_read(s3):
    s3.put_object(Bucket=BUCKET, Key="p.png", Body=b"0123456789")
    store = S3ObjectStore(s3)
    info, head = store.peek(BUCKET, "p.png", first_bytes=4)
    assert (head, info.size, info.etag) == (b"0123", 10, store.head(BUCKET, "p.png").etag)
    assert store.peek(BUCKET, "p.png", first_bytes=100)[1] == b"0123456789"


def test_peek_at_an_empty_object_is_an_empty_head_not_an_error(s3):
    s3.put_object(Bucket=BUCKET, Key="empty.png", Body=b"")
    info, head = S3ObjectStore(s3).peek(BUCKET, "empty.png", first_bytes=10)
    assert (info.size, head) == (0, b"")
    assert S3ObjectStore(s3).peek(BUCKET, "nope.png", first_bytes=10) is None


def test_missing_objects_are_none_not_errors(s3):
    store = S3ObjectStore(s3)
    assert store.head(BUCKET, "nope.png") is None
    assert store.read_small(BUCKET, "nope.json", limit=10) is None


def test_presigned_url_serves_exactly_that_object(s3):
    s3.put_object(Bucket=BUCKET, Key="shop/red shoe ü.png", Body=photo())
    store = S3ObjectStore(s3)
    url = store.presigned_url(store.head(BUCKET, "shop/red shoe ü.png"), expires_in=60)
    assert "X-Amz-Expires=60" in url
    assert requests.get(url, timeout=10).content == photo()


def test_reading_a_replaced_object_by_its_old_etag_fails_rather_than_mixing_versions(s3):
    s3.put_object(Bucket=BUCKET, Key="a.png", Body=b"first")
    store = S3ObjectStore(s3)
    first = store.head(BUCKET, "a.png")
    s3.put_object(Bucket=BUCKET, Key="a.png", Body=b"second")
    with pytest.raises(Exception, match="GetObject"):
        store.read(first)


# -- DynamoDB claims (Powertools idempotency) ---------------------------------------------------


def claims_table(name: str):
    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


@pytest.fixture
def claims(aws: str) -> IdempotencyClaims:
    made = IdempotencyClaims("claims", ttl_seconds=3600, client=claims_table("claims"))
    made.register_lambda_context(LocalLambdaContext(timeout_seconds=60))
    return made


def test_work_runs_once_per_identity_and_its_result_is_remembered(claims: IdempotencyClaims):
    runs = []

    def work() -> Outcome:
        runs.append(1)
        return Outcome(status=Status.PROCESSED, output_key="a.png")

    assert claims.run_once({"image_etag": "1"}, work) == Outcome(status=Status.PROCESSED, output_key="a.png")
    assert claims.run_once({"image_etag": "1"}, work) == Outcome(status=Status.DUPLICATE, output_key="a.png")
    assert claims.run_once({"image_etag": "2"}, work).status is Status.PROCESSED
    assert len(runs) == 2


def test_a_failed_work_releases_the_claim(claims: IdempotencyClaims):
    with pytest.raises(RuntimeError):
        claims.run_once({"k": 1}, lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert claims.run_once({"k": 1}, lambda: PROCESSED) == PROCESSED


def test_a_claim_held_by_a_running_invocation_is_in_progress(claims: IdempotencyClaims):
    def inner():
        with pytest.raises(ClaimInProgress):
            claims.run_once({"k": "x"}, lambda: PROCESSED)
        return PROCESSED

    claims.run_once({"k": "x"}, inner)


def test_an_in_progress_claim_expires_with_the_invocation_deadline(aws: str):
    """A crashed invocation must not block its pair for longer than it could have run."""
    client = claims_table("claims2")
    crashed = IdempotencyClaims("claims2", ttl_seconds=3600, client=client)
    crashed.register_lambda_context(LocalLambdaContext(timeout_seconds=1))

    class Crash(BaseException):
        """Like the runtime killing the process: nothing gets to release the claim."""

    with pytest.raises(Crash):
        crashed.run_once({"k": "y"}, lambda: (_ for _ in ()).throw(Crash()))
    later = IdempotencyClaims("claims2", ttl_seconds=3600, client=client)
    later.register_lambda_context(LocalLambdaContext(timeout_seconds=60))
    with pytest.raises(ClaimInProgress):
        later.run_once({"k": "y"}, lambda: PROCESSED)
    time.sleep(1.2)
    assert later.run_once({"k": "y"}, lambda: PROCESSED) == PROCESSED


def failing(client, operation: str) -> None:
    """Make one DynamoDB operation fail, as a throttled or unreachable table would."""

    def boom(**_):
        raise ConnectionError(f"{operation} unavailable")

    client.meta.events.register(f"before-call.dynamodb.{operation}", boom)


def test_work_done_but_not_recorded_is_reported_done_not_retried(aws: str):
    client = claims_table("claims3")
    claims = IdempotencyClaims("claims3", ttl_seconds=3600, client=client)
    claims.register_lambda_context(LocalLambdaContext(timeout_seconds=60))
    failing(client, "UpdateItem")  # Powertools records success with UpdateItem
    assert claims.run_once({"k": 1}, lambda: PROCESSED) == PROCESSED


def test_a_failure_whose_claim_cannot_be_released_says_so(aws: str):
    client = claims_table("claims4")
    claims = IdempotencyClaims("claims4", ttl_seconds=3600, client=client)
    claims.register_lambda_context(LocalLambdaContext(timeout_seconds=60))
    failing(client, "DeleteItem")  # Powertools releases a failed claim with DeleteItem
    with pytest.raises(ClaimNotReleased):
        claims.run_once({"k": 1}, lambda: (_ for _ in ()).throw(RuntimeError("API down")))


def test_a_table_that_cannot_take_the_claim_stops_the_work(aws: str):
    client = claims_table("claims5")
    claims = IdempotencyClaims("claims5", ttl_seconds=3600, client=client)
    claims.register_lambda_context(LocalLambdaContext(timeout_seconds=60))
    failing(client, "PutItem")
    ran = []
    with pytest.raises(InfrastructureUnavailable):
        claims.run_once({"k": 1}, lambda: ran.append(1) or PROCESSED)
    assert ran == []  # no claim, no paid call


def test_a_message_whose_claim_is_stuck_is_hidden_until_the_claim_expires(aws: str):
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="backoff")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="m")
    (message,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"]
    SqsWorkQueue(lambda: sqs, url, first_seconds=1).delay(message["ReceiptHandle"], 1, at_least_seconds=1.2)
    time.sleep(1.5)
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []  # the backoff alone: 1 s; here 3 s
    time.sleep(2.0)
    assert len(sqs.receive_message(QueueUrl=url)["Messages"]) == 1


# -- Secrets Manager ----------------------------------------------------------------------------


@pytest.fixture
def secrets(aws: str):
    return boto3.client("secretsmanager", region_name=REGION)


@pytest.mark.parametrize("stored", ["sk-raw-key", json.dumps({"api_key": "sk-raw-key"}), " sk-raw-key\n"])
def test_the_secret_is_the_raw_key_or_a_json_document(secrets, stored: str):
    secrets.create_secret(Name="k", SecretString=stored)
    assert SecretsManagerApiKey.from_client("k", secrets).current() == ApiKey("sk-raw-key")


def test_the_key_is_cached_until_refreshed(secrets):
    secrets.create_secret(Name="k", SecretString="one")
    keys = SecretsManagerApiKey.from_client("k", secrets)
    assert keys.current().value == "one"
    secrets.put_secret_value(SecretId="k", SecretString="two")
    assert keys.current().value == "one"
    assert keys.refreshed().value == "two"
    assert keys.current().value == "two"


@pytest.mark.parametrize("stored", ["", json.dumps({"api_key": ""}), json.dumps({"key": "x"})])
def test_a_secret_without_a_key_is_an_auth_failure_that_says_what_to_do(secrets, stored: str):
    secrets.create_secret(Name="k", SecretString=stored or " ")
    with pytest.raises(AuthFailed, match="put-secret-value"):
        SecretsManagerApiKey.from_client("k", secrets).current()


def test_a_key_a_header_cannot_carry_is_an_auth_failure(secrets):
    secrets.create_secret(Name="k", SecretString="sk with spaces")
    with pytest.raises(AuthFailed, match="header cannot carry"):
        SecretsManagerApiKey.from_client("k", secrets).current()


def test_a_missing_secret_is_an_auth_failure(secrets):
    with pytest.raises(AuthFailed, match="ResourceNotFoundException"):
        SecretsManagerApiKey.from_client("nope", secrets).current()


def test_the_key_repr_hides_the_value():
    assert "sk-secret" not in repr(ApiKey("sk-secret"))


class _SlowDown(socketserver.StreamRequestHandler):
    """An S3 endpoint that throttles everything, as S3 does under load."""

    def handle(self) -> None:
        length = 0
        while (line := self.rfile.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        self.rfile.read(length)
        body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        self.wfile.write(
            b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )


def test_a_throttled_output_write_is_worth_another_receive():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SlowDown)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )
        with pytest.raises(OutputWriteFailed, match="SlowDown") as failure:
            S3ObjectStore(client).write_output(
                BUCKET, "out.png", io.BytesIO(b"png"), content_type="image/png", metadata={}
            )
        assert failure.value.retryable is True
    finally:
        server.shutdown()
        server.server_close()


def test_an_output_write_the_bucket_refuses_is_not_worth_another_receive(s3):
    with pytest.raises(OutputWriteFailed, match="NoSuchBucket") as failure:
        S3ObjectStore(s3).write_output(
            "no-such-bucket", "out.png", io.BytesIO(b"png"), content_type="image/png", metadata={}
        )
    assert failure.value.retryable is False


def test_deleting_the_version_just_written_brings_back_the_one_before(s3):
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    store = S3ObjectStore(s3)
    for seed in ("222", "111"):  # the newer result, then the older one written over it
        store.write_output(
            BUCKET, "a.png", io.BytesIO(seed.encode()), content_type="image/png", metadata={"seed": seed}
        )
    current, metadata = store.describe(BUCKET, "a.png")
    assert metadata == {"seed": "111"}
    store.delete_version(BUCKET, "a.png", current.version_id)
    assert store.describe(BUCKET, "a.png")[1] == {"seed": "222"}
    assert s3.get_object(Bucket=BUCKET, Key="a.png")["Body"].read() == b"222"
    assert store.describe(BUCKET, "nope.png") is None


# -- the Segmind client -------------------------------------------------------------------------


class FixedKey:
    def __init__(self, value: str = API_KEY) -> None:
        self.value = value

    def current(self) -> ApiKey:
        return ApiKey(self.value)

    def refreshed(self) -> ApiKey:
        return ApiKey(self.value)


@pytest.fixture
def api(emulator: Emulator):
    clock = FakeClock(1000.0)  # time that passes only when the client sleeps
    metrics = RecordingMetrics()
    client = SegmindClient(
        emulator.url,
        FixedKey(),
        metrics,
        policy=RetryPolicy(),
        clock=clock,
        sleep=clock.sleep,
        jitter=lambda: 1.0,
        wall_clock=lambda: clock.now,
    )
    return client, clock, metrics


def payload() -> dict:
    import base64

    return {
        "image": base64.b64encode(photo()).decode(),
        "prompt": "p",
        "rendering_speed": "DEFAULT",
        "magic_prompt": "AUTO",
        "seed": 100,
        "style_codes": [],
        "style_reference_images": [],
    }


def test_backoff_doubles_between_retries(api, emulator: Emulator):
    client, clock, metrics = api
    emulator.script(*[Reply(500, {"error": "x"})] * 3)
    client.replace_background(payload(), Deadline(300, clock))
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert metrics.total("ApiRetries") == 3


def test_retry_after_and_the_rate_limit_reset_time_are_waited_for(api, emulator: Emulator):
    client, clock, _ = api
    reset_at = datetime.fromtimestamp(clock.now + 7, UTC)
    emulator.script(
        Reply(429, {"error": "x"}, {"Retry-After": "3"}),
        Reply(429, {"error": "x"}, {"x-rate-limit-reset-at-utc": reset_at.isoformat()}),
    )
    client.replace_background(payload(), Deadline(300, clock))
    assert clock.sleeps[0] == 3.0
    assert clock.sleeps[1] == pytest.approx(4.0, abs=0.01)  # 7 s after the start, 3 s already slept


def test_retries_stop_before_the_lambda_deadline(api, emulator: Emulator):
    client, clock, _ = api
    emulator.script(*[Reply(503, {"error": "x"})] * 5)
    with pytest.raises(ServerError):
        client.replace_background(payload(), Deadline(30, clock))
    # 30 s left, 10 kept for the write, a retry needs 15: after waits of 1 and 2 s, a 4-s wait
    # would leave 27 - 4 - 10 = 13 s, too little for another attempt.
    assert clock.sleeps == [1.0, 2.0]


def test_a_server_wait_longer_than_the_call_can_afford_goes_back_to_the_queue(api, emulator: Emulator):
    client, clock, _ = api
    emulator.script(Reply(429, {"error": "x"}, {"Retry-After": "120"}))
    with pytest.raises(RateLimited):
        client.replace_background(payload(), Deadline(300, clock))
    assert clock.sleeps == []


def test_no_call_is_started_without_time_for_it(api, emulator: Emulator):
    client, clock, _ = api
    with pytest.raises(NotEnoughTime, match="not enough Lambda time"):
        client.replace_background(payload(), Deadline(12, clock))
    assert emulator.requests == []


def test_remaining_credits_and_latency_are_measured(emulator: Emulator):
    emulator.settings.credits = 5.0
    metrics = RecordingMetrics()
    SegmindClient(emulator.url, FixedKey(), metrics).replace_background(payload(), Deadline(300))
    assert metrics.total("RemainingCredits") == pytest.approx(5.0 - 0.075)
    assert metrics.total("ApiLatency") > 0


def test_the_session_reuses_its_connection(emulator: Emulator):
    client = SegmindClient(emulator.url, FixedKey(), RecordingMetrics())
    for _ in range(2):
        with client.replace_background(payload(), Deadline(300)).body as image:
            assert image.read().startswith(b"\x89PNG")  # read to the end, as the output write does
    pool = next(iter(client._session.adapters["http://"].poolmanager.pools._container.values()))
    assert pool.num_connections == 1


def test_unrecognised_reset_header_falls_back_to_backoff(api, emulator: Emulator):
    client, clock, _ = api
    emulator.script(Reply(429, {"error": "x"}, {"x-rate-limit-reset-at-utc": "soon"}))
    client.replace_background(payload(), Deadline(300, clock))
    assert clock.sleeps == [1.0]


def test_reset_time_in_unix_seconds_is_understood(api, emulator: Emulator):
    client, clock, _ = api
    emulator.script(Reply(429, {"error": "x"}, {"x-rate-limit-reset-at-utc": str(clock.now + 5)}))
    client.replace_background(payload(), Deadline(300, clock))
    assert clock.sleeps == [pytest.approx(5.0)]


def test_reset_time_in_the_past_means_no_wait(api, emulator: Emulator):
    client, clock, _ = api
    past = (datetime.fromtimestamp(clock.now, UTC) - timedelta(seconds=30)).isoformat()
    emulator.script(Reply(429, {"error": "x"}, {"x-rate-limit-reset-at-utc": past}))
    client.replace_background(payload(), Deadline(300, clock))
    assert clock.sleeps == [0.0]


class _AnswerThatBreaksOff(socketserver.StreamRequestHandler):
    """Says 200 and a 100 kB PNG, sends its first bytes, then stalls or hangs up."""

    stall_seconds = 0.0

    def handle(self) -> None:
        while self.rfile.readline() not in (b"\r\n", b""):
            pass  # the request line and headers; the body is left unread
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n")
        self.wfile.write(PNG_BYTES[:64])
        self.wfile.flush()
        time.sleep(self.stall_seconds)


@pytest.fixture
def breaking_api():
    def serve(stall_seconds: float) -> SegmindClient:
        handler = type("Handler", (_AnswerThatBreaksOff,), {"stall_seconds": stall_seconds})
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/ideogram-3-replace-background"
        return SegmindClient(url, FixedKey(), RecordingMetrics(), read_timeout_seconds=0.5)

    servers: list[socketserver.TCPServer] = []
    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_an_answer_that_hangs_up_midway_is_a_server_error(breaking_api):
    answer = breaking_api(stall_seconds=0).replace_background(payload(), Deadline(300))
    with pytest.raises(ServerError, match="broke off before its end"):
        answer.body.read()


def test_an_answer_that_stalls_midway_is_a_timeout(breaking_api):
    answer = breaking_api(stall_seconds=3).replace_background(payload(), Deadline(300))
    with pytest.raises(ApiTimeout, match="stalled before its end"):
        answer.body.read()
