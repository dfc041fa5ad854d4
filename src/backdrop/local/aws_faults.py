"""A fault-injecting HTTP proxy in front of moto: what the function sees when AWS misbehaves.

``AwsFaultProxy`` listens on loopback and forwards every request (method, target, headers and
body, byte for byte, ``Host`` as the client sent it) to a moto server, and returns moto's answer
unchanged, except when a ``FaultRule`` fires: then it answers with the error AWS itself would
send, in that service's protocol, so that botocore raises the very ``ClientError`` code it
raises on AWS (S3 ``SlowDown``, DynamoDB ``ThrottlingException``, a failing ``SendMessage`` to
the DLQ, Secrets Manager ``InternalServiceError`` …). A rule with ``after=True`` lets the request
through first, so that it takes effect, and answers with the error anyway: a write that happened
but whose answer was lost.

Which service a request is for comes from its SigV4 credential scope (``…/us-east-1/s3/…``), else
``X-Amz-Target``; the operation from ``X-Amz-Target`` (DynamoDB, SQS, Secrets Manager speak JSON
in the installed botocore), a query ``Action``, or, for S3 (path-style, as botocore addresses a
loopback IP), from the method, path and query matched against botocore's own S3 model.

    slow_puts = FaultRule("s3", "PutObject", 0.05, "SlowDown")
    with AwsFaultProxy(moto_endpoint, rules=[slow_puts], seed=1) as proxy:
        boto3.client("s3", endpoint_url=proxy.endpoint)  # 5% of its PutObject calls: SlowDown
        proxy.rules = []                                  # from now on: none
        proxy.stats()                                     # what went through, what was injected
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import ipaddress
import json
import logging
import random
import re
import socket
import threading
import uuid
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import botocore.session

logger = logging.getLogger(__name__)

__all__ = ["FAULTS", "AwsFaultProxy", "AwsRequest", "Fault", "FaultRule", "queue_named"]

SERVICES = ("s3", "dynamodb", "sqs", "secretsmanager", "events")
CONNECTION_CLOSED = "ConnectionClosed"  # any service: the connection closes with no answer at all

# -- the faults: what AWS answers ---------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One AWS error answer. ``code`` is what botocore's ClientError carries; ``wire_type`` the
    JSON ``__type`` as the service sends it; ``query_error`` SQS's ``x-amzn-query-error``."""

    service: str
    code: str
    status: int
    message: str
    wire_type: str = ""
    query_error: str = ""


_DYNAMODB = "com.amazonaws.dynamodb.v20120810#"
FAULTS: dict[tuple[str, str], Fault] = {
    (fault.service, fault.code): fault
    for fault in (
        Fault("s3", "SlowDown", 503, "Please reduce your request rate."),
        Fault("s3", "InternalError", 500, "We encountered an internal error. Please try again."),
        Fault("s3", "ServiceUnavailable", 503, "Service is unable to handle request."),
        Fault(
            "dynamodb",
            "ThrottlingException",
            400,
            "Rate of requests exceeds the allowed throughput.",
            "com.amazon.coral.availability#ThrottlingException",
        ),
        Fault(
            "dynamodb",
            "ProvisionedThroughputExceededException",
            400,
            "The level of configured provisioned throughput for the table was exceeded. "
            "Consider increasing your provisioning level with the UpdateTable API.",
            _DYNAMODB + "ProvisionedThroughputExceededException",
        ),
        Fault(
            "dynamodb", "InternalServerError", 500, "Internal server error", _DYNAMODB + "InternalServerError"
        ),
        Fault(
            "sqs",
            "InternalError",
            500,
            "We encountered an internal error. Please try again.",
            "com.amazonaws.sqs#InternalError",
            "InternalError;Receiver",
        ),
        Fault(
            "sqs",
            "ServiceUnavailable",
            503,
            "Service Unavailable",
            "com.amazonaws.sqs#ServiceUnavailable",
            "ServiceUnavailable;Receiver",
        ),
        Fault(
            "sqs",
            "RequestThrottled",
            400,
            "Request is throttled.",
            "com.amazonaws.sqs#RequestThrottled",
            "RequestThrottled;Sender",
        ),
        Fault(
            "secretsmanager",
            "InternalServiceError",
            500,
            "An error occurred on the server side.",
            "InternalServiceError",
        ),
        Fault("secretsmanager", "ThrottlingException", 400, "Rate exceeded", "ThrottlingException"),
        Fault("events", "ThrottlingException", 400, "Rate exceeded", "ThrottlingException"),
        Fault("events", "InternalException", 500, "An internal error occurred.", "InternalException"),
    )
}
DEFAULT_KINDS = {
    "s3": "SlowDown",
    "dynamodb": "ThrottlingException",
    "sqs": "InternalError",
    "secretsmanager": "InternalServiceError",
    "events": "InternalException",
}
_JSON_CONTENT_TYPES = {
    "dynamodb": "application/x-amz-json-1.0",
    "sqs": "application/x-amz-json-1.0",
    "secretsmanager": "application/x-amz-json-1.1",
    "events": "application/x-amz-json-1.1",
}
_NO_BODY_STATUSES = frozenset({204, 304})


