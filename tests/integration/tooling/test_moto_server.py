"""The local AWS keeps DynamoDB's promise: a conditional write checks and writes in one step."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import boto3
import pytest

from backdrop.local.moto_server import moto_server

CLIENTS = 40
FITS = 10  # the condition lets the counter reach 10, no further


@pytest.fixture
def eager_thread_switching() -> Iterator[None]:
    """Switch threads as often as the interpreter can, as a busy machine would by chance: with
    moto's own threaded server this makes the race show within a few rounds."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def dynamodb(endpoint: str):
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def add_one_below_the_cap(endpoint: str, start: threading.Barrier, passed: list[int]) -> None:
    client = dynamodb(endpoint)
    start.wait()
    try:
        client.update_item(
            TableName="counters",
            Key={"id": {"S": "spend"}},
            UpdateExpression="ADD n :one",
            ConditionExpression="attribute_not_exists(n) OR n < :fits",
            ExpressionAttributeValues={":one": {"N": "1"}, ":fits": {"N": str(FITS)}},
        )
        passed.append(1)
    except client.exceptions.ConditionalCheckFailedException:
        pass


def test_many_clients_at_once_never_pass_a_condition_together(eager_thread_switching: None):
    with moto_server() as endpoint:
        client = dynamodb(endpoint)
        for round_number in range(8):
            table = {"TableName": "counters"}
            client.create_table(
                **table,
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            start, passed = threading.Barrier(CLIENTS), []
            clients = [
                threading.Thread(target=add_one_below_the_cap, args=(endpoint, start, passed))
                for _ in range(CLIENTS)
            ]
            for thread in clients:
                thread.start()
            for thread in clients:
                thread.join()
            counter = client.get_item(**table, Key={"id": {"S": "spend"}})["Item"]["n"]["N"]
            assert (len(passed), counter) == (FITS, str(FITS)), f"round {round_number}"
            client.delete_table(**table)
