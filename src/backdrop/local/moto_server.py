"""moto in server mode, with DynamoDB's one guarantee that moto's threaded server lacks, and
S3's EventBridge events as S3 writes them.

DynamoDB applies each write to an item atomically: a conditional update checks and writes in one
step, whoever else writes at the same moment. moto serves requests on threads and does neither in
one step, so two containers reserving the last of a budget at once could both pass its condition
(CI saw 9 calls pass a cap that fits 7). Every claim, ledger and budget Backdrop keeps rests on
that guarantee, so the local stack, the tests, the soak and the benchmarks all run moto through
here: DynamoDB requests one at a time, everything else as moto serves it.

S3 URL-encodes the object key in its EventBridge events (``a b+c.jpg`` arrives as
``a+b%2Bc.jpg``), as it does in its notifications, and the function decodes it; moto sends the key
as it is, which would turn a ``+`` into a space. The server encodes it, as S3 does.

``python -m backdrop.local.moto_server -p PORT`` runs it in a process of its own.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote_plus

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class OneDynamoDbRequestAtATime:
    """WSGI middleware: DynamoDB requests (``X-Amz-Target: DynamoDB_…``) hold one lock, whole."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self._app(environ, start_response)
        with self._lock:  # the answer is read whole inside: moto may do its work lazily
            return list(self._app(environ, start_response))


class _UrlEncodedKey:
    """An S3 object as moto's EventBridge message reads it, its name URL-encoded as S3's events have it."""

    def __init__(self, key: Any) -> None:
        self._key = key
        self.name = quote_plus(key.name, safe="/")

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._key, attribute)


def _encode_eventbridge_keys() -> None:
    """Wrap moto's S3 → EventBridge message once per process (the server's state is the process's)."""
    from moto.s3 import notifications

    send = notifications._send_event_bridge_message
    if getattr(send, "encodes_keys", False):
        return

    def send_encoded(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        send(account_id, bucket, event_name, _UrlEncodedKey(key))

    send_encoded.encodes_keys = True  # type: ignore[attr-defined]
    notifications._send_event_bridge_message = send_encoded


def make_moto_server(host: str = "127.0.0.1", port: int = 0) -> BaseWSGIServer:
    _encode_eventbridge_keys()
    app = OneDynamoDbRequestAtATime(DomainDispatcherApplication(create_backend_app))
    return make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)


@contextmanager
def moto_server(port: int = 0) -> Iterator[str]:
    """moto on loopback, on a thread of this process; yields its endpoint URL."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # it would log every request
    server = make_moto_server(port=port)
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m backdrop.local.moto_server", description=__doc__)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    arguments = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    make_moto_server(arguments.host, arguments.port).serve_forever()


if __name__ == "__main__":
    main()
