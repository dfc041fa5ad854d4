"""The AWS-fault proxy in front of moto: untouched traffic roundtrips exactly, faults surface as
the ClientError codes AWS itself would make botocore raise, and the counters add up."""

from __future__ import annotations

import io
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from backdrop.local.aws_faults import AwsFaultProxy, AwsRequest, FaultRule, queue_named
from tests.integration.conftest import REGION

# One attempt, no retry: note that retries={"max_attempts": 1} would be one *retry* (two attempts).
ONE_ATTEMPT = Config(retries={"total_max_attempts": 1, "mode": "standard"})
BUCKET = "backdrop-faults"
TABLE = "backdrop-faults"
BINARY = bytes(range(256)) * 64 + b"\r\n\x00tail"  # every byte value, CRLF and NUL included


@pytest.fixture
def proxy(aws: str) -> Iterator[AwsFaultProxy]:
    with AwsFaultProxy(aws, seed=7) as running:
        yield running


def client(proxy: AwsFaultProxy, service: str, config: Config = ONE_ATTEMPT) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=proxy.endpoint, config=config)


def error_code(call: Any) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


@pytest.fixture
def s3(proxy: AwsFaultProxy) -> Any:
    s3 = client(proxy, "s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="photo.png", Body=BINARY)
    return s3


@pytest.fixture
def dynamodb(proxy: AwsFaultProxy) -> Any:
    dynamodb = client(proxy, "dynamodb")
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return dynamodb


@pytest.fixture
def queues(proxy: AwsFaultProxy) -> tuple[Any, str, str]:
    """(the SQS client, the work queue's URL, the DLQ's URL)."""
    sqs = client(proxy, "sqs")
    work = sqs.create_queue(QueueName="backdrop-work")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="backdrop-dlq")["QueueUrl"]
    return sqs, work, dlq


@pytest.fixture
def secrets(proxy: AwsFaultProxy) -> Any:
    secrets = client(proxy, "secretsmanager")
    secrets.create_secret(Name="backdrop/key", SecretString='{"api_key": "sk-1"}')
    return secrets


def bodies(sqs: Any, queue_url: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [message["Body"] for message in messages.get("Messages", [])]


# -- untouched traffic ----------------------------------------------------------------------------


def test_s3_binary_objects_and_metadata_roundtrip_exactly(s3: Any):
    s3.put_object(
        Bucket=BUCKET,
        Key="shop/a b+ü.png",
        Body=BINARY,
        ContentType="image/png",
        Metadata={"backdrop-prompt": "beach%20at%20dusk", "backdrop_seed": "500"},
    )
    s3.upload_fileobj(io.BytesIO(BINARY * 3), BUCKET, "streamed.bin")  # a file: Expect: 100-continue

    got = s3.get_object(Bucket=BUCKET, Key="shop/a b+ü.png")
    assert got["Body"].read() == BINARY
    assert got["ContentType"] == "image/png"
    assert got["Metadata"] == {"backdrop-prompt": "beach%20at%20dusk", "backdrop_seed": "500"}
    assert s3.get_object(Bucket=BUCKET, Key="streamed.bin")["Body"].read() == BINARY * 3
    assert s3.head_object(Bucket=BUCKET, Key="shop/a b+ü.png")["ContentLength"] == len(BINARY)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="shop/")["Contents"]
    assert [(item["Key"], item["Size"]) for item in listed] == [("shop/a b+ü.png", len(BINARY))]

    assert s3.delete_object(Bucket=BUCKET, Key="shop/a b+ü.png")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert error_code(lambda: s3.head_object(Bucket=BUCKET, Key="shop/a b+ü.png")) == "404"


def test_a_chunked_upload_reaches_moto_as_the_same_bytes(s3: Any, proxy: AwsFaultProxy):
    pieces = [BINARY[:1000], BINARY[1000:1001], BINARY[1001:]]
    answer = requests.put(f"{proxy.endpoint}/{BUCKET}/chunked.bin", data=iter(pieces), timeout=10)

    assert answer.request.headers["Transfer-Encoding"] == "chunked"
    assert answer.status_code == 200
    assert s3.get_object(Bucket=BUCKET, Key="chunked.bin")["Body"].read() == BINARY


