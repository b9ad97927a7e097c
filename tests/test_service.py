"""The whole path on loopback: feed server, fetch, parse, NLP, rules, SQLite, channels."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import REPO
from test_seeds import EXPECTED as STORY_RULES
from test_seeds import WIRE_COPIES, WORLD_WIRE

from ingest.config import Settings
from ingest.nlp.pipeline import Analyzer
from ingest.notify.signing import HEADER, verify
from ingest.service.app import App, CycleReport
from ingest.store.sql import SqlStore
from ingest.testing import FeedServer, Route, SmtpSink, WebhookReceiver

SECRET = "test-secret"


def story(title: str) -> str:
    """A story's name: its title, or the wire's title for either outlet's copy."""
    return WIRE_COPIES[0] if title in WIRE_COPIES else title


# One alert per (rule, story) of the table in test_seeds.py: the two copies of the wire
# story raise one alert, whichever feed is processed first.
EXPECTED = {(rule, story(title)) for title, rules in STORY_RULES.items() for rule in rules}
ENTRIES = len(STORY_RULES)


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def settings_for(tmp_path: Path, feeds: list[dict[str, Any]], hook: WebhookReceiver,
                 smtp: SmtpSink | None = None, **extra: Any) -> Settings:
    channels: dict[str, Any] = {
        "ops-webhook": {"type": "webhook", "url": hook.url("/hook"), "secret": SECRET}}
    if smtp is not None:
        channels["analysts-email"] = {"type": "email", "host": "127.0.0.1", "port": smtp.port,
                                      "security": "none", "from": "ingest@localhost",
                                      "to": ["desk@localhost"]}
    return Settings.model_validate({
        "database_url": f"sqlite:///{tmp_path / 'ingest.db'}",
        "rules_dir": str(REPO / "rules"),
        "feeds": feeds,
        "channels": channels,
        "polling": {"timeout": 2, "connect_timeout": 2},
        "delivery": {"timeout": 5},
        **extra,
    })


async def one_cycle(settings: Settings, analyzer: Analyzer) -> CycleReport:
    """Start the service, run one forced cycle, close it."""
    app = await App.start(settings, analyzer=analyzer)
    try:
        return await app.run_cycle(force=True)
    finally:
        await app.close()


def seed_feeds(server: FeedServer) -> list[dict[str, Any]]:
    urls = server.serve_dir(REPO / "seeds" / "feeds")
    return [{"id": Path(name).stem, "url": url} for name, url in urls.items()]


async def test_sample_feeds_alert_once_per_story_and_rule(tmp_path: Path, analyzer: Analyzer,
                                                          feed_server: FeedServer,
                                                          webhook: WebhookReceiver,
                                                          smtp_sink: SmtpSink) -> None:
    """Each sample story alerts for its rules by webhook and email; the quiet ones do not."""
    settings = settings_for(tmp_path, seed_feeds(feed_server), webhook, smtp_sink)
    report = await one_cycle(settings, analyzer)
    assert {(a.rule_id, story(a.entry_title)) for a in report.alerts} == EXPECTED
    assert len(report.alerts) == len(EXPECTED) and report.updates == 1
    assert report.new_entries == report.processed == ENTRIES
    payloads = [json.loads(r.body) for r in webhook.received]
    assert len(payloads) == len(EXPECTED)
    assert {(p["rule"]["id"], story(p["entry"]["title"])) for p in payloads} == EXPECTED
    for r in webhook.received:
        assert verify(SECRET, r.headers[HEADER], r.body, time.time())
        assert r.headers["Idempotency-Key"] == json.loads(r.body)["alert_id"]
    subjects = sorted(str(m["Subject"]) for m in smtp_sink.messages)
    assert subjects == sorted(f"[{p['rule']['severity'].upper()}] {p['rule']['title']}: "
                              f"{p['entry']['title']}" for p in payloads)


async def test_wire_copies_give_one_alert_with_two_sources(tmp_path: Path, analyzer: Analyzer,
                                                           feed_server: FeedServer,
                                                           webhook: WebhookReceiver) -> None:
    """The story both feeds carry raises one alert, which lists both outlets' copies."""
    settings = settings_for(tmp_path, seed_feeds(feed_server), webhook)
    await one_cycle(settings, analyzer)
    payloads = [json.loads(r.body) for r in webhook.received]
    [copy] = [p for p in payloads if story(p["entry"]["title"]) == WIRE_COPIES[0]]
    assert copy["rule"]["id"] == "airspace-violation"
    assert copy["story"]["source_count"] == 2
    assert {(s["feed"], s["title"]) for s in copy["story"]["sources"]} == {
        ("world-wire", WIRE_COPIES[0]), ("defence-desk", WIRE_COPIES[1])}
    assert all(p["story"]["source_count"] == 1 for p in payloads if p is not copy)