@dataclass
class _Answer:
    """An HTTP answer to write back: upstream's, or a fault's."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def wire(self, *, head: bool, close: bool) -> bytes:
        """The answer as bytes, in one piece (one send: no Nagle and delayed-ACK stall)."""
        lines = [
            f"HTTP/1.1 {self.status} {self.reason}",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        if close:
            lines.append("Connection: close")
        start = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if head or self.status in _NO_BODY_STATUSES or self.status < 200:
            return start
        return start + self.body


def _s3_error(fault: Fault, head: bool) -> _Answer:
    request_id = uuid.uuid4().hex[:16].upper()
    host_id = uuid.uuid4().hex + uuid.uuid4().hex
    headers = [
        ("x-amz-request-id", request_id),
        ("x-amz-id-2", host_id),
        ("Date", formatdate(usegmt=True)),
        ("Server", "AmazonS3"),
    ]
    if head:  # a HEAD answer has no body: botocore's code is then the status ("503")
        return _Answer(fault.status, http.client.responses[fault.status], headers)
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{fault.code}</Code><Message>{fault.message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>{host_id}</HostId></Error>"
    ).encode()
    headers += [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
    return _Answer(fault.status, http.client.responses[fault.status], headers, body)


def _json_error(fault: Fault) -> _Answer:
    body = json.dumps({"__type": fault.wire_type, "message": fault.message}).encode()
    headers = [
        ("x-amzn-RequestId", str(uuid.uuid4())),
        ("Date", formatdate(usegmt=True)),
        ("Content-Type", _JSON_CONTENT_TYPES[fault.service]),
        ("Content-Length", str(len(body))),
    ]
    if fault.service == "dynamodb":  # botocore checks DynamoDB's CRC32 when it is there
        headers.append(("x-amz-crc32", str(zlib.crc32(body))))
    if fault.query_error:  # SQS answers JSON but keeps its query-protocol error codes here
        headers.append(("x-amzn-query-error", fault.query_error))
    return _Answer(fault.status, http.client.responses[fault.status], headers, body)


def render(fault: Fault, *, head: bool = False) -> _Answer:
    """The error answer AWS would send for this fault."""
    return _s3_error(fault, head) if fault.service == "s3" else _json_error(fault)


# -- requests: which service, which operation ---------------------------------------------------

_TARGET_PREFIXES = {
    "DynamoDB_20120810": "dynamodb",
    "AmazonSQS": "sqs",
    "secretsmanager": "secretsmanager",
    "AWSEvents": "events",
}
_CREDENTIAL = re.compile(r"Credential=([^,\s]+)")


@dataclass
class AwsRequest:
    """A request as the proxy received it, with the service and operation it is for."""

    method: str
    target: str  # path and query, as sent: "/bucket/a%20b.jpg?tagging"
    headers: Message
    body: bytes
    service: str = ""
    operation: str = ""

    @functools.cached_property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @functools.cached_property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.target.partition("?")[2], keep_blank_values=True))

    @functools.cached_property
    def json(self) -> Any:
        """The JSON body (DynamoDB, SQS, Secrets Manager), or None."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def queue_url(self) -> str:
        """SQS: the ``QueueUrl`` of the request, or ""."""
        body = self.json
        return str(body.get("QueueUrl", "")) if isinstance(body, dict) else ""

    @property
    def bucket(self) -> str:
        """S3 (path-style): the bucket, or ""."""
        return unquote(self.path.lstrip("/").partition("/")[0])

    @property
    def key(self) -> str:
        """S3 (path-style): the object key, or ""."""
        return unquote(self.path.lstrip("/").partition("/")[2])

    def contains(self, text: str) -> bool:
        """Whether ``text`` occurs in the target (as sent or percent-decoded) or in the body."""
        return text in self.target or text in unquote(self.target) or text.encode() in self.body