def test_a_dynamodb_item_roundtrips_exactly(dynamodb: Any):
    item = {"id": {"S": "pair#ü"}, "blob": {"B": BINARY}, "n": {"N": "12.50"}, "tags": {"SS": ["a", "b"]}}
    dynamodb.put_item(TableName=TABLE, Item=item)

    got = dynamodb.get_item(TableName=TABLE, Key={"id": {"S": "pair#ü"}}, ConsistentRead=True)["Item"]
    assert got["blob"]["B"] == BINARY
    assert got["n"] == {"N": "12.50"}
    assert sorted(got["tags"]["SS"]) == ["a", "b"]


def test_an_sqs_message_roundtrips_exactly(queues: tuple[Any, str, str]):
    sqs, work, _ = queues
    body = '{"key": "shop/a b.jpg", "note": "ü €"}'
    sqs.send_message(
        QueueUrl=work,
        MessageBody=body,
        MessageAttributes={"backdrop-attempts-before": {"DataType": "Number", "StringValue": "2"}},
    )

    message = sqs.receive_message(QueueUrl=work, MessageAttributeNames=["All"], WaitTimeSeconds=0)[
        "Messages"
    ][0]
    assert message["Body"] == body
    assert message["MessageAttributes"]["backdrop-attempts-before"]["StringValue"] == "2"
    sqs.delete_message(QueueUrl=work, ReceiptHandle=message["ReceiptHandle"])
    assert bodies(sqs, work) == []


def test_a_secret_roundtrips_exactly(secrets: Any):
    assert secrets.get_secret_value(SecretId="backdrop/key")["SecretString"] == '{"api_key": "sk-1"}'
    secrets.create_secret(Name="backdrop/binary", SecretBinary=BINARY)
    assert secrets.get_secret_value(SecretId="backdrop/binary")["SecretBinary"] == BINARY


def test_operations_are_named_as_botocore_names_them(proxy: AwsFaultProxy, s3: Any, queues, secrets):
    """The proxy's idea of each request's operation is botocore's own, call for call."""
    sqs, work, _ = queues
    called: Counter[str] = Counter()
    for each in (s3, sqs, secrets):
        service = each.meta.service_model.service_name
        each.meta.events.register(
            "before-call.*.*", lambda model, service=service, **_: called.update([f"{service}.{model.name}"])
        )
    proxy.reset_stats()

    s3.put_object(Bucket=BUCKET, Key="a.png", Body=b"a")
    s3.copy_object(Bucket=BUCKET, Key="b.png", CopySource={"Bucket": BUCKET, "Key": "a.png"})
    s3.head_object(Bucket=BUCKET, Key="a.png")
    s3.get_object(Bucket=BUCKET, Key="a.png")
    s3.put_object_tagging(Bucket=BUCKET, Key="a.png", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    s3.get_object_tagging(Bucket=BUCKET, Key="a.png")
    s3.list_objects_v2(Bucket=BUCKET)
    s3.list_objects(Bucket=BUCKET)
    s3.get_bucket_notification_configuration(Bucket=BUCKET)
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="big.bin")["UploadId"]
    part = s3.upload_part(Bucket=BUCKET, Key="big.bin", UploadId=upload, PartNumber=1, Body=b"x")
    s3.list_parts(Bucket=BUCKET, Key="big.bin", UploadId=upload)
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key="big.bin",
        UploadId=upload,
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "b.png"}]})
    s3.delete_object(Bucket=BUCKET, Key="a.png")
    s3.head_bucket(Bucket=BUCKET)
    s3.list_buckets()
    sqs.send_message(QueueUrl=work, MessageBody="m")
    sqs.receive_message(QueueUrl=work, WaitTimeSeconds=0)
    sqs.get_queue_attributes(QueueUrl=work, AttributeNames=["All"])
    secrets.get_secret_value(SecretId="backdrop/key")

    assert proxy.stats()["requests_by_operation"] == dict(called)


# -- each fault, as botocore sees it --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["SlowDown", "InternalError", "ServiceUnavailable"])
def test_s3_faults_raise_the_code_aws_would(proxy: AwsFaultProxy, s3: Any, kind: str):
    proxy.rules = [FaultRule("s3", kind=kind)]

    assert error_code(lambda: s3.put_object(Bucket=BUCKET, Key="x.png", Body=BINARY)) == kind
    assert error_code(lambda: s3.get_object(Bucket=BUCKET, Key="photo.png")) == kind
    assert error_code(lambda: s3.list_objects_v2(Bucket=BUCKET)) == kind


