"""The Fetcher against hostile loopback servers: caps, timeouts, redirects, errors, politeness.

Every server is real (tests/hostile.py, 127.0.0.1 only); time bounds are generous upper
bounds, and the politeness tests count what the server saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import ssl
import time
import tracemalloc
from collections.abc import Awaitable, Iterator
from pathlib import Path

import httpx
import pytest
from hostile import FEED, MIB, Gauge, HostileServer, gzip_bomb, self_signed_cert, tls_context

from ingest.config import PollingSettings
from ingest.errors import FetchError
from ingest.fetch.client import Fetcher, make_http_client
from ingest.fetch.hosts import HostLimits
from ingest.model import FetchResult

SECRET = "Bearer s3cret-token"


def _polling(**changes: object) -> PollingSettings:
    """Polling settings for these tests: no spacing unless a test asks for it."""
    values: dict[str, object] = {"host_spacing": 0, "timeout": 10.0}
    return PollingSettings.model_validate(values | changes)


async def _fetch(url: str, settings: PollingSettings | None = None,
                 **kwargs: object) -> FetchResult:
    settings = settings or _polling()
    async with make_http_client(settings) as client:
        return await Fetcher(client, settings).fetch(url, **kwargs)  # type: ignore[arg-type]


async def _fails(url: str, settings: PollingSettings | None = None,
                 **kwargs: object) -> FetchError:
    with pytest.raises(FetchError) as info:
        await _fetch(url, settings, **kwargs)
    return info.value


async def _peak_bytes(work: Awaitable[object]) -> int:
    """The peak of Python allocations while ``work`` runs (tracemalloc)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with contextlib.suppress(FetchError):
            await work
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with HostileServer() as hostile:
        yield hostile


# --- the client ---------------------------------------------------------------------------


def _pool(client: httpx.AsyncClient) -> object:
    return client._transport._pool  # type: ignore[attr-defined]


def test_client_offers_http2_and_leaves_redirects_to_the_fetcher() -> None:
    """The shared client is built with HTTP/2 on, no redirect following, gzip/deflate/br."""
    client = make_http_client(PollingSettings(connect_timeout=3, read_timeout=7, timeout=11))
    assert _pool(client)._http2 is True  # type: ignore[attr-defined]
    assert client.follow_redirects is False
    assert client.timeout == httpx.Timeout(connect=3, read=7, write=7, pool=11)
    assert client.headers["Accept-Encoding"] == "gzip, deflate, br"
    without = make_http_client(PollingSettings(http2=False))
    assert _pool(without)._http2 is False  # type: ignore[attr-defined]


# --- caps ---------------------------------------------------------------------------------


async def test_ok_fills_cache_headers_and_wire_bytes(server: HostileServer) -> None:
    """A 200 gives the body, ETag, Cache-Control, Expires, Date and the bytes received."""
    result = await _fetch(server.url("/ok"))
    assert result.body == FEED
    assert (result.etag, result.cache_control) == ('"v1"', "max-age=300")
    assert result.expires == "Thu, 01 Jan 2037 00:00:00 GMT"
    assert result.date == "Mon, 02 Sep 2024 12:00:00 GMT"
    assert result.wire_bytes == len(FEED)
    assert result.moved_to is None


@pytest.mark.parametrize("path", ["/gzip", "/deflate", "/deflate-raw", "/br", "/gzip-br"])
async def test_encoded_bodies_are_decoded(server: HostileServer, path: str) -> None:
    """gzip, zlib and raw deflate, brotli, and gzip-then-brotli bodies decode to the feed."""
    result = await _fetch(server.url(path))
    assert result.body == FEED
    assert 0 < result.wire_bytes != len(FEED)


async def test_unknown_encoding_is_refused(server: HostileServer) -> None:
    """A Content-Encoding the fetcher cannot decode is an error naming it."""
    error = await _fails(server.url("/zstd"))
    assert "unsupported Content-Encoding 'zstd'" in str(error)


