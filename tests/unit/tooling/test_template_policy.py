"""template.yaml's permissions and retention: what the function may do, and what outlives the stack."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from backdrop.local.template import RefusedParameters, load_spec, resolve
from backdrop_fn.vocabulary import Metric

TEMPLATE_PATH = Path(__file__).resolve().parents[3] / "template.yaml"
TEMPLATE: dict[str, Any] = cfn_yaml.load(str(TEMPLATE_PATH))
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTION = RESOURCES["ReplaceBackgroundFunction"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_documents() -> Iterator[dict[str, Any]]:
    """Every policy document the function's role is given, written in the template."""
    properties = FUNCTION["Properties"]
    for policy in as_list(properties.get("Policies", [])):
        if isinstance(policy, dict) and "Statement" in policy:
            yield policy
    role = properties.get("Role")
    if isinstance(role, dict) and "Fn::GetAtt" in role:
        name = (
            role["Fn::GetAtt"][0]
            if isinstance(role["Fn::GetAtt"], list)
            else role["Fn::GetAtt"].split(".")[0]
        )
        for policy in RESOURCES[name]["Properties"].get("Policies", []):
            yield policy["PolicyDocument"]


def statements() -> Iterator[tuple[dict[str, Any], str | None]]:
    """(statement, the condition it is granted under, or None for always)."""
    for document in role_documents():
        for statement in as_list(document["Statement"]):
            if isinstance(statement, dict) and "Fn::If" in statement:
                condition, when_true, when_false = statement["Fn::If"]
                assert when_false == {"Ref": "AWS::NoValue"}, statement
                yield when_true, condition
            else:
                yield statement, None


def actions(statement: dict[str, Any]) -> set[str]:
    return {action.lower() for action in as_list(statement["Action"])}


def granted_on(resource: Any) -> set[str]:
    return {
        action
        for statement, condition in statements()
        if condition is None and resource in as_list(statement["Resource"])
        for action in actions(statement)
    }


# What !Ref gives for the buckets the stack creates, and the partition, to read ARNs by.
BUCKET_NAMES = {"InputBucket": "stack-in", "OutputBucket": "stack-out", "AWS::Partition": "aws"}
SHOP = {"ExistingInputBucket": "shop-assets", "InputPrefix": "backdrop/in/"}
SHOP_OUTPUTS = {**SHOP, "OutputToInputBucket": "true", "OutputPrefix": "backdrop/out/"}


def s3_grants(parameters: dict[str, str] | None = None) -> dict[str, tuple[set[str], Any]]:
    """The role's S3 grants with these parameters: resource ARN → (actions, condition or None)."""
    spec = load_spec(TEMPLATE_PATH, parameters)
    grants: dict[str, tuple[set[str], Any]] = {}
    for document in role_documents():
        for statement in resolve(spec, as_list(document["Statement"]), BUCKET_NAMES):
            if statement is None or not any(a.startswith("s3:") for a in actions(statement)):
                continue
            for resource in as_list(statement["Resource"]):
                assert resource not in grants, f"{resource} is granted twice"
                grants[resource] = (actions(statement), statement.get("Condition"))
    return grants


WRITE_OUTPUTS = {
    "s3:putobject",
    "s3:putobjecttagging",
    "s3:abortmultipartupload",
    "s3:getobject",
    "s3:deleteobjectversion",
}
READ_INPUTS = {"s3:getobject", "s3:getobjectversion"}


def test_outputs_of_5_mib_or_more_can_be_uploaded_in_parts():
    # upload_fileobj switches to a multipart upload at 5 MiB, and aborts it when a part fails:
    # Create/UploadPart/Complete are covered by s3:PutObject, AbortMultipartUpload is not.
    granted, _ = s3_grants()["arn:aws:s3:::stack-out/*"]
    assert {"s3:putobject", "s3:abortmultipartupload"} <= granted


