"""The runtime inside one local Lambda container, and the wire it shares with ``containers.py``.

A container is a process of its own, started by ``containers.Container`` as

    python -c BOOT <src> <fd> <config JSON>

with the function's environment and nothing else, its own ``TMPDIR``, the function's code
directory as working directory, and a socket (``fd``) to the event source mapping. Like Lambda's
runtime it imports the handler once (its init, the cold start), says it is ready, then takes
one invocation at a time until the socket closes:

    → {"ready": true, "init_seconds": …}  or  {"ready": false, "error": {…}}
    ← {"event": …, "deadline_ms": …, "timeout_seconds": …, "request_id": …}
    → {"response": …}  or  {"error": {"errorType": …, "errorMessage": …, "stackTrace": […]}}

Each message is JSON behind a 4-byte length: what Lambda's runtime API carries is JSON too, so a
response that is not JSON fails here as it would there. The function's standard output is the
descriptor 1 the container was started with, written a whole line at a time, so that the lines
of several containers sharing one log file never interleave.

This module imports only the standard library and ``backdrop.local.context``: a container's
cold start is the function's own.
"""

from __future__ import annotations

import importlib
import io
import json
import socket
import struct
import sys
import time
import traceback
from typing import Any

from backdrop.local.context import LocalLambdaContext

# What containers.py runs: the package's source directory goes last on the path, after the
# function's own code and its libraries.
BOOT = "import sys; sys.path.append(sys.argv[1]); from backdrop.local.container_runtime import main; main()"

_HEADER = struct.Struct("!I")
_LINE_BUFFER = 1024 * 1024  # a log line up to this size goes out in one write()


def encode(message: Any) -> bytes:
    data = json.dumps(message, separators=(",", ":")).encode("utf-8")
    return _HEADER.pack(len(data)) + data


def send(channel: socket.socket, message: Any) -> None:
    channel.sendall(encode(message))


def receive(channel: socket.socket, deadline: float | None = None) -> Any:
    """The next message. ``EOFError`` when the other end is gone; ``TimeoutError`` at ``deadline``
    (``time.monotonic()``); ``None`` blocks."""
    (size,) = _HEADER.unpack(_read(channel, _HEADER.size, deadline))
    return json.loads(_read(channel, size, deadline))


def _read(channel: socket.socket, size: int, deadline: float | None) -> bytes:
    data = bytearray()
    while len(data) < size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            channel.settimeout(left)
        chunk = channel.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return bytes(data)


def error_of(exception: BaseException) -> dict[str, Any]:
    """An exception as Lambda reports a function error."""
    return {
        "errorType": type(exception).__name__,
        "errorMessage": str(exception),
        "stackTrace": traceback.format_exception(exception),
    }


def main() -> None:
    fd, config = int(sys.argv[2]), json.loads(sys.argv[3])
    channel = socket.socket(fileno=fd)
    started = time.monotonic()
    _whole_lines_to_stdout()
    try:
        handler = _load(config["code_uri"], config["handler"])
    except Exception as error:
        send(channel, {"ready": False, "error": error_of(error)})
        return
    send(channel, {"ready": True, "init_seconds": time.monotonic() - started})
    while True:
        try:
            request = receive(channel)
        except EOFError:
            return  # the event source mapping is done with this container
        reply = _invoke(handler, request, config)
        sys.stdout.flush()  # the invocation's logs are out before it is reported done
        try:
            channel.sendall(reply)
        except OSError:
            return  # the event source mapping went away mid-call: nobody is waiting for the answer


def _whole_lines_to_stdout() -> None:
    # Before the handler is imported: Powertools' logger binds to the stream it finds then.
    raw = io.FileIO(1, "w", closefd=False)
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(raw, buffer_size=_LINE_BUFFER),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )


def _load(code_uri: str, name: str) -> Any:
    module_name, function_name = name.rsplit(".", 1)
    sys.path.insert(0, code_uri)
    return getattr(importlib.import_module(module_name), function_name)


def _invoke(handler: Any, request: dict[str, Any], config: dict[str, Any]) -> bytes:
    context = LocalLambdaContext.until(
        request["deadline_ms"],
        function_name=config["function_name"],
        memory_limit_in_mb=config["memory_mb"],
        timeout_seconds=request["timeout_seconds"],
        aws_request_id=request["request_id"],
    )
    try:
        return encode({"response": handler(request["event"], context)})
    except Exception as error:
        return encode({"error": error_of(error)})
