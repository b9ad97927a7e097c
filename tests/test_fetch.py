"""Tests of the Fetcher against the loopback FeedServer and local files.

Hostile servers (caps, timeouts, redirects, politeness) are in test_fetch_hostile.py.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest

from ingest.config import PollingSettings
from ingest.errors import FetchError
from ingest.fetch.client import Fetcher, make_http_client
from ingest.fetch.hosts import same_origin
from ingest.testing import FeedServer, Route

FEED = b"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>Loopback</title><link>http://127.0.0.1/</link>
<description>d</description>
<item><title>One</title><link>http://127.0.0.1/1</link><guid>1</guid></item>
</channel></rss>
"""

MAX_BODY = 1024 * 1024


def _polling(**changes: object) -> PollingSettings:
    """Polling settings for these tests: no spacing between requests, a 1 MiB cap."""
    values: dict[str, object] = {"host_spacing": 0, "max_body_bytes": MAX_BODY, "timeout": 10.0}
    return PollingSettings.model_validate(values | changes)


def _header(headers: dict[str, str], name: str) -> str | None:
    """A request header by case-insensitive name."""
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


# --- Fetcher over HTTP --------------------------------------------------------------------


async def test_fetch_200_returns_body_and_etag(feed_server: FeedServer) -> None:
    """A 200 answer gives the body, an ETag and the content type."""
    feed_server.routes["/feed.xml"] = Route(FEED)
    async with make_http_client(PollingSettings()) as client:
        result = await Fetcher(client, _polling()).fetch(feed_server.url("/feed.xml"))
    assert result.status == 200
    assert not result.not_modified
    assert result.body == FEED
    assert result.etag
    assert result.content_type is not None
    assert result.content_type.startswith("application/rss+xml")
    assert result.url == feed_server.url("/feed.xml")


async def test_fetch_with_etag_gets_304(feed_server: FeedServer) -> None:
    """Passing back the ETag yields 304 with an empty body; the server saw If-None-Match."""
    feed_server.routes["/feed.xml"] = Route(FEED)
    url = feed_server.url("/feed.xml")
    async with make_http_client(PollingSettings()) as client:
        fetcher = Fetcher(client, _polling())
        first = await fetcher.fetch(url)
        second = await fetcher.fetch(url, etag=first.etag)
    assert first.status == 200
    assert second.status == 304
    assert second.not_modified
    assert second.body == b""
    assert second.etag == first.etag
    assert _header(feed_server.requests[0][1], "If-None-Match") is None
    assert _header(feed_server.requests[-1][1], "If-None-Match") == first.etag


async def test_fetch_http_500_raises(feed_server: FeedServer) -> None:
    """An HTTP 500 answer raises FetchError carrying status 500."""
    feed_server.routes["/broken"] = Route(b"oops", status=500)
    url = feed_server.url("/broken")
    async with make_http_client(PollingSettings()) as client:
        with pytest.raises(FetchError, match="500") as info:
            await Fetcher(client, _polling()).fetch(url)
    assert info.value.status == 500
    assert info.value.url == url


async def test_fetch_http_404_raises(feed_server: FeedServer) -> None:
    """A path the server does not know raises FetchError carrying status 404."""
    async with make_http_client(PollingSettings()) as client:
        with pytest.raises(FetchError, match="404") as info:
            await Fetcher(client, _polling()).fetch(feed_server.url("/missing.xml"))
    assert info.value.status == 404


async def test_fetch_slow_server_times_out(feed_server: FeedServer) -> None:
    """A server that stalls past the total timeout raises FetchError saying it timed out."""
    feed_server.routes["/slow"] = Route(FEED, delay_s=3)
    settings = _polling(timeout=0.5, connect_timeout=0.5)
    async with make_http_client(settings) as client:
        with pytest.raises(FetchError, match="timed out") as info:
            await Fetcher(client, settings).fetch(feed_server.url("/slow"))
    assert info.value.status is None


async def test_fetch_body_over_limit_raises(feed_server: FeedServer) -> None:
    """A body larger than max_body_bytes raises FetchError naming the limit."""
    feed_server.routes["/big"] = Route(b"x" * 5000)
    async with make_http_client(PollingSettings()) as client:
        with pytest.raises(FetchError, match="1024-byte limit"):
            await Fetcher(client, _polling(max_body_bytes=1024)).fetch(feed_server.url("/big"))


async def test_fetch_body_at_limit_is_accepted(feed_server: FeedServer) -> None:
    """A body exactly max_body_bytes long is accepted whole."""
    feed_server.routes["/exact"] = Route(b"y" * 1024)
    async with make_http_client(PollingSettings()) as client:
        fetcher = Fetcher(client, _polling(max_body_bytes=1024))
        result = await fetcher.fetch(feed_server.url("/exact"))
    assert result.body == b"y" * 1024