async def test_big_body_is_cut_at_the_wire_cap(server: HostileServer) -> None:
    """A 100 MiB body without Content-Length is refused at 10 MiB, holding little more."""
    settings = _polling()
    started = time.monotonic()
    peak = await _peak_bytes(_fetch(server.url("/big"), settings))
    assert peak < settings.max_body_bytes + 8 * MIB
    assert time.monotonic() - started < settings.timeout + 5
    error = await _fails(server.url("/big"), settings)
    assert f"body exceeds the {settings.max_body_bytes}-byte limit" in str(error)


async def test_declared_length_over_the_cap_is_refused_before_reading(
        server: HostileServer) -> None:
    """A Content-Length of 100 MiB is refused from the headers alone."""
    peak = await _peak_bytes(_fetch(server.url("/big-declared")))
    assert peak < 4 * MIB
    error = await _fails(server.url("/big-declared"))
    assert "declared body of 104857600 bytes exceeds the 10485760-byte limit" in str(error)


async def test_gzip_bomb_is_refused_at_the_decoded_cap(server: HostileServer) -> None:
    """1 GiB of gzipped zeros is refused once 32 MiB are inflated, holding about that."""
    gzip_bomb()  # computed before measuring
    settings = _polling()
    started = time.monotonic()
    peak = await _peak_bytes(_fetch(server.url("/bomb"), settings))
    # httpx's own decoder would hold a 64 MiB piece per 64 KiB chunk (peak ~143 MiB).
    assert peak < settings.max_decoded_bytes + 8 * MIB
    assert time.monotonic() - started < settings.timeout + 5
    error = await _fails(server.url("/bomb"), settings)
    assert f"decoded body exceeds the {settings.max_decoded_bytes}-byte limit" in str(error)


# --- timeouts -----------------------------------------------------------------------------


async def test_slow_loris_is_cut_at_the_total_timeout(server: HostileServer) -> None:
    """One byte a second never trips the read timeout; the total timeout cuts it."""
    settings = _polling(timeout=1.5, read_timeout=5)
    started = time.monotonic()
    error = await _fails(server.url("/slow"), settings)
    assert time.monotonic() - started < settings.timeout + 5
    assert "timed out after 1.5s (total timeout" in str(error)
    assert error.status is None


async def test_silent_server_trips_the_read_timeout(server: HostileServer) -> None:
    """Headers then silence: the read timeout, named with its value."""
    settings = _polling(read_timeout=0.5, timeout=10)
    started = time.monotonic()
    error = await _fails(server.url("/silent"), settings)
    assert time.monotonic() - started < settings.timeout
    assert f"read timeout: no data from 127.0.0.1:{server.port} for 0.5s" in str(error)


async def test_unknown_host_fails_fast_as_dns() -> None:
    """A name under .invalid fails as a DNS lookup failure, within the connect timeout."""
    settings = _polling(connect_timeout=3)
    started = time.monotonic()
    error = await _fails("http://feed.invalid/rss", settings)
    assert time.monotonic() - started < settings.connect_timeout + 5
    assert "DNS lookup failed for host feed.invalid" in str(error)


async def test_closed_port_is_connection_refused() -> None:
    """Nothing listening: connection refused, naming host and port."""
    error = await _fails("http://127.0.0.1:1/rss")
    assert "connection refused by 127.0.0.1:1" in str(error)


# --- broken connections and statuses ------------------------------------------------------


async def test_reset_mid_body_says_how_much_arrived(server: HostileServer) -> None:
    """A TCP reset after part of the body: 'connection reset after N bytes'."""
    error = await _fails(server.url("/reset"))
    assert "connection reset after" in str(error) or "connection closed after" in str(error)
    assert "of 1000000 declared" in str(error)


async def test_hangup_before_answering(server: HostileServer) -> None:
    """A server that closes without a byte: a short reason, no library jargon."""
    error = await _fails(server.url("/hangup"))
    assert "closed the connection without a valid answer" in str(error)


@pytest.mark.parametrize(("code", "retry_after"), [
    (429, "120"), (503, "Wed, 21 Oct 2015 07:28:00 GMT")])
async def test_throttling_statuses_carry_retry_after(server: HostileServer, code: int,
                                                     retry_after: str) -> None:
    """429 and 503 raise FetchError with the status and the raw Retry-After."""
    error = await _fails(server.url(f"/status/{code}"))
    assert (error.status, error.retry_after) == (code, retry_after)


