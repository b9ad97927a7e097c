"""Short human reasons for transport failures: the one place httpx, h2, ssl and OS
exceptions are translated (the fetcher raises ``FetchError(url, reason(...)) from exc``).

Messages never quote the library's own text where it may echo request headers (h11
repeats an illegal header value); they say what failed, where, and after how much.

    httpx.ConnectTimeout            connect timeout: no connection to H within Ns
    httpx.ReadTimeout               read timeout: no data from H for Ns
    httpx.ConnectError + gaierror   DNS lookup failed for host H
    ... + SSLCertVerificationError  TLS certificate verify failed for H: <why>
    ... + other SSLError            TLS handshake with H failed: <reason>
    ... + ConnectionRefusedError    connection refused by H
    ReadError after the headers     connection reset after N bytes (of M declared)
    RemoteProtocolError after them  connection closed after N bytes (of M declared)
    LocalProtocolError, UnicodeError  a request header is not allowed (no value shown)
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from typing import TypeVar

import h2.exceptions
import httpx

from ingest.config import PollingSettings

# Everything the transport may raise; the fetcher translates exactly these.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, h2.exceptions.H2Error, OSError,
    UnicodeError)

_E = TypeVar("_E", bound=BaseException)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and exceptions passed as their arguments."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        todo.extend(a for a in current.args if isinstance(a, BaseException))


def _find(exc: BaseException, kind: type[_E]) -> _E | None:
    return next((e for e in _causes(exc) if isinstance(e, kind)), None)


def reason(exc: BaseException, target: httpx.URL, settings: PollingSettings, *,
           answered: bool, wire_bytes: int, declared: str | None = None) -> str:
    """Why a request to ``target`` failed, in a few words.

    ``answered``: the response headers had arrived; ``wire_bytes``: body bytes received.
    """
    where = f"{target.host}:{target.port}" if target.port else target.host
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connect timeout: no connection to {where} within {settings.connect_timeout:g}s"
    if isinstance(exc, httpx.ReadTimeout):
        return (f"read timeout: no data from {where} for {settings.read_timeout:g}s"
                + (f" after {wire_bytes} body bytes" if answered else ""))
    if isinstance(exc, httpx.WriteTimeout):
        return f"write timeout: {where} accepted no data for {settings.read_timeout:g}s"
    if isinstance(exc, httpx.PoolTimeout):
        return f"no free connection in the pool within {settings.timeout:g}s"
    if isinstance(exc, httpx.LocalProtocolError | UnicodeError):
        return ("a request header has an illegal name or value (check the feed's headers, "
                "or its stored ETag and Last-Modified)")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return "invalid URL"
    if (cert := _find(exc, ssl.SSLCertVerificationError)) is not None:
        why = cert.verify_message or cert.reason or "rejected"
        return f"TLS certificate verify failed for {where}: {why}"
    if (tls := _find(exc, ssl.SSLError)) is not None:
        return f"TLS handshake with {where} failed: {tls.reason or type(tls).__name__}"
    if _find(exc, socket.gaierror) is not None:
        return f"DNS lookup failed for host {target.host}"
    if _find(exc, ConnectionRefusedError) is not None:
        return f"connection refused by {where}"
    if isinstance(exc, httpx.ConnectError):
        os_error = _find(exc, OSError)
        detail = os_error.strerror if os_error is not None and os_error.strerror else ""
        return f"cannot connect to {where}" + (f": {detail}" if detail else "")
    if answered:
        of = f" of {declared} declared" if declared and declared.isdigit() else ""
        how = "closed" if isinstance(exc, httpx.RemoteProtocolError) else "reset"
        return f"connection {how} after {wire_bytes} bytes{of}"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return f"{where} closed the connection without a valid answer"
    return f"request to {where} failed ({type(exc).__name__})"