async def test_repoll_and_restart_never_repeat(tmp_path: Path, analyzer: Analyzer,
                                               feed_server: FeedServer,
                                               webhook: WebhookReceiver) -> None:
    """A second cycle gets 304s; a restarted service on the same database sends nothing new."""
    settings = settings_for(tmp_path, seed_feeds(feed_server), webhook)
    app = await App.start(settings, analyzer=analyzer)
    try:
        first = await app.run_cycle(force=True)
        second = await app.run_cycle(force=True)
    finally:
        await app.close()
    assert len(first.alerts) == len(EXPECTED)
    assert second.not_modified == 2 and second.processed == 0 and not second.alerts
    # Restart: a new process on the same SQLite file, and the feeds now change their ETag.
    for route in feed_server.routes.values():
        route.body = route.body.replace(b"Sample", b"Sample ")
    third = await one_cycle(settings, analyzer)
    assert third.polled == 2 and third.not_modified == 0
    assert third.new_entries == 0 and third.processed == 0 and not third.alerts
    assert len(webhook.received) == len(EXPECTED)


async def test_broken_feeds_are_recorded_and_others_carry_on(
        tmp_path: Path, analyzer: Analyzer, feed_server: FeedServer,
        webhook: WebhookReceiver) -> None:
    """A 500, a malformed document, an HTML page and a timeout land on their feed rows."""
    feeds = seed_feeds(feed_server)
    feed_server.routes["/err"] = Route(b"oops", status=500)
    feed_server.routes["/garbage"] = Route(b"\x00\x01 not a feed at all", content_type="text/plain")
    feed_server.routes["/page"] = Route(b"<!DOCTYPE html><html><body>Hi</body></html>",
                                        content_type="text/html")
    feed_server.routes["/slow"] = Route(b"<rss/>", delay_s=5)
    feeds += [{"id": name, "url": feed_server.url(f"/{name}")}
              for name in ("err", "garbage", "page", "slow")]
    settings = settings_for(tmp_path, feeds, webhook)
    app = await App.start(settings, analyzer=analyzer)
    try:
        report = await app.run_cycle(force=True)
        rows = {r.feed.id: r for r in await app.store.feeds()}
    finally:
        await app.close()
    assert {(a.rule_id, story(a.entry_title)) for a in report.alerts} == EXPECTED
    assert set(report.errors) == {"err", "garbage", "page", "slow"}
    assert "HTTP 500" in (rows["err"].state.last_error or "")
    assert "HTML page" in (rows["page"].state.last_error or "")
    assert "timed out" in (rows["slow"].state.last_error or "")
    assert all(rows[f].state.error_count == 1 for f in report.errors)
    assert rows["world-wire"].state.error_count == 0
    assert rows["world-wire"].entries_seen == len(WORLD_WIRE)


async def test_failed_delivery_is_kept_and_retried(tmp_path: Path, analyzer: Analyzer,
                                                   feed_server: FeedServer,
                                                   webhook: WebhookReceiver) -> None:
    """A failed delivery is recorded, waits out its backoff, then is delivered."""
    webhook.status = 503
    clock = ManualClock()
    settings = settings_for(tmp_path, seed_feeds(feed_server), webhook)
    app = await App.start(settings, analyzer=analyzer, clock=clock)
    try:
        first = await app.run_cycle(force=True)
        failed = await app.store.deliveries()
        webhook.status = 200
        too_soon = await app.run_cycle(force=True)
        clock.advance(seconds=34)  # first retry: 30 s plus up to 10 % jitter
        second = await app.run_cycle(force=True)
        after = await app.store.deliveries()
    finally:
        await app.close()
    assert first.failed_deliveries == len(EXPECTED) and len(webhook.rejected) == len(EXPECTED)
    assert {d.state for d in failed} == {"failed"}
    assert all("503" in (d.last_error or "") for d in failed)
    assert too_soon.delivered == 0 and too_soon.failed_deliveries == 0
    assert second.delivered == len(EXPECTED) and {d.state for d in after} == {"delivered"}
    assert {json.loads(r.body)["alert_id"] for r in webhook.received} == \
        {d.alert_id for d in after}


async def test_unprocessed_entries_are_resumed(tmp_path: Path, analyzer: Analyzer,
                                               feed_server: FeedServer,
                                               webhook: WebhookReceiver) -> None:
    """Entries stored before a crash, never processed, are processed on the next start."""
    settings = settings_for(tmp_path, seed_feeds(feed_server), webhook)
    await one_cycle(settings, analyzer)
    # Simulate a crash after storing entries but before processing: clear processed_at.
    store = SqlStore(settings.database_url)
    async with store.engine.begin() as conn:
        await conn.exec_driver_sql("UPDATE entries SET processed_at = NULL")
    await store.close()
    report = await one_cycle(settings, analyzer)
    assert report.processed == ENTRIES
    assert not report.alerts  # the alerts exist already: nothing is re-sent
    assert len(webhook.received) == len(EXPECTED)