async def test_gone_names_status_and_reason(server: HostileServer) -> None:
    """Another 4xx: 'HTTP 410 Gone', no Retry-After."""
    error = await _fails(server.url("/status/410"))
    assert str(error).endswith("HTTP 410 Gone")
    assert (error.status, error.retry_after) == (410, None)


# --- TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HostileServer, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    with HostileServer(tls=tls_context(cert, key)) as hostile:
        yield hostile, cert


async def test_self_signed_certificate_is_refused(
        tls_server: tuple[HostileServer, Path]) -> None:
    """An untrusted certificate: 'TLS certificate verify failed' and why."""
    error = await _fails(tls_server[0].url("/ok"))
    assert f"TLS certificate verify failed for 127.0.0.1:{tls_server[0].port}" in str(error)
    assert "self-signed" in str(error) or "self signed" in str(error)


async def test_trusted_certificate_works_with_http2_client(
        tls_server: tuple[HostileServer, Path]) -> None:
    """With the certificate trusted, an HTTP/2-enabled client falls back to HTTP/1.1."""
    hostile, cert = tls_server
    settings = _polling()
    context = ssl.create_default_context(cafile=str(cert))
    async with httpx.AsyncClient(http2=True, verify=context, follow_redirects=False) as client:
        result = await Fetcher(client, settings).fetch(hostile.url("/ok"))
    assert result.body == FEED


# --- redirects ----------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "moved"), [
    ("/r/301/ok", "/ok"), ("/r/308/ok", "/ok"), ("/r/302/ok", None), ("/r/307/ok", None),
    ("/r/301/r/302/ok", None), ("/r/302/r/301/ok", None), ("/r/301/r/308/ok", "/ok")])
async def test_moved_to_follows_permanent_redirects_only(server: HostileServer, path: str,
                                                         moved: str | None) -> None:
    """moved_to is the last URL when every hop was 301/308, else None; url is the last URL."""
    result = await _fetch(server.url(path))
    assert result.url == server.url("/ok")
    assert result.moved_to == (server.url(moved) if moved else None)


async def test_redirect_loop_is_named(server: HostileServer) -> None:
    """A 301 loop is caught when it comes back, naming its length and the last Location."""
    error = await _fails(server.url("/loop/a"))
    assert "redirect loop: after 2 redirects, Location '/loop/a'" in str(error)
    assert error.url == server.url("/loop/a")


async def test_too_many_redirects_stop_at_the_limit(server: HostileServer) -> None:
    """An endless chain stops after max_redirects, naming the count and the last Location."""
    before = server.hits("/hops/")
    error = await _fails(server.url("/hops/0"), _polling(max_redirects=3))
    assert "too many redirects: 4 (the limit is 3); last Location '/hops/4'" in str(error)
    assert server.hits("/hops/") - before == 4


async def test_feed_headers_follow_same_host_redirects_only(server: HostileServer) -> None:
    """Per-feed headers reach every hop on the first host, and no hop on another host."""
    with HostileServer() as other:
        headers = (("Authorization", SECRET), ("X-Feed-Key", "k1"))
        await _fetch(server.url(f"/r/302/x/302/{other.port}/ok"), headers=headers)
        first_host = [r for r in server.requests if r.path.startswith("/r/302/x/")]
        assert first_host[-1].headers.get("authorization") == SECRET
        hop_same_host = [r for r in server.requests if r.path == f"/x/302/{other.port}/ok"]
        assert hop_same_host[-1].headers.get("x-feed-key") == "k1"
        (seen,) = other.requests
        assert "authorization" not in seen.headers
        assert "x-feed-key" not in seen.headers


