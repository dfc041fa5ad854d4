"""The local stack reads its settings from template.yaml, so they change when the template does."""

from __future__ import annotations

from pathlib import Path

import pytest

from backdrop.local.template import load_spec, resolve, resolve_environment

TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"


def test_queue_settings_come_from_the_template():
    spec = load_spec(TEMPLATE)
    work = spec.queues[spec.work_queue]
    assert work.delay_seconds == 0  # a pair starts as soon as both halves exist
    assert work.visibility_timeout >= 6 * spec.function_timeout
    assert work.max_receive_count == 10
    assert work.dead_letter_target == "DeadLetterQueue"


def test_event_source_settings_come_from_the_template():
    spec = load_spec(TEMPLATE)
    assert (spec.batch_size, spec.maximum_concurrency, spec.function_timeout) == (1, 2, 180)
    assert spec.handler == "app.lambda_handler"
    assert (spec.code_uri / "app.py").is_file()


def test_parameter_overrides_apply_like_sam_deploy():
    spec = load_spec(TEMPLATE, {"PairSettleSeconds": "3", "MaximumConcurrency": "7"})
    names = {"OutputBucket": "o", "DeadLetterQueue": "d", "WorkQueue": "w", "IdempotencyTable": "t"}
    assert (
        resolve_environment(spec, names | {"ApiKeySecret": "s", "InputBucket": "i"})["PAIR_SETTLE_SECONDS"]
        == "3"
    )
    assert spec.maximum_concurrency == 7


def test_unknown_parameters_are_refused():
    with pytest.raises(ValueError, match="PairSettle"):
        load_spec(TEMPLATE, {"PairSettle": "0"})


IMAGE_SUFFIXES_AND_JSON = [".jpg", ".jpeg", ".png", ".webp", ".json"]
NAMES = {"InputBucket": "backdrop-in-local", "OutputBucket": "backdrop-out-local"}


def input_rule(parameters: dict[str, str] | None = None) -> tuple[list[str], list[dict]]:
    """The input rule's bucket names and key filters, with these parameters."""
    spec = load_spec(TEMPLATE, parameters)
    pattern = resolve(spec, spec.input_rule.event_pattern, NAMES)
    assert (pattern["source"], pattern["detail-type"]) == (["aws.s3"], ["Object Created"])
    assert spec.input_rule.target == spec.work_queue
    return pattern["detail"]["bucket"]["name"], pattern["detail"]["object"]["key"]


def test_the_stack_s_own_bucket_sends_image_suffixes_and_json_in_any_letter_case():
    buckets, keys = input_rule()
    assert buckets == ["backdrop-in-local"]
    assert keys == [{"suffix": {"equals-ignore-case": suffix}} for suffix in IMAGE_SUFFIXES_AND_JSON]
    assert load_spec(TEMPLATE).eventbridge_buckets == ("InputBucket",)  # its events go to EventBridge


def test_an_existing_bucket_sends_its_events_for_the_keys_under_the_input_prefix():
    buckets, keys = input_rule({"ExistingInputBucket": "shop-assets", "InputPrefix": "backdrop/in/"})
    assert buckets == ["shop-assets"]
    assert keys == [{"prefix": "backdrop/in/"}]


def test_an_existing_bucket_without_a_prefix_sends_only_image_suffixes_and_json():
    buckets, keys = input_rule({"ExistingInputBucket": "shop-assets"})
    assert buckets == ["shop-assets"]
    assert keys == [{"suffix": {"equals-ignore-case": suffix}} for suffix in IMAGE_SUFFIXES_AND_JSON]


def test_outputs_in_the_input_bucket_never_reach_the_queue_through_the_rule():
    same_bucket = {
        "ExistingInputBucket": "shop-assets",
        "OutputToInputBucket": "true",
        "OutputPrefix": "done/",
    }
    _, keys = input_rule(same_bucket)
    assert keys == [{"anything-but": {"prefix": "done/"}}]


def test_an_existing_bucket_is_neither_created_nor_changed_by_the_stack():
    spec = load_spec(TEMPLATE, {"ExistingInputBucket": "shop-assets"})
    assert spec.buckets == ("OutputBucket",)
    assert spec.eventbridge_buckets == ()  # its owner turns EventBridge on (enable-eventbridge)
    same_bucket = load_spec(
        TEMPLATE, {"ExistingInputBucket": "shop-assets", "OutputToInputBucket": "true", "OutputPrefix": "o/"}
    )
    assert same_bucket.buckets == ()