@pytest.mark.parametrize(("kind", "status"), [("SlowDown", "503"), ("InternalError", "500")])
def test_s3_head_faults_have_no_body_so_the_code_is_the_status(
    proxy: AwsFaultProxy, s3: Any, kind: str, status: str
):
    proxy.rules = [FaultRule("s3", "HeadObject", kind=kind)]

    assert error_code(lambda: s3.head_object(Bucket=BUCKET, Key="photo.png")) == status
    assert s3.get_object(Bucket=BUCKET, Key="photo.png")["Body"].read() == BINARY  # GetObject untouched


@pytest.mark.parametrize(
    "kind", ["ThrottlingException", "ProvisionedThroughputExceededException", "InternalServerError"]
)
def test_dynamodb_faults_raise_the_code_aws_would(proxy: AwsFaultProxy, dynamodb: Any, kind: str):
    proxy.rules = [FaultRule("dynamodb", "PutItem", kind=kind)]

    assert error_code(lambda: dynamodb.put_item(TableName=TABLE, Item={"id": {"S": "1"}})) == kind
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key={"id": {"S": "1"}})


def test_dynamodb_throughput_fault_is_botocores_modeled_exception(proxy: AwsFaultProxy, dynamodb: Any):
    proxy.rules = [FaultRule("dynamodb", "GetItem", kind="ProvisionedThroughputExceededException")]

    with pytest.raises(dynamodb.exceptions.ProvisionedThroughputExceededException):
        dynamodb.get_item(TableName=TABLE, Key={"id": {"S": "1"}})


@pytest.mark.parametrize("kind", ["InternalError", "ServiceUnavailable", "RequestThrottled"])
def test_sqs_send_faults_raise_the_code_aws_would(proxy: AwsFaultProxy, queues, kind: str):
    sqs, work, _ = queues
    proxy.rules = [FaultRule("sqs", "SendMessage", kind=kind)]

    assert error_code(lambda: sqs.send_message(QueueUrl=work, MessageBody="m")) == kind
    proxy.rules = []
    assert bodies(sqs, work) == []


@pytest.mark.parametrize("kind", ["InternalServiceError", "ThrottlingException"])
def test_secrets_manager_faults_raise_the_code_aws_would(proxy: AwsFaultProxy, secrets: Any, kind: str):
    proxy.rules = [FaultRule("secretsmanager", "GetSecretValue", kind=kind)]

    assert error_code(lambda: secrets.get_secret_value(SecretId="backdrop/key")) == kind


def test_secrets_manager_internal_error_is_botocores_modeled_exception(proxy: AwsFaultProxy, secrets: Any):
    proxy.rules = [FaultRule("secretsmanager", "GetSecretValue")]  # its usual fault: InternalServiceError

    with pytest.raises(secrets.exceptions.InternalServiceError):
        secrets.get_secret_value(SecretId="backdrop/key")


@pytest.mark.parametrize("kind", ["ThrottlingException", "InternalException"])
def test_event_bus_faults_raise_the_code_aws_would(proxy: AwsFaultProxy, kind: str):
    events = client(proxy, "events")
    proxy.rules = [FaultRule("events", "PutEvents", kind=kind)]
    entry = {"Source": "backdrop", "DetailType": "Backdrop Image Processed", "Detail": "{}"}

    assert error_code(lambda: events.put_events(Entries=[entry])) == kind
    proxy.rules = []
    assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0


def test_a_closed_connection_surfaces_as_connection_closed_error(proxy: AwsFaultProxy, s3: Any):
    proxy.rules = [FaultRule("s3", "GetObject", kind="ConnectionClosed")]

    with pytest.raises(ConnectionClosedError):
        s3.get_object(Bucket=BUCKET, Key="photo.png")
    assert s3.head_object(Bucket=BUCKET, Key="photo.png")["ContentLength"] == len(BINARY)


# -- which requests fail --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "match", [queue_named("backdrop-dlq"), "backdrop-dlq"], ids=["queue_named", "substring"]
)
def test_dlq_send_fails_while_work_queue_send_passes(proxy: AwsFaultProxy, queues, match: Any):
    sqs, work, dlq = queues
    proxy.rules = [FaultRule("sqs", "SendMessage", kind="InternalError", match=match)]

    sqs.send_message(QueueUrl=work, MessageBody="to work")
    assert error_code(lambda: sqs.send_message(QueueUrl=dlq, MessageBody="to dlq")) == "InternalError"

    assert bodies(sqs, work) == ["to work"]
    assert bodies(sqs, dlq) == []


