"""The polling path end to end through App, on real loopback servers: hostile feeds in one
cycle, permanent moves, 410 and lasting 404s, health notices to a channel, 304s, per-feed
headers, full text and truncation.  Each test asserts what the feed's row, the notices, the entries
table or a receiver ended up with.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from conftest import REPO
from hostile import HostileServer, gzip_bomb, self_signed_cert, tls_context
from sqlalchemy import text
from test_fulltext import HTML, PARAGRAPHS, article_page
from test_payload_schema import problems
from test_service import ManualClock

from ingest.config import Settings
from ingest.nlp.pipeline import Analyzer
from ingest.service.app import FAR_FUTURE, App, utc_now
from ingest.store.base import FeedRow
from ingest.store.sql import SqlStore
from ingest.testing import FeedServer, Route, WebhookReceiver

MIB = 1024 * 1024
TOKEN = "s3cret"
# Small caps and timeouts: every hostile feed fails within a few seconds.
POLLING = {"timeout": "3s", "connect_timeout": "2s", "read_timeout": "2s", "per_host": 8,
           "host_spacing": 0, "max_body_bytes": 2 * MIB}


def rss(name: str, count: int, *, link: Callable[[int], str] | None = None,
        description: str = "") -> bytes:
    """An RSS feed of ``count`` dated items, each with a guid, a link and a description."""
    items = "".join(
        f"<item><title>{name} story {i}</title>"
        f"<link>{link(i) if link else f'https://{name}.example.com/{i}'}</link>"
        f"<guid>{name}-{i}</guid><description>{description or f'Story {i} of {name}.'}"
        f"</description><pubDate>Mon, 02 Sep 2024 {10 + i % 10:02d}:00:00 GMT</pubDate></item>"
        for i in range(count))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{name}</title><link>https://{name}.example.com/</link>"
            f"<description>d</description>{items}</channel></rss>").encode()


RUSSIAN = ("Министр обороны провёл переговоры с коллегой",
           "Стороны обсудили ситуацию на границе и договорились о новых консультациях.")
# Ten entities, each ten of the one before: &lol9; would be 10^9 "lol"s.
BILLION_LAUGHS = "<!DOCTYPE rss [\n" + "".join(
    ' <!ENTITY lol{} "{}">\n'.format(i, f"&lol{i - 1};" * 10 if i else "lol")
    for i in range(10)) + "]>\n"


def russian_rss(title: str, description: str, doctype: str = "") -> str:
    """One item, declared UTF-8 whatever it will be encoded in."""
    return (f'<?xml version="1.0" encoding="utf-8"?>\n{doctype}<rss version="2.0"><channel>'
            f"<title>Лента</title><link>https://example.ru/</link><item><title>{title}</title>"
            f"<link>https://example.ru/1</link><description>{description}</description>"
            f"<guid>n1</guid></item></channel></rss>")


def settings_for(tmp_path: Path, feeds: list[dict[str, Any]], **extra: Any) -> Settings:
    return Settings.model_validate({
        "database_url": f"sqlite:///{tmp_path / 'ingest.db'}",
        "rules_dir": str(REPO / "rules"),
        "feeds": feeds,
        "polling": POLLING,
        **extra,
    })


@asynccontextmanager
async def running(settings: Settings, analyzer: Analyzer,
                  clock: Callable[[], datetime] = utc_now) -> AsyncIterator[App]:
    app = await App.start(settings, analyzer=analyzer, clock=clock)
    try:
        yield app
    finally:
        await app.close()


async def rows(app: App) -> dict[str, FeedRow]:
    return {r.feed.id: r for r in await app.store.feeds()}


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


@pytest.fixture(scope="module")
def tls_hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileServer]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    with HostileServer(tls=tls_context(cert, key)) as server:
        yield server


# --- hostile feeds in one cycle -----------------------------------------------------------

# feed id -> (path on the hostile server, pattern its last_error must match)
HOSTILE = {
    "slow-loris": ("/slow", r"timed out after 3s"),
    "huge-body": ("/big", rf"body exceeds the {2 * MIB}-byte limit"),
    "gzip-bomb": ("/bomb", r"decoded body exceeds the \d+-byte limit .*gzip"),
    "redirect-loop": ("/loop/a", r"redirect loop"),
    "throttled": ("/status/429", r"HTTP 429 Too Many Requests .*Retry-After: 120"),
    "reset": ("/reset", r"connection (reset|closed) after \d+ bytes of 1000000 declared"),
}
GOOD = {"good-a": 4, "good-b": 5, "good-c": 6}


async def test_hostile_feeds_fail_alone_in_one_bounded_cycle(
        tmp_path: Path, analyzer: Analyzer, feed_server: FeedServer, hostile: HostileServer,
        tls_hostile: HostileServer) -> None:
    """Eight hostile feeds each fail once with a reason naming the problem; three good
    feeds, a windows-1251 feed declared UTF-8 and a billion-laughs feed are stored; the
    429 waits its Retry-After; the cycle is bounded by the timeouts."""
    gzip_bomb()  # compressed once per process: not inside the timed cycle
    feeds = [{"id": fid, "url": hostile.url(path)} for fid, (path, _) in HOSTILE.items()]
    feeds += [{"id": "tls", "url": tls_hostile.url("/ok")},
              {"id": "dns", "url": "http://feed.invalid/rss"}]
    for fid, count in GOOD.items():
        feed_server.routes[f"/{fid}.xml"] = Route(rss(fid, count))
    feed_server.routes["/cp1251.xml"] = Route(russian_rss(*RUSSIAN).encode("cp1251"))
    feed_server.routes["/laughs.xml"] = Route(
        russian_rss("&lol9;", "&lol9; &lol9;", doctype=BILLION_LAUGHS).encode())
    feeds += [{"id": p, "url": feed_server.url(f"/{p}.xml")}
              for p in [*GOOD, "cp1251", "laughs"]]
    errors = {**{fid: pattern for fid, (_, pattern) in HOSTILE.items()},
              "tls": r"TLS certificate verify failed for 127\.0\.0\.1:\d+",
              "dns": r"DNS lookup failed for host feed\.invalid"}

    async with running(settings_for(tmp_path, feeds), analyzer) as app:
        started = time.monotonic()
        report = await app.poll(force=True)
        elapsed = time.monotonic() - started
        by_id = await rows(app)
        stored = {s.entry.feed_id: s.entry for s in await app.store.unprocessed_entries(100)}

    assert elapsed < 60
    assert report.polled == len(feeds) and set(report.errors) == set(errors)
    for fid, pattern in errors.items():
        state = by_id[fid].state
        assert state.error_count == 1, fid
        assert re.search(pattern, state.last_error or ""), (fid, state.last_error)
        assert by_id[fid].entries_seen == 0
    for fid, count in GOOD.items():
        assert (by_id[fid].state.error_count, by_id[fid].entries_seen) == (0, count)
    assert report.new_entries == sum(GOOD.values()) + 2
    # Misdeclared windows-1251: readable Cyrillic, stored, and the guess is on the row.
    assert by_id["cp1251"].entries_seen == 1 and by_id["cp1251"].state.error_count == 0
    assert stored["cp1251"].title == RUSSIAN[0]
    assert "cp1251" in (by_id["cp1251"].warning or "")
    # Billion laughs: stored, nothing expanded.
    assert by_id["laughs"].entries_seen == 1 and by_id["laughs"].state.error_count == 0
    assert "lollol" not in stored["laughs"].title + stored["laughs"].summary
    # The 429's Retry-After (120 s) is the wait, not the 15-minute first backoff.
    throttled = by_id["throttled"]
    assert throttled.state.next_poll_at is not None and throttled.last_polled_at is not None
    wait = (throttled.state.next_poll_at - throttled.last_polled_at).total_seconds()
    assert 120 <= wait <= 120 * 1.1 + 1


# --- redirects ----------------------------------------------------------------------------


async def test_301_moves_the_feed_and_302_does_not(tmp_path: Path, analyzer: Analyzer,
                                                   hostile: HostileServer) -> None:
    """After a 301 the feed is polled at the new URL and its row says to update the
    config; a 302 leaves its URL alone and is followed again on every poll."""
    hostile.requests.clear()
    feeds = [{"id": "moved", "url": hostile.url("/r/301/ok")},
             {"id": "detour", "url": hostile.url("/r/302/ok")}]
    async with running(settings_for(tmp_path, feeds), analyzer) as app:
        await app.poll(force=True)
        first = await rows(app)
        await app.poll(force=True)
        second = await rows(app)

    moved, detour = first["moved"], first["detour"]
    assert moved.state.url == hostile.url("/ok") and moved.config_url == hostile.url("/r/301/ok")
    assert moved.warning is not None
    assert f"moved permanently to {hostile.url('/ok')}" in moved.warning
    assert "update the configured URL" in moved.warning
    assert detour.state.url == hostile.url("/r/302/ok") and detour.warning is None
    assert moved.entries_seen == detour.entries_seen == 1
    # The second poll goes straight to the new URL; the 302 is asked again.
    assert hostile.hits("/r/301/") == 1 and hostile.hits("/r/302/") == 2
    assert hostile.hits("/ok") == 4
    assert second["moved"].state.url == hostile.url("/ok")
    assert "update the configured URL" in (second["moved"].warning or "")
    assert second["detour"].state.url == hostile.url("/r/302/ok")
    # A restart with the same config keeps the new address.
    async with running(settings_for(tmp_path, feeds), analyzer) as app:
        assert (await rows(app))["moved"].state.url == hostile.url("/ok")


async def test_token_is_not_sent_to_the_host_a_feed_moved_to(
        tmp_path: Path, analyzer: Analyzer, feed_server: FeedServer,
        hostile: HostileServer) -> None:
    """A permanent move to another host does not take the feed's token there."""
    feed_server.routes["/moved.xml"] = Route(rss("moved", 1))
    feeds = [{"id": "moved", "headers": {"Authorization": f"Bearer {TOKEN}"},
              "url": hostile.url(f"/x/301/{feed_server.port}/moved.xml")}]
    async with running(settings_for(tmp_path, feeds), analyzer) as app:
        await app.poll(force=True)  # redirected: the hop drops the token
        await app.poll(force=True)  # polled at the new address
        row = (await rows(app))["moved"]
    assert row.state.url == feed_server.url("/moved.xml")
    assert feed_server.hits("/moved.xml") == 2
    assert [lower(h).get("authorization") for _, h in feed_server.requests] == [None, None]


