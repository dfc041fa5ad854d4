"""The paid call: Segmind's Ideogram 3 replace-background endpoint over a pooled requests session.

The retry loop is written here rather than left to urllib3's ``Retry``: each attempt's read
timeout must shrink with the Lambda's remaining time (``Retry`` fixes one timeout for all
attempts), the wait must also honour Segmind's ``x-rate-limit-reset-at-utc``, and the number
of retries must be known on the failure path too, for the ``ApiRetries`` metric. urllib3 still
parses ``Retry-After``.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from backdrop_fn.adapters.pace import Unpaced
from backdrop_fn.adapters.segmind_answer import AnswerLimits, interpret
from backdrop_fn.errors import (
    ApiTimeout,
    AuthFailed,
    BackdropError,
    NotEnoughTime,
    NoTurnInTime,
    ServerError,
)
from backdrop_fn.ports import ApiImage, ApiKey, ApiKeySource, Metrics, RequestPace
from backdrop_fn.streams import JsonBody
from backdrop_fn.timing import Deadline, TimeBudget
from backdrop_fn.vocabulary import Metric

logger = logging.getLogger(__name__)

USER_AGENT = "backdrop/1.0 (+https://github.com/backdrop)"
# Every 5xx is server_error, which is retried inside the call.
_RETRY_STATUSES = frozenset({408, 429, *range(500, 600)})


@dataclass(frozen=True)
class RetryPolicy:
    """How often the call is retried and how long it waits; how much time each step needs is the
    invocation's ``TimeBudget``."""

    max_retries: int = 4
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 20.0


