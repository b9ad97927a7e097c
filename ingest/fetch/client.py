"""Fetching feed documents: httpx with conditional GET and a body-size cap, or local files.

This is the HTTP edge: every httpx exception is translated to
:class:`~ingest.errors.FetchError` here.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from ingest.config import PollingSettings
from ingest.errors import FetchError
from ingest.model import FetchResult


def make_http_client(settings: PollingSettings) -> httpx.AsyncClient:
    """The one shared client: timeouts, User-Agent, redirects, connection pool."""
    timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
    limits = httpx.Limits(max_connections=settings.concurrency * 2,
                          max_keepalive_connections=settings.concurrency)
    return httpx.AsyncClient(
        timeout=timeout, limits=limits, follow_redirects=True, max_redirects=5,
        headers={"User-Agent": settings.user_agent,
                 "Accept": "application/rss+xml, application/atom+xml, application/rdf+xml, "
                           "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"})


def local_path(url: str) -> Path | None:
    """The file a ``file://`` URL or plain path names; None for http(s) URLs."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme in ("", ) or (len(parts.scheme) == 1 and url[1:3] in (":\\", ":/")):
        return Path(url)
    return None


class Fetcher:
    """Fetches one feed document at a time; share one instance across feeds."""

    def __init__(self, client: httpx.AsyncClient, max_body_bytes: int, total_timeout_s: float):
        self._client = client
        self._max_body = max_body_bytes
        self._total_timeout = total_timeout_s

    async def fetch(self, url: str, etag: str | None = None,
                    last_modified: str | None = None) -> FetchResult:
        path = local_path(url)
        if path is not None:
            return await self._read_file(url, path)
        if urlsplit(url).scheme not in ("http", "https"):
            raise FetchError(url, "unsupported URL scheme (use http, https or file)")
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._total_timeout):
                return await self._get(url, headers, started)
        except TimeoutError as exc:
            raise FetchError(url, f"timed out after {self._total_timeout:g}s") from exc
        except httpx.TooManyRedirects as exc:
            raise FetchError(url, "too many redirects") from exc
        except httpx.TimeoutException as exc:
            raise FetchError(url, f"timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise FetchError(url, f"{type(exc).__name__}: {exc or 'connection failed'}") from exc

    async def _get(self, url: str, headers: dict[str, str], started: float) -> FetchResult:
        async with self._client.stream("GET", url, headers=headers) as response:
            final_url = str(response.url)
            if response.status_code == 304:
                return FetchResult(final_url, 304, etag=response.headers.get("ETag") or None,
                                   last_modified=response.headers.get("Last-Modified") or None,
                                   elapsed_s=time.monotonic() - started)
            if not response.is_success:
                raise FetchError(url, f"HTTP {response.status_code} {response.reason_phrase}",
                                 status=response.status_code)
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > self._max_body:
                raise FetchError(url, f"body of {declared} bytes exceeds the "
                                 f"{self._max_body}-byte limit")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._max_body:
                    raise FetchError(url, f"body exceeds the {self._max_body}-byte limit")
                chunks.append(chunk)
            return FetchResult(
                final_url, response.status_code, b"".join(chunks),
                etag=response.headers.get("ETag") or None,
                last_modified=response.headers.get("Last-Modified") or None,
                content_type=response.headers.get("Content-Type"),
                elapsed_s=time.monotonic() - started)

    async def _read_file(self, url: str, path: Path) -> FetchResult:
        started = time.monotonic()
        try:
            size = path.stat().st_size
            if size > self._max_body:
                raise FetchError(url, f"file of {size} bytes exceeds the "
                                 f"{self._max_body}-byte limit")
            body = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise FetchError(url, f"cannot read {path}: {exc.strerror}") from exc
        return FetchResult(url, 200, body, elapsed_s=time.monotonic() - started)