def _service_of(headers: Message, target: str) -> str:
    scope = _CREDENTIAL.search(headers.get("Authorization", ""))
    credential = scope.group(1) if scope else dict(parse_qsl(urlsplit(target).query)).get("X-Amz-Credential")
    parts = credential.split("/") if credential else []
    if len(parts) >= 5:  # AKID/20250101/us-east-1/s3/aws4_request
        return parts[-2]
    prefix = str(headers.get("X-Amz-Target", "")).partition(".")[0]
    if prefix in _TARGET_PREFIXES:
        return _TARGET_PREFIXES[prefix]
    return "moto" if target.startswith("/moto-api") else "s3"


def _operation_of(request: AwsRequest) -> str:
    target = str(request.headers.get("X-Amz-Target", ""))
    if target:
        return target.rpartition(".")[2]
    if request.service == "s3":
        return _s3_operation(request)
    if "x-www-form-urlencoded" in str(request.headers.get("Content-Type", "")):
        return dict(parse_qsl(request.body.decode("latin-1"))).get("Action", "")
    return request.query.get("Action", "")


def classify(method: str, target: str, headers: Message, body: bytes) -> AwsRequest:
    request = AwsRequest(method, target, headers, body)
    request.service = _service_of(headers, target)
    request.operation = _operation_of(request)
    return request


@dataclass(frozen=True)
class _S3Route:
    """One S3 operation's place in the REST API, from botocore's model."""

    name: str
    literals: frozenset[str]  # query keys written into its URI: "?uploads", "?list-type=2"
    required_query: frozenset[str]  # required query members: "uploadId", "partNumber"
    required_headers: frozenset[str]  # required header members: "x-amz-copy-source"
    preferred: bool  # not deprecated, not an S3 Express-only twin

    def fits(self, query: dict[str, str], headers: frozenset[str]) -> bool:
        return (
            self.literals <= query.keys()
            and self.required_query <= query.keys()
            and self.required_headers <= headers
        )

    def rank(self) -> tuple[int, bool]:
        return len(self.literals) + len(self.required_query) + len(self.required_headers), self.preferred


_S3_LEVELS = {"/": "service", "/{Bucket}": "bucket", "/{Bucket}/{Key+}": "object"}
_S3_EXPRESS_ONLY = frozenset({"ListDirectoryBuckets"})


def _required_members(operation: Any, location: str) -> frozenset[str]:
    shape = operation.input_shape
    if shape is None:
        return frozenset()
    return frozenset(
        member.serialization.get("name", name).lower()
        if location == "header"
        else member.serialization["name"]
        for name, member in shape.members.items()
        if name in shape.required_members and member.serialization.get("location") == location
    )


