"""One output key, one owner: on DynamoDB (moto server), and through the real handler."""

from __future__ import annotations

import boto3
import pytest

from backdrop_fn.adapters.output_owners import DynamoDbOutputOwners
from backdrop_fn.errors import InfrastructureUnavailable
from tests.integration.conftest import REGION, Stack, photo
from tests.integration.function.test_adapters import claims_table

SIDECAR = {"prompt": "a sunny beach at noon", "seed": 4321}


@pytest.fixture
def owners(aws: str) -> DynamoDbOutputOwners:
    client = claims_table("owners")
    return DynamoDbOutputOwners("owners", client=client)


def test_the_first_image_owns_the_output_key_and_keeps_it(owners: DynamoDbOutputOwners):
    assert owners.claim("out/shoe", "in/shoe.jpg") is None
    assert owners.claim("out/shoe", "in/shoe.jpg") is None  # its own key, again
    assert owners.claim("out/shoe", "in/shoe.webp") == "in/shoe.jpg"
    assert owners.claim("out/boot", "in/boot.webp") is None  # another key, another owner


def test_an_owner_is_replaced_only_by_naming_it(owners: DynamoDbOutputOwners):
    owners.claim("out/shoe", "in/shoe.jpg")
    assert owners.claim("out/shoe", "in/shoe.webp", replacing="in/shoe.png") == "in/shoe.jpg"
    assert owners.claim("out/shoe", "in/shoe.webp", replacing="in/shoe.jpg") is None
    assert owners.claim("out/shoe", "in/shoe.jpg") == "in/shoe.webp"


def test_a_missing_table_is_passing_trouble_not_a_verdict(aws: str):
    owners = DynamoDbOutputOwners("no-such-table", client=boto3.client("dynamodb", region_name=REGION))
    with pytest.raises(InfrastructureUnavailable):
        owners.claim("out/shoe", "in/shoe.jpg")


def test_two_images_with_one_output_key_are_paid_once_and_the_first_result_stands(stack: Stack):
    stack.upload("shop/shoe.jpg", photo("JPEG"))
    stack.upload("shop/shoe.jpg.json", SIDECAR)
    stack.deliver()
    first = stack.output("shop/shoe.png")["Metadata"]["source-key"]
    stack.upload("shop/shoe.webp", photo("WEBP"))
    stack.upload("shop/shoe.webp.json", SIDECAR)
    stack.deliver()
    assert stack.api_calls == 1
    assert stack.output("shop/shoe.png")["Metadata"]["source-key"] == first == "shop/shoe.jpg"
    ((record, error_class),) = stack.dlq()
    assert (error_class, record["source"]["key"]) == ("invalid_image", "shop/shoe.webp")
    assert "belongs to 'shop/shoe.jpg'" in record["error"]["message"]
