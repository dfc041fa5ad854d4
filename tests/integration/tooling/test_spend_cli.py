"""`backdrop spend` against a stack on moto: what the function recorded, and the stack's caps."""

from __future__ import annotations

import json
import re

import boto3
import pytest

from backdrop.cli import main
from backdrop.local.stack import LOCAL_NAMES
from tests.integration.conftest import REGION, Stack, photo
from tests.integration.conftest import table_rows as rows


def spent(stack: Stack, pairs: dict[str, str]) -> None:
    for name, speed in pairs.items():
        stack.upload(f"{name}.png", photo())
        stack.upload(f"{name}.png.json", {"prompt": "p", "seed": 123, "rendering_speed": speed})
    stack.drain()


def test_spend_shows_what_the_function_recorded_today_by_speed(stack: Stack, capsys: pytest.CaptureFixture):
    stack.emulator.settings.credits = 10.0
    spent(stack, {"a": "TURBO", "b": "QUALITY", "c": "QUALITY"})
    assert main(["spend", "--local", "--endpoint-url", stack.sqs.meta.endpoint_url]) == 0
    shown = capsys.readouterr().out
    # spent, cap, used, then TURBO, DEFAULT and QUALITY calls: 0.037 + 2 × 0.113
    assert rows(shown)["today"] == ["$0.263", "—", "no cap", "1", "0", "2"]
    assert rows(shown)["this month"] == ["$0.263", "—", "no cap", "1", "0", "2"]
    # The count after the first two calls, whichever they were: the last the third reservation saw.
    assert re.search(r"Credits left: (9\.85|9\.77), as the API said at", shown)


STACK_TEMPLATE = {
    "Parameters": {"DailyBudgetUsd": {"Type": "String"}, "MonthlyBudgetUsd": {"Type": "String"}},
    "Resources": {"Nothing": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
    "Outputs": {"IdempotencyTableName": {"Value": LOCAL_NAMES["IdempotencyTable"]}},
}


def test_spend_of_a_deployed_stack_reads_its_table_and_caps(stack: Stack, capsys: pytest.CaptureFixture):
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="shop",
        TemplateBody=json.dumps(STACK_TEMPLATE),
        Parameters=[
            {"ParameterKey": "DailyBudgetUsd", "ParameterValue": "0.30"},
            {"ParameterKey": "MonthlyBudgetUsd", "ParameterValue": ""},
        ],
    )
    spent(stack, {"a": "DEFAULT", "b": "DEFAULT"})
    endpoint = stack.sqs.meta.endpoint_url
    assert main(["spend", "--stack", "shop", "--endpoint-url", endpoint, "--region", REGION]) == 0
    shown = rows(capsys.readouterr().out)
    assert shown["today"][:3] == ["$0.150", "$0.30", "50 %"]
    assert shown["this month"][:3] == ["$0.150", "—", "no cap"]


def test_spend_without_a_local_stack_says_how_to_start_one(capsys: pytest.CaptureFixture):
    assert main(["spend", "--local", "--endpoint-url", "http://127.0.0.1:9"]) == 2
    assert "backdrop watch" in capsys.readouterr().err