@functools.cache
def _s3_routes() -> dict[tuple[str, str], tuple[_S3Route, ...]]:
    model = botocore.session.get_session().get_service_model("s3")
    routes: dict[tuple[str, str], list[_S3Route]] = defaultdict(list)
    for name in model.operation_names:
        operation = model.operation_model(name)
        path, _, literals = operation.http["requestUri"].partition("?")
        if path not in _S3_LEVELS:
            continue
        route = _S3Route(
            name,
            frozenset(part.partition("=")[0] for part in literals.split("&") if part),
            _required_members(operation, "querystring"),
            _required_members(operation, "header"),
            not operation.deprecated and name not in _S3_EXPRESS_ONLY,
        )
        routes[(operation.http["method"], _S3_LEVELS[path])].append(route)
    return {where: tuple(found) for where, found in routes.items()}


def _s3_level(path: str) -> str:
    bucket, _, key = path.lstrip("/").partition("/")
    return "object" if key else "bucket" if bucket else "service"


def _s3_operation(request: AwsRequest) -> str:
    headers = frozenset(name.lower() for name in request.headers)
    candidates = [
        route
        for route in _s3_routes().get((request.method, _s3_level(request.path)), ())
        if route.fits(request.query, headers)
    ]
    return max(candidates, key=_S3Route.rank).name if candidates else ""


@functools.cache
def _operation_names(service: str) -> frozenset[str]:
    return frozenset(botocore.session.get_session().get_service_model(service).operation_names)


# -- rules --------------------------------------------------------------------------------------

Match = str | Callable[[AwsRequest], bool]