class SegmindClient:
    def __init__(
        self,
        url: str,
        keys: ApiKeySource,
        metrics: Metrics,
        *,
        read_timeout_seconds: float = 120.0,
        max_answer_bytes: int = 50 * 1024 * 1024,
        policy: RetryPolicy | None = None,
        budget: TimeBudget | None = None,
        pace: RequestPace | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._keys = keys
        self._metrics = metrics
        self._read_timeout = read_timeout_seconds
        self._max_answer_bytes = max_answer_bytes
        self._policy = policy or RetryPolicy()
        self._budget = budget or TimeBudget()
        self._pace = pace or Unpaced()
        self._session = session or pooled_session()
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._wall_clock = wall_clock
        # The last `x-remaining-credits` this container saw, and when (epoch seconds).
        self.last_remaining_credits: tuple[float, float] | None = None

    def replace_background(self, payload: dict[str, Any], deadline: Deadline) -> ApiImage:
        key = self._keys.current()
        response = self._post(payload, key, deadline)
        if response.status_code in (401, 403):
            # Once per call: a rotated key is picked up at once, a wrong one is not retried forever.
            fresh = self._keys.refreshed()
            if fresh.value != key.value:
                response.close()
                key = fresh
                response = self._post(payload, key, deadline)
        limits = AnswerLimits(deadline, self._budget.write_reserve_seconds, self._max_answer_bytes)
        return interpret(response, key, limits)

    def _post(self, payload: dict[str, Any], key: ApiKey, deadline: Deadline) -> requests.Response:
        """POST with retries of 429, 5xx and timeouts, never past the deadline."""
        headers = {
            "x-api-key": key.value,
            "Content-Type": "application/json",
            "Accept": "image/png, image/jpeg, image/webp, application/json",
            "User-Agent": USER_AGENT,
        }
        retries, answer = 0, None
        while True:
            if not self._turn_for(answer, deadline, retries):
                retries -= 1  # the retry was not made: the last answer stands, a counted attempt
                break
            if isinstance(answer, requests.Response):
                answer.close()  # the retry goes now: the answer it replaces is done with
            time_left = deadline.remaining() - self._budget.write_reserve_seconds
            timeout = (self._budget.connect_timeout_seconds, min(self._read_timeout, time_left))
            # A new body each attempt: its inline images are streams, read once.
            answer = self._attempt(JsonBody(payload), headers, timeout)
            if isinstance(answer, requests.Response) and answer.status_code not in _RETRY_STATUSES:
                break
            wait = self._wait_before_retry(answer, retries)
            if not self._may_retry(deadline, wait, retries):
                break
            _log_retry(answer, wait, retries)
            self._sleep(wait)
            retries += 1
        self._metrics.add(Metric.API_RETRIES, retries)
        if isinstance(answer, BackdropError):
            raise answer
        # The loop ends only after a request (or raises): a response, whose retryable status the
        # caller turns into its error class.
        return cast(requests.Response, answer)

    def _turn_for(
        self, last_answer: requests.Response | BackdropError | None, deadline: Deadline, retries: int
    ) -> bool:
        """Whether the next request has its turn. With none in time, the first request's message
        goes back to the queue uncounted (NoTurnInTime); a retry is not made (False), and the last
        answer counts as the attempt: a message whose request was sent must come nearer its last
        attempt, or a paced-out retry would loop, paying, for ever."""
        try:
            self._take_turn(deadline)
        except NoTurnInTime:
            if last_answer is None:
                self._metrics.add(Metric.API_RETRIES, retries)
                raise
            return False
        except BackdropError:
            self._metrics.add(Metric.API_RETRIES, retries)
            raise
        return True

    def _take_turn(self, deadline: Deadline) -> None:
        """Every request, a retry too, waits for its turn under REQUESTS_PER_MINUTE, if one comes
        while a request would still have time; it is sent only with time left for it."""
        time_left = deadline.remaining() - self._budget.write_reserve_seconds
        if time_left <= self._budget.connect_timeout_seconds:
            raise NotEnoughTime("not enough Lambda time left to call the API")
        room = time_left - self._budget.min_attempt_seconds
        self._pace.take_turn(max(0.0, min(room, self._budget.max_turn_wait_seconds)))

    def _may_retry(self, deadline: Deadline, wait: float, retries: int) -> bool:
        time_after_wait = deadline.remaining() - wait - self._budget.write_reserve_seconds
        return (
            retries < self._policy.max_retries
            and wait <= self._budget.max_server_wait_seconds
            and time_after_wait >= self._budget.min_attempt_seconds
        )

    def _attempt(
        self, body: JsonBody, headers: dict[str, str], timeout: tuple[float, float]
    ) -> requests.Response | BackdropError:
        """One POST: the response (whatever its status), or the transport failure."""
        started = self._clock()
        try:
            # No redirects: requests would carry x-api-key to wherever the redirect points.
            response = self._session.post(
                self._url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True
            )
        except requests.exceptions.InvalidHeader:
            return AuthFailed("the API key holds characters that cannot be sent in a header")
        except requests.Timeout:
            return ApiTimeout(f"the API did not answer within {timeout[1]:.0f} s")
        except requests.ConnectionError as error:
            return ServerError(f"could not reach the API: {type(error).__name__}: {_cause(error)}")
        except requests.RequestException as error:
            return ServerError(f"the API connection failed: {type(error).__name__}: {_cause(error)}")
        self._metrics.add(Metric.API_LATENCY, (self._clock() - started) * 1000.0)
        credits = _finite(response.headers.get("x-remaining-credits"))
        if credits is not None:
            self._metrics.add(Metric.REMAINING_CREDITS, credits)
            self.last_remaining_credits = (credits, self._wall_clock())
        return response

    def _wait_before_retry(self, answer: requests.Response | BackdropError, retries: int) -> float:
        if isinstance(answer, requests.Response):
            asked = [w for w in (self._retry_after(answer), self._reset_wait(answer)) if w is not None]
            if asked:
                return max(asked)
        ceiling = min(self._policy.backoff_max_seconds, self._policy.backoff_base_seconds * 2**retries)
        return ceiling * (0.5 + self._jitter() / 2)  # "equal jitter": spread, but never zero

    @staticmethod
    def _retry_after(response: requests.Response) -> float | None:
        value = response.headers.get("Retry-After")
        if not value:
            return None
        try:
            return Retry().parse_retry_after(value)
        except InvalidHeader:
            return None

    def _reset_wait(self, response: requests.Response) -> float | None:
        """Segmind tells when the rate-limit window resets: ISO 8601 time or Unix seconds, UTC."""
        value = response.headers.get("x-rate-limit-reset-at-utc")
        if not value:
            return None
        try:
            reset_at = float(value)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                return None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            reset_at = parsed.timestamp()
        return max(0.0, reset_at - self._wall_clock())


def _log_retry(answer: requests.Response | BackdropError, wait: float, retries: int) -> None:
    failed = (
        {"status": answer.status_code} if isinstance(answer, requests.Response) else {"error": answer.message}
    )
    logger.info(
        "API attempt failed, retrying", extra={**failed, "wait_seconds": round(wait, 3), "retry": retries + 1}
    )


def _finite(value: str | None) -> float | None:
    """A header's number, or None: NaN and infinities too, which no EMF line can carry as JSON."""
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _cause(error: Exception) -> str:
    """The innermost reason of a transport error, without the URL (which holds no key, but is long)."""
    while error.__context__ is not None and error.__context__ is not error:
        error = error.__context__  # type: ignore[assignment]
    return type(error).__name__


def pooled_session(pool_size: int = 10) -> requests.Session:
    """One keep-alive pool per container; retries are ours, so the adapter makes none."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
