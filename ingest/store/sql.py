"""The SQLAlchemy (async) store: SQLite by default, PostgreSQL by URL.

This is the database edge: SQLAlchemy errors become :class:`StorageError` here.
Datetimes are stored as naive UTC and returned timezone-aware.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ingest.errors import StorageError
from ingest.model import Alert, Entry, Feed, FeedState
from ingest.rules.policy import Silence
from ingest.store import feeds as feed_rows
from ingest.store import history, leases, outbox
from ingest.store import schema as t
from ingest.store.base import (
    AlertChange,
    AlertSummary,
    AttemptRow,
    BacktestEntry,
    DeliveryResult,
    DeliveryRow,
    EntryOutcome,
    FeedRow,
    FleetStats,
    InstanceRow,
    MatchRow,
    Notice,
    PendingDelivery,
    PollRecord,
    StoredEntry,
)
from ingest.store.outcomes import record_outcomes
from ingest.store.rows import alert_from_json, insert_for, naive, stored_entry
from ingest.stories.cluster import StoryCandidate

if TYPE_CHECKING:
    from ingest.store.migrate import Migration

log = structlog.get_logger("ingest.store")

NOTICE_LEASE = timedelta(minutes=10)  # a claimed notice is due again after this if unsettled
STORY_LOCK = 7_314_159_266  # pg_advisory_lock key: stories are assigned one batch at a time
SYNC_LOCK = 7_314_159_267  # pg_advisory_xact_lock key: one feeds-table sync at a time

_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
            "postgres": "postgresql+asyncpg"}


def async_url(url: str) -> str:
    """``sqlite:///x.db`` -> ``sqlite+aiosqlite:///x.db``; already-async URLs unchanged."""
    scheme, sep, rest = url.partition("://")
    return f"{_DRIVERS.get(scheme, scheme)}{sep}{rest}"


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """The database edge: SQLAlchemy and OS errors become StorageError."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StorageError(f"database error: {exc.__class__.__name__}: {exc}") from exc
    except OSError as exc:
        raise StorageError(f"database unreachable: {exc}") from exc


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other databases, memory, or a URL
    that does not parse: opening the store says what is wrong with it)."""
    try:
        parsed = make_url(async_url(url))
    except (SQLAlchemyError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database)).expanduser().absolute()