def test_outputs_can_be_written_with_the_sidecars_tags():
    # A PutObject carrying x-amz-tagging is refused without s3:PutObjectTagging.
    granted, _ = s3_grants()["arn:aws:s3:::stack-out/*"]
    assert "s3:putobjecttagging" in granted


def test_a_superseded_result_can_be_withdrawn_by_its_own_version():
    # HeadObject needs s3:GetObject; deleting one version needs s3:DeleteObjectVersion, and
    # nothing grants deleting the current object outright.
    granted, _ = s3_grants()["arn:aws:s3:::stack-out/*"]
    assert {"s3:getobject", "s3:deleteobjectversion"} <= granted
    assert "s3:deleteobject" not in granted


def test_with_the_stack_s_own_buckets_the_function_reads_one_and_writes_the_other():
    assert s3_grants() == {
        "arn:aws:s3:::stack-in/*": (READ_INPUTS, None),
        "arn:aws:s3:::stack-in": ({"s3:listbucket"}, None),
        "arn:aws:s3:::stack-out/*": (WRITE_OUTPUTS, None),
    }


def test_in_an_existing_bucket_the_function_may_read_and_list_only_under_the_input_prefix():
    assert s3_grants(SHOP) == {
        "arn:aws:s3:::shop-assets/backdrop/in/*": (READ_INPUTS, None),
        "arn:aws:s3:::shop-assets": ({"s3:listbucket"}, {"StringLike": {"s3:prefix": "backdrop/in/*"}}),
        "arn:aws:s3:::stack-out/*": (WRITE_OUTPUTS, None),
    }


def test_outputs_in_an_existing_bucket_may_be_written_only_under_the_output_prefix():
    assert s3_grants(SHOP_OUTPUTS) == {
        "arn:aws:s3:::shop-assets/backdrop/in/*": (READ_INPUTS, None),
        "arn:aws:s3:::shop-assets": ({"s3:listbucket"}, {"StringLike": {"s3:prefix": "backdrop/in/*"}}),
        "arn:aws:s3:::shop-assets/backdrop/out/*": (WRITE_OUTPUTS, None),
    }


def test_only_the_input_rule_may_send_to_the_work_queue():
    (statement,) = as_list(RESOURCES["WorkQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"])
    assert RESOURCES["WorkQueuePolicy"]["Properties"]["Queues"] == [{"Ref": "WorkQueue"}]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert (statement["Effect"], statement["Action"]) == ("Allow", "sqs:SendMessage")
    assert statement["Resource"] == {"Fn::GetAtt": ["WorkQueue", "Arn"]}
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["InputEventsRule", "Arn"]}}
    }
    targets = RESOURCES["InputEventsRule"]["Properties"]["Targets"]
    assert [target["Arn"] for target in targets] == [{"Fn::GetAtt": ["WorkQueue", "Arn"]}]


@pytest.mark.parametrize(
    "parameters",
    [
        {"ExistingInputBucket": "shop-assets", "OutputToInputBucket": "true"},
        {"ExistingInputBucket": "shop-assets", "OutputToInputBucket": "true", "OutputPrefix": ""},
        {"OutputToInputBucket": "true", "OutputPrefix": "backdrop/"},
    ],
    ids=["no output prefix", "an empty output prefix", "no existing bucket"],
)
def test_outputs_in_the_input_bucket_without_a_prefix_or_a_bucket_are_refused_at_deploy_time(
    parameters: dict[str, str],
):
    # The template's Rules, read as CloudFormation reads them before it creates anything.
    with pytest.raises(RefusedParameters, match="OutputToInputBucket=true"):
        load_spec(TEMPLATE_PATH, parameters)


@pytest.mark.parametrize("parameters", [{}, SHOP, SHOP_OUTPUTS, {"OutputPrefix": "o/"}])
def test_the_usual_deployments_are_accepted(parameters: dict[str, str]):
    load_spec(TEMPLATE_PATH, parameters)


