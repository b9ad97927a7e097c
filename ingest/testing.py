"""Real loopback servers for tests, the demo and benchmarks.

* :class:`FeedServer` serves feed documents over HTTP with ETag/304 support, and can
  be told to fail, stall or serve garbage on a path;
* :class:`WebhookReceiver` records POSTed alerts and can answer with any status;
* :class:`SmtpSink` is an aiosmtpd SMTP server that keeps every message.

All bind 127.0.0.1 on a free port and run in background threads, so they work
from synchronous and asynchronous code alike.  Use them as context managers.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

LOOPBACK = "127.0.0.1"


@dataclass
class Route:
    """What :class:`FeedServer` answers on one path."""

    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    status: int = 200
    delay_s: float = 0.0  # wait before answering (to provoke timeouts)
    etag: bool = True  # send an ETag and answer If-None-Match with 304


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # bursts of concurrent deliveries (benchmarks)


class _LoopbackServer:
    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        self._httpd = _Server((LOOPBACK, port), handler)
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def start(self) -> Any:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _FeedHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return None

    def do_GET(self) -> None:
        server: FeedServer = self.server.owner  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0]
        headers = dict(self.headers.items())
        server.log.append((time.time(), path, headers))
        server.requests.append((path, headers))
        route = server.routes.get(path)
        if route is None:
            self.send_error(404)
            return
        if route.delay_s:
            time.sleep(route.delay_s)
        tag = f'"{hashlib.sha1(route.body).hexdigest()[:16]}"'
        if route.status == 200 and route.etag and self.headers.get("If-None-Match") == tag:
            self.send_response(304)
            self.send_header("ETag", tag)
            self.end_headers()
            return
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Content-Length", str(len(route.body)))
        if route.etag and route.status == 200:
            self.send_header("ETag", tag)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(route.body)


class FeedServer(_LoopbackServer):
    """An HTTP server of feed documents.  ``routes`` may be changed while it runs."""

    def __init__(self, routes: dict[str, Route] | None = None) -> None:
        super().__init__(_FeedHandler)
        self.routes: dict[str, Route] = dict(routes or {})
        self.requests: list[tuple[str, dict[str, str]]] = []
        # Every request as (arrival time from time.time(), path, headers): who fetched what when.
        self.log: list[tuple[float, str, dict[str, str]]] = []

    def serve_dir(self, folder: Path, prefix: str = "/") -> dict[str, str]:
        """Serve every file in ``folder``; return {file name: URL}."""
        urls = {}
        for path in sorted(folder.iterdir()):
            if path.is_file():
                kind = ("application/atom+xml" if path.suffix == ".atom"
                        else "application/rss+xml")
                self.routes[prefix + path.name] = Route(path.read_bytes(), kind + "; charset=utf-8")
                urls[path.name] = self.url(prefix + path.name)
        return urls

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


class _WebhookHandler(BaseHTTPRequestHandler):
    # Keep-alive, like any production receiver, and no Nagle delay between the header
    # and body writes of an answer.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        server: WebhookReceiver = self.server.owner  # type: ignore[attr-defined]
        with server.lock:
            action = server.statuses.pop(0) if server.statuses else server.status
        if action == "close":  # hang up mid-request: headers read, body and answer never
            server.closed += 1
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if len(body) < length:  # the sender died mid-request: nothing was delivered
            with server.lock:
                server.cut_short += 1
            self.close_connection = True
            return
        request = ReceivedRequest(self.path, dict(self.headers.items()), body)
        if action == "hang":  # answer only after the sender has long given up
            server.rejected.append(request)
            time.sleep(server.hang_s)
            action = 200
        elif server.delay_s:
            time.sleep(server.delay_s)
        status = int(action)
        with server.lock:
            (server.received if status < 300 else server.rejected).append(request)
        answer = b"ok" if status < 300 else b"rejected"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(answer)))
        for name, value in server.response_headers.items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(answer)


class WebhookReceiver(_LoopbackServer):
    """Records POSTs.  Answers ``status`` (default 200), or the next of ``statuses``, with
    ``response_headers`` (e.g. ``Retry-After``), after ``delay_s``.

    A scripted answer may also be ``"hang"`` (answer 200 only after ``hang_s``: the
    sender times out first; recorded in ``rejected``) or ``"close"`` (hang up after the
    request line and headers, with no answer; counted in ``closed``).  ``port`` binds a
    chosen port, e.g. one a sender was already told about while this receiver was down.
    """

    def __init__(self, status: int = 200, *, port: int = 0, delay_s: float = 0.0) -> None:
        super().__init__(_WebhookHandler, port)
        self.status: int | str = status
        self.statuses: list[int | str] = []
        self.response_headers: dict[str, str] = {}
        self.received: list[ReceivedRequest] = []
        self.rejected: list[ReceivedRequest] = []
        self.delay_s = delay_s
        self.hang_s = 5.0
        self.closed = 0
        self.cut_short = 0  # requests whose body ended early (the sender died mid-send)
        self.lock = threading.Lock()

    def keys(self) -> list[str]:
        """The ``Idempotency-Key`` of every accepted request, in arrival order."""
        return [r.headers.get("Idempotency-Key", "") for r in self.received]


@dataclass
class _SinkHandler:
    messages: list[EmailMessage] = field(default_factory=list)
    defer: int = 0  # answer 451 to this many DATA commands first
    deferred: int = 0
    credentials: tuple[str, str] | None = None  # (username, password) AUTH must present
    logins: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        """Refuse any address starting with "refused" (to test partial delivery)."""
        if address.startswith("refused"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.deferred < self.defer:
            self.deferred += 1
            return "451 4.7.1 Try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        """Accept LOGIN/PLAIN with exactly ``credentials``; remember who logged in."""
        if not isinstance(auth_data, LoginPassword) or self.credentials is None:
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        if (login, password) != self.credentials:
            return AuthResult(success=False, handled=False)
        self.logins.append(login)
        return AuthResult(success=True)


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class SmtpSink:
    """An aiosmtpd SMTP server on loopback that keeps every message it accepts.

    ``defer=N`` answers ``451 4.7.1 Try again later`` to the first N DATA commands
    (counted in ``deferred``).  ``tls_context`` offers STARTTLS and requires it before
    mail.  ``credentials=(user, password)`` requires AUTH with exactly those (allowed
    without TLS, on loopback); successful logins are kept in ``logins``.
    """

    def __init__(self, *, defer: int = 0, tls_context: ssl.SSLContext | None = None,
                 credentials: tuple[str, str] | None = None) -> None:
        self._handler = _SinkHandler(defer=defer, credentials=credentials)
        options: dict[str, Any] = {}
        if tls_context is not None:
            options.update(tls_context=tls_context, require_starttls=True)
        if credentials is not None:
            options.update(authenticator=self._handler.authenticate, auth_required=True,
                           auth_require_tls=tls_context is not None)
        # aiosmtpd's controller cannot bind port 0 itself: ask the kernel for a free port.
        self._controller = Controller(self._handler, hostname=LOOPBACK, port=free_port(),
                                      **options)

    @property
    def deferred(self) -> int:
        return self._handler.deferred

    @property
    def logins(self) -> list[str]:
        return self._handler.logins

    @property
    def messages(self) -> list[EmailMessage]:
        return self._handler.messages

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