def test_a_predicate_sees_the_request_as_sent(proxy: AwsFaultProxy, s3: Any):
    seen: list[tuple[str, str, str]] = []

    def outputs_only(request: AwsRequest) -> bool:
        seen.append((request.operation, request.bucket, request.key))
        return request.key.startswith("out/")

    proxy.rules = [FaultRule("s3", "PutObject", kind="SlowDown", match=outputs_only)]

    s3.put_object(Bucket=BUCKET, Key="in/a b.png", Body=b"in")
    assert error_code(lambda: s3.put_object(Bucket=BUCKET, Key="out/a b.png", Body=b"out")) == "SlowDown"
    assert seen == [("PutObject", BUCKET, "in/a b.png"), ("PutObject", BUCKET, "out/a b.png")]


def test_a_fault_after_the_send_leaves_the_message_on_the_queue(proxy: AwsFaultProxy, queues):
    sqs, _, dlq = queues
    proxy.rules = [FaultRule("sqs", "SendMessage", kind="InternalError", after=True)]

    assert (
        error_code(lambda: sqs.send_message(QueueUrl=dlq, MessageBody="written, answer lost"))
        == "InternalError"
    )

    assert bodies(sqs, dlq) == ["written, answer lost"]
    assert proxy.stats()["forwarded"] == proxy.stats()["requests"]


def test_a_fault_after_the_write_leaves_the_object_in_place(proxy: AwsFaultProxy, s3: Any):
    proxy.rules = [FaultRule("s3", "PutObject", kind="InternalError", after=True)]

    assert error_code(lambda: s3.put_object(Bucket=BUCKET, Key="out.png", Body=BINARY)) == "InternalError"

    assert s3.get_object(Bucket=BUCKET, Key="out.png")["Body"].read() == BINARY


def test_rules_replaced_at_run_time_apply_to_the_next_request(proxy: AwsFaultProxy, s3: Any):
    proxy.rules = [FaultRule("s3", "GetObject")]
    assert error_code(lambda: s3.get_object(Bucket=BUCKET, Key="photo.png")) == "SlowDown"

    proxy.rules = []
    assert s3.get_object(Bucket=BUCKET, Key="photo.png")["Body"].read() == BINARY

    proxy.rules = [FaultRule("s3", "GetObject", kind="InternalError")]
    assert error_code(lambda: s3.get_object(Bucket=BUCKET, Key="photo.png")) == "InternalError"


def test_times_limits_how_often_a_rule_fires(proxy: AwsFaultProxy, s3: Any):
    proxy.rules = [FaultRule("s3", "GetObject", times=2), FaultRule("s3", "GetObject", kind="InternalError")]

    codes = [error_code(lambda: s3.get_object(Bucket=BUCKET, Key="photo.png")) for _ in range(3)]

    assert codes == ["SlowDown", "SlowDown", "InternalError"]


def test_the_same_seed_injects_the_same_faults(aws: str):
    def pattern(seed: int) -> list[bool]:
        with AwsFaultProxy(aws, rules=[FaultRule("s3", "HeadBucket", 0.5)], seed=seed) as proxy:
            s3 = client(proxy, "s3")
            s3.create_bucket(Bucket=BUCKET)
            outcomes = []
            for _ in range(40):
                try:
                    s3.head_bucket(Bucket=BUCKET)
                    outcomes.append(True)
                except ClientError:
                    outcomes.append(False)
            return outcomes

    first = pattern(11)
    assert pattern(11) == first
    assert 0 < first.count(False) < 40


def test_a_rule_naming_an_unknown_service_operation_or_fault_is_refused():
    with pytest.raises(ValueError, match="service"):
        FaultRule("lambda")
    with pytest.raises(ValueError, match="no operation 'PutItems'"):
        FaultRule("dynamodb", "PutItems")
    with pytest.raises(ValueError, match="ThrottlingException"):
        FaultRule("s3", kind="ThrottlingException")
    with pytest.raises(ValueError, match="probability"):
        FaultRule("s3", probability=1.5)


# -- retries and accounting -----------------------------------------------------------------------