@pytest.mark.parametrize("name", ["OutputBucket", "DeadLetterQueue", "IdempotencyTable"])
def test_paid_results_failure_records_and_claims_outlive_the_stack(name: str):
    resource = RESOURCES[name]
    assert resource.get("DeletionPolicy") == "Retain"
    assert resource.get("UpdateReplacePolicy") == "Retain"


def test_the_tables_encryption_is_described_as_it_is():
    table = RESOURCES["IdempotencyTable"]
    assert table["Properties"]["SSESpecification"] == {"SSEEnabled": True}  # no key id: aws/dynamodb
    comments = " ".join(skip["comment"] for skip in table["Metadata"]["checkov"]["skip"])
    assert "AWS-owned" not in comments
    assert "AWS-managed" in comments


def tracing_modes() -> set[str]:
    tracing = FUNCTION["Properties"].get("Tracing", TEMPLATE["Globals"]["Function"].get("Tracing"))
    if tracing == {"Ref": "Tracing"}:
        return set(TEMPLATE["Parameters"]["Tracing"]["AllowedValues"])
    return {tracing} if tracing else set()


def test_x_ray_may_be_written_only_when_tracing_is_active():
    # SAM gives the role it generates AWSXRayDaemonWriteAccess whenever Tracing is set at all,
    # PassThrough included; so the function brings its own role and grants X-Ray under the condition.
    if "Role" not in FUNCTION["Properties"]:
        assert tracing_modes() <= {"Disabled"}, "SAM grants X-Ray to its generated role for any tracing mode"
    grants = [
        condition
        for statement, condition in statements()
        if any(a.startswith("xray:") for a in actions(statement))
    ]
    assert grants == ["TracingActive"]
    assert TEMPLATE["Conditions"]["TracingActive"] == {"Fn::Equals": [{"Ref": "Tracing"}, "Active"]}


def test_the_function_role_can_still_do_its_work():
    """What SAM's generated role had, now that the template writes the role itself."""
    if "Role" not in FUNCTION["Properties"]:
        pytest.skip("SAM generates the role (basic execution and SQS polling included)")
    queue = {"Fn::GetAtt": ["WorkQueue", "Arn"]}
    assert {"sqs:receivemessage", "sqs:deletemessage", "sqs:getqueueattributes"} <= granted_on(queue)
    assert {"logs:createlogstream", "logs:putlogevents"} <= granted_on(
        {"Fn::GetAtt": ["FunctionLogGroup", "Arn"]}
    )
    assert "sqs:sendmessage" in granted_on({"Fn::GetAtt": ["DeadLetterQueue", "Arn"]})
    role = RESOURCES[FUNCTION["Properties"]["Role"]["Fn::GetAtt"][0]]
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]


def test_the_function_may_send_a_message_back_to_its_work_queue():
    # A receive with too little time left is replaced by a copy that does not count it.
    assert {"sqs:sendmessage", "sqs:changemessagevisibility"} <= granted_on(
        {"Fn::GetAtt": ["WorkQueue", "Arn"]}
    )