# --- 410 ----------------------------------------------------------------------------------


async def test_410_disables_and_reset_enables_again(tmp_path: Path, analyzer: Analyzer,
                                                    feed_server: FeedServer) -> None:
    """410 Gone: the feed is never due and a disabled notice is recorded; after a reset
    (``ingest feeds reset``) it is due and polled again."""
    feed_server.routes["/gone.xml"] = Route(b"gone", status=410)
    clock = ManualClock()
    settings = settings_for(tmp_path, [{"id": "gone", "url": feed_server.url("/gone.xml")}])
    async with running(settings, analyzer, clock) as app:
        report = await app.poll(force=True)
        row = (await rows(app))["gone"]
        due = await app.store.due_feeds(FAR_FUTURE, limit=10)
        notices = await app.store.notices("gone")
        again = await app.poll(force=True)

        feed_server.routes["/gone.xml"] = Route(rss("back", 2))
        assert await app.store.reset_feed("gone", clock())
        due_after = await app.store.due_feeds(clock(), limit=10)
        back = await app.poll()
        after = (await rows(app))["gone"]

    assert "HTTP 410 Gone" in report.errors["gone"]
    assert row.state.disabled_reason is not None and "410 Gone" in row.state.disabled_reason
    assert "ingest feeds reset gone" in row.state.disabled_reason
    assert row.state.health == "disabled" and due == []
    assert [(n.kind, n.state) for n in notices] == [("disabled", "logged")]
    assert "no longer polled" in notices[0].message
    assert again.polled == 0 and feed_server.hits("/gone.xml") == 2  # 410, then after reset
    assert [f.id for f, _ in due_after] == ["gone"] and back.polled == 1
    assert after.state.disabled_reason is None and after.state.error_count == 0
    assert after.state.health == "ok" and after.entries_seen == 2


