"""SqlStore on a real SQLite file, and its core idempotency on a running PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.model import Alert, Entry, Feed, FetchResult
from ingest.parse.dedup import alert_id
from ingest.store.base import DeliveryRow, FeedRow
from ingest.store.schema import metadata
from ingest.store.sql import SqlStore

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

FEEDS = [
    Feed("reuters-world", "https://feeds.example.com/reuters/world.rss", "Reuters World",
         ("world",), 300.0),
    Feed("bbc-europe", "https://feeds.example.com/bbc/europe.rss", "BBC Europe", ("europe",)),
]


def make_entry(n: int, feed_id: str = "reuters-world") -> Entry:
    """A realistic normalised entry, distinct per ``n``."""
    return Entry(
        feed_id=feed_id,
        key=f"guid:https://www.example.com/world/2024/05/01/story-{n}",
        title=f"Story {n}: talks resume in Geneva",
        link=f"https://www.example.com/world/2024/05/01/story-{n}",
        summary=f"Delegations met in Geneva on day {n} of the talks.",
        content="",
        published=NOW - timedelta(hours=n),
        guid=f"https://www.example.com/world/2024/05/01/story-{n}",
    )


def make_alert(entry: Entry, rule_id: str = "geneva-talks",
               channels: tuple[str, ...] = ("a", "b")) -> Alert:
    """The alert a rule would raise on ``entry``."""
    return Alert(
        id=alert_id(rule_id, entry.feed_id, entry.key),
        rule_id=rule_id,
        rule_title="Peace talks in Geneva",
        severity="medium",
        tags=("diplomacy",),
        feed_id=entry.feed_id,
        entry_key=entry.key,
        entry_title=entry.title,
        entry_link=entry.link,
        published=entry.published,
        created_at=NOW,
        entities=({"text": "Geneva", "name": "Geneva", "label": "GPE", "country": "CH"},),
        terms=("talks",),
        snippet=entry.summary,
        channels=channels,
    )


def ok_fetch(etag: str | None = '"abc123"') -> FetchResult:
    return FetchResult(url=FEEDS[0].url, status=200, body=b"<rss/>", etag=etag,
                       last_modified="Wed, 01 May 2024 11:00:00 GMT")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    s = SqlStore(f"sqlite:///{tmp_path / 't.db'}")
    await s.init()
    try:
        yield s
    finally:
        await s.close()


async def _feed_row(store: SqlStore, feed_id: str) -> FeedRow:
    rows = {r.feed.id: r for r in await store.feeds()}
    return rows[feed_id]


async def _deliveries(store: SqlStore, alert: Alert) -> dict[str, DeliveryRow]:
    return {d.channel: d for d in await store.deliveries(alert.id)}


# -- feeds ------------------------------------------------------------------


async def test_sync_feeds_inserts_feeds(store: SqlStore) -> None:
    """sync_feeds inserts every configured feed, enabled and due at once."""
    await store.sync_feeds(FEEDS, NOW)
    rows = {r.feed.id: r for r in await store.feeds()}
    assert set(rows) == {"reuters-world", "bbc-europe"}
    assert rows["reuters-world"].feed.url == FEEDS[0].url
    assert rows["reuters-world"].feed.tags == ("world",)
    assert rows["reuters-world"].feed.interval_s == 300.0
    assert all(r.feed.enabled for r in rows.values())
    due = {f.id for f, _ in await store.due_feeds(NOW, limit=10)}
    assert due == {"reuters-world", "bbc-europe"}


async def test_sync_feeds_disables_removed_feed(store: SqlStore) -> None:
    """A feed dropped from the configuration is disabled and no longer due."""
    await store.sync_feeds(FEEDS, NOW)
    await store.sync_feeds(FEEDS[:1], NOW)
    rows = {r.feed.id: r for r in await store.feeds()}
    assert rows["bbc-europe"].feed.enabled is False
    assert rows["reuters-world"].feed.enabled is True
    due = {f.id for f, _ in await store.due_feeds(NOW + timedelta(days=1), limit=10)}
    assert due == {"reuters-world"}


async def test_sync_feeds_changed_url_resets_validators(store: SqlStore) -> None:
    """A feed whose URL changed forgets its ETag and Last-Modified and is due again."""
    await store.sync_feeds(FEEDS, NOW)
    await store.record_fetch("reuters-world", ok_fetch(), NOW, NOW + timedelta(hours=1))
    assert (await _feed_row(store, "reuters-world")).state.etag == '"abc123"'
    moved = Feed("reuters-world", "https://feeds.example.com/reuters/world-v2.rss",
                 "Reuters World", ("world",), 300.0)
    await store.sync_feeds([moved, FEEDS[1]], NOW + timedelta(minutes=1))
    row = await _feed_row(store, "reuters-world")
    assert row.feed.url == moved.url
    assert row.state.etag is None
    assert row.state.last_modified is None
    due = {f.id for f, _ in await store.due_feeds(NOW + timedelta(minutes=1), limit=10)}
    assert "reuters-world" in due


async def test_sync_feeds_same_url_keeps_etag(store: SqlStore) -> None:
    """Re-syncing an unchanged feed keeps its ETag."""
    await store.sync_feeds(FEEDS, NOW)
    await store.record_fetch("reuters-world", ok_fetch(), NOW, NOW + timedelta(hours=1))
    await store.sync_feeds(FEEDS, NOW)
    assert (await _feed_row(store, "reuters-world")).state.etag == '"abc123"'


async def test_due_feeds_respects_next_poll_at(store: SqlStore) -> None:
    """A feed polled with next_poll_at in the future is not due now, but due by then."""
    await store.sync_feeds(FEEDS, NOW)
    next_poll = NOW + timedelta(minutes=5)
    await store.record_fetch("reuters-world", ok_fetch(), NOW, next_poll)
    due_now = {f.id for f, _ in await store.due_feeds(NOW, limit=10)}
    assert due_now == {"bbc-europe"}
    just_before = {f.id for f, _ in await store.due_feeds(next_poll - timedelta(seconds=1), 10)}
    assert just_before == {"bbc-europe"}
    later = {f.id: s for f, s in await store.due_feeds(next_poll + timedelta(seconds=1), 10)}
    assert set(later) == {"reuters-world", "bbc-europe"}
    assert later["reuters-world"].next_poll_at == next_poll
    assert later["reuters-world"].etag == '"abc123"'


async def test_record_fetch_error_counts_and_fetch_resets(store: SqlStore) -> None:
    """Fetch errors increment error_count and keep last_error; a success resets the count."""
    await store.sync_feeds(FEEDS, NOW)
    await store.record_fetch_error("reuters-world", "HTTP 503", NOW, NOW + timedelta(minutes=1))
    await store.record_fetch_error("reuters-world", "timed out after 20 s",
                                   NOW + timedelta(minutes=1), NOW + timedelta(minutes=3))
    row = await _feed_row(store, "reuters-world")
    assert row.state.error_count == 2
    assert row.state.last_error == "timed out after 20 s"
    assert row.last_polled_at == NOW + timedelta(minutes=1)
    assert row.last_success_at is None
    assert (await _feed_row(store, "bbc-europe")).state.error_count == 0
    await store.record_fetch("reuters-world", ok_fetch(), NOW + timedelta(minutes=3),
                             NOW + timedelta(minutes=8))
    row = await _feed_row(store, "reuters-world")
    assert row.state.error_count == 0
    assert row.state.last_error is None
    assert row.last_success_at == NOW + timedelta(minutes=3)


# -- entries ----------------------------------------------------------------


async def test_add_entries_returns_only_new(store: SqlStore) -> None:
    """Adding the same entries twice returns them the first time and nothing the second."""
    await store.sync_feeds(FEEDS, NOW)
    entries = [make_entry(1), make_entry(2), make_entry(1, "bbc-europe")]
    first = await store.add_entries(entries, NOW)
    assert sorted((s.entry.feed_id, s.entry.key) for s in first) == sorted(
        (e.feed_id, e.key) for e in entries)
    assert {s.entry for s in first} == set(entries)
    assert len({s.id for s in first}) == 3
    assert await store.add_entries(entries, NOW + timedelta(minutes=5)) == []
    mixed = await store.add_entries([make_entry(2), make_entry(3)], NOW + timedelta(minutes=10))
    assert [s.entry for s in mixed] == [make_entry(3)]
    assert await store.count_entries() == 4
    assert (await _feed_row(store, "reuters-world")).entries_seen == 3


async def test_add_entries_idempotent_across_restart(tmp_path: Path) -> None:
    """Entries added before closing the store are still known after re-opening the file."""
    url = f"sqlite:///{tmp_path / 't.db'}"
    entries = [make_entry(1), make_entry(2)]
    first = SqlStore(url)
    await first.init()
    try:
        await first.sync_feeds(FEEDS, NOW)
        assert len(await first.add_entries(entries, NOW)) == 2
    finally:
        await first.close()
    second = SqlStore(url)
    await second.init()
    try:
        assert await second.add_entries(entries, NOW + timedelta(hours=1)) == []
        assert await second.count_entries() == 2
    finally:
        await second.close()


async def test_unprocessed_entries_until_processed(store: SqlStore) -> None:
    """Entries stay unprocessed until record_processed marks them done."""
    await store.sync_feeds(FEEDS, NOW)
    stored = await store.add_entries([make_entry(1), make_entry(2)], NOW)
    pending = await store.unprocessed_entries(limit=10)
    assert [s.id for s in pending] == [s.id for s in stored]
    assert pending[0].entry == stored[0].entry
    assert await store.record_processed(stored[0].id, [], NOW) == []
    assert [s.id for s in await store.unprocessed_entries(limit=10)] == [stored[1].id]
    await store.record_processed(stored[1].id, [], NOW)
    assert await store.unprocessed_entries(limit=10) == []


async def test_record_processed_creates_alert_and_deliveries(store: SqlStore) -> None:
    """An alert with two channels is stored with one pending delivery per channel."""
    await store.sync_feeds(FEEDS, NOW)
    [stored] = await store.add_entries([make_entry(1)], NOW)
    alert = make_alert(stored.entry)
    assert await store.record_processed(stored.id, [alert], NOW) == [alert]
    assert await store.alerts() == [alert]
    rows = await _deliveries(store, alert)
    assert set(rows) == {"a", "b"}
    assert all(r.state == "pending" and r.attempts == 0 for r in rows.values())


async def test_record_processed_is_idempotent(store: SqlStore) -> None:
    """Recording the same alert again returns [] and creates no new delivery rows."""
    await store.sync_feeds(FEEDS, NOW)
    [stored] = await store.add_entries([make_entry(1)], NOW)
    alert = make_alert(stored.entry)
    await store.record_processed(stored.id, [alert], NOW)
    before = await store.deliveries()
    assert await store.record_processed(stored.id, [alert], NOW + timedelta(minutes=1)) == []
    assert await store.deliveries() == before
    assert len(before) == 2
    assert len(await store.alerts()) == 1


# -- deliveries -------------------------------------------------------------


async def _one_alert(store: SqlStore) -> Alert:
    await store.sync_feeds(FEEDS, NOW)
    [stored] = await store.add_entries([make_entry(1)], NOW)
    alert = make_alert(stored.entry)
    await store.record_processed(stored.id, [alert], NOW)
    return alert


async def test_pending_deliveries_carry_the_alert(store: SqlStore) -> None:
    """pending_deliveries returns each pending delivery with its full alert."""
    alert = await _one_alert(store)
    pending = await store.pending_deliveries(max_attempts=3, limit=10)
    assert sorted(p.channel for p in pending) == ["a", "b"]
    assert all(p.alert == alert and p.attempts == 0 for p in pending)


async def test_record_delivery_ok_is_delivered(store: SqlStore) -> None:
    """A successful delivery is marked delivered, keeps its receipt and is no longer pending."""
    alert = await _one_alert(store)
    target = next(p for p in await store.pending_deliveries(3, 10) if p.channel == "a")
    await store.record_delivery(target.id, ok=True, detail="HTTP 200", now=NOW)
    row = (await _deliveries(store, alert))["a"]
    assert (row.state, row.attempts, row.receipt) == ("delivered", 1, "HTTP 200")
    assert [p.channel for p in await store.pending_deliveries(3, 10)] == ["b"]


async def test_record_delivery_failed_retries_until_max_attempts(store: SqlStore) -> None:
    """A failed delivery stays pending while attempts < max_attempts, then drops out."""
    alert = await _one_alert(store)
    target = next(p for p in await store.pending_deliveries(3, 10) if p.channel == "a")
    await store.record_delivery(target.id, ok=False, detail="HTTP 500", now=NOW)
    row = (await _deliveries(store, alert))["a"]
    assert (row.state, row.attempts, row.last_error) == ("failed", 1, "HTTP 500")
    again = {p.channel: p for p in await store.pending_deliveries(3, 10)}
    assert again["a"].attempts == 1
    await store.record_delivery(target.id, ok=False, detail="HTTP 502", now=NOW)
    assert "a" in {p.channel for p in await store.pending_deliveries(3, 10)}
    await store.record_delivery(target.id, ok=False, detail="HTTP 503", now=NOW)
    assert {p.channel for p in await store.pending_deliveries(3, 10)} == {"b"}
    assert "a" in {p.channel for p in await store.pending_deliveries(4, 10)}


async def test_record_delivery_dead_is_not_pending(store: SqlStore) -> None:
    """A dead delivery is marked dead and never pending again, whatever max_attempts."""
    alert = await _one_alert(store)
    target = next(p for p in await store.pending_deliveries(3, 10) if p.channel == "b")
    await store.record_delivery(target.id, ok=False, detail="HTTP 400", now=NOW, dead=True)
    row = (await _deliveries(store, alert))["b"]
    assert (row.state, row.last_error) == ("dead", "HTTP 400")
    assert [p.channel for p in await store.pending_deliveries(100, 10)] == ["a"]


# -- PostgreSQL -------------------------------------------------------------


async def _drop_all(store: SqlStore) -> None:
    async with store.engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)


@pytest.fixture
async def pg_store() -> AsyncIterator[SqlStore]:
    s = SqlStore(PG_URL)
    try:
        async with s.engine.connect():
            pass
    except Exception as exc:  # any failure to connect means: no PostgreSQL here
        await s.engine.dispose()
        pytest.skip(f"PostgreSQL at {PG_URL} is not reachable: {type(exc).__name__}: {exc}")
    try:
        await _drop_all(s)
        await s.init()
        yield s
    finally:
        try:
            await _drop_all(s)
        finally:
            await s.close()


async def test_pg_add_entries_returns_only_new(pg_store: SqlStore) -> None:
    """On PostgreSQL, adding the same entries twice returns them once, then nothing."""
    await pg_store.sync_feeds(FEEDS, NOW)
    entries = [make_entry(1), make_entry(2), make_entry(1, "bbc-europe")]
    first = await pg_store.add_entries(entries, NOW)
    assert {s.entry for s in first} == set(entries)
    assert await pg_store.add_entries(entries, NOW + timedelta(minutes=5)) == []
    assert [s.entry for s in await pg_store.add_entries([make_entry(3), make_entry(1)], NOW)] \
        == [make_entry(3)]
    assert await pg_store.count_entries() == 4


async def test_pg_record_processed_is_idempotent(pg_store: SqlStore) -> None:
    """On PostgreSQL, re-recording an alert returns [] and adds no delivery rows."""
    await pg_store.sync_feeds(FEEDS, NOW)
    [stored] = await pg_store.add_entries([make_entry(1)], NOW)
    alert = make_alert(stored.entry)
    assert await pg_store.record_processed(stored.id, [alert], NOW) == [alert]
    before = await pg_store.deliveries()
    assert sorted((d.channel, d.state) for d in before) == [("a", "pending"), ("b", "pending")]
    assert await pg_store.record_processed(stored.id, [alert], NOW + timedelta(minutes=1)) == []
    assert await pg_store.deliveries() == before
    assert await pg_store.alerts() == [alert]
    assert await pg_store.unprocessed_entries(limit=10) == []