def test_default_retries_absorb_a_low_fault_rate(
    proxy: AwsFaultProxy, s3: Any, monkeypatch: pytest.MonkeyPatch
):
    for name in ("AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    retrying = boto3.client("s3", region_name=REGION, endpoint_url=proxy.endpoint)  # boto3's defaults
    proxy.reset_stats()
    proxy.rules = [FaultRule("s3", probability=0.1, kind="SlowDown")]

    retries = 0
    for number in range(25):
        retries += retrying.put_object(Bucket=BUCKET, Key=f"k{number}", Body=BINARY)["ResponseMetadata"][
            "RetryAttempts"
        ]
        got = retrying.get_object(Bucket=BUCKET, Key=f"k{number}")
        assert got["Body"].read() == BINARY
        retries += got["ResponseMetadata"]["RetryAttempts"]

    stats = proxy.stats()
    assert stats["faults"] > 0  # the seed makes this run the same every time
    assert retries == stats["faults"]  # every fault was one retry, and nothing failed
    assert stats["requests"] == 50 + stats["faults"]


def test_stats_count_requests_forwarded_and_faults_by_rule_kind_and_operation(
    proxy: AwsFaultProxy, s3: Any, queues
):
    sqs, work, dlq = queues
    proxy.reset_stats()
    proxy.rules = [
        FaultRule(
            "sqs", "SendMessage", kind="InternalError", match=queue_named("backdrop-dlq"), name="dlq down"
        ),
        FaultRule("s3", "GetObject", kind="SlowDown", times=1),
        FaultRule("s3", "PutObject", kind="InternalError", after=True),
    ]

    sqs.send_message(QueueUrl=work, MessageBody="w")
    for _ in range(2):
        error_code(lambda: sqs.send_message(QueueUrl=dlq, MessageBody="d"))
    error_code(lambda: s3.get_object(Bucket=BUCKET, Key="photo.png"))
    s3.get_object(Bucket=BUCKET, Key="photo.png")
    error_code(lambda: s3.put_object(Bucket=BUCKET, Key="p.png", Body=b"p"))

    assert proxy.stats() == {
        "requests": 6,
        "forwarded": 3,  # the work queue's send, the second GetObject, the PutObject (after)
        "faults": 4,
        "upstream_errors": 0,
        "requests_by_operation": {"sqs.SendMessage": 3, "s3.GetObject": 2, "s3.PutObject": 1},
        "faults_by_operation": {"sqs.SendMessage": 2, "s3.GetObject": 1, "s3.PutObject": 1},
        "faults_by_kind": {"sqs.InternalError": 2, "s3.SlowDown": 1, "s3.InternalError": 1},
        "faults_by_rule": {"dlq down": 2, "s3.GetObject:SlowDown": 1, "s3.PutObject:InternalError after": 1},
    }


def test_many_threads_through_the_proxy_all_roundtrip(proxy: AwsFaultProxy, s3: Any, queues):
    sqs, work, _ = queues
    proxy.reset_stats()
    proxy.rules = [FaultRule("s3", "HeadObject", probability=0.2, kind="SlowDown")]
    failures: list[BaseException] = []
    head_errors = Counter[str]()
    lock = threading.Lock()

    def worker(number: int) -> None:
        own_s3, own_sqs = client(proxy, "s3"), client(proxy, "sqs")
        try:
            for round_ in range(20):
                key = f"t{number}/{round_}.bin"
                own_s3.put_object(Bucket=BUCKET, Key=key, Body=BINARY + key.encode())
                assert own_s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == BINARY + key.encode()
                try:
                    own_s3.head_object(Bucket=BUCKET, Key=key)
                except ClientError as error:
                    with lock:
                        head_errors[error.response["Error"]["Code"]] += 1
                own_sqs.send_message(QueueUrl=work, MessageBody=key)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    stats = proxy.stats()
    assert stats["requests"] == 12 * 20 * 4
    assert stats["faults"] == sum(head_errors.values()) == head_errors["503"]
    assert stats["forwarded"] == stats["requests"] - stats["faults"]
    assert sqs.get_queue_attributes(QueueUrl=work, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"
    ]["ApproximateNumberOfMessages"] == str(12 * 20)


def test_an_unreachable_upstream_answers_502_and_is_counted(aws: str):
    with AwsFaultProxy("http://127.0.0.1:9") as proxy:  # the discard port: nothing listens
        s3 = client(proxy, "s3")
        assert error_code(lambda: s3.list_buckets()) == "502"
        assert proxy.stats()["upstream_errors"] == 1
