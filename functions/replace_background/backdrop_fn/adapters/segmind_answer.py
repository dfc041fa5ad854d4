"""What the API answered: the image of a 200 as it arrives, or the error class of any other status.

Any text that comes from the API is cut short and has the key masked before it reaches an error
message (and so a log line or a DLQ record).
"""

from __future__ import annotations

import requests
from urllib3.exceptions import HTTPError, ReadTimeoutError

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


def interpret(response: requests.Response, key: ApiKey) -> ApiImage:
    """The image of a 200, as a stream from its first byte; any other status as its error class."""
    status = response.status_code
    if status == 200:
        # The image is not read here: its first bytes tell its type, the rest is read by the
        # caller as it arrives (a 20 MB result is never held whole).
        response.raw.decode_content = True
        head = response.raw.read(SNIFF_BYTES)
        image_type = sniff(head)
        if image_type is None:
            response.close()
            # A 200 is a charged call: retrying it would pay again for the same answer.
            content_type = response.headers.get("Content-Type", "no content type")
            raise InternalError(
                f"the API answered 200 with {content_type}, not a JPEG, PNG or WebP image",
                http_status=200,
            )
        return ApiImage(image_type=image_type, body=_AnswerBody(head, response.raw))
    error_class = _ERRORS_BY_STATUS.get(status) or (ServerError if status >= 500 else BadRequest)
    raise error_class(f"API {status}: {_error_text(response, key)}", http_status=status)


class _AnswerBody(CountingStream):
    """The answer's bytes as they arrive: a transfer that breaks off is the API's failure."""

    def read(self, size: int = -1) -> bytes:
        try:
            return super().read(size)
        except ReadTimeoutError:
            raise ApiTimeout("the API's answer stalled before its end") from None
        except (HTTPError, OSError) as error:
            raise ServerError(f"the API's answer broke off before its end: {type(error).__name__}") from None


def _error_text(response: requests.Response, key: ApiKey) -> str:
    """The API's ``{"error": "…"}`` text, or the start of whatever else it sent; the key masked."""
    try:
        document = response.json()
    except ValueError:
        document = None
    if isinstance(document, dict) and document.get("error"):
        text = str(document["error"])
    else:
        text = response.text.strip() or response.reason or "no details"
    if key.value:
        text = text.replace(key.value, "***")  # before cutting, so no part of the key survives
    return text[:500]