def test_the_budget_alarm_watches_the_metric_the_function_emits_only_when_a_cap_is_set():
    alarm = RESOURCES["BudgetAlarm"]
    environment = FUNCTION["Properties"]["Environment"]["Variables"]
    assert alarm["Condition"] == "HasBudget"
    assert alarm["Properties"]["Namespace"] == environment["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Properties"]["MetricName"] == "BudgetUsedPercent"
    assert alarm["Properties"]["Dimensions"] == [
        {"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]}
    ]
    assert (alarm["Properties"]["Threshold"], alarm["Properties"]["Statistic"]) == (80, "Maximum")
    either_cap = TEMPLATE["Conditions"]["HasBudget"]["Fn::Or"]
    assert {str(cap) for cap in either_cap} == {
        str({"Fn::Not": [{"Fn::Equals": [{"Ref": name}, ""]}]})
        for name in ("DailyBudgetUsd", "MonthlyBudgetUsd")
    }


def dashboard_metrics() -> set[tuple[str, str]]:
    body = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    text, names = body[0], body[1]
    for name, value in {"AWS::Region": "us-east-1", **names}.items():
        text = text.replace("${" + name + "}", value if isinstance(value, str) else "q")
    found = set()
    for widget in json.loads(text)["widgets"]:
        for metric in widget["properties"]["metrics"]:
            if isinstance(metric[0], str):
                found.add((metric[0], metric[1]))
            else:
                found.update(re.findall(r"\{(\w+),[^}]*\} MetricName=\"(\w+)\"", metric[0]["expression"]))
    return found


def test_the_dashboard_shows_only_metrics_that_exist():
    emitted = {("Backdrop", metric.value) for metric in Metric}
    queues = {("AWS/SQS", "ApproximateAgeOfOldestMessage"), ("AWS/SQS", "ApproximateNumberOfMessagesVisible")}
    shown = dashboard_metrics()
    assert shown <= emitted | queues
    assert {"ImagesProcessed", "ImagesFailed", "ApiLatency", "EstimatedSpendUsd", "RemainingCredits"} <= {
        name for _, name in shown
    }


def test_the_failure_rate_alarm_divides_failed_by_everything_handled():
    alarm = RESOURCES["FailureRateAlarm"]["Properties"]
    stats = {query["Id"]: query["MetricStat"] for query in alarm["Metrics"] if "MetricStat" in query}
    assert {stat["Metric"]["MetricName"] for stat in stats.values()} == {"ImagesFailed", "ImagesProcessed"}
    assert all(stat["Period"] == 900 and stat["Stat"] == "Sum" for stat in stats.values())
    (rate,) = [query for query in alarm["Metrics"] if "Expression" in query]
    assert rate["Expression"] == "100 * FILL(failed, 0) / (FILL(failed, 0) + FILL(processed, 0))"
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (10, "GreaterThanThreshold")


def test_the_credits_alarm_exists_only_with_a_threshold():
    assert RESOURCES["CreditsAlarm"]["Condition"] == "HasCreditsAlarm"
    assert RESOURCES["CreditsAlarm"]["Properties"]["Threshold"] == {"Ref": "CreditsAlarmThreshold"}


def test_the_function_may_publish_its_events_on_the_named_bus_only():
    bus = {
        "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"
    }
    assert granted_on(bus) == {"events:putevents"}
    variables = FUNCTION["Properties"]["Environment"]["Variables"]
    assert variables["EVENT_BUS_NAME"] == {"Ref": "EventBusName"}


def test_the_webhook_gets_each_event_s_detail_with_retries_and_a_dead_letter_queue():
    webhook = [name for name, resource in RESOURCES.items() if resource.get("Condition") == "HasWebhook"]
    assert set(webhook) == {
        "WebhookConnection",
        "WebhookDestination",
        "WebhookDeadLetterQueue",
        "WebhookDeadLetterQueueAlarm",
        "WebhookDeadLetterQueuePolicy",
        "WebhookRole",
        "WebhookRule",
    }
    rule = RESOURCES["WebhookRule"]["Properties"]
    assert rule["EventPattern"] == {
        "source": ["backdrop"],
        "detail-type": ["Backdrop Image Processed", "Backdrop Image Failed"],
    }
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["WebhookDestination", "Arn"]}
    assert target["InputPath"] == "$.detail"
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 86400
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]}
    role = RESOURCES["WebhookRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert role == [
        {
            "Effect": "Allow",
            "Action": "events:InvokeApiDestination",
            "Resource": {"Fn::GetAtt": ["WebhookDestination", "Arn"]},
        }
    ]
    assert TEMPLATE["Conditions"]["HasWebhook"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "WebhookUrl"}, ""]}]}