def test_the_function_is_told_the_existing_bucket_for_inputs_and_outputs():
    names = {"OutputBucket": "out", "DeadLetterQueue": "d", "WorkQueue": "w", "IdempotencyTable": "t"}
    names |= {"ApiKeySecret": "s"}
    existing = resolve_environment(load_spec(TEMPLATE, {"ExistingInputBucket": "shop-assets"}), names)
    assert (existing["INPUT_BUCKETS"], existing["OUTPUT_BUCKET"]) == ("shop-assets", "out")
    same_bucket = {"ExistingInputBucket": "shop-assets", "OutputToInputBucket": "true", "OutputPrefix": "o/"}
    shared = resolve_environment(load_spec(TEMPLATE, same_bucket), names)
    assert (shared["INPUT_BUCKETS"], shared["OUTPUT_BUCKET"], shared["OUTPUT_PREFIX"]) == (
        "shop-assets",
        "shop-assets",
        "o/",
    )


def test_the_function_environment_resolves_to_local_names():
    spec = load_spec(TEMPLATE, {"DefaultPrompt": "studio", "ImageTransfer": "base64"})
    names = {
        "OutputBucket": "out",
        "DeadLetterQueue": "http://dlq",
        "WorkQueue": "http://work",
        "IdempotencyTable": "table",
        "ApiKeySecret": "secret-arn",
        "InputBucket": "in",
    }
    env = resolve_environment(spec, names)
    assert env["OUTPUT_BUCKET"] == "out"
    assert env["INPUT_BUCKETS"] == "in"  # events for any other bucket are refused
    assert env["DLQ_URL"] == "http://dlq"
    assert env["API_KEY_SECRET_ID"] == "secret-arn"  # the created secret, as no ARN was passed
    assert env["DEFAULT_PROMPT"] == "studio"
    assert env["IMAGE_TRANSFER"] == "base64"
    assert env["MAX_ATTEMPTS"] == "5"
    assert env["PAIR_SETTLE_SECONDS"] == "10"  # only images that would take DEFAULT_PROMPT wait


def test_the_spend_caps_reach_the_function_and_are_empty_unless_given():
    names = {"OutputBucket": "o", "DeadLetterQueue": "d", "WorkQueue": "w", "IdempotencyTable": "t"}
    names |= {"ApiKeySecret": "s", "InputBucket": "i"}
    uncapped = resolve_environment(load_spec(TEMPLATE), names)
    assert (uncapped["DAILY_BUDGET_USD"], uncapped["MONTHLY_BUDGET_USD"]) == ("", "")
    capped = resolve_environment(load_spec(TEMPLATE, {"DailyBudgetUsd": "7.50"}), names)
    assert (capped["DAILY_BUDGET_USD"], capped["MONTHLY_BUDGET_USD"]) == ("7.50", "")


def test_the_plan_s_rate_reaches_the_function_and_no_pacing_is_the_default():
    names = {"OutputBucket": "o", "DeadLetterQueue": "d", "WorkQueue": "w", "IdempotencyTable": "t"}
    names |= {"ApiKeySecret": "s", "InputBucket": "i"}
    assert resolve_environment(load_spec(TEMPLATE), names)["REQUESTS_PER_MINUTE"] == ""
    paced = resolve_environment(load_spec(TEMPLATE, {"RequestsPerMinute": "50"}), names)
    assert paced["REQUESTS_PER_MINUTE"] == "50"


def test_the_stacks_default_renditions_reach_the_function_as_the_json_given():
    names = {"OutputBucket": "o", "DeadLetterQueue": "d", "WorkQueue": "w", "IdempotencyTable": "t"}
    names |= {"ApiKeySecret": "s", "InputBucket": "i"}
    assert resolve_environment(load_spec(TEMPLATE), names)["DEFAULT_RENDITIONS"] == ""
    renditions = '[{"format": "jpeg", "width": 2000, "height": 2000, "fit": "pad"}]'
    given = resolve_environment(load_spec(TEMPLATE, {"DefaultRenditions": renditions}), names)
    assert given["DEFAULT_RENDITIONS"] == renditions


def test_the_buckets_are_versioned_as_the_template_says():
    spec = load_spec(TEMPLATE)
    assert set(spec.versioned_buckets) == {"InputBucket", "OutputBucket"}


def test_a_resource_whose_condition_is_false_is_not_made_locally():
    assert "WebhookDeadLetterQueue" not in load_spec(TEMPLATE).queues
    with_webhook = load_spec(TEMPLATE, {"WebhookUrl": "https://shop.example/backdrop"})
    assert "WebhookDeadLetterQueue" in with_webhook.queues


def test_a_webhook_secret_without_a_webhook_is_refused_before_anything_is_made():
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:hook-AbC123"
    with pytest.raises(ValueError, match="give WebhookUrl too"):
        load_spec(TEMPLATE, {"WebhookSecretArn": secret})
    assert load_spec(TEMPLATE, {"WebhookSecretArn": secret, "WebhookUrl": "https://shop.example/hook"})