async def test_404_disables_once_it_has_lasted(tmp_path: Path, analyzer: Analyzer,
                                               feed_server: FeedServer) -> None:
    """404 is an error like others until it has lasted polling.not_found_disable_after;
    then the feed is disabled, with a notice; a success in between starts the count again."""
    clock = ManualClock()
    settings = settings_for(tmp_path, [{"id": "lost", "url": feed_server.url("/lost.xml")}],
                            polling={**POLLING, "not_found_disable_after": "2d"})
    async with running(settings, analyzer, clock) as app:
        await app.poll(force=True)
        first = (await rows(app))["lost"]
        clock.advance(days=1)
        feed_server.routes["/lost.xml"] = Route(rss("lost", 1))
        await app.poll(force=True)  # found again: the 404s start over
        del feed_server.routes["/lost.xml"]
        clock.advance(days=1)
        await app.poll(force=True)
        clock.advance(days=1, hours=12)
        await app.poll(force=True)
        short = (await rows(app))["lost"]
        clock.advance(hours=12)
        await app.poll(force=True)
        last = (await rows(app))["lost"]
        due = await app.store.due_feeds(FAR_FUTURE, limit=10)
        notices = await app.store.notices("lost")

    assert "HTTP 404" in (first.state.last_error or "")
    assert first.state.disabled_reason is None and first.state.error_count == 1
    assert short.state.disabled_reason is None and short.state.error_count == 2
    assert last.state.error_count == 3 and due == []
    assert (last.state.disabled_reason or "").startswith("404 Not Found for 2 days")
    assert [n.kind for n in notices] == ["disabled", "failing"]  # failing: health.failing_after