async def test_fetch_sends_ingest_user_agent(feed_server: FeedServer) -> None:
    """The User-Agent header the server receives names ingest."""
    feed_server.routes["/feed.xml"] = Route(FEED)
    async with make_http_client(PollingSettings()) as client:
        await Fetcher(client, _polling()).fetch(feed_server.url("/feed.xml"))
    assert feed_server.hits("/feed.xml") == 1
    agent = _header(feed_server.requests[0][1], "User-Agent")
    assert agent is not None
    assert "ingest" in agent.lower()


# --- Fetcher over local files -------------------------------------------------------------


async def test_fetch_file_url_reads_local_file(tmp_path: Path) -> None:
    """A file:// URL (here with a percent-encoded space) reads the local file."""
    path = tmp_path / "my feed.xml"
    path.write_bytes(FEED)
    url = path.as_uri()
    assert "%20" in url
    async with make_http_client(PollingSettings()) as client:
        result = await Fetcher(client, _polling()).fetch(url)
    assert result.status == 200
    assert result.body == FEED
    assert result.url == url


async def test_fetch_plain_path_reads_local_file(tmp_path: Path) -> None:
    """A plain filesystem path reads the local file."""
    path = tmp_path / "feed.xml"
    path.write_bytes(FEED)
    async with make_http_client(PollingSettings()) as client:
        result = await Fetcher(client, _polling()).fetch(str(path))
    assert result.status == 200
    assert result.body == FEED


async def test_fetch_missing_file_raises(tmp_path: Path) -> None:
    """A path to a file that does not exist raises FetchError."""
    async with make_http_client(PollingSettings()) as client:
        with pytest.raises(FetchError, match="cannot read"):
            await Fetcher(client, _polling()).fetch(str(tmp_path / "absent.xml"))


async def test_fetch_file_over_limit_raises(tmp_path: Path) -> None:
    """A local file larger than max_body_bytes raises FetchError naming the limit."""
    path = tmp_path / "big.xml"
    path.write_bytes(b"z" * 2048)
    async with make_http_client(PollingSettings()) as client:
        with pytest.raises(FetchError, match="1024-byte limit"):
            await Fetcher(client, _polling(max_body_bytes=1024)).fetch(str(path))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
async def test_fetch_fifo_refused_at_once(tmp_path: Path) -> None:
    """A FIFO with no writer is refused as not a regular file, without waiting for one."""
    fifo = tmp_path / "feed.xml"
    os.mkfifo(fifo)
    started = time.monotonic()
    async with make_http_client(PollingSettings()) as client:
        with pytest.raises(FetchError, match="not a regular file"):
            await asyncio.wait_for(Fetcher(client, _polling()).fetch(str(fifo)), 5)
    assert time.monotonic() - started < 2


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
async def test_fetch_device_refused() -> None:
    """/dev/zero (size 0, endless) is refused as not a regular file."""
    async with make_http_client(PollingSettings()) as client:
        with pytest.raises(FetchError, match="not a regular file"):
            await asyncio.wait_for(Fetcher(client, _polling()).fetch("file:///dev/zero"), 5)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
async def test_fetch_file_larger_than_its_stat_size_refused() -> None:
    """A /proc file (stat size 0, several KiB when read) is cut at the cap and refused."""
    assert Path("/proc/self/maps").stat().st_size == 0
    async with make_http_client(PollingSettings()) as client:
        with pytest.raises(FetchError, match="more than 1024 bytes exceeds the 1024-byte"):
            await Fetcher(client, _polling(max_body_bytes=1024)).fetch("/proc/self/maps")


async def test_fetch_unsupported_scheme_raises() -> None:
    """An ftp:// URL raises FetchError about the unsupported scheme."""
    async with make_http_client(PollingSettings()) as client:
        with pytest.raises(FetchError, match="unsupported URL scheme"):
            await Fetcher(client, _polling()).fetch("ftp://example.org/feed.xml")


# --- same_origin (pure) -------------------------------------------------------------------


@pytest.mark.parametrize(("origin", "target", "same"), [
    ("https://a.example/rss", "https://A.example/other", True),
    ("http://a.example/rss", "http://a.example:80/x", True),
    ("http://a.example/rss", "https://a.example/rss", True),  # upgrade, default ports
    ("https://a.example/rss", "http://a.example/rss", False),  # downgrade
    ("https://a.example:8443/rss", "http://a.example:8443/rss", False),
    ("http://a.example:8080/rss", "https://a.example:8443/rss", False),
    ("http://a.example/rss", "https://a.example:8443/rss", False),
    ("https://a.example/rss", "https://a.example:8443/rss", False),
    ("https://a.example/rss", "https://b.example/rss", False),
    ("http://a.example/rss", "https://b.example/rss", False),
])
def test_same_origin(origin: str, target: str, same: bool) -> None:
    """Same host:port and no downgrade, or an http -> https upgrade on the same host."""
    assert same_origin(httpx.URL(origin), httpx.URL(target)) is same
