"""The function's environment: defaults, and clear errors for a wrong deployment.

See docs/REFERENCE.md#environment-variables.
"""

from __future__ import annotations

import pytest

from backdrop_fn.config import DEFAULT_API_URL, ConfigurationError, Settings

REQUIRED = {"OUTPUT_BUCKET": "out", "API_KEY_SECRET_ID": "s", "DLQ_URL": "q", "IDEMPOTENCY_TABLE": "t"}


def test_contract_defaults():
    settings = Settings.from_env(REQUIRED)
    assert settings.api_url == DEFAULT_API_URL
    assert settings.output_prefix == ""
    assert settings.default_prompt is None
    assert settings.max_image_bytes == 10_485_760
    assert settings.image_transfer == "url"
    assert settings.max_attempts == 5
    assert settings.requests_per_minute is None  # unpaced


def test_blank_default_prompt_means_wait_for_the_sidecar():
    assert Settings.from_env({**REQUIRED, "DEFAULT_PROMPT": "   "}).default_prompt is None


def test_missing_variables_are_all_named():
    with pytest.raises(ConfigurationError, match="OUTPUT_BUCKET, DLQ_URL"):
        Settings.from_env({"API_KEY_SECRET_ID": "s", "IDEMPOTENCY_TABLE": "t"})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("IMAGE_TRANSFER", "ftp", "IMAGE_TRANSFER must be one of url, base64"),
        ("MAX_ATTEMPTS", "three", "MAX_ATTEMPTS must be a whole number"),
        ("MAX_IMAGE_BYTES", "0", "MAX_IMAGE_BYTES must be at least 1"),
        ("API_BACKOFF_SECONDS", "-1", "API_BACKOFF_SECONDS must be more than 0"),
        ("DEFAULT_RENDERING_SPEED", "FAST", "DEFAULT_RENDERING_SPEED must be one of TURBO"),
        ("REQUESTS_PER_MINUTE", "0", "REQUESTS_PER_MINUTE must be at least 1"),
        ("REQUESTS_PER_MINUTE", "4.5", "REQUESTS_PER_MINUTE must be a whole number"),
    ],
)
def test_wrong_values_are_explained(name: str, value: str, message: str):
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env({**REQUIRED, name: value})


@pytest.mark.parametrize("url", ["http://api.segmind.com/v1/x", "ftp://x", "not a url"])
def test_the_api_url_must_be_https_unless_it_is_a_local_emulator(url: str):
    with pytest.raises(ConfigurationError, match="API_URL must be https"):
        Settings.from_env({**REQUIRED, "API_URL": url})


@pytest.mark.parametrize(
    "url", ["https://api.segmind.com/v1/x", "http://127.0.0.1:8080/v1/x", "http://localhost/x"]
)
def test_https_and_loopback_api_urls_are_accepted(url: str):
    assert Settings.from_env({**REQUIRED, "API_URL": url}).api_url == url


def test_an_output_prefix_keeps_its_spaces_however_it_is_given():
    assert Settings.from_env({**REQUIRED, "OUTPUT_PREFIX": " p/ "}).output_prefix == " p/ "
    assert Settings.model_validate({**REQUIRED, "output_prefix": " p/ "}).output_prefix == " p/ "


def test_a_blank_required_variable_is_missing():
    with pytest.raises(ConfigurationError, match=r"missing environment variable.*OUTPUT_BUCKET"):
        Settings.from_env({**REQUIRED, "OUTPUT_BUCKET": "  "})


@pytest.mark.parametrize(
    ("value", "buckets"),
    [
        ("backdrop-in", frozenset({"backdrop-in"})),
        (" in-1 , in-2,,", frozenset({"in-1", "in-2"})),
        ("  ", None),
        (" , ", None),
    ],
)
def test_input_buckets_are_a_comma_separated_set_and_blank_is_unset(value: str, buckets: frozenset | None):
    assert Settings.from_env({**REQUIRED, "INPUT_BUCKETS": value}).input_buckets == buckets


def test_without_input_buckets_any_bucket_is_allowed():
    assert Settings.from_env(REQUIRED).input_buckets is None


def test_outputs_in_an_input_bucket_need_an_output_prefix():
    shared = {**REQUIRED, "INPUT_BUCKETS": f"other,{REQUIRED['OUTPUT_BUCKET']}"}
    with pytest.raises(ConfigurationError, match="OUTPUT_PREFIX may not be empty"):
        Settings.from_env(shared)
    with pytest.raises(ConfigurationError, match="OUTPUT_PREFIX may not be empty"):
        Settings.from_env({**shared, "OUTPUT_PREFIX": ""})
    assert Settings.from_env({**shared, "OUTPUT_PREFIX": "backdrop/"}).outputs_share_an_input_bucket


def test_outputs_in_a_bucket_of_their_own_need_no_prefix():
    settings = Settings.from_env({**REQUIRED, "INPUT_BUCKETS": "inputs"})
    assert not settings.outputs_share_an_input_bucket
    assert settings.output_prefix == ""