# --- health notices -----------------------------------------------------------------------


def health_settings(tmp_path: Path, feed_server: FeedServer,
                    webhook: WebhookReceiver) -> Settings:
    return settings_for(
        tmp_path, [{"id": "flaky", "url": feed_server.url("/flaky.xml")}],
        channels={"ops": {"type": "webhook", "url": webhook.url("/ops")}},
        health={"channel": "ops", "failing_after": "0s"})


def json_list(value: object) -> list[object]:
    """A JSON column as read back (a list, or its text on some drivers)."""
    return json.loads(value) if isinstance(value, str) else list(value or [])


async def poll_and_notify(app: App) -> None:
    """A poll, then the notice sending that follows it (the daemon runs it after polls)."""
    await app.poll(force=True)
    await app.send_notices()


async def test_failing_and_recovered_notices_reach_the_health_channel(
        tmp_path: Path, analyzer: Analyzer, feed_server: FeedServer,
        webhook: WebhookReceiver) -> None:
    """A failing feed sends one feed-health alert naming it, in the published payload
    schema; once it answers again, a recovered notice follows."""
    feed_server.routes["/flaky.xml"] = Route(b"oops", status=500)
    clock = ManualClock()
    async with running(health_settings(tmp_path, feed_server, webhook), analyzer,
                       clock) as app:
        await poll_and_notify(app)
        failing = [json.loads(r.body) for r in webhook.received]
        clock.advance(minutes=5)
        await poll_and_notify(app)  # still failing: no second notice
        repeated = len(webhook.received)

        feed_server.routes["/flaky.xml"] = Route(rss("flaky", 2))
        clock.advance(minutes=5)
        await poll_and_notify(app)
        notices = await app.store.notices("flaky")
        row = (await rows(app))["flaky"]

    [alert] = failing
    assert alert["rule"]["id"] == "feed-health" and alert["rule"]["title"] == "Feed failing"
    assert alert["entry"]["feed"] == "flaky"
    assert "feed flaky has failed every poll" in alert["snippet"]
    assert "HTTP 500" in alert["snippet"]
    assert repeated == 1
    recovered = json.loads(webhook.received[-1].body)
    assert len(webhook.received) == 2
    assert recovered["rule"]["id"] == "feed-health"
    assert recovered["rule"]["tags"] == ["feed-health", "recovered"]
    assert recovered["snippet"] == "feed flaky is polled successfully again"
    assert [(n.kind, n.state) for n in notices] == [("recovered", "sent"), ("failing", "sent")]
    assert problems(alert) == problems(recovered) == []  # the published payload schema
    assert row.state.health == "ok" and row.entries_seen == 2


