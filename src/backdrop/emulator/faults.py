"""Hostile answers: the faults the emulator injects, rolled from ``settings.faults`` or scripted.

Two families, told apart by whether Segmind would have charged the call:

- A refusal answers instead of the picture, early (before the body is checked), and is never
  billed: an error status ("429", "500", "502", "503", "504"), "timeout" (silence, then the
  connection dropped) or "gzip_bomb" (a 400 whose small gzip body inflates to hundreds of MB).
- A spoiled answer is the picture of a call that passed every rule and was billed, delivered
  badly: "drip" (a byte now and then), "hangup" (broken off), "stall" (part of it, then silence),
  "huge" (far beyond any sane size), all charged and then lost on the way; or "echo_key" (whole,
  but its headers echo the API key the call was made with).
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace

from backdrop.emulator.models import MIB, EmulatorSettings, Reply, Stream, error

ERROR_STATUSES = ("429", "500", "502", "503", "504")
# How much padding one write of a huge answer carries, and of a bomb one compression step takes.
_PIECE = MIB


# -- refusals (unbilled) ----------------------------------------------------------------------------


def _status(kind: str) -> Callable[[EmulatorSettings], Reply]:
    return lambda settings: replace(error(int(kind), f"injected fault {kind}"), fault=kind)


def _timeout(settings: EmulatorSettings) -> Reply:
    return Reply(stall_seconds=settings.timeout_stall_seconds, drop=True, fault="timeout")


def _gzip_bomb(settings: EmulatorSettings) -> Reply:
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    return Reply(400, gzip_bomb(settings.gzip_bomb_bytes), headers, fault="gzip_bomb")


REFUSALS: dict[str, Callable[[EmulatorSettings], Reply]] = {
    **{status: _status(status) for status in ERROR_STATUSES},
    "timeout": _timeout,
    "gzip_bomb": _gzip_bomb,
}


# -- spoiled answers (billed) -----------------------------------------------------------------------


def _drip(picture: bytes, settings: EmulatorSettings) -> Stream:
    size = max(1, settings.drip_piece_bytes)
    return Stream(
        len(picture),
        lambda: (picture[start : start + size] for start in range(0, len(picture), size)),
        interval_seconds=settings.drip_interval_seconds,
    )


def _hangup(picture: bytes, settings: EmulatorSettings) -> Stream:
    return Stream(len(picture), lambda: [picture[: _part(picture)]])


def _stall(picture: bytes, settings: EmulatorSettings) -> Stream:
    return Stream(
        len(picture), lambda: [picture[: _part(picture)]], silence_seconds=settings.timeout_stall_seconds
    )


def _huge(picture: bytes, settings: EmulatorSettings) -> Stream:
    padding = settings.huge_answer_bytes
    return Stream(len(picture) + padding, lambda: _padded(picture, padding))


def _part(picture: bytes) -> int:
    """Where a broken-off answer stops: halfway, at least one byte in and one byte short."""
    return min(max(1, len(picture) // 2), len(picture) - 1)


def _padded(picture: bytes, padding: int) -> Iterator[bytes]:
    yield picture
    blank = bytes(min(_PIECE, padding))
    while padding > 0:
        yield blank if padding >= len(blank) else blank[:padding]
        padding -= len(blank)


STREAMS: dict[str, Callable[[bytes, EmulatorSettings], Stream]] = {
    "drip": _drip,
    "hangup": _hangup,
    "stall": _stall,
    "huge": _huge,
}
CHARGED = frozenset({*STREAMS, "echo_key"})
KINDS = frozenset(REFUSALS) | CHARGED


def refusal(kind: str, settings: EmulatorSettings) -> Reply:
    """The unbilled answer of a refusing fault kind."""
    return REFUSALS[kind](settings)


def spoiled(kind: str, picture: Reply, settings: EmulatorSettings, headers: Mapping[str, str]) -> Reply:
    """The billed picture, delivered as the charged fault kind says."""
    image = picture.body if isinstance(picture.body, bytes) else b""
    if kind == "echo_key":
        return _echo_key(picture, headers.get("x-api-key", ""))
    return Reply(200, headers=dict(picture.headers), fault=kind, stream=STREAMS[kind](image, settings))


def _echo_key(picture: Reply, key: str) -> Reply:
    content_type = picture.headers.get("Content-Type", "image/png")
    echoed = {"Content-Type": f"{content_type}; key={key}", "x-debug": f"received x-api-key {key}"}
    return replace(picture, headers={**picture.headers, **echoed}, fault="echo_key")


def check_faults(faults: Mapping[str, float]) -> None:
    unknown = sorted(set(faults) - KINDS)
    if unknown:
        raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}: use {', '.join(sorted(KINDS))}")


def check_scripted(reply: Reply) -> None:
    """A scripted fault names a known kind and carries nothing else: the emulator makes its answer."""
    if reply.fault is None:
        return
    check_faults({reply.fault: 1.0})
    if replace(reply, fault=None) != Reply():
        raise ValueError("a scripted fault is Reply(fault=KIND) alone: the emulator makes its answer")


# -- the gzip bomb, built once per size --------------------------------------------------------------

_bombs: dict[int, bytes] = {}
_bombs_lock = threading.Lock()


def gzip_bomb(inflated_bytes: int) -> bytes:
    """A gzip body that inflates to ``inflated_bytes`` of JSON; made on first use, then kept."""
    with _bombs_lock:
        if inflated_bytes not in _bombs:
            _bombs[inflated_bytes] = _compressed_blank_error(inflated_bytes)
        return _bombs[inflated_bytes]


def _compressed_blank_error(size: int) -> bytes:
    """``{"error": "    …"}`` of ``size`` bytes, gzipped a piece at a time (never inflated whole)."""
    head, tail = b'{"error": "', b'"}'
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(head)]
    blank = b" " * _PIECE
    left = max(0, size - len(head) - len(tail))
    while left > 0:
        parts.append(packer.compress(blank if left >= _PIECE else blank[:left]))
        left -= _PIECE
    parts += [packer.compress(tail), packer.flush()]
    return b"".join(parts)
