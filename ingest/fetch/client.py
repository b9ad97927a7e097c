"""Fetching feed documents and article pages over HTTP, or feed files from disk.

This is the HTTP edge: every httpx, h2, ssl and OS exception is translated to
:class:`~ingest.errors.FetchError` here (see :mod:`ingest.fetch.failures`).  One
:class:`Fetcher` is shared by every caller, so all of them share its politeness
(:mod:`ingest.fetch.hosts`): a global in-flight cap, ``per_host`` requests in flight to
one ``host:port`` and ``host_spacing`` seconds between request starts to it.

A fetch is a chain of requests: redirects are followed here (:mod:`.redirects`), each
hop waiting for its own host's slot.  The total ``timeout`` covers the time spent in
requests, redirects included, but not the time queued for a polite slot.  Bodies are
read under the wire and decoded caps of :mod:`.caps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from ingest.config import PollingSettings
from ingest.errors import FetchError
from ingest.fetch.caps import ACCEPT_ENCODING, CappedBody
from ingest.fetch.failures import TRANSPORT_ERRORS, reason
from ingest.fetch.hosts import HostLimits, host_key
from ingest.fetch.redirects import REDIRECT_STATUSES, Redirects
from ingest.model import FetchResult

FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml, "
               "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")
RETRY_AFTER_STATUSES = frozenset({429, 503})
DRAIN_BYTES = 64 * 1024  # redirect bodies up to this are read, to keep the connection


def make_http_client(settings: PollingSettings) -> httpx.AsyncClient:
    """The one shared client: timeouts, User-Agent, encodings, connection pool.

    Redirects are not followed by httpx (the :class:`Fetcher` follows them), and cookies
    are never stored: one client serves thousands of unrelated sites.
    """
    timeout = httpx.Timeout(connect=settings.connect_timeout, read=settings.read_timeout,
                            write=settings.read_timeout, pool=settings.timeout)
    limits = httpx.Limits(max_connections=settings.concurrency * 2,
                          max_keepalive_connections=settings.concurrency,
                          keepalive_expiry=max(5.0, 2 * settings.host_spacing))
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return httpx.AsyncClient(
        http2=settings.http2, timeout=timeout, limits=limits, follow_redirects=False,
        cookies=httpx.Cookies(no_cookies),
        headers={"User-Agent": settings.user_agent, "Accept": FEED_ACCEPT,
                 "Accept-Encoding": ACCEPT_ENCODING})


def local_path(url: str) -> Path | None:
    """The file a ``file://`` URL or plain path names; None for http(s) URLs."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme in ("", ) or (len(parts.scheme) == 1 and url[1:3] in (":\\", ":/")):
        return Path(url)
    return None


def _status_text(status: int) -> str:
    """``HTTP 410 Gone``: the standard phrase, never the server's own text."""
    return f"HTTP {status} {httpx.codes.get_reason_phrase(status)}".rstrip()


async def _drain(response: httpx.Response) -> None:
    """Read a short redirect body, so HTTP/1.1 may reuse the connection for the next hop."""
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) <= DRAIN_BYTES:
        with contextlib.suppress(*TRANSPORT_ERRORS):  # then the connection is just closed
            async for _ in response.aiter_raw():
                pass


