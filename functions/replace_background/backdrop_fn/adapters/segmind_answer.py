"""What the API answered: the image of a 200 as it arrives, or the error class of any other status.

Every text that comes from the API (a header, the reason phrase, the body) reaches an error
message, and so a log line or a DLQ record, only through ``_Said``: printable, the key masked,
cut short. An error body is read only up to ``ERROR_BODY_BYTES`` of decoded content, never
inflated beyond that, and its connection is closed afterwards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import requests
from urllib3.exceptions import HTTPError, ReadTimeoutError
from urllib3.response import HTTPResponse

from backdrop_fn.errors import (
    ApiNotFound,
    ApiTimeout,
    AuthFailed,
    BackdropError,
    BadRequest,
    InsufficientCredits,
    InternalError,
    RateLimited,
    ServerError,
)
from backdrop_fn.images import SNIFF_BYTES, sniff
from backdrop_fn.ports import ApiImage, ApiKey
from backdrop_fn.streams import CountingStream
from backdrop_fn.timing import Deadline

_ERRORS_BY_STATUS: dict[int, type[BackdropError]] = {
    400: BadRequest,
    422: BadRequest,
    401: AuthFailed,
    403: AuthFailed,
    404: ApiNotFound,
    402: InsufficientCredits,
    406: InsufficientCredits,
    408: ApiTimeout,
    429: RateLimited,
}
# The most of an error body that is read (decoded): its start is all a message quotes.
ERROR_BODY_BYTES = 64 * 1024
# The most of one text from the API that a message quotes.
QUOTED_CHARS = 500
# How much of an answer one read asks for when the caller wants it all.
_PIECE = 1024 * 1024
# Below this share of printable characters, a body is not text.
_TEXT_SHARE = 0.85


@dataclass(frozen=True)
class AnswerLimits:
    """How long and how large an answer may be: it is read only while both hold."""

    deadline: Deadline
    # Kept free after the answer for the output write or the DLQ record.
    reserve_seconds: float
    max_bytes: int


def interpret(response: requests.Response, key: ApiKey, limits: AnswerLimits) -> ApiImage:
    """The image of a 200, as a stream from its first byte; any other status as its error class."""
    status = response.status_code
    said = _Said(response, key)
    if status == 200:
        # The image is not read here: its first bytes tell its type, the rest is read by the
        # caller as it arrives (a 20 MB result is never held whole).
        body = _AnswerBody(response.raw, limits)
        head = body.read_at_least(SNIFF_BYTES)
        image_type = sniff(head)
        if image_type is None:
            response.close()
            # A 200 is a charged call: retrying it would pay again for the same answer.
            sent = said.header("Content-Type", "no content type") if head else "an empty body"
            raise InternalError(
                f"the API answered 200 with {sent}, not a JPEG, PNG or WebP image", http_status=200
            )
        return ApiImage(image_type=image_type, body=CountingStream(head, body))
    error_class = _ERRORS_BY_STATUS.get(status) or (ServerError if status >= 500 else BadRequest)
    raise error_class(f"API {status}: {said.error_text()}", http_status=status)


class _AnswerBody(CountingStream):
    """The answer's bytes as they arrive, bounded by the deadline and by ``MAX_ANSWER_BYTES``.

    A transfer that breaks off, stalls or drips past the deadline is the API's failure. Each read
    takes what has arrived (``read1``), so a byte every few seconds cannot hold a read open past
    the deadline: the socket's own timeout bounds a stall, and the deadline is checked between reads.
    """

    def __init__(self, raw: HTTPResponse, limits: AnswerLimits) -> None:
        super().__init__(b"", _Arriving(raw))
        self._limits = limits

    def read_at_least(self, size: int) -> bytes:
        """The first ``size`` bytes, or all there are when the answer is shorter."""
        data = b""
        while len(data) < size:
            piece = self.read(size - len(data))
            if not piece:
                break
            data += piece
        return data

    def read(self, size: int = -1) -> bytes:
        if size < 0:  # to the end, as a file's read() means, still piece by piece
            return b"".join(iter(lambda: self.read(_PIECE), b""))
        # Every failure here follows a 200: the call was charged (``http_status`` says so).
        try:
            data = super().read(size)
        except ReadTimeoutError:
            raise ApiTimeout("the API's answer stalled before its end", http_status=200) from None
        except (HTTPError, OSError) as error:
            raise ServerError(
                f"the API's answer broke off before its end: {type(error).__name__}", http_status=200
            ) from None
        if self.count > self._limits.max_bytes:
            # Charged, and no use: another call would most likely bring the same again.
            raise InternalError(
                f"the API's answer is over MAX_ANSWER_BYTES ({self._limits.max_bytes:,} bytes)",
                http_status=200,
            )
        if data and self._limits.deadline.remaining() < self._limits.reserve_seconds:
            raise ApiTimeout(
                "the API's answer was still arriving at the invocation's deadline", http_status=200
            )
        return data


class _Arriving:
    """A response read as its bytes arrive: never waiting to fill a larger read."""

    def __init__(self, raw: HTTPResponse) -> None:
        self._raw = raw

    def read(self, size: int = -1, /) -> bytes:
        return self._raw.read1(None if size < 0 else size, decode_content=True)

    def close(self) -> None:
        self._raw.close()


class _Said:
    """What the API said, as text a message may quote: the one way from the answer to a message."""

    def __init__(self, response: requests.Response, key: ApiKey) -> None:
        self._response = response
        self._key = key.value

    def quote(self, text: str) -> str:
        """Printable, on one line, the key masked (before cutting: no part of it survives), cut."""
        printable = "".join(c if c.isprintable() and c != "\ufffd" else " " for c in text)
        text = " ".join(printable.split())
        if self._key:
            text = text.replace(self._key, "***")
        return text[:QUOTED_CHARS]

    def header(self, name: str, default: str) -> str:
        return self.quote(self._response.headers.get(name, "")) or default

    def error_text(self) -> str:
        """The ``{"error": "…"}`` text, the start of any other text, a binary body described, or
        the reason phrase."""
        body = _error_body(self._response)
        text = _as_text(body, self._response.encoding)
        if text is None:
            return f"a binary body ({self.header('Content-Type', 'no content type')}, {self._size(body)})"
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if isinstance(document, dict) and document.get("error"):
            text = str(document["error"])
        return self.quote(text) or self.quote(self._response.reason or "") or "no details"

    def _size(self, body: bytes) -> str:
        declared = self._response.headers.get("Content-Length", "")
        if declared.isdigit():
            return f"{int(declared)} bytes"
        return f"{len(body)} bytes" if len(body) < ERROR_BODY_BYTES else f"over {ERROR_BODY_BYTES} bytes"


def _error_body(response: requests.Response) -> bytes:
    """The start of an error body, decoded (gzip inflated only that far); the connection closed."""
    try:
        return response.raw.read(ERROR_BODY_BYTES, decode_content=True) or b""
    except (HTTPError, OSError):
        return b""  # a broken, stalled or undecodable error body: the status still says enough
    finally:
        response.close()


def _as_text(body: bytes, encoding: str | None) -> str | None:
    """The body as text in its declared charset (else UTF-8), or None when it is not text."""
    if sniff(body[:SNIFF_BYTES]) is not None:
        return None
    try:
        text = body.decode(encoding or "utf-8", errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    readable = sum(1 for c in text if (c.isprintable() or c.isspace()) and c != "\ufffd")
    return text if readable >= _TEXT_SHARE * len(text) else None