async def test_many_feeds_failing_at_once_make_one_notice(
        tmp_path: Path, analyzer: Analyzer, feed_server: FeedServer,
        webhook: WebhookReceiver) -> None:
    """An outage failing twelve feeds sends one grouped alert naming them, not twelve."""
    feeds = []
    for i in range(12):
        feed_server.routes[f"/down{i}.xml"] = Route(b"down", status=503)
        feeds.append({"id": f"down{i:02d}", "url": feed_server.url(f"/down{i}.xml")})
    settings = settings_for(tmp_path, feeds,
                            channels={"ops": {"type": "webhook", "url": webhook.url("/ops")}},
                            health={"channel": "ops", "failing_after": "0s"},
                            polling={"per_host": 12, "host_spacing": 0})
    async with running(settings, analyzer, ManualClock()) as app:
        await poll_and_notify(app)
        notices = await app.store.notices()
    [alert] = [json.loads(r.body) for r in webhook.received]
    assert alert["entry"]["title"].startswith("12 feeds failing: down")
    assert "and 2 more" in alert["entry"]["title"]
    assert alert["snippet"].count("has failed every poll") == 12
    assert problems(alert) == []
    assert sorted((n.kind, n.state) for n in notices) == [("failing", "sent")] * 12


async def test_notice_refused_by_the_channel_is_retried_later_and_sent_once(
        tmp_path: Path, analyzer: Analyzer, feed_server: FeedServer,
        webhook: WebhookReceiver) -> None:
    """The channel answers 500: the notice waits its backoff (30 s), then goes out once."""
    feed_server.routes["/flaky.xml"] = Route(b"oops", status=500)
    webhook.statuses = [500]
    clock = ManualClock()
    async with running(health_settings(tmp_path, feed_server, webhook), analyzer,
                       clock) as app:
        await poll_and_notify(app)
        [refused] = await app.store.notices("flaky")
        clock.advance(seconds=10)
        await poll_and_notify(app)  # before the backoff ends: not sent
        waiting = (len(webhook.rejected), len(webhook.received))
        clock.advance(seconds=25)
        await poll_and_notify(app)
        [sent] = await app.store.notices("flaky")
        clock.advance(minutes=10)
        await poll_and_notify(app)  # sent: never again

    assert (refused.kind, refused.state, refused.attempts) == ("failing", "pending", 1)
    assert "500" in (refused.last_error or "")
    assert waiting == (1, 0)
    assert (sent.state, sent.attempts) == ("sent", 2)
    assert len(webhook.rejected) == 1 and len(webhook.received) == 1
    assert json.loads(webhook.received[0].body)["rule"]["id"] == "feed-health"


# --- conditional GET ----------------------------------------------------------------------