class Fetcher:
    """Fetches documents politely; share one instance across feeds and article fetches."""

    def __init__(self, client: httpx.AsyncClient, settings: PollingSettings, *,
                 limits: HostLimits | None = None) -> None:
        self._client = client
        self._settings = settings
        self.limits = limits if limits is not None else HostLimits(
            settings.concurrency, settings.per_host, settings.host_spacing)

    async def fetch(self, url: str, etag: str | None = None, last_modified: str | None = None,
                    headers: tuple[tuple[str, str], ...] = (),
                    accept: str | None = None) -> FetchResult:
        """GET ``url`` (conditionally, with ``etag``/``last_modified``); FetchError if not.

        ``headers`` (a feed's own, e.g. Authorization) are sent to the first host only:
        once a redirect leaves it, they are dropped.  ``accept`` replaces the feed Accept.
        """
        path = local_path(url)
        if path is not None:
            return await self._read_file(url, path)
        try:
            start = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise FetchError(url, "invalid URL") from exc
        if start.scheme not in ("http", "https"):
            raise FetchError(url, "unsupported URL scheme (use http, https or file)")
        if not start.host:
            raise FetchError(url, "invalid URL (no host)")
        base: dict[str, str] = {"Accept": accept} if accept else {}
        if etag:
            base["If-None-Match"] = etag
        if last_modified:
            base["If-Modified-Since"] = last_modified
        redirects = Redirects(url, start, self._settings.max_redirects)
        budget = self._settings.timeout
        started: float | None = None
        while True:
            extra = () if redirects.left_origin else headers
            async with self.limits.slot(host_key(redirects.current)):
                hop_start = time.monotonic()
                started = hop_start if started is None else started
                try:
                    async with asyncio.timeout(budget):
                        outcome = await self._hop(url, base, extra, redirects, started)
                except TimeoutError as exc:
                    raise FetchError(url, f"timed out after {self._settings.timeout:g}s (total "
                                     "timeout for the request, redirects included)") from exc
                budget -= time.monotonic() - hop_start
            if isinstance(outcome, FetchResult):
                return outcome

    async def _hop(self, url: str, base: dict[str, str], extra: tuple[tuple[str, str], ...],
                   redirects: Redirects, started: float) -> FetchResult | None:
        """One request: a result, or None after following a redirect (FetchError if not)."""
        target = redirects.current
        body = CappedBody(url, self._settings.max_body_bytes, self._settings.max_decoded_bytes)
        response: httpx.Response | None = None
        try:
            headers = httpx.Headers(base)
            headers.update(list(extra))  # may refuse a non-ASCII value: translated below
            request = self._client.build_request("GET", target, headers=headers)
            response = await self._client.send(request, stream=True)
            try:
                return await self._answer(url, response, body, redirects, started)
            finally:
                await response.aclose()
        except TRANSPORT_ERRORS as exc:
            declared = response.headers.get("Content-Length") if response else None
            raise FetchError(url, reason(exc, target, self._settings,
                                         answered=response is not None,
                                         wire_bytes=body.wire_bytes,
                                         declared=declared)) from exc

    async def _answer(self, url: str, response: httpx.Response, body: CappedBody,
                      redirects: Redirects, started: float) -> FetchResult | None:
        status, h = response.status_code, response.headers
        if status in REDIRECT_STATUSES:
            redirects.follow(status, h.get("Location"))
            await _drain(response)
            return None
        where = f" at {redirects.current}" if redirects.hops else ""
        if status in RETRY_AFTER_STATUSES:
            retry_after = h.get("Retry-After")
            hint = f" (Retry-After: {retry_after[:60]})" if retry_after else ""
            raise FetchError(url, f"{_status_text(status)}{where}{hint}", status=status,
                             retry_after=retry_after)
        if status != 304 and not 200 <= status < 300:
            raise FetchError(url, f"{_status_text(status)}{where}", status=status)
        data = b"" if status == 304 else await body.read(response)
        sent = response.request.headers
        return FetchResult(
            str(response.url), status, data,
            # A 304 confirms the validators sent when it does not repeat them.
            etag=h.get("ETag") or (sent.get("If-None-Match") if status == 304 else None),
            last_modified=h.get("Last-Modified")
            or (sent.get("If-Modified-Since") if status == 304 else None),
            content_type=h.get("Content-Type"), elapsed_s=time.monotonic() - started,
            moved_to=redirects.moved_to, cache_control=h.get("Cache-Control"),
            expires=h.get("Expires"), date=h.get("Date"), wire_bytes=body.wire_bytes)

    async def _read_file(self, url: str, path: Path) -> FetchResult:
        started = time.monotonic()
        body = await asyncio.to_thread(_read_capped, url, path, self._settings.max_body_bytes)
        return FetchResult(url, 200, body, elapsed_s=time.monotonic() - started,
                           wire_bytes=len(body))


def _read_capped(url: str, path: Path, limit: int) -> bytes:
    """The bytes of the regular file at ``path`` if it holds at most ``limit``; FetchError if not.

    A FIFO, a device (``/dev/zero``), a socket or a folder is refused before anything is
    read: the file is opened without blocking (a FIFO would wait for a writer) and checked
    with ``fstat``.  Its size is not trusted (``/proc`` files say 0), so at most
    ``limit + 1`` bytes are read.  Blocking: run it off the event loop.
    """
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, os.O_RDONLY | nonblocking | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise FetchError(url, f"cannot read {path}: {exc.strerror}") from exc
    with open(fd, "rb") as fh:
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise FetchError(url, f"cannot read {path}: not a regular file (only regular "
                                 "files are read, never a FIFO, device, socket or folder)")
            if info.st_size > limit:
                raise FetchError(url, f"file of {info.st_size} bytes exceeds the "
                                 f"{limit}-byte limit")
            if nonblocking:
                os.set_blocking(fd, True)
            body = fh.read(limit + 1)
        except OSError as exc:
            raise FetchError(url, f"cannot read {path}: {exc.strerror}") from exc
    if len(body) > limit:
        raise FetchError(url, f"file of more than {limit} bytes exceeds the {limit}-byte limit")
    return body