class SqlStore:
    """The :class:`~ingest.store.base.Store` on SQLAlchemy's async engine."""

    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        try:
            parsed = make_url(self.url)
            self._dialect = parsed.get_backend_name()
            self.sqlite_path = sqlite_file(url)
            if self.sqlite_path is not None:
                self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        except (SQLAlchemyError, ValueError) as exc:
            raise StorageError(f"database_url {url!r} is not a database URL; write e.g. "
                               "sqlite:///./data/ingest.db or postgresql://user@host/db") from exc
        except OSError as exc:
            raise StorageError(f"cannot create the folder for {url!r}: {exc}") from exc
        # SQLite allows one writer at a time: transactions are serialised in-process, and a
        # busy timeout covers other processes (a second instance is issue-tracked work).
        self._serial = asyncio.Lock() if self._dialect == "sqlite" else None
        # One process owns a SQLite database: what it left half-done is its own to redo.
        self.single_instance = self._dialect == "sqlite"
        options: dict[str, Any] = {"connect_args": {"timeout": 30}} \
            if self._dialect == "sqlite" else {"pool_pre_ping": True}
        try:
            self.engine: AsyncEngine = create_async_engine(self.url, **options)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StorageError(f"cannot use database {url!r}: {exc}") from exc

    @functools.cached_property
    def _add_entries(self) -> Any:
        return (self._insert(t.entries)
                .on_conflict_do_nothing(index_elements=["feed_id", "key"])
                .returning(t.entries.c.id, t.entries.c.feed_id, t.entries.c.key))

    def _insert(self, table: Any) -> Any:
        return insert_for(self._dialect, table)

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        async with self._serial or contextlib.nullcontext(), self._begin() as conn:
            yield conn

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncConnection]:
        with _translated():
            async with self.engine.begin() as conn:
                yield conn

    async def init(self) -> Migration:
        """Create the tables or migrate them to this version's schema (under a lock), in
        one transaction: a migration that fails or is killed leaves nothing half-done."""
        from ingest.store import migrate  # Alembic: loaded when a database is opened

        if self._dialect != "sqlite":
            async with self._tx() as conn:
                return await migrate.upgrade(conn, self.where)
        with _translated():
            async with (self._migration_lock(), self._serial or contextlib.nullcontext(),
                        self.engine.connect() as conn):
                # The sqlite3 module commits before DDL on its own; with it set to
                # autocommit, an explicit BEGIN makes the whole migration one
                # transaction (SQLite's DDL is transactional).
                raw = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await raw.exec_driver_sql("PRAGMA journal_mode=WAL")
                await raw.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    migration = await migrate.upgrade(raw, self.where)
                except BaseException:
                    # SQLite may have rolled back already (disk full, I/O error): the
                    # error to report is the one that failed the migration.
                    with contextlib.suppress(SQLAlchemyError):
                        await raw.exec_driver_sql("ROLLBACK")
                    raise
                await raw.exec_driver_sql("COMMIT")
                return migration

    @property
    def where(self) -> str:
        """The database's URL without credentials, for messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    @asynccontextmanager
    async def _migration_lock(self) -> AsyncIterator[None]:
        """SQLite: a lock file beside the database, so two processes starting together do
        not both migrate (PostgreSQL locks inside the migration's transaction)."""
        if self.sqlite_path is None:
            yield
            return
        with open(f"{self.sqlite_path}.migrate-lock", "a+b") as handle:
            await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    async def ping(self) -> None:
        """Raise StorageError unless the database answers (for /readyz)."""
        async with self._begin() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def revision(self) -> tuple[str | None, str]:
        """(the database's Alembic revision, the newest this version knows)."""
        from ingest.store import migrate

        async with self._tx() as conn:
            return await migrate.status(conn)

    async def close(self) -> None:
        await self.engine.dispose()

    # -- feeds --------------------------------------------------------------

    async def sync_feeds(self, feeds: Sequence[Feed], now: datetime) -> None:
        async with self._tx() as conn:
            if self._dialect == "postgresql":  # instances starting together sync in turn
                await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SYNC_LOCK})")
            await feed_rows.sync(conn, feeds, now)

    async def due_feeds(self, now: datetime, limit: int) -> list[tuple[Feed, FeedState]]:
        async with self._tx() as conn:
            return await feed_rows.due(conn, now, limit)

    async def feeds(self, now: datetime | None = None) -> list[FeedRow]:
        async with self._tx() as conn:
            return await feed_rows.rows(conn, now or datetime.now(UTC))

    async def record_polls(self, records: Sequence[PollRecord], notices: Sequence[Notice] = (),
                           holder: str | None = None) -> set[str]:
        """Feeds' rows after their polls, with the notices they raised, in one transaction;
        records of feeds ``holder`` no longer leases are left out (their ids returned)."""
        if not records and not notices:
            return set()
        async with self._tx() as conn:
            return await feed_rows.record_polls(conn, records, notices, holder)

    async def known_keys(self, feed_id: str, keys: Sequence[str]) -> set[str]:
        async with self._tx() as conn:
            return await feed_rows.known_keys(conn, feed_id, keys)

    async def reset_feed(self, feed_id: str, now: datetime) -> bool:
        async with self._tx() as conn:
            return await feed_rows.reset(conn, feed_id, now)

    async def due_notices(self, now: datetime, limit: int) -> list[Notice]:
        async with self._tx() as conn:
            return await feed_rows.due_notices(conn, now, limit, now + NOTICE_LEASE)

    async def finish_notice(self, notice_id: int, *, state: str, now: datetime,
                            error: str | None = None,
                            next_attempt_at: datetime | None = None) -> None:
        async with self._tx() as conn:
            await feed_rows.finish_notice(conn, notice_id, state=state, now=now, error=error,
                                          next_attempt_at=next_attempt_at)

    async def notices(self, feed_id: str | None = None, limit: int = 100) -> list[Notice]:
        async with self._tx() as conn:
            return await feed_rows.notices(conn, feed_id, limit)

    # -- fleet: leases and instances (store/leases.py) ---------------------------

    async def claim_feeds(self, *, now: datetime, due_by: datetime, limit: int, instance: str,
                          lease_until: datetime) -> list[tuple[Feed, FeedState]]:
        async with self._tx() as conn:
            return await leases.claim_feeds(conn, now=now, due_by=due_by, limit=limit,
                                            instance=instance, lease_until=lease_until)

    async def claim_entries(self, *, now: datetime, limit: int, instance: str,
                            lease_until: datetime) -> list[StoredEntry]:
        async with self._tx() as conn:
            return await leases.claim_entries(conn, now=now, limit=limit, instance=instance,
                                              lease_until=lease_until)

    async def release_leases(self, instance: str, *, feeds: bool = False,
                             entries: bool = False) -> int:
        async with self._tx() as conn:
            released = await leases.release_feeds(conn, instance) if feeds else 0
            return released + (await leases.release_entries(conn, instance) if entries else 0)

    @asynccontextmanager
    async def story_lock(self) -> AsyncIterator[None]:
        if self._dialect != "postgresql":  # one instance: its batches run one at a time
            yield
            return
        with _translated():
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql(f"SELECT pg_advisory_lock({STORY_LOCK})")
                try:
                    yield
                finally:
                    await conn.exec_driver_sql(f"SELECT pg_advisory_unlock({STORY_LOCK})")

    async def register_instance(self, row: InstanceRow) -> None:
        async with self._tx() as conn:
            await leases.register(conn, row)

    async def heartbeat(self, instance: str, *, now: datetime, lease_until: datetime,
                        state: str = "running") -> dict[str, int]:
        async with self._tx() as conn:
            return await leases.heartbeat(conn, instance, now=now, lease_until=lease_until,
                                          state=state)

    async def reap_instances(self, *, now: datetime, dead_before: datetime) -> list[str]:
        async with self._tx() as conn:
            return await leases.reap(conn, now=now, dead_before=dead_before)

    async def retire_instance(self, instance: str, now: datetime) -> dict[str, int]:
        async with self._tx() as conn:
            return await leases.retire(conn, instance, now)

    async def instances(self, *, include_stopped: bool = False) -> list[InstanceRow]:
        async with self._tx() as conn:
            return await leases.instances(conn, include_stopped=include_stopped)

    async def fleet_stats(self, live_after: datetime) -> FleetStats:
        async with self._tx() as conn:
            return FleetStats(*await leases.stats(conn, live_after))

    # -- entries ------------------------------------------------------------

    async def add_entries(self, entries: Sequence[Entry], now: datetime) -> list[StoredEntry]:
        """Insert entries never seen before; return only those (with their row ids)."""
        if not entries:
            return []
        unique = list({(e.feed_id, e.key): e for e in entries}.values())
        rows = [{"feed_id": e.feed_id, "key": e.key, "title": e.title, "link": e.link,
                 "summary": e.summary, "content": e.content, "published": naive(e.published),
                 "guid": e.guid, "fetched_at": naive(now), "language": e.language}
                for e in unique]
        async with self._tx() as conn:
            # One statement, compiled once and cached; rows go as an executemany, which
            # SQLAlchemy sends as batched multi-row INSERTs (building a fresh 20-row
            # statement per feed cost more CPU than SQLite's own work).
            inserted = (await conn.execute(self._add_entries, rows)).all()
            by_key = {(e.feed_id, e.key): e for e in unique}
            counts: dict[str, int] = {}
            for r in inserted:
                counts[r.feed_id] = counts.get(r.feed_id, 0) + 1
            for feed_id, n in counts.items():
                await conn.execute(update(t.feeds).where(t.feeds.c.id == feed_id)
                                   .values(entries_seen=t.feeds.c.entries_seen + n))
        return sorted((StoredEntry(r.id, by_key[(r.feed_id, r.key)]) for r in inserted),
                      key=lambda s: s.id)

    async def unprocessed_entries(self, limit: int) -> list[StoredEntry]:
        query = (select(t.entries).where(t.entries.c.processed_at.is_(None))
                 .order_by(t.entries.c.id).limit(limit))
        async with self._tx() as conn:
            return [stored_entry(r) for r in (await conn.execute(query)).all()]

    async def story_candidates(self, band_keys: Sequence[int], links: Sequence[str],
                               since: datetime) -> list[StoryCandidate]:
        async with self._tx() as conn:
            return await history.story_candidates(conn, band_keys, links, since)

    async def record_outcomes(self, outcomes: Sequence[EntryOutcome],
                              now: datetime) -> list[AlertChange]:
        """Atomically: stories, matches, new or updated alerts and their pending deliveries,
        and the entries marked processed."""
        async with self._tx() as conn:
            return await record_outcomes(conn, self._dialect, outcomes, now)

    async def record_entry_error(self, entry_id: int, error: str, now: datetime) -> None:
        """Mark an entry that cannot be processed as done, keeping the reason on its row."""
        async with self._tx() as conn:
            await conn.execute(update(t.entries).where(t.entries.c.id == entry_id)
                               .values(processed_at=naive(now), error=error[:2000],
                                       leased_by=None, lease_until=None))

    async def record_truncation(self, lengths: dict[int, int]) -> None:
        """Note which entries NLP read only in part, and their full length."""
        if lengths:
            async with self._tx() as conn:
                await conn.execute(update(t.entries).where(t.entries.c.id == bindparam("b_id"))
                                   .values(truncated_from=bindparam("b_len")),
                                   [{"b_id": i, "b_len": n} for i, n in lengths.items()])

    # -- deliveries -----------------------------------------------------------

    async def claim_deliveries(self, channel: str, *, now: datetime, lease_until: datetime,
                               token: str, limit: int, max_attempts: int,
                               held_after: datetime | None = None) -> list[PendingDelivery]:
        async with self._tx() as conn:
            return await outbox.claim(conn, channel, now=now, lease_until=lease_until,
                                      token=token, limit=limit, max_attempts=max_attempts,
                                      held_after=held_after)

    async def finish_deliveries(self, token: str, results: Sequence[DeliveryResult],
                                now: datetime) -> int:
        async with self._tx() as conn:
            return await outbox.finish(conn, token, results, now)

    async def release_deliveries(self, token: str, now: datetime) -> int:
        async with self._tx() as conn:
            return await outbox.release(conn, now, token)

    async def recover_interrupted(self, now: datetime) -> int:
        """Every row left ``sending`` by a stopped process becomes due now, and every
        feed and entry it held is free (one instance); return the deliveries."""
        async with self._tx() as conn:
            await leases.release_all(conn, now)
            return await outbox.release(conn, now)

    async def abandon_channels(self, configured: Sequence[str], now: datetime) -> int:
        async with self._tx() as conn:
            return await outbox.abandon(conn, configured, now)

    async def retry_deliveries(self, now: datetime, alert_id: str | None = None) -> int:
        async with self._tx() as conn:
            return await outbox.retry(conn, now, alert_id)

    async def alert_summaries(self, *, state: str | None = None, rule_id: str | None = None,
                              since: datetime | None = None,
                              limit: int = 100) -> list[AlertSummary]:
        async with self._tx() as conn:
            return await outbox.summaries(conn, state=state, rule_id=rule_id, since=since,
                                          limit=limit)

    async def find_alert(self, id_prefix: str) -> list[Alert]:
        async with self._tx() as conn:
            return await outbox.find_alert(conn, id_prefix)

    async def delivery_attempts(self, alert_id: str) -> list[AttemptRow]:
        async with self._tx() as conn:
            return await outbox.attempts(conn, alert_id)

    async def alerts(self, limit: int = 100) -> list[Alert]:
        query = select(t.alerts.c.payload).order_by(t.alerts.c.created_at.desc(),
                                                    t.alerts.c.id).limit(limit)
        async with self._tx() as conn:
            return [alert_from_json(r.payload) for r in (await conn.execute(query)).all()]

    async def deliveries(self, alert_id: str | None = None) -> list[DeliveryRow]:
        query = select(t.deliveries).order_by(t.deliveries.c.id)
        if alert_id is not None:
            query = query.where(t.deliveries.c.alert_id == alert_id)
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [outbox.delivery_row(r) for r in rows]

    # -- silences, matches, backtests, retention ------------------------------

    async def add_silence(self, silence: Silence, created_by: str = "") -> Silence:
        async with self._tx() as conn:
            return await history.add_silence(conn, silence, created_by)

    async def silences(self, now: datetime, include_expired: bool = False) -> list[Silence]:
        async with self._tx() as conn:
            return await history.silences(conn, now, include_expired)

    async def expire_silence(self, silence_id: int, now: datetime) -> bool:
        async with self._tx() as conn:
            return await history.expire_silence(conn, silence_id, now)

    async def matches(self, *, rule_id: str | None = None, since: datetime | None = None,
                      state: str | None = None, limit: int = 100) -> list[MatchRow]:
        async with self._tx() as conn:
            return await history.matches(conn, rule_id=rule_id, since=since, state=state,
                                         limit=limit)

    async def backtest_entries(self, since: datetime,
                               limit: int | None = None) -> list[BacktestEntry]:
        async with self._tx() as conn:
            return await history.backtest_entries(conn, since, limit)

    async def prune(self, before: datetime) -> int:
        """Drop the text, analysis and fingerprints of entries fetched before ``before``.

        The rows (and so their keys) stay: a feed still listing an old item must not
        make it new again.
        """
        async with self._tx() as conn:
            return await history.prune(conn, before)

    async def count_entries(self) -> int:
        async with self._tx() as conn:
            count = (await conn.execute(select(func.count()).select_from(t.entries))).scalar()
            return int(count or 0)


def open_store(url: str) -> SqlStore:
    """The store for a database URL (``sqlite:///…`` or ``postgresql://…``)."""
    return SqlStore(url)