@dataclass(frozen=True)
class FaultRule:
    """Answer ``kind`` (an AWS error code of ``service``, or ``ConnectionClosed``) to a request of
    ``service`` and ``operation`` (None: any) with ``probability``.

    ``match`` narrows the requests: a string that must occur in the target or body
    (``AwsRequest.contains``), or a predicate (``queue_named("backdrop-dlq")``). ``after``: let the
    request through first, then answer the error anyway. ``times``: fire at most this often.
    ``name`` labels the rule in ``stats()``.
    """

    service: str
    operation: str | None = None
    probability: float = 1.0
    kind: str | None = None  # None: the service's usual fault (DEFAULT_KINDS)
    match: Match | None = None
    after: bool = False
    times: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.service not in SERVICES:
            raise ValueError(f"service must be one of {', '.join(SERVICES)}, not {self.service!r}")
        if self.operation is not None and self.operation not in _operation_names(self.service):
            raise ValueError(f"{self.service} has no operation {self.operation!r}")
        if (
            self.kind is not None
            and self.kind != CONNECTION_CLOSED
            and (self.service, self.kind) not in FAULTS
        ):
            kinds = [code for service, code in FAULTS if service == self.service] + [CONNECTION_CLOSED]
            raise ValueError(f"{self.service} faults are {', '.join(kinds)}, not {self.kind!r}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if self.times is not None and self.times < 0:
            raise ValueError("times must be at least 0")

    @property
    def code(self) -> str:
        return self.kind or DEFAULT_KINDS[self.service]

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return f"{self.service}.{self.operation or '*'}:{self.code}{' after' if self.after else ''}"

    def applies_to(self, request: AwsRequest) -> bool:
        if request.service != self.service or self.operation not in (None, request.operation):
            return False
        if self.match is None:
            return True
        return request.contains(self.match) if isinstance(self.match, str) else bool(self.match(request))

    def answer(self, request: AwsRequest) -> _Answer | None:
        """The fault's answer; None for ``ConnectionClosed`` (no answer at all)."""
        if self.code == CONNECTION_CLOSED:
            return None
        return render(FAULTS[(self.service, self.code)], head=request.method == "HEAD")


def queue_named(name: str) -> Callable[[AwsRequest], bool]:
    """A ``match`` for SQS requests to the queue called ``name`` (its URL's last segment)."""

    def matches(request: AwsRequest) -> bool:
        return request.queue_url.rstrip("/").rpartition("/")[2] == name

    matches.__name__ = f"queue_named({name!r})"
    return matches


# -- upstream: pooled keep-alive connections to moto --------------------------------------------

# What a reused keep-alive connection raises when the server had closed it: safe to send again.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)


class _UpstreamPool:
    def __init__(self, host: str, port: int, timeout: float, keep: int = 256) -> None:
        self._host, self._port, self._timeout, self._keep = host, port, timeout, keep
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout), False

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(connection)
                return
        connection.close()

    def send(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> _Answer:
        while True:
            connection, reused = self._take()
            try:
                return self._exchange(connection, method, target, headers, body)
            except _STALE:
                connection.close()
                if not reused:
                    raise
            except BaseException:
                connection.close()
                raise

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> _Answer:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders(body or None)
        response = connection.getresponse()
        content = response.read()
        answer = _Answer(response.status, response.reason, _answer_headers(response, method, content))
        answer.body = content
        if response.will_close:
            connection.close()
        else:
            self._give_back(connection)
        return answer

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _answer_headers(response: http.client.HTTPResponse, method: str, content: bytes) -> list[tuple[str, str]]:
    """Upstream's headers as they came, but for its own framing (the proxy sends a length)."""
    headers = [(name, value) for name, value in response.getheaders() if name.lower() not in _HOP_BY_HOP]
    framed = method == "HEAD" or response.status in _NO_BODY_STATUSES or response.status < 200
    if not framed and not any(name.lower() == "content-length" for name, _ in headers):
        headers.append(("Content-Length", str(len(content))))
    return headers


# -- the server ---------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive towards the clients
    disable_nagle_algorithm = True
    proxy: AwsFaultProxy

    def _handle(self) -> None:
        target = self.path
        if not target.startswith("/"):  # absolute form: "http://host/path"
            parts = urlsplit(target)
            target = parts.path + (f"?{parts.query}" if parts.query else "") or "/"
        body = self._read_body()
        answer = self.proxy.answer(classify(self.command, target, self.headers, body))
        if answer is None:
            self.close_connection = True  # no answer: the client sees the connection close
            return
        self.wfile.write(answer.wire(head=self.command == "HEAD", close=self.close_connection))

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if "chunked" in str(self.headers.get("Transfer-Encoding", "")).lower():
            return self._read_chunked()
        return b""

    def _read_chunked(self) -> bytes:
        """Transfer-Encoding: chunked, undone (upstream gets the same bytes with a length)."""
        chunks = []
        while size := int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while (line := self.rfile.readline(65537)).strip():  # trailer fields become headers
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip()] = value.strip()
        body = b"".join(chunks)
        del self.headers["Transfer-Encoding"]
        self.headers["Content-Length"] = str(len(body))
        return body

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: 100k requests would be 100k lines."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # bursts of connections from many threads and processes

    def __init__(self, address: tuple[str, int], handler: type[_Handler]) -> None:
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection from %s ended badly", client_address, exc_info=True)

    def close_connections(self) -> None:
        """End the keep-alive connections still open, so that their threads end too."""
        with self._open_lock:
            still_open = list(self._open)
        for connection in still_open:
            with contextlib.suppress(OSError):  # already gone
                connection.shutdown(socket.SHUT_RDWR)


# -- the proxy ----------------------------------------------------------------------------------


@dataclass
class _Counts:
    requests: int = 0
    forwarded: int = 0
    upstream_errors: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)
    faults_by_operation: Counter[str] = field(default_factory=Counter)
    faults_by_kind: Counter[str] = field(default_factory=Counter)
    faults_by_rule: Counter[str] = field(default_factory=Counter)


