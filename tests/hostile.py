"""Hostile loopback HTTP servers for the fetcher's tests.

:class:`HostileServer` binds 127.0.0.1 on a free port and answers each connection in a
thread, written on raw sockets so it can misbehave as real servers do.  The path picks
the behaviour (every answer closes the connection):

    /ok                 a small feed with ETag, Cache-Control, Expires and Date
    /hold               counts requests in flight (``gauge``), holds each ``hold_s``, answers
    /slow               headers, then one body byte a second (slow loris)
    /silent             headers, then nothing until the client gives up
    /big, /big-declared 100 MiB generated on the fly (without / with Content-Length)
    /bomb               1 GiB of zeros gzipped (~1 MB on the wire)
    /gzip /deflate /deflate-raw /br /gzip-br /zstd   the feed in that Content-Encoding
    /r/STATUS/REST      redirects with STATUS to /REST (so /r/301/r/302/ok is a chain)
    /x/STATUS/PORT/REST redirects with STATUS to http://127.0.0.1:PORT/REST
    /loop/a, /loop/b    301 to each other
    /hops/N             302 to /hops/N+1, for ever
    /status/CODE        that status; 429 and 503 carry a Retry-After
    /reset              declares 1,000,000 bytes, sends 100,000, then a TCP reset
    /hangup             closes the connection without answering

Every request is recorded in ``requests`` (path, lowercase headers, arrival time).
Pass ``tls`` (see :func:`tls_context`) to serve HTTPS.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import socket
import ssl
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import brotli

LOOPBACK = "127.0.0.1"
MIB = 1024 * 1024
FEED = (b'<?xml version="1.0"?>\n<rss version="2.0"><channel><title>Hostile</title>'
        b"<link>http://127.0.0.1/</link><description>d</description>"
        b"<item><title>One</title><link>http://127.0.0.1/1</link><guid>1</guid></item>"
        b"</channel></rss>\n")
RETRY_AFTER = {429: "120", 503: "Wed, 21 Oct 2015 07:28:00 GMT"}
_BLOCK = b"<item>" + b"x" * (64 * 1024 - 6)


@functools.cache
def gzip_bomb(size: int = 1024 * MIB) -> bytes:
    """``size`` zero bytes, gzipped (1 GiB gives ~1 MB); computed once per process."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(MIB)
    parts = [packer.compress(zeros) for _ in range(size // MIB)]
    parts.append(packer.flush())
    return b"".join(parts)


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, made with the openssl command."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context for HTTPS that offers HTTP/1.1 only (ALPN)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    return context


class Gauge:
    """Requests in flight on ``/hold``, and the most seen at once; servers may share one."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Gauge:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lowercase names
    at: float  # time.monotonic() on arrival


def _head(status: int, *headers: tuple[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
             *(f"{k}: {v}" for k, v in headers), "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _answer(conn: socket.socket, status: int, body: bytes, *headers: tuple[str, str]) -> None:
    conn.sendall(_head(status, ("Content-Length", str(len(body))), *headers) + body)


def _encoded(coding: str) -> bytes:
    if coding == "gzip":
        return gzip.compress(FEED)
    if coding == "deflate":
        return zlib.compress(FEED)
    if coding == "deflate-raw":
        packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        return packer.compress(FEED) + packer.flush()
    if coding == "br":
        return bytes(brotli.compress(FEED))
    if coding == "gzip-br":  # gzip applied first, then br
        return bytes(brotli.compress(gzip.compress(FEED)))
    return FEED  # zstd: not really encoded, the client must refuse the coding anyway


class HostileServer:
    """A misbehaving HTTP/1.1 server on 127.0.0.1; use it as a context manager."""

    def __init__(self, *, tls: ssl.SSLContext | None = None, hold_s: float = 0.2,
                 gauge: Gauge | None = None) -> None:
        self.tls = tls
        self.hold_s = hold_s
        self.gauge = gauge or Gauge()
        self.requests: list[Received] = []
        self._stop = threading.Event()
        self._sock = socket.create_server((LOOPBACK, 0), backlog=128)
        self._sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def url(self, path: str = "/") -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}{path}"

    def hits(self, prefix: str) -> int:
        return sum(1 for r in self.requests if r.path.startswith(prefix))

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    # --- connections ----------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(30)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            request = self._read_request(conn)
            if request is not None:
                self.requests.append(request)
                self._route(request.path)(conn, request.path)
        except OSError:  # the client went away, refused our certificate, or timed out
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    @staticmethod
    def _read_request(conn: socket.socket) -> Received | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk or len(data) > 65536:
                return None
            data += chunk
        lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return Received(lines[0].split(" ")[1], headers, time.monotonic())

    def _route(self, path: str) -> Callable[[socket.socket, str], None]:
        parts = path.strip("/").split("/")
        head = parts[0]
        if head in ("gzip", "deflate", "deflate-raw", "br", "gzip-br", "zstd"):
            return self._on_coded
        return getattr(self, "_on_" + head.replace("-", "_"), self._on_not_found)

    # --- behaviours -----------------------------------------------------------------------

    def _on_not_found(self, conn: socket.socket, path: str) -> None:
        _answer(conn, 404, b"not here")

    def _on_ok(self, conn: socket.socket, path: str) -> None:
        _answer(conn, 200, FEED, ("Content-Type", "application/rss+xml"), ("ETag", '"v1"'),
                ("Cache-Control", "max-age=300"), ("Expires", "Thu, 01 Jan 2037 00:00:00 GMT"),
                ("Date", "Mon, 02 Sep 2024 12:00:00 GMT"))

    def _on_hold(self, conn: socket.socket, path: str) -> None:
        with self.gauge:  # left before answering: the client cannot start another first
            self._stop.wait(self.hold_s)
        _answer(conn, 200, FEED, ("Content-Type", "application/rss+xml"))

    def _on_slow(self, conn: socket.socket, path: str) -> None:
        conn.sendall(_head(200, ("Content-Length", "3600"), ("Content-Type", "text/xml")))
        for _ in range(3600):
            if self._stop.wait(1.0):
                return
            conn.sendall(b"<")

    def _on_silent(self, conn: socket.socket, path: str) -> None:
        conn.sendall(_head(200, ("Content-Length", "100"), ("Content-Type", "text/xml")))
        conn.settimeout(60)
        conn.recv(1)  # returns when the client closes the connection

    def _on_big(self, conn: socket.socket, path: str, declared: bool = False) -> None:
        size = 100 * MIB
        headers = [("Content-Type", "application/rss+xml")]
        if declared:
            headers.append(("Content-Length", str(size)))
        conn.sendall(_head(200, *headers))
        for _ in range(size // len(_BLOCK)):
            conn.sendall(_BLOCK)

    def _on_big_declared(self, conn: socket.socket, path: str) -> None:
        self._on_big(conn, path, declared=True)

    def _on_bomb(self, conn: socket.socket, path: str) -> None:
        _answer(conn, 200, gzip_bomb(), ("Content-Type", "application/rss+xml"),
                ("Content-Encoding", "gzip"))

    def _on_coded(self, conn: socket.socket, path: str) -> None:
        coding = path.strip("/").split("/")[0]
        label = {"deflate-raw": "deflate", "gzip-br": "gzip, br"}.get(coding, coding)
        _answer(conn, 200, _encoded(coding), ("Content-Type", "application/rss+xml"),
                ("Content-Encoding", label))

    def _on_r(self, conn: socket.socket, path: str) -> None:
        _, status, rest = path.strip("/").split("/", 2)
        _answer(conn, int(status), b"", ("Location", "/" + rest))

    def _on_x(self, conn: socket.socket, path: str) -> None:
        _, status, port, rest = path.strip("/").split("/", 3)
        _answer(conn, int(status), b"", ("Location", f"http://{LOOPBACK}:{port}/{rest}"))

    def _on_loop(self, conn: socket.socket, path: str) -> None:
        other = "b" if path.endswith("/a") else "a"
        _answer(conn, 301, b"", ("Location", f"/loop/{other}"))

    def _on_hops(self, conn: socket.socket, path: str) -> None:
        _answer(conn, 302, b"", ("Location", f"/hops/{int(path.rsplit('/', 1)[1]) + 1}"))

    def _on_status(self, conn: socket.socket, path: str) -> None:
        code = int(path.rsplit("/", 1)[1])
        extra = [("Retry-After", RETRY_AFTER[code])] if code in RETRY_AFTER else []
        _answer(conn, code, b"no", *extra)

    def _on_reset(self, conn: socket.socket, path: str) -> None:
        conn.sendall(_head(200, ("Content-Length", "1000000"), ("Content-Type", "text/xml")))
        conn.sendall(b"<" * 100_000)
        self._stop.wait(0.2)  # let the client read what was sent
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _on_hangup(self, conn: socket.socket, path: str) -> None:
        return None  # closed by _serve without a byte
