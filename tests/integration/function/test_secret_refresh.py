"""A secret that yields no usable key is read again on the next use; a good key is kept an hour."""

from __future__ import annotations

import json

import boto3
import pytest

from backdrop_fn.adapters.secrets import SecretsManagerApiKey
from backdrop_fn.errors import AuthFailed
from tests.integration.conftest import REGION


class CountedSecrets:
    """A Secrets Manager client on moto, and how many GetSecretValue calls went out through it."""

    def __init__(self) -> None:
        self.client = boto3.client("secretsmanager", region_name=REGION)
        self.reads = 0
        self.client.meta.events.register("before-send.secrets-manager.GetSecretValue", self._count)

    def _count(self, **_: object) -> None:
        self.reads += 1


@pytest.fixture
def secrets(aws: str) -> CountedSecrets:
    return CountedSecrets()


def test_an_empty_secret_is_read_again_once_the_key_is_put(secrets: CountedSecrets):
    secrets.client.create_secret(Name="k", SecretString=" ")  # the stack's secret before the operator's key
    keys = SecretsManagerApiKey.from_client("k", secrets.client)
    with pytest.raises(AuthFailed, match="holds no API key yet"):
        keys.current()
    secrets.client.put_secret_value(SecretId="k", SecretString="sk-now-put")
    assert keys.current().value == "sk-now-put"


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ('{"api_key": "sk-', "does not parse"),
        ("sk with spaces", "header cannot carry"),
        (json.dumps({"key": "sk-wrong-field"}), "holds no API key yet"),
    ],
)
def test_a_malformed_rotation_is_read_again_once_it_is_fixed(secrets: CountedSecrets, bad: str, problem: str):
    secrets.client.create_secret(Name="k", SecretString="sk-first")
    keys = SecretsManagerApiKey.from_client("k", secrets.client)
    assert keys.current().value == "sk-first"
    secrets.client.put_secret_value(SecretId="k", SecretString=bad)
    with pytest.raises(AuthFailed, match=problem):
        keys.refreshed()  # the API answered 401 after the rotation
    with pytest.raises(AuthFailed, match=problem):
        keys.current()  # still bad: read again, not answered from the cache
    secrets.client.put_secret_value(SecretId="k", SecretString=json.dumps({"api_key": "sk-fixed"}))
    assert keys.current().value == "sk-fixed"


def test_every_use_of_a_bad_secret_reads_it_again(secrets: CountedSecrets):
    secrets.client.create_secret(Name="k", SecretString=" ")
    keys = SecretsManagerApiKey.from_client("k", secrets.client)
    for _ in range(3):
        with pytest.raises(AuthFailed):
            keys.current()
    assert secrets.reads == 3


def test_a_good_key_is_still_read_once_for_many_pairs(secrets: CountedSecrets):
    secrets.client.create_secret(Name="k", SecretString=" ")
    keys = SecretsManagerApiKey.from_client("k", secrets.client)
    with pytest.raises(AuthFailed):
        keys.current()
    secrets.client.put_secret_value(SecretId="k", SecretString="sk-good")
    assert [keys.current().value for _ in range(5)] == ["sk-good"] * 5
    assert secrets.reads == 2  # the empty secret once, the good key once for five pairs
    assert keys.refreshed().value == "sk-good"  # a 401/403 still reads it again, once
    assert keys.current().value == "sk-good"
    assert secrets.reads == 3


def test_a_json_secret_with_a_number_too_long_to_read_is_an_auth_failure(secrets: CountedSecrets):
    secrets.client.create_secret(Name="k", SecretString='{"api_key": ' + "7" * 5000 + "}")
    with pytest.raises(AuthFailed, match="does not parse"):
        SecretsManagerApiKey.from_client("k", secrets.client).current()