async def test_second_poll_is_a_cheap_304(tmp_path: Path, analyzer: Analyzer,
                                          feed_server: FeedServer) -> None:
    """The second poll sends the stored ETag, gets 304, stores nothing new, and still
    counts as a success; the average fetch time is recorded."""
    feed_server.routes["/c.xml"] = Route(rss("c", 3))
    clock = ManualClock()
    settings = settings_for(tmp_path, [{"id": "c", "url": feed_server.url("/c.xml")}])
    async with running(settings, analyzer, clock) as app:
        first = await app.poll(force=True)
        before = (await rows(app))["c"]
        clock.advance(minutes=10)
        second = await app.poll(force=True)
        after = (await rows(app))["c"]

    assert first.new_entries == 3 and before.state.etag
    sent = lower(feed_server.requests[-1][1])
    assert sent["if-none-match"] == before.state.etag
    assert (second.polled, second.not_modified, second.new_entries) == (1, 1, 0)
    assert after.entries_seen == 3 and after.state.error_count == 0
    assert before.last_success_at is not None
    assert after.last_success_at == before.last_success_at + timedelta(minutes=10)
    assert after.state.etag == before.state.etag
    assert after.state.fetch_time_avg_s is not None and after.state.fetch_time_avg_s > 0


async def test_warning_about_the_document_survives_a_304(tmp_path: Path, analyzer: Analyzer,
                                                         feed_server: FeedServer) -> None:
    """A caveat about the document (here a misdeclared encoding) stays on the row while
    the server says the document has not changed."""
    feed_server.routes["/cp1251.xml"] = Route(russian_rss(*RUSSIAN).encode("cp1251"))
    settings = settings_for(tmp_path, [{"id": "cp1251", "url": feed_server.url("/cp1251.xml")}])
    async with running(settings, analyzer) as app:
        await app.poll(force=True)
        before = (await rows(app))["cp1251"]
        second = await app.poll(force=True)
        after = (await rows(app))["cp1251"]
    assert "cp1251" in (before.warning or "") and second.not_modified == 1
    assert after.warning == before.warning


# --- per-feed headers ---------------------------------------------------------------------


