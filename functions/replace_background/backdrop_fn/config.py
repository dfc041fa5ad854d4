"""The function's configuration, read once from its environment (docs/REFERENCE.md#configuration)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from backdrop_fn.renditions import Rendition, check_renditions
from backdrop_fn.validation_messages import described
from backdrop_fn.vocabulary import ImageTransfer, RenderingSpeed

DEFAULT_API_URL = "https://api.segmind.com/v1/ideogram-3-replace-background"
_VERBATIM = frozenset({"OUTPUT_PREFIX", "output_prefix"})


_RENDITIONS = TypeAdapter(list[Rendition])


class ConfigurationError(ValueError):
    """The function's environment is incomplete or wrong: a deployment mistake, not an input one."""


class Settings(BaseModel):
    """Each field is read from the environment variable its alias names; blank means unset."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    output_bucket: str = Field(alias="OUTPUT_BUCKET")
    api_key_secret_id: str = Field(alias="API_KEY_SECRET_ID")
    dlq_url: str = Field(alias="DLQ_URL")
    idempotency_table: str = Field(alias="IDEMPOTENCY_TABLE")
    output_prefix: str = Field("", alias="OUTPUT_PREFIX")
    api_url: str = Field(DEFAULT_API_URL, alias="API_URL")
    default_prompt: str | None = Field(None, alias="DEFAULT_PROMPT")
    # Used when a sidecar gives no rendering_speed (and with DEFAULT_PROMPT): an operator's
    # choice between cheap and fine.
    default_rendering_speed: RenderingSpeed = Field(RenderingSpeed.DEFAULT, alias="DEFAULT_RENDERING_SPEED")
    max_image_bytes: int = Field(10 * 1024 * 1024, alias="MAX_IMAGE_BYTES", ge=1)
    # Larger API answers are refused, counted while they are read.
    max_answer_bytes: int = Field(50 * 1024 * 1024, alias="MAX_ANSWER_BYTES", ge=1)
    image_transfer: ImageTransfer = Field(ImageTransfer.URL, alias="IMAGE_TRANSFER")
    max_attempts: int = Field(5, alias="MAX_ATTEMPTS", ge=1)
    # How long a processed pair is remembered: duplicate events inside this window make no call.
    idempotency_ttl_seconds: int = Field(7 * 24 * 3600, alias="IDEMPOTENCY_TTL_SECONDS", ge=1)
    # Per-attempt bound on waiting for the API's answer; the Lambda deadline bounds it further.
    api_timeout_seconds: float = Field(120.0, alias="API_TIMEOUT_SECONDS", gt=0)
    # Retries inside one call (429, 5xx, timeouts) and the first backoff, doubled each time.
    api_max_retries: int = Field(4, alias="API_MAX_RETRIES", ge=0)
    api_backoff_seconds: float = Field(1.0, alias="API_BACKOFF_SECONDS", gt=0)
    # The work queue, so that a failed message can be given a backoff before its next receive,
    # and that backoff's first step (then doubled per receive, at most 15 minutes).
    work_queue_url: str | None = Field(None, alias="WORK_QUEUE_URL")
    retry_backoff_seconds: int = Field(60, alias="RETRY_BACKOFF_SECONDS", ge=1)
    # The only buckets an event may name (comma-separated); None: any bucket, for local use only.
    input_buckets: frozenset[str] | None = Field(None, alias="INPUT_BUCKETS")
    # How old an image must be before DEFAULT_PROMPT is used for it: its sidecar may still come.
    pair_settle_seconds: int = Field(0, alias="PAIR_SETTLE_SECONDS", ge=0, le=900)
    # Caps on the estimated spend of a UTC day and a UTC month, in US dollars; None: no cap, 0: no
    # call at all.
    daily_budget_usd: float | None = Field(None, alias="DAILY_BUDGET_USD", ge=0)
    monthly_budget_usd: float | None = Field(None, alias="MONTHLY_BUDGET_USD", ge=0)
    # The API plan's rate (5 a minute on Segmind's free plan, 50 on Pro), shared by every
    # container; None: requests are not paced.
    requests_per_minute: int | None = Field(None, alias="REQUESTS_PER_MINUTE", ge=1)
    # Where each outcome's completion event goes (CONTRACT.md §8): the account's default bus
    # unless a bus is named.
    event_bus_name: str = Field("default", alias="EVENT_BUS_NAME")
    # Renditions of every result whose sidecar asks for none (CONTRACT.md §9): a JSON list.
    default_renditions: tuple[Rendition, ...] = Field((), alias="DEFAULT_RENDITIONS")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        names = {field.alias for field in cls.model_fields.values()}
        values = {
            name: value for name, value in (os.environ if env is None else env).items() if name in names
        }
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise ConfigurationError(_explained(error)) from None

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        # OUTPUT_PREFIX keeps its spaces: it is part of every output key.
        trimmed = {
            name: value.strip() if isinstance(value, str) and name not in _VERBATIM else value
            for name, value in data.items()
        }
        return {name: value for name, value in trimmed.items() if value != ""}

    @field_validator("input_buckets", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        names = value.split(",") if isinstance(value, str) else value
        if not isinstance(names, list | set | frozenset | tuple):
            return value
        kept = frozenset(name.strip() for name in names if isinstance(name, str) and name.strip())
        return kept or None

    @model_validator(mode="after")
    def _outputs_apart_from_inputs(self) -> Settings:
        """Outputs in an input bucket are told apart by OUTPUT_PREFIX alone: without one, every
        result would be taken for an input and paid for again, without end."""
        if self.outputs_share_an_input_bucket and not self.output_prefix:
            raise ValueError(
                f"OUTPUT_BUCKET {self.output_bucket!r} is one of INPUT_BUCKETS, so OUTPUT_PREFIX "
                "may not be empty: results would be processed as inputs"
            )
        return self

    @property
    def outputs_share_an_input_bucket(self) -> bool:
        return self.input_buckets is not None and self.output_bucket in self.input_buckets

    @field_validator("default_renditions", mode="before")
    @classmethod
    def _renditions(cls, value: Any) -> Any:
        """A JSON list of renditions, checked as a sidecar's are, each problem named."""
        if not isinstance(value, str):
            return value
        try:
            renditions = _RENDITIONS.validate_json(value)
        except ValidationError as error:
            problems = described(error, Rendition).removeprefix(": ")
            raise ValueError(f"must be a JSON list of renditions: {problems}") from None
        return tuple(check_renditions(renditions))

    @field_validator("image_transfer", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("default_rendering_speed", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("api_url")
    @classmethod
    def _https_or_loopback(cls, url: str) -> str:
        """The key travels in a header: only over TLS, or to an emulator on this very machine."""
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname:
            return url
        if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
            return url
        raise ValueError(f"must be https:// (plain http only to a loopback emulator), not {url!r}")


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _explained(error: ValidationError) -> str:
    problems = error.errors(include_url=False)
    missing = [str(problem["loc"][0]) for problem in problems if problem["type"] == "missing"]
    if missing:
        return f"missing environment variable(s): {', '.join(missing)}"
    # A rule of the whole model (no field of its own) speaks for itself: its message names them.
    return "; ".join(
        f"{problem['loc'][0]} {_rule(problem)}" if problem["loc"] else _rule(problem) for problem in problems
    )


def _rule(problem: ErrorDetails) -> str:
    """The broken rule in words, as an operator reads it."""
    given = problem.get("input")
    context = problem.get("ctx", {})
    words = {
        "int_parsing": f"must be a whole number, not {given!r}",
        "float_parsing": f"must be a number, not {given!r}",
        "greater_than_equal": f"must be at least {context.get('ge')}, not {given}",
        "greater_than": f"must be more than {context.get('gt')}, not {given}",
        "value_error": str(context.get("error", problem["msg"])),
    }
    if problem["type"] == "enum":
        return f"must be one of {', '.join(_choices(str(problem['loc'][0])))}, not {given!r}"
    return words.get(problem["type"], problem["msg"])


def _choices(alias: str) -> list[str]:
    for field in Settings.model_fields.values():
        if (
            field.alias == alias
            and isinstance(field.annotation, type)
            and issubclass(field.annotation, StrEnum)
        ):
            return [choice.value for choice in field.annotation]
    return []