async def test_secrets_never_appear_in_errors(server: HostileServer) -> None:
    """Neither an HTTP error nor an illegal header value quotes the feed's headers."""
    gone = await _fails(server.url("/status/410"), headers=(("Authorization", SECRET),))
    illegal = await _fails(server.url("/ok"), headers=(("Authorization", SECRET + "\n"),))
    non_ascii = await _fails(server.url("/ok"), headers=(("Authorization", SECRET + "é"),))
    for error in (illegal, non_ascii):
        assert "a request header has an illegal name or value" in str(error)
    for error in (gone, illegal, non_ascii):
        assert "s3cret" not in str(error)
        assert "s3cret" not in repr(error.args)


async def test_accept_replaces_the_feed_accept(server: HostileServer) -> None:
    """``accept`` (for article pages) replaces the default Accept, which asks for feeds."""
    await _fetch(server.url("/ok/page"), accept="text/html")
    await _fetch(server.url("/ok/feed"))
    sent = {r.path: r.headers["accept"] for r in server.requests if r.path.startswith("/ok/")}
    assert sent["/ok/page"] == "text/html"
    assert sent["/ok/feed"].startswith("application/rss+xml")


# --- politeness ---------------------------------------------------------------------------


async def test_one_host_gets_per_host_requests_spaced() -> None:
    """20 fetches to one host: never more than per_host at once, starts host_spacing apart."""
    spacing = 0.1
    settings = _polling(per_host=2, host_spacing=spacing)
    with HostileServer(hold_s=0.3) as hostile:
        async with make_http_client(settings) as client:
            fetcher = Fetcher(client, settings)
            await asyncio.gather(*(fetcher.fetch(hostile.url(f"/hold/{i}")) for i in range(20)))
        arrivals = sorted(r.at for r in hostile.requests)
    assert hostile.gauge.most == 2
    assert len(arrivals) == 20
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) > spacing / 2  # server-side arrival times jitter a little
    assert arrivals[-1] - arrivals[0] >= 19 * spacing - 0.05


async def test_busy_host_does_not_delay_another() -> None:
    """A fetch to a second host:port finishes while twenty to a busy host are queued."""
    settings = _polling(per_host=1, host_spacing=0.1)
    with HostileServer(hold_s=0.3) as busy, HostileServer() as quiet:
        async with make_http_client(settings) as client:
            fetcher = Fetcher(client, settings)
            queued = [asyncio.create_task(fetcher.fetch(busy.url(f"/hold/{i}")))
                      for i in range(20)]
            await asyncio.sleep(0)  # let the busy host's queue form first
            result = await fetcher.fetch(quiet.url("/ok"))
            busy_seen = len(busy.requests)
            for task in queued:
                task.cancel()
            await asyncio.gather(*queued, return_exceptions=True)
    assert result.body == FEED
    assert busy_seen <= 3  # 20 queued behind one slot, 0.3 s each


async def test_global_limit_spans_hosts() -> None:
    """With concurrency 1, two hosts together never see two requests at once."""
    settings = _polling(concurrency=1, per_host=2)
    gauge = Gauge()
    with HostileServer(hold_s=0.1, gauge=gauge) as one, \
            HostileServer(hold_s=0.1, gauge=gauge) as two:
        async with make_http_client(settings) as client:
            fetcher = Fetcher(client, settings)
            await asyncio.gather(*(fetcher.fetch(s.url(f"/hold/{i}"))
                                   for i in range(3) for s in (one, two)))
    assert gauge.most == 1


async def test_queueing_does_not_count_against_the_total_timeout() -> None:
    """Five fetches behind one slot take longer than the timeout together; none times out."""
    settings = _polling(per_host=1, timeout=1.0)
    with HostileServer(hold_s=0.3) as hostile:
        async with make_http_client(settings) as client:
            fetcher = Fetcher(client, settings)
            results = await asyncio.gather(*(fetcher.fetch(hostile.url(f"/hold/{i}"))
                                             for i in range(5)))
    assert [r.status for r in results] == [200] * 5
    assert hostile.gauge.most == 1


async def test_idle_hosts_are_forgotten() -> None:
    """Thousands of hosts used once leave a bounded number of entries behind."""
    now = [0.0]
    limits = HostLimits(8, 2, 1.0, clock=lambda: now[0])
    for i in range(5000):
        async with limits.slot(f"h{i}.example:80"):
            pass
        now[0] += 0.01
    assert len(limits) <= 2048
