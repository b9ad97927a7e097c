"""SqlStore on a real SQLite file and on the running PostgreSQL: feeds, entries, outcomes,
alerts, deliveries, silences, matches and pruning."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from ingest.errors import StorageError
from ingest.model import Alert, Entry, Feed
from ingest.parse.dedup import alert_id
from ingest.rules.policy import MatchEvent, Silence
from ingest.rules.spec import RuleSpec
from ingest.store.base import (
    DeliveryResult,
    DeliveryRow,
    EntryOutcome,
    FeedRow,
    PendingDelivery,
    PollRecord,
    ProposedMatch,
    StoredEntry,
)
from ingest.store.migrate import head
from ingest.store.schema import SCHEMA_VERSION, metadata
from ingest.store.sql import SqlStore
from ingest.stories.minhash import fingerprint

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
SIMILARITY = 0.5

FEEDS = [
    Feed("reuters-world", "https://feeds.example.com/reuters/world.rss", "Reuters World",
         ("world",), 300.0),
    Feed("bbc-europe", "https://feeds.example.com/bbc/europe.rss", "BBC Europe", ("europe",)),
]


def rule_spec(**extra: object) -> RuleSpec:
    """The rule the outcomes below claim matched (extra keys: threshold, dedupe, on_update)."""
    return RuleSpec.model_validate({
        "id": "geneva-talks", "title": "Peace talks in Geneva", "severity": "medium",
        "tags": ["diplomacy"], "when": {"keyword": ["talks"]}, **extra})


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


def make_alert(entry: Entry, rule: RuleSpec, story_id: int,
               channels: tuple[str, ...] = ("a", "b")) -> Alert:
    """The alert ``rule`` would raise on ``entry`` (as ingest.rules.alerts.make_alert builds it)."""
    return Alert(
        id=alert_id(rule.id, entry.feed_id, entry.key),
        rule_id=rule.id,
        rule_title=rule.title,
        severity=rule.severity,
        tags=tuple(rule.tags),
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
        story_id=story_id,
        sources=({"feed": entry.feed_id, "entry_key": entry.key, "title": entry.title,
                  "link": entry.link, "published": None, "seen_at": NOW.isoformat()},),
        first_seen=NOW,
        last_seen=NOW,
        dedupe_key=f"rule={rule.id}",
    )


def outcome(stored: StoredEntry, rule: RuleSpec | None = None, *, story_id: int | None = None,
            channels: tuple[str, ...] = ("a", "b"), with_fingerprint: bool = False
            ) -> EntryOutcome:
    """What processing learned about ``stored``: its story and, given a rule, one match."""
    entry = stored.entry
    story = story_id if story_id is not None else stored.id
    matches: tuple[ProposedMatch, ...] = ()
    if rule is not None:
        at = entry.published or NOW
        event = MatchEvent(rule.id, stored.id, story, entry.feed_id, at, f"rule={rule.id}",
                           tuple(rule.tags), frozenset({"geneva"}))
        matches = (ProposedMatch(rule, event, make_alert(entry, rule, story, channels)),)
    fp = fingerprint(entry.document(), SIMILARITY) if with_fingerprint else None
    return EntryOutcome(stored.id, entry, story, fp, entry.link, "en", b"analysis", matches)


async def record_poll(store: SqlStore, feed_id: str, at: datetime, next_poll_at: datetime, *,
                      error: str | None = None, etag: str | None = '"abc123"') -> None:
    """Write one poll's outcome on a feed's row as the service does (a PollRecord)."""
    state = (await _feed_row(store, feed_id)).state
    if error is None:
        state = replace(state, etag=etag, last_modified="Wed, 01 May 2024 11:00:00 GMT",
                        next_poll_at=next_poll_at, error_count=0, failing_since=None)
    else:
        state = replace(state, next_poll_at=next_poll_at, error_count=state.error_count + 1,
                        last_error=error, failing_since=state.failing_since or at)
    await store.record_polls([PollRecord(state, at, ok=error is None)])


async def _drop_all(store: SqlStore) -> None:
    async with store.engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.execute(text("DROP TABLE IF EXISTS feeds"))
        await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


async def _pg_or_skip() -> SqlStore:
    s = SqlStore(PG_URL)
    try:
        async with s.engine.connect():
            pass
    except Exception as exc:  # any failure to connect means: no PostgreSQL here
        await s.engine.dispose()
        pytest.skip(f"PostgreSQL at {PG_URL} is not reachable: {type(exc).__name__}: {exc}")
    return s


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    """An initialised, empty store: a SQLite file, or the running PostgreSQL (emptied)."""
    if request.param == "sqlite":
        s = SqlStore(f"sqlite:///{tmp_path / 't.db'}")
        await s.init()
        try:
            yield s
        finally:
            await s.close()
        return
    s = await _pg_or_skip()
    try:
        await _drop_all(s)
        await s.init()
        yield s
    finally:
        try:
            await _drop_all(s)
        finally:
            await s.close()


async def _feed_row(store: SqlStore, feed_id: str) -> FeedRow:
    rows = {r.feed.id: r for r in await store.feeds()}
    return rows[feed_id]


async def _deliveries(store: SqlStore, alert: Alert) -> dict[str, DeliveryRow]:
    return {d.channel: d for d in await store.deliveries(alert.id)}


# -- schema -----------------------------------------------------------------


async def test_old_schema_sqlite_file_is_refused(tmp_path: Path) -> None:
    """A SQLite file from before schema_info (only a `feeds` table) is refused with advice."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = SqlStore(url)
    async with old.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE feeds (id VARCHAR(200) PRIMARY KEY, url TEXT)"))
    await old.close()
    store = SqlStore(url)
    try:
        with pytest.raises(StorageError) as caught:
            await store.init()
        async with store.engine.connect() as conn:
            tables = {r[0] for r in await conn.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'table'"))}
    finally:
        await store.close()
    message = str(caught.value)
    assert "made by an older version of ingest (schema 1)" in message
    assert f"needs schema {SCHEMA_VERSION}" in message
    assert "point database_url at a new one" in message
    assert caught.value.user_error
    assert tables == {"feeds"}  # nothing was created in the refused file


async def test_old_schema_postgresql_is_refused() -> None:
    """On PostgreSQL too, a database with only an old `feeds` table is refused."""
    store = await _pg_or_skip()
    try:
        await _drop_all(store)
        async with store.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE feeds (id VARCHAR(200) PRIMARY KEY, url TEXT)"))
        with pytest.raises(StorageError, match="point database_url at a new one"):
            await store.init()
    finally:
        try:
            await _drop_all(store)
        finally:
            await store.close()


SCHEMA_4_FEED_COLUMNS = (
    "config_url", "min_interval_s", "max_interval_s", "fulltext", "headers", "warning",
    "failing_since", "not_found_since", "disabled_reason", "last_new_entry_at",
    "update_interval_s", "fetch_count", "fetch_time_avg_s", "health", "health_since")


async def test_schema_2_database_is_upgraded_in_place(store: SqlStore) -> None:
    """A database of an older release (schema 2: no claimed_by, no attempt history, made
    before Alembic) keeps its alerts and deliveries, gains what the outbox and the fleet
    need, and works."""
    alert = await _one_alert(store)
    async with store.engine.begin() as conn:
        await conn.execute(text("DROP TABLE alembic_version"))
        await conn.execute(text("DROP TABLE instances"))
        for table in ("feeds", "entries"):
            await conn.execute(text(f"DROP INDEX ix_{table}_leased_by"))
            for column in ("leased_by", "lease_until"):
                await conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        await conn.execute(text("DROP TABLE delivery_attempts"))
        await conn.execute(text("ALTER TABLE deliveries DROP COLUMN claimed_by"))
        for column in SCHEMA_4_FEED_COLUMNS:
            await conn.execute(text(f"ALTER TABLE feeds DROP COLUMN {column}"))
        await conn.execute(text("ALTER TABLE entries DROP COLUMN truncated_from"))
        await conn.execute(text("DROP TABLE feed_notices"))
        await conn.execute(text("UPDATE schema_info SET version = 2"))
    migration = await store.init()
    assert (migration.legacy_version, migration.before, migration.after) == (2, "schema 2", head())
    async with store.engine.connect() as conn:
        versions = [r[0] for r in await conn.execute(text("SELECT version FROM schema_info"))]
    assert versions == [SCHEMA_VERSION] == [5]
    assert await store.revision() == (head(), head())
    [p] = await _claim(store, "a")
    assert p.alert == alert
    await store.finish_deliveries("t1", [_result(p, "delivered", "HTTP 200")], NOW)
    assert [a.outcome for a in await store.delivery_attempts(alert.id)] == ["delivered"]


async def test_reopening_a_current_database_is_accepted(tmp_path: Path) -> None:
    """A database created by this version opens again, keeping one schema_info row."""
    url = f"sqlite:///{tmp_path / 't.db'}"
    for _ in range(2):
        s = SqlStore(url)
        await s.init()
        async with s.engine.connect() as conn:
            versions = [r[0] for r in await conn.execute(text("SELECT version FROM schema_info"))]
        await s.close()
        assert versions == [SCHEMA_VERSION]


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
    await record_poll(store, "reuters-world", NOW, NOW + timedelta(hours=1))
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
    await record_poll(store, "reuters-world", NOW, NOW + timedelta(hours=1))
    await store.sync_feeds(FEEDS, NOW)
    assert (await _feed_row(store, "reuters-world")).state.etag == '"abc123"'


async def test_due_feeds_respects_next_poll_at(store: SqlStore) -> None:
    """A feed polled with next_poll_at in the future is not due now, but due by then."""
    await store.sync_feeds(FEEDS, NOW)
    next_poll = NOW + timedelta(minutes=5)
    await record_poll(store, "reuters-world", NOW, next_poll)
    due_now = {f.id for f, _ in await store.due_feeds(NOW, limit=10)}
    assert due_now == {"bbc-europe"}
    just_before = {f.id for f, _ in await store.due_feeds(next_poll - timedelta(seconds=1), 10)}
    assert just_before == {"bbc-europe"}
    later = {f.id: s for f, s in await store.due_feeds(next_poll + timedelta(seconds=1), 10)}
    assert set(later) == {"reuters-world", "bbc-europe"}
    assert later["reuters-world"].next_poll_at == next_poll
    assert later["reuters-world"].etag == '"abc123"'


async def test_poll_errors_count_and_a_success_resets(store: SqlStore) -> None:
    """Failed polls count and keep last_error with its time; a success resets the count
    and the failing run, and the last error stays visible with its time."""
    await store.sync_feeds(FEEDS, NOW)
    await record_poll(store, "reuters-world", NOW, NOW + timedelta(minutes=1), error="HTTP 503")
    await record_poll(store, "reuters-world", NOW + timedelta(minutes=1),
                      NOW + timedelta(minutes=3), error="timed out after 20 s")
    row = await _feed_row(store, "reuters-world")
    assert row.state.error_count == 2
    assert row.state.last_error == "timed out after 20 s"
    assert row.state.failing_since == NOW
    assert row.last_error_at == NOW + timedelta(minutes=1)
    assert row.last_polled_at == NOW + timedelta(minutes=1)
    assert row.last_success_at is None
    assert (await _feed_row(store, "bbc-europe")).state.error_count == 0
    await record_poll(store, "reuters-world", NOW + timedelta(minutes=3),
                      NOW + timedelta(minutes=8))
    row = await _feed_row(store, "reuters-world")
    assert row.state.error_count == 0
    assert row.state.failing_since is None
    assert row.state.last_error == "timed out after 20 s"
    assert row.last_error_at == NOW + timedelta(minutes=1)
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


async def test_unprocessed_entries_until_outcome_recorded(store: SqlStore) -> None:
    """Entries stay unprocessed until record_outcomes records them."""
    await store.sync_feeds(FEEDS, NOW)
    stored = await store.add_entries([make_entry(1), make_entry(2)], NOW)
    pending = await store.unprocessed_entries(limit=10)
    assert [s.id for s in pending] == [s.id for s in stored]
    assert pending[0].entry == stored[0].entry
    assert pending[0].fetched_at == NOW
    assert await store.record_outcomes([outcome(stored[0])], NOW) == []
    assert [s.id for s in await store.unprocessed_entries(limit=10)] == [stored[1].id]
    await store.record_outcomes([outcome(stored[1])], NOW)
    assert await store.unprocessed_entries(limit=10) == []


async def test_record_entry_error_marks_processed(store: SqlStore) -> None:
    """An entry that cannot be processed is marked done and no longer pending."""
    await store.sync_feeds(FEEDS, NOW)
    [stored] = await store.add_entries([make_entry(1)], NOW)
    await store.record_entry_error(stored.id, "ValueError: bad text", NOW)
    assert await store.unprocessed_entries(limit=10) == []


# -- outcomes and alerts ----------------------------------------------------


async def test_record_outcomes_creates_alert_and_deliveries(store: SqlStore) -> None:
    """A match with two channels stores one fired alert with one pending delivery per channel."""
    await store.sync_feeds(FEEDS, NOW)
    [stored] = await store.add_entries([make_entry(1)], NOW)
    rule = rule_spec()
    [change] = await store.record_outcomes([outcome(stored, rule)], NOW)
    assert (change.state, change.notify, change.rule_id, change.entry_id) == \
        ("new", True, "geneva-talks", stored.id)
    expected = dataclasses.replace(make_alert(stored.entry, rule, stored.id), state="fired")
    assert change.alert == expected
    assert await store.alerts() == [expected]
    rows = await _deliveries(store, expected)
    assert set(rows) == {"a", "b"}
    assert all(r.state == "pending" and r.attempts == 0 and r.revision == 0
               for r in rows.values())
    [match] = await store.matches()
    assert (match.rule_id, match.entry_id, match.state, match.alert_id) == \
        ("geneva-talks", stored.id, "new", expected.id)
    assert match.entry_title == stored.entry.title


async def test_record_outcomes_is_idempotent(store: SqlStore) -> None:
    """Recording the same outcome again creates no alert, match or delivery."""
    await store.sync_feeds(FEEDS, NOW)
    [stored] = await store.add_entries([make_entry(1)], NOW)
    same = outcome(stored, rule_spec())
    await store.record_outcomes([same], NOW)
    before = await store.deliveries()
    alerts_before = await store.alerts()
    again = await store.record_outcomes([same], NOW + timedelta(minutes=1))
    assert all(not c.notify and c.state != "new" for c in again)
    assert await store.deliveries() == before
    assert len(before) == 2
    assert [a.id for a in await store.alerts()] == [a.id for a in alerts_before]
    assert [(a.sources, a.revision) for a in await store.alerts()] == \
        [(a.sources, a.revision) for a in alerts_before]
    assert len(await store.matches()) == 1
    assert await store.unprocessed_entries(limit=10) == []


async def test_record_outcomes_is_idempotent_for_notify_rules(store: SqlStore) -> None:
    """With on_update: notify, re-recording the same outcome sends no update either."""
    await store.sync_feeds(FEEDS, NOW)
    [stored] = await store.add_entries([make_entry(1)], NOW)
    same = outcome(stored, rule_spec(on_update="notify"))
    await store.record_outcomes([same], NOW)
    before = await store.deliveries()
    again = await store.record_outcomes([same], NOW + timedelta(minutes=1))
    assert not any(c.notify for c in again)
    assert await store.deliveries() == before
    assert [a.revision for a in await store.alerts()] == [0]


async def test_record_outcomes_twice_files_the_fingerprint_once(store: SqlStore) -> None:
    """Re-recording an entry (e.g. resumed after a crash) does not file its bands twice."""
    await store.sync_feeds(FEEDS, NOW)
    [stored] = await store.add_entries([make_entry(1)], NOW)
    same = outcome(stored, with_fingerprint=True)
    assert same.fingerprint is not None
    await store.record_outcomes([same], NOW)
    await store.record_outcomes([same], NOW)
    async with store.engine.connect() as conn:
        filed = (await conn.execute(text("SELECT count(*) FROM story_bands"))).scalar()
    assert filed == len(same.fingerprint.bands)


async def test_second_copy_of_a_story_updates_the_alert(store: SqlStore) -> None:
    """Another feed's copy of the story adds a source to the one alert; silent: no delivery."""
    await store.sync_feeds(FEEDS, NOW)
    first, second = await store.add_entries([make_entry(1), make_entry(1, "bbc-europe")], NOW)
    rule = rule_spec()
    await store.record_outcomes([outcome(first, rule)], NOW)
    [change] = await store.record_outcomes(
        [outcome(second, rule, story_id=first.id)], NOW + timedelta(minutes=5))
    assert (change.state, change.notify) == ("update", False)
    [alert] = await store.alerts()
    assert [s["feed"] for s in alert.sources] == ["reuters-world", "bbc-europe"]
    assert alert.revision == 0
    assert alert.last_seen == NOW + timedelta(minutes=5)
    assert len(await store.deliveries()) == 2
    assert {m.state for m in await store.matches()} == {"new", "update"}


async def test_update_with_notify_adds_a_revision_per_channel(store: SqlStore) -> None:
    """With on_update: notify, a later copy raises the revision and queues it on every channel."""
    await store.sync_feeds(FEEDS, NOW)
    first, second = await store.add_entries([make_entry(1), make_entry(1, "bbc-europe")], NOW)
    rule = rule_spec(on_update="notify")
    await store.record_outcomes([outcome(first, rule)], NOW)
    [change] = await store.record_outcomes([outcome(second, rule, story_id=first.id)], NOW)
    assert (change.state, change.notify) == ("update", True)
    assert change.alert is not None and change.alert.revision == 1
    rows = sorted((d.channel, d.revision, d.state) for d in await store.deliveries())
    assert rows == [("a", 0, "pending"), ("a", 1, "pending"),
                    ("b", 0, "pending"), ("b", 1, "pending")]
    pending = [p for channel in ("a", "b") for p in await store.claim_deliveries(
        channel, now=NOW, lease_until=NOW, token="t", limit=10, max_attempts=3)]
    assert sorted(p.alert.revision for p in pending) == [0, 0, 1, 1]
    assert {len(p.alert.sources) for p in pending} == {2}


async def test_threshold_below_then_reached(store: SqlStore) -> None:
    """Below a threshold a match is recorded without an alert; the third source fires it."""
    await store.sync_feeds([*FEEDS, Feed("afp", "https://afp.example.com/rss")], NOW)
    stored = await store.add_entries(
        [make_entry(1), make_entry(1, "bbc-europe"), make_entry(1, "afp")], NOW)
    rule = rule_spec(threshold={"count": 3, "window": "6h", "distinct": "source"})
    changes = await store.record_outcomes(
        [outcome(s, rule, story_id=stored[0].id) for s in stored[:2]], NOW)
    assert [(c.state, c.alert) for c in changes] == [("below-threshold", None)] * 2
    assert await store.alerts() == [] and await store.deliveries() == []
    [change] = await store.record_outcomes([outcome(stored[2], rule, story_id=stored[0].id)], NOW)
    assert change.state == "new"
    assert len(await store.alerts()) == 1 and len(await store.deliveries()) == 2
    states = sorted(m.state for m in await store.matches(rule_id="geneva-talks"))
    assert states == ["below-threshold", "below-threshold", "new"]


async def test_dedupe_suppresses_second_story(store: SqlStore) -> None:
    """A second story with the same dedupe key within the window is recorded as deduped."""
    await store.sync_feeds(FEEDS, NOW)
    one, two = await store.add_entries([make_entry(3), make_entry(1)], NOW)
    rule = rule_spec(dedupe={"key": ["rule"], "window": "24h"})
    [first] = await store.record_outcomes([outcome(one, rule)], NOW)
    [second] = await store.record_outcomes([outcome(two, rule)], NOW)
    assert first.state == "new"
    assert (second.state, second.notify, second.alert) == ("deduped", False, None)
    assert len(await store.alerts()) == 1 and len(await store.deliveries()) == 2
    [deduped] = await store.matches(state="deduped")
    assert first.alert is not None and deduped.alert_id == first.alert.id


async def test_silenced_alert_is_recorded_never_delivered(store: SqlStore) -> None:
    """An active silence records the alert as silenced, with no delivery."""
    await store.sync_feeds(FEEDS, NOW)
    [stored] = await store.add_entries([make_entry(1)], NOW)
    await store.add_silence(Silence(0, "geneva-talks", None, None, "maintenance",
                                    NOW - timedelta(hours=1), NOW + timedelta(hours=1)))
    [change] = await store.record_outcomes([outcome(stored, rule_spec())], NOW)
    assert (change.state, change.notify) == ("silenced", False)
    [alert] = await store.alerts()
    assert alert.state == "silenced"
    assert await store.deliveries() == []


# -- silences ---------------------------------------------------------------


async def test_silences_add_list_expire(store: SqlStore) -> None:
    """A silence is listed while active; expiring it ends it once; --all still shows it."""
    made = await store.add_silence(Silence(0, None, "diplomacy", None, "summit week",
                                           NOW, NOW + timedelta(hours=8)), "analyst")
    assert made.id > 0 and made.tag == "diplomacy"
    assert [s.id for s in await store.silences(NOW)] == [made.id]
    assert await store.silences(NOW + timedelta(hours=9)) == []
    assert await store.expire_silence(made.id, NOW + timedelta(hours=1)) is True
    assert await store.expire_silence(made.id, NOW + timedelta(hours=1)) is False
    assert await store.silences(NOW + timedelta(hours=2)) == []
    [kept] = await store.silences(NOW + timedelta(hours=2), include_expired=True)
    assert kept.expires_at == NOW + timedelta(hours=1)


# -- stories ----------------------------------------------------------------


async def test_story_candidates_by_band_and_link(store: SqlStore) -> None:
    """A recorded entry is a story candidate by its bands or its link, within the window."""
    await store.sync_feeds(FEEDS, NOW)
    [stored] = await store.add_entries([make_entry(1)], NOW)
    recorded = outcome(stored, with_fingerprint=True)
    await store.record_outcomes([recorded], NOW)
    assert recorded.fingerprint is not None
    by_band = await store.story_candidates(recorded.fingerprint.bands[:1], [], NOW)
    assert [(c.entry_id, c.story_id) for c in by_band] == [(stored.id, stored.id)]
    assert by_band[0].signature == recorded.fingerprint.signature
    by_link = await store.story_candidates([], [stored.entry.link], NOW)
    assert [c.entry_id for c in by_link] == [stored.id]
    assert await store.story_candidates(recorded.fingerprint.bands, [stored.entry.link],
                                        NOW + timedelta(minutes=1)) == []


# -- retention --------------------------------------------------------------


async def test_prune_blanks_old_text_but_keeps_rows(store: SqlStore) -> None:
    """prune drops old entries' text, analysis and bands, keeps their rows and dedup keys."""
    await store.sync_feeds(FEEDS, NOW)
    old = await store.add_entries([make_entry(1), make_entry(2)], NOW - timedelta(days=40))
    new = await store.add_entries([make_entry(3)], NOW)
    await store.record_outcomes([outcome(s, with_fingerprint=True) for s in [*old, *new]], NOW)
    fp = fingerprint(old[0].entry.document(), SIMILARITY)
    assert await store.prune(NOW - timedelta(days=30)) == 2
    assert await store.prune(NOW - timedelta(days=30)) == 0  # nothing left to blank
    assert await store.count_entries() == 3
    assert await store.add_entries([make_entry(1), make_entry(2)], NOW) == []
    kept = {b.id: b for b in await store.backtest_entries(NOW - timedelta(days=60))}
    assert kept[new[0].id].entry.summary == new[0].entry.summary
    assert kept[new[0].id].analysis == b"analysis"
    for s in old:
        if s.id in kept:  # whatever is listed has lost its body and analysis
            assert (kept[s.id].entry.summary, kept[s.id].analysis) == ("", None)
    candidates = await store.story_candidates(fp.bands, [], NOW - timedelta(days=60))
    assert old[0].id not in {c.entry_id for c in candidates}


async def test_prune_leaves_unprocessed_entries(store: SqlStore) -> None:
    """An old entry not yet processed keeps its text until it has been processed."""
    await store.sync_feeds(FEEDS, NOW)
    [stored] = await store.add_entries([make_entry(1)], NOW - timedelta(days=40))
    assert await store.prune(NOW - timedelta(days=30)) == 0
    [pending] = await store.unprocessed_entries(limit=10)
    assert pending.entry.summary == stored.entry.summary


async def test_backtest_skips_pruned_entries(store: SqlStore) -> None:
    """backtest_entries lists only entries whose text is still kept, not pruned ones."""
    await store.sync_feeds(FEEDS, NOW)
    old = await store.add_entries([make_entry(1)], NOW - timedelta(days=40))
    await store.record_outcomes([outcome(s) for s in old], NOW)
    await store.prune(NOW - timedelta(days=30))
    assert await store.backtest_entries(NOW - timedelta(days=60)) == []


# -- deliveries -------------------------------------------------------------


async def _one_alert(store: SqlStore) -> Alert:
    await store.sync_feeds(FEEDS, NOW)
    [stored] = await store.add_entries([make_entry(1)], NOW)
    [change] = await store.record_outcomes([outcome(stored, rule_spec())], NOW)
    assert change.alert is not None
    return change.alert


LEASE = NOW + timedelta(minutes=5)


async def _claim(store: SqlStore, channel: str, *, now: datetime = NOW, token: str = "t1",
                 max_attempts: int = 3, lease: datetime = LEASE,
                 held_after: datetime | None = None) -> list[PendingDelivery]:
    return await store.claim_deliveries(channel, now=now, lease_until=lease, token=token,
                                        limit=10, max_attempts=max_attempts,
                                        held_after=held_after)


def _result(p: PendingDelivery, state: str, detail: str, *, at: datetime = NOW,
            retry_at: datetime | None = None) -> DeliveryResult:
    return DeliveryResult(p.id, p.attempts, state, detail, at, at, retry_at)


async def test_claim_carries_the_alert_counts_the_attempt_and_holds_the_row(
        store: SqlStore) -> None:
    """A claim returns the alert, counts the attempt, and nobody else can claim the row."""
    alert = await _one_alert(store)
    [mine] = await _claim(store, "a")
    assert (mine.alert, mine.attempts, mine.channel) == (alert, 1, "a")
    assert mine.created_at == NOW
    row = (await _deliveries(store, alert))["a"]
    assert (row.state, row.attempts, row.next_attempt_at) == ("sending", 1, LEASE)
    assert await _claim(store, "a", token="t2") == []
    assert [p.channel for p in await _claim(store, "b")] == ["b"]


async def test_finish_records_delivery_and_attempt_only_for_the_holder(store: SqlStore) -> None:
    """The holding claim settles the row; a claim that lost the row changes nothing."""
    alert = await _one_alert(store)
    [mine] = await _claim(store, "a")
    assert await store.finish_deliveries("someone-else", [_result(mine, "delivered", "x")],
                                         NOW) == 0
    assert (await _deliveries(store, alert))["a"].state == "sending"
    assert await store.finish_deliveries("t1", [_result(mine, "delivered", "HTTP 200")], NOW) == 1
    row = (await _deliveries(store, alert))["a"]
    assert (row.state, row.receipt, row.delivered_at) == ("delivered", "HTTP 200", NOW)
    assert await _claim(store, "a", now=NOW + timedelta(days=1)) == []
    outcomes = [(a.attempt, a.outcome, a.detail) for a in await store.delivery_attempts(alert.id)]
    assert (1, "delivered", "HTTP 200") in outcomes


async def test_failed_delivery_is_due_again_at_its_retry_time(store: SqlStore) -> None:
    """A failed row waits for retry_at, then is claimed with the next attempt number."""
    alert = await _one_alert(store)
    [first] = await _claim(store, "a")
    retry = NOW + timedelta(seconds=30)
    await store.finish_deliveries("t1", [_result(first, "failed", "HTTP 503", retry_at=retry)],
                                  NOW)
    row = (await _deliveries(store, alert))["a"]
    assert (row.state, row.last_error, row.next_attempt_at) == ("failed", "HTTP 503", retry)
    assert await _claim(store, "a", now=retry - timedelta(seconds=1)) == []
    [second] = await _claim(store, "a", now=retry, token="t2")
    assert second.attempts == 2
    await store.finish_deliveries("t2", [_result(second, "dead", "HTTP 400", at=retry)], retry)
    assert (await _deliveries(store, alert))["a"].state == "dead"
    assert await _claim(store, "a", now=retry + timedelta(days=9), max_attempts=100) == []


async def test_expired_claim_is_claimed_again_and_its_lost_attempt_recorded(
        store: SqlStore) -> None:
    """A sender that died mid-send: once its lease runs out the row is claimed again."""
    alert = await _one_alert(store)
    await _claim(store, "a", lease=NOW + timedelta(seconds=60))
    assert await _claim(store, "a", now=NOW + timedelta(seconds=59), token="t2") == []
    [again] = await _claim(store, "a", now=NOW + timedelta(seconds=60), token="t2")
    assert again.attempts == 2
    assert [a.outcome for a in await store.delivery_attempts(alert.id)] == ["interrupted"]


async def test_expired_claim_without_attempts_left_is_dead(store: SqlStore) -> None:
    """An interrupted last attempt makes the row dead instead of sending it once more."""
    alert = await _one_alert(store)
    await _claim(store, "a", max_attempts=1, lease=NOW)
    assert await _claim(store, "a", max_attempts=1, token="t2") == []
    row = (await _deliveries(store, alert))["a"]
    assert row.state == "dead" and "no attempts left" in (row.last_error or "")


async def test_release_and_recover_make_rows_due_now(store: SqlStore) -> None:
    """release (one claim) and recover_interrupted (all) put sending rows back, due now."""
    alert = await _one_alert(store)
    await _claim(store, "a", token="t1")
    await _claim(store, "b", token="t2")
    assert await store.release_deliveries("t1", NOW) == 1
    assert await store.recover_interrupted(NOW) == 1
    rows = await _deliveries(store, alert)
    assert {(r.state, r.next_attempt_at) for r in rows.values()} == {("failed", NOW)}
    assert len(await _claim(store, "a", token="t3")) == 1


async def test_abandon_and_retry(store: SqlStore) -> None:
    """Rows of an unconfigured channel go dead with advice; retry brings them back fresh."""
    alert = await _one_alert(store)
    assert await store.abandon_channels(["a"], NOW) == 1
    row = (await _deliveries(store, alert))["b"]
    assert row.state == "dead" and "not configured" in (row.last_error or "")
    assert await store.retry_deliveries(NOW) == 1
    row = (await _deliveries(store, alert))["b"]
    assert (row.state, row.attempts) == ("pending", 0)
    [p] = await _claim(store, "b")
    await store.finish_deliveries("t1", [_result(p, "dead", "HTTP 410")], NOW)
    assert await store.retry_deliveries(NOW, alert_id="nope") == 0
    assert await store.retry_deliveries(NOW, alert_id=alert.id) == 1


async def test_a_reclaimed_row_is_not_settled_by_its_former_sender(store: SqlStore) -> None:
    """Sender 1's lease ran out and sender 2 took the row: 1's late outcome changes nothing,
    2's counts, and only 2's attempt is recorded beside the interrupted one."""
    alert = await _one_alert(store)
    [first] = await _claim(store, "a", token="t1", lease=NOW)
    [second] = await _claim(store, "a", token="t2", now=NOW + timedelta(seconds=1))
    assert await store.finish_deliveries("t1", [_result(first, "dead", "HTTP 404")], NOW) == 0
    assert await store.finish_deliveries("t2", [_result(second, "delivered", "HTTP 200")],
                                         NOW) == 1
    assert (await _deliveries(store, alert))["a"].state == "delivered"
    assert [a.outcome for a in await store.delivery_attempts(alert.id)
            if a.delivery_id == first.id] == ["interrupted", "delivered"]


async def test_abandon_leaves_rows_another_instance_is_sending(store: SqlStore) -> None:
    """A live claim on a channel this instance does not know is another instance's."""
    alert = await _one_alert(store)
    await _claim(store, "b", token="other", lease=NOW + timedelta(minutes=5))
    assert await store.abandon_channels(["a"], NOW) == 0
    assert (await _deliveries(store, alert))["b"].state == "sending"
    assert await store.abandon_channels(["a"], NOW + timedelta(minutes=6)) == 1


async def test_digest_holds_first_attempts_made_after_the_last_fire(store: SqlStore) -> None:
    """held_after: a row made at or after the digest's last fire time waits; a retry does not."""
    await _one_alert(store)
    assert await _claim(store, "a", held_after=NOW) == []
    [p] = await _claim(store, "a", held_after=NOW + timedelta(seconds=1))
    await store.finish_deliveries("t1", [_result(p, "failed", "451", retry_at=NOW)], NOW)
    assert len(await _claim(store, "a", token="t2",
                            held_after=NOW - timedelta(days=1))) == 1


async def test_concurrent_claims_take_disjoint_rows(store: SqlStore) -> None:
    """Two claims at once (SKIP LOCKED on PostgreSQL) never hand out the same row."""
    await store.sync_feeds(FEEDS, NOW)
    stored = await store.add_entries([make_entry(i) for i in range(1, 7)], NOW)
    rules = [rule_spec(id=f"r{i}") for i in range(3)]
    await store.record_outcomes([outcome(s, r) for s in stored for r in rules], NOW)
    one, two = await asyncio.gather(
        store.claim_deliveries("a", now=NOW, lease_until=LEASE, token="x", limit=10,
                               max_attempts=3),
        store.claim_deliveries("a", now=NOW, lease_until=LEASE, token="y", limit=10,
                               max_attempts=3))
    ids_one, ids_two = {p.id for p in one}, {p.id for p in two}
    assert not ids_one & ids_two
    assert len(ids_one | ids_two) == min(20, len(stored) * len(rules))


async def test_alert_summaries_filter_and_find(store: SqlStore) -> None:
    """alert_summaries lists alerts with their deliveries, filtered by state, rule, since."""
    alert = await _one_alert(store)
    [p] = await _claim(store, "a")
    await store.finish_deliveries("t1", [_result(p, "dead", "HTTP 404")], NOW)
    [summary] = await store.alert_summaries()
    assert summary.alert.id == alert.id
    assert sorted((d.channel, d.state) for d in summary.deliveries) == [
        ("a", "dead"), ("b", "pending")]
    assert [s.alert.id for s in await store.alert_summaries(state="dead")] == [alert.id]
    assert await store.alert_summaries(state="delivered") == []
    assert await store.alert_summaries(rule_id="other") == []
    assert await store.alert_summaries(since=NOW + timedelta(seconds=1)) == []
    assert [a.id for a in await store.find_alert(alert.id[:6])] == [alert.id]
    assert await store.find_alert("zz%") == []
