"""Streams that keep large images out of memory: a JSON request body with base64 images encoded
as it is sent, and a response body read once from its first bytes to its last."""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

from backdrop_fn.ports import InlineImage, Readable

# Read from S3 in multiples of 3 bytes, so that each piece encodes to base64 without padding.
_RAW_PIECE = 3 * 21_845


class JsonBody(io.RawIOBase):
    """``json.dumps(payload)`` as a readable stream, each InlineImage base64-encoded on the way.

    Its length is known in advance (base64 is 4 bytes for every 3, padded), so it goes out with a
    Content-Length, and every image is read from its source piece by piece while it is sent.
    """

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__()
        self._segments: list[bytes | InlineImage] = []
        markers: dict[str, InlineImage] = {}

        def mark(value: Any) -> str:
            if not isinstance(value, InlineImage):
                raise TypeError(f"{type(value).__name__} is not JSON")
            marker = f"inline-{uuid.uuid4().hex}"  # random: no prompt can forge it
            markers[marker] = value
            return marker

        text = json.dumps(payload, default=mark)
        for marker, image in markers.items():
            before, text = text.split(marker, 1)
            self._segments += [before.encode("utf-8"), image]
        self._segments.append(text.encode("utf-8"))
        self._length = sum(
            len(part) if isinstance(part, bytes) else 4 * -(-part.size // 3) for part in self._segments
        )
        self._pieces = self._generate()
        self._buffer = b""
        self._position = 0

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        # requests sizes a body as len() minus tell(): a stream that cannot tell would be sent empty.
        return self._position

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._buffer = piece
        count = min(len(target), len(self._buffer))
        target[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        self._position += count
        return count

    def _generate(self) -> Iterator[bytes]:
        for part in self._segments:
            if isinstance(part, bytes):
                yield part
                continue
            source = part.open()
            try:
                carry = b""
                while True:
                    raw = source.read(_RAW_PIECE)
                    if not raw:
                        break
                    raw = carry + raw
                    whole = len(raw) - len(raw) % 3
                    carry = raw[whole:]
                    yield base64.b64encode(raw[:whole])
                if carry:
                    yield base64.b64encode(carry)
            finally:
                source.close()


class CountingStream:
    """``head`` (bytes already read) followed by the rest of ``rest``; counts what was read.

    A plain ``read`` rather than an ``io`` class: its callers read megabytes at a time, and each
    ``readinto`` layer would copy every one of them once more.
    """

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        if self._head:
            data = self._head if size < 0 else self._head[:size]
            self._head = self._head[len(data) :]
            if size < 0 or len(data) < size:
                data += self._rest.read(-1 if size < 0 else size - len(data))
        else:
            data = self._rest.read() if size < 0 else self._rest.read(size)
        self.count += len(data)
        return data

    def close(self) -> None:
        self._rest.close()

    def __enter__(self) -> CountingStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
