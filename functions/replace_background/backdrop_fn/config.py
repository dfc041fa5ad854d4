"""The function's configuration, read once from its environment (CONTRACT.md §4)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_API_URL = "https://api.segmind.com/v1/ideogram-3-replace-background"
IMAGE_TRANSFER_MODES = ("url", "base64")
RENDERING_SPEEDS = ("TURBO", "DEFAULT", "QUALITY")


class ConfigurationError(ValueError):
    """The function's environment is incomplete or wrong: a deployment mistake, not an input one."""


@dataclass(frozen=True)
class Settings:
    output_bucket: str
    api_key_secret_id: str
    dlq_url: str
    idempotency_table: str
    output_prefix: str = ""
    api_url: str = DEFAULT_API_URL
    default_prompt: str | None = None
    # Used when a sidecar gives no rendering_speed (and with DEFAULT_PROMPT): an operator's
    # choice between cheap and fine, "DEFAULT" as CONTRACT.md §1 says unless set.
    default_rendering_speed: str = "DEFAULT"
    max_image_bytes: int = 10 * 1024 * 1024
    image_transfer: str = "url"
    max_attempts: int = 5
    # How long a processed pair is remembered: duplicate events inside this window make no call.
    idempotency_ttl_seconds: int = 7 * 24 * 3600
    # Per-attempt bound on waiting for the API's answer; the Lambda deadline bounds it further.
    api_timeout_seconds: float = 120.0
    # Retries inside one call (429, 5xx, timeouts) and the first backoff, doubled each time.
    api_max_retries: int = 4
    api_backoff_seconds: float = 1.0
    # The work queue, so that a failed message can be given a backoff before its next receive,
    # and that backoff's first step (then doubled per receive, at most 15 minutes).
    work_queue_url: str | None = None
    retry_backoff_seconds: int = 60

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [
            name
            for name in ("OUTPUT_BUCKET", "API_KEY_SECRET_ID", "DLQ_URL", "IDEMPOTENCY_TABLE")
            if not env.get(name)
        ]
        if missing:
            raise ConfigurationError(f"missing environment variable(s): {', '.join(missing)}")
        image_transfer = env.get("IMAGE_TRANSFER", "url").strip().lower() or "url"
        if image_transfer not in IMAGE_TRANSFER_MODES:
            raise ConfigurationError(
                f"IMAGE_TRANSFER must be one of {', '.join(IMAGE_TRANSFER_MODES)}, not {image_transfer!r}"
            )
        api_url = env.get("API_URL") or DEFAULT_API_URL
        if not _is_https_or_loopback(api_url):
            raise ConfigurationError(
                f"API_URL must be https:// (plain http only to a loopback emulator), not {api_url!r}"
            )
        speed = env.get("DEFAULT_RENDERING_SPEED", "").strip().upper() or "DEFAULT"
        if speed not in RENDERING_SPEEDS:
            raise ConfigurationError(
                f"DEFAULT_RENDERING_SPEED must be one of {', '.join(RENDERING_SPEEDS)}, not {speed!r}"
            )
        return cls(
            output_bucket=env["OUTPUT_BUCKET"],
            api_key_secret_id=env["API_KEY_SECRET_ID"],
            dlq_url=env["DLQ_URL"],
            idempotency_table=env["IDEMPOTENCY_TABLE"],
            output_prefix=env.get("OUTPUT_PREFIX", ""),
            api_url=api_url,
            default_prompt=(env.get("DEFAULT_PROMPT") or "").strip() or None,
            default_rendering_speed=speed,
            max_image_bytes=_whole_number(env, "MAX_IMAGE_BYTES", cls.max_image_bytes),
            image_transfer=image_transfer,
            max_attempts=_whole_number(env, "MAX_ATTEMPTS", cls.max_attempts),
            idempotency_ttl_seconds=_whole_number(
                env, "IDEMPOTENCY_TTL_SECONDS", cls.idempotency_ttl_seconds
            ),
            api_timeout_seconds=_seconds(env, "API_TIMEOUT_SECONDS", cls.api_timeout_seconds),
            api_max_retries=_whole_number(env, "API_MAX_RETRIES", cls.api_max_retries, minimum=0),
            api_backoff_seconds=_seconds(env, "API_BACKOFF_SECONDS", cls.api_backoff_seconds),
            work_queue_url=env.get("WORK_QUEUE_URL") or None,
            retry_backoff_seconds=_whole_number(env, "RETRY_BACKOFF_SECONDS", cls.retry_backoff_seconds),
        )


def _is_https_or_loopback(url: str) -> bool:
    """The key travels in a header: only over TLS, or to an emulator on this very machine."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    try:
        return parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def _whole_number(env: Mapping[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, not {value}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not value > 0:
        raise ConfigurationError(f"{name} must be more than 0, not {value}")
    return value