async def test_feed_headers_are_sent_and_never_shown(tmp_path: Path, analyzer: Analyzer,
                                                     feed_server: FeedServer,
                                                     hostile: HostileServer) -> None:
    """The feed's Authorization reaches its server, not a host it redirects to; the token
    is in no last_error and no log line, whether the server refuses it or it is illegal."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    feed_server.routes["/private.xml"] = Route(rss("private", 1))
    feed_server.routes["/refused.xml"] = Route(b"no", status=401)
    feed_server.routes["/elsewhere.xml"] = Route(b"missing", status=404)
    feeds = [
        {"id": "private", "url": feed_server.url("/private.xml"), "headers": auth},
        {"id": "refused", "url": feed_server.url("/refused.xml"), "headers": auth},
        {"id": "illegal", "url": feed_server.url("/private.xml"),
         "headers": {"Authorization": f"Bearer {TOKEN}\r\nX-Injected: 1"}},
        {"id": "redirected", "headers": auth,
         "url": hostile.url(f"/x/302/{feed_server.port}/elsewhere.xml")},
    ]
    with structlog.testing.capture_logs() as logs:
        async with running(settings_for(tmp_path, feeds), analyzer) as app:
            await app.poll(force=True)
            by_id = await rows(app)
            async with app.store.engine.connect() as conn:  # type: ignore[attr-defined]
                stored = [r[0] for r in await conn.execute(text("SELECT headers FROM feeds"))]

    assert TOKEN not in repr(stored)  # header values never reach the database
    assert ["Authorization", ""] in [h for row in stored for h in json_list(row)]
    seen = {path: lower(headers) for path, headers in feed_server.requests}
    assert seen["/private.xml"]["authorization"] == f"Bearer {TOKEN}"
    assert "authorization" not in seen["/elsewhere.xml"]  # another host: not forwarded
    assert by_id["private"].entries_seen == 1
    assert "HTTP 401" in (by_id["refused"].state.last_error or "")
    assert "illegal name or value" in (by_id["illegal"].state.last_error or "")
    assert "HTTP 404" in (by_id["redirected"].state.last_error or "")
    for row in by_id.values():
        assert TOKEN not in (row.state.last_error or "") + (row.warning or "")
    assert logs and TOKEN not in repr(logs)


# --- full text ----------------------------------------------------------------------------


async def test_fulltext_feed_stores_article_text_and_fetches_each_page_once(
        tmp_path: Path, analyzer: Analyzer, feed_server: FeedServer) -> None:
    """A fulltext feed's entry holds its linked article's text, not the teaser; later
    polls fetch only the pages of new items."""
    for i in range(3):
        feed_server.routes[f"/a{i}.html"] = Route(article_page().encode(), content_type=HTML)

    def feed(count: int) -> Route:
        return Route(rss("teaser", count, link=lambda i: feed_server.url(f"/a{i}.html"),
                         description="Ships collide."))

    feed_server.routes["/teaser.xml"] = feed(2)
    settings = settings_for(tmp_path, [{"id": "teaser", "fulltext": True,
                                        "url": feed_server.url("/teaser.xml")}])
    async with running(settings, analyzer) as app:
        await app.poll(force=True)
        stored = [s.entry for s in await app.store.unprocessed_entries(10)]
        await app.run_cycle(force=True)  # 304: no page fetched
        feed_server.routes["/teaser.xml"] = feed(3)  # one new item
        report = await app.run_cycle(force=True)
        row = (await rows(app))["teaser"]
        assert isinstance(app.store, SqlStore)
        async with app.store.engine.connect() as conn:
            contents = dict((await conn.execute(text(
                "SELECT key, content FROM entries WHERE feed_id = 'teaser'"))).all())

    assert len(stored) == 2
    for entry in stored:
        assert entry.summary == "Ships collide."
        assert PARAGRAPHS[0][:60] in entry.content and PARAGRAPHS[-1][:60] in entry.content
        assert "Share on Facebook" not in entry.content
    assert report.new_entries == 1 and row.warning is None and row.entries_seen == 3
    assert [feed_server.hits(f"/a{i}.html") for i in range(3)] == [1, 1, 1]
    assert len(contents) == 3 and all(PARAGRAPHS[2][:60] in c for c in contents.values())


# --- truncation ---------------------------------------------------------------------------


async def test_truncation_is_recorded_on_the_entry(tmp_path: Path, analyzer: Analyzer,
                                                   feed_server: FeedServer) -> None:
    """An entry longer than nlp.max_chars is analysed in part, and its row keeps the full
    document length in truncated_from; a short one has none."""
    long_text = " ".join(["The delegation met again to discuss the border."] * 40)
    feed_server.routes["/long.xml"] = Route(rss("long", 1, description=long_text))
    feed_server.routes["/short.xml"] = Route(rss("short", 1))
    feeds = [{"id": "long", "url": feed_server.url("/long.xml")},
             {"id": "short", "url": feed_server.url("/short.xml")}]
    settings = settings_for(tmp_path, feeds, nlp={"max_chars": 500})
    async with running(settings, analyzer) as app:
        await app.poll(force=True)
        lengths = {s.entry.feed_id: len(s.entry.document())
                   for s in await app.store.unprocessed_entries(10)}
        report = await app.process_pending()
        assert isinstance(app.store, SqlStore)
        async with app.store.engine.connect() as conn:
            truncated = dict((await conn.execute(text(
                "SELECT feed_id, truncated_from FROM entries"))).all())

    assert report.processed == 2
    assert lengths["long"] > 500 > lengths["short"]
    assert truncated == {"long": lengths["long"], "short": None}