class AwsFaultProxy:
    """A threaded HTTP proxy on loopback in front of a moto server, injecting AWS faults by rule.

    ``rules`` can be replaced at any time (``proxy.rules = [...]``), from any thread; the first
    rule that applies to a request and fires (by ``probability``, from a ``seed``-ed generator)
    decides its fault. ``stats()`` counts what went through and what was injected.
    """

    def __init__(
        self,
        upstream: str,
        *,
        rules: Iterable[FaultRule] = (),
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        upstream_timeout: float = 120.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// endpoint, not {upstream!r}")
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError("the proxy serves loopback only")
        self.upstream = upstream
        self._pool = _UpstreamPool(parts.hostname, parts.port or 80, upstream_timeout)
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._rules: tuple[FaultRule, ...] = ()
        self._fired: dict[int, int] = {}
        self.rules = list(rules)
        self._counts = _Counts()
        handler = type("AwsFaultHandler", (_Handler,), {"proxy": self})
        self._server = _Server((host, port), handler)
        self._host = host
        self._thread: threading.Thread | None = None

    # -- life cycle

    @property
    def endpoint(self) -> str:
        return f"http://{self._host}:{self._server.server_port}"

    def start(self) -> AwsFaultProxy:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name="aws-fault-proxy", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        self._server.close_connections()
        self._pool.close()

    def __enter__(self) -> AwsFaultProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # -- rules

    @property
    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    @rules.setter
    def rules(self, rules: Iterable[FaultRule]) -> None:
        new = tuple(rules)
        with self._lock:
            self._rules = new
            self._fired = {id(rule): 0 for rule in new}

    def _fires(self, rule: FaultRule) -> bool:
        """Under the lock: whether this rule fires now (and if so, that it did)."""
        fired = self._fired.get(id(rule))
        if fired is None or (rule.times is not None and fired >= rule.times):
            return False  # replaced meanwhile, or spent
        if rule.probability < 1.0 and self._random.random() >= rule.probability:
            return False
        self._fired[id(rule)] = fired + 1
        return True

    def _choose(self, request: AwsRequest) -> FaultRule | None:
        operation = f"{request.service}.{request.operation}"
        applicable = [rule for rule in self._rules if rule.applies_to(request)]
        with self._lock:
            self._counts.requests += 1
            self._counts.by_operation[operation] += 1
            for rule in applicable:
                if self._fires(rule):
                    self._counts.faults_by_operation[operation] += 1
                    self._counts.faults_by_kind[f"{rule.service}.{rule.code}"] += 1
                    self._counts.faults_by_rule[rule.label] += 1
                    return rule
        return None

    # -- answering

    def answer(self, request: AwsRequest) -> _Answer | None:
        """What the client gets for this request; None: the connection closes unanswered."""
        rule = self._choose(request)
        if rule is None:
            return self._forward(request)
        if rule.after:
            self._forward(request)
        return rule.answer(request)

    def _forward(self, request: AwsRequest) -> _Answer:
        headers = [
            (name, str(value)) for name, value in request.headers.items() if name.lower() not in _HOP_BY_HOP
        ]
        try:
            answer = self._pool.send(request.method, request.target, headers, request.body)
        except (OSError, http.client.HTTPException) as error:
            with self._lock:
                self._counts.upstream_errors += 1
            body = f"upstream {self.upstream} failed: {error!r}".encode()
            return _Answer(
                502, "Bad Gateway", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))], body
            )
        with self._lock:
            self._counts.forwarded += 1
        return answer

    # -- accounting

    def stats(self) -> dict[str, Any]:
        """``requests`` received, ``forwarded`` to upstream (an ``after`` fault's too), ``faults``
        injected, ``upstream_errors``; requests by ``"service.Operation"``; faults by operation,
        by ``"service.Code"`` and by rule label."""
        with self._lock:
            counts = self._counts
            return {
                "requests": counts.requests,
                "forwarded": counts.forwarded,
                "faults": sum(counts.faults_by_rule.values()),
                "upstream_errors": counts.upstream_errors,
                "requests_by_operation": dict(counts.by_operation),
                "faults_by_operation": dict(counts.faults_by_operation),
                "faults_by_kind": dict(counts.faults_by_kind),
                "faults_by_rule": dict(counts.faults_by_rule),
            }

    def reset_stats(self) -> None:
        with self._lock:
            self._counts = _Counts()
