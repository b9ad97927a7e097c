"""The feeds table and feed notices: configuration sync, due feeds, poll records, status.

Plain functions on an open connection; :class:`~ingest.store.sql.SqlStore` wraps each
in a transaction.  Poll records are written in batches (one statement per batch), so a
cycle of 10,000 mostly-304 feeds costs a handful of transactions, not 10,000.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.model import Feed, FeedState
from ingest.store import schema as t
from ingest.store.base import FeedRow, Notice, PollRecord
from ingest.store.rows import aware, naive

_CHUNK = 500  # bound parameters per IN (...) list
RATE_WINDOW = timedelta(days=7)  # entries per day are counted over this window


def _config_values(feed: Feed) -> dict[str, Any]:
    return {"title": feed.title, "tags": list(feed.tags), "enabled": feed.enabled,
            "interval_s": feed.interval_s, "min_interval_s": feed.min_interval_s,
            "max_interval_s": feed.max_interval_s, "fulltext": feed.fulltext,
            # Header names only: values (tokens) stay in the configuration, never on disk.
            "headers": [[name, ""] for name, _ in feed.headers]}


def _reset_values(feed: Feed, now: datetime) -> dict[str, Any]:
    """A feed whose configured URL changed starts afresh: new validators, no history."""
    return {"url": feed.url, "config_url": feed.url, "etag": None, "last_modified": None,
            "next_poll_at": naive(now), "error_count": 0, "failing_since": None,
            "not_found_since": None, "disabled_reason": None, "health": "ok",
            "health_since": None, "warning": None}


async def sync(conn: AsyncConnection, feeds: Sequence[Feed], now: datetime) -> None:
    """Make the feeds table match the configuration; unlisted feeds are disabled.

    A feed moved by a permanent redirect keeps its new URL while the configured one is
    unchanged; editing the URL in the configuration resets it.
    """
    existing = {r.id: r for r in (await conn.execute(select(t.feeds))).all()}
    for feed in feeds:
        values = _config_values(feed)
        row = existing.get(feed.id)
        if row is None:
            await conn.execute(t.feeds.insert().values(
                id=feed.id, entries_seen=0, fetch_count=0,
                **_reset_values(feed, now), **values))
            continue
        if (row.config_url or row.url) != feed.url:
            values.update(_reset_values(feed, now))
        elif all(getattr(row, k) == v for k, v in values.items()):
            continue  # unchanged: no write (10,000 feeds start quickly)
        await conn.execute(update(t.feeds).where(t.feeds.c.id == feed.id).values(**values))
    listed = {f.id for f in feeds}
    gone = [fid for fid, row in existing.items() if fid not in listed and row.enabled]
    for i in range(0, len(gone), _CHUNK):
        await conn.execute(update(t.feeds).where(t.feeds.c.id.in_(gone[i:i + _CHUNK]))
                           .values(enabled=False))


def feed_from_row(row: Any) -> tuple[Feed, FeedState]:
    feed = Feed(row.id, row.config_url or row.url, row.title, tuple(row.tags or ()),
                row.interval_s, row.enabled, row.min_interval_s, row.max_interval_s,
                bool(row.fulltext), tuple((str(k), str(v)) for k, v in row.headers or ()))
    state = FeedState(
        row.id, row.url, row.etag, row.last_modified, aware(row.next_poll_at),
        row.error_count, row.last_error, failing_since=aware(row.failing_since),
        not_found_since=aware(row.not_found_since), last_success_at=aware(row.last_success_at),
        last_new_entry_at=aware(row.last_new_entry_at), update_interval_s=row.update_interval_s,
        health=row.health or "ok", health_since=aware(row.health_since),
        fetch_time_avg_s=row.fetch_time_avg_s, disabled_reason=row.disabled_reason)
    return feed, state


async def due(conn: AsyncConnection, now: datetime, limit: int) -> list[tuple[Feed, FeedState]]:
    """Enabled, not disabled by the server, and due: the longest-waiting first."""
    query = (select(t.feeds).where(t.feeds.c.enabled.is_(True))
             .where(t.feeds.c.disabled_reason.is_(None))
             .where(t.feeds.c.next_poll_at.is_(None) | (t.feeds.c.next_poll_at <= naive(now)))
             .order_by(t.feeds.c.next_poll_at).limit(limit))
    return [feed_from_row(r) for r in (await conn.execute(query)).all()]


async def rows(conn: AsyncConnection, now: datetime) -> list[FeedRow]:
    """Every feed with its history and its new entries per day (by publication date)."""
    when = func.coalesce(t.entries.c.published, t.entries.c.fetched_at)
    counts: dict[str, int] = dict((r[0], r[1]) for r in (await conn.execute(
        select(t.entries.c.feed_id, func.count()).where(when >= naive(now - RATE_WINDOW))
        .group_by(t.entries.c.feed_id))).all())
    days = RATE_WINDOW.total_seconds() / 86400
    result = []
    for r in (await conn.execute(select(t.feeds).order_by(t.feeds.c.id))).all():
        feed, state = feed_from_row(r)
        result.append(FeedRow(feed, state, aware(r.last_success_at), aware(r.last_polled_at),
                              r.entries_seen, aware(r.last_error_at), r.warning,
                              round(counts.get(r.id, 0) / days, 2), r.config_url))
    return result


def _poll_values(record: PollRecord) -> dict[str, Any]:
    s = record.state
    values: dict[str, Any] = {
        "url": s.url, "next_poll_at": naive(s.next_poll_at),
        "failing_since": naive(s.failing_since), "not_found_since": naive(s.not_found_since),
        "disabled_reason": s.disabled_reason, "last_new_entry_at": naive(s.last_new_entry_at),
        "update_interval_s": s.update_interval_s, "fetch_time_avg_s": s.fetch_time_avg_s,
        "health": s.health, "health_since": naive(s.health_since), "etag": s.etag,
        "last_modified": s.last_modified, "error_count": s.error_count,
        "last_polled_at": naive(record.polled_at), "leased_by": None, "lease_until": None}
    if record.ok and record.document:
        values.update(last_success_at=naive(record.polled_at), warning=record.warning)
    elif record.ok:
        values.update(last_success_at=naive(record.polled_at))
    else:
        values.update(last_error=(s.last_error or "")[:2000],
                      last_error_at=naive(record.polled_at))
    return values


async def record_polls(conn: AsyncConnection, records: Sequence[PollRecord],
                       notices: Sequence[Notice] = (), holder: str | None = None) -> set[str]:
    """Write what each poll made of its feed (one executemany per kind of outcome: the
    kinds write different columns) and the notices they raised; return the feeds whose
    records were fenced out.

    Fenced: with ``holder``, only feeds ``holder`` still leases are written (another
    instance may have taken one over and polled it since: that poll is the one that
    counts); and a record is not written over a feed whose configured URL changed while
    it was polled (the reset row stays).  A fenced record's notice is dropped with it.
    """
    f = t.feeds
    fenced = await _fenced(conn, records, holder)
    records = [r for r in records if r.state.feed_id not in fenced]
    notices = [n for n in notices if n.feed_id not in fenced]
    for kind in ((True, True), (True, False), (False, True), (False, False)):
        group = [r for r in records if (r.ok, r.document) == kind]
        if not group:
            continue
        params = [{"b_id": r.state.feed_id, **{f"b_{k}": v for k, v in _poll_values(r).items()}}
                  for r in group]
        columns = [k.removeprefix("b_") for k in params[0] if k != "b_id"]
        statement = (update(f).where(f.c.id == bindparam("b_id"))
                     .values({**{c: bindparam(f"b_{c}") for c in columns},
                              "fetch_count": func.coalesce(f.c.fetch_count, 0) + 1}))
        await conn.execute(statement, params)
    await add_notices(conn, notices)
    return fenced


async def _fenced(conn: AsyncConnection, records: Sequence[PollRecord],
                  holder: str | None) -> set[str]:
    """The feeds of ``records`` that must not be written (rows locked until commit)."""
    if holder is None and all(r.config_url is None for r in records):
        return set()
    wanted = {r.state.feed_id: r for r in records}
    fenced: set[str] = set()
    ids = sorted(wanted)
    for i in range(0, len(ids), _CHUNK):
        rows = (await conn.execute(
            select(t.feeds.c.id, t.feeds.c.leased_by, t.feeds.c.config_url, t.feeds.c.url)
            .where(t.feeds.c.id.in_(ids[i:i + _CHUNK])).with_for_update())).all()
        for row in rows:
            record = wanted[row.id]
            if (holder is not None and row.leased_by != holder) or (
                    record.config_url is not None
                    and (row.config_url or row.url) != record.config_url):
                fenced.add(row.id)
    return fenced


async def known_keys(conn: AsyncConnection, feed_id: str, keys: Sequence[str]) -> set[str]:
    """Which of these entry keys the feed has already stored."""
    found: set[str] = set()
    wanted = sorted(set(keys))
    for i in range(0, len(wanted), _CHUNK):
        found.update((await conn.execute(
            select(t.entries.c.key).where(t.entries.c.feed_id == feed_id)
            .where(t.entries.c.key.in_(wanted[i:i + _CHUNK])))).scalars())
    return found


async def reset(conn: AsyncConnection, feed_id: str, now: datetime) -> bool:
    """Forget a feed's errors and disabling; poll it at once (``ingest feeds reset``)."""
    result = await conn.execute(update(t.feeds).where(t.feeds.c.id == feed_id).values(
        error_count=0, failing_since=None, not_found_since=None, disabled_reason=None,
        health="ok", health_since=naive(now), next_poll_at=naive(now)))
    return bool(result.rowcount)


# -- notices ----------------------------------------------------------------------------

def _notice(row: Any) -> Notice:
    return Notice(row.feed_id, row.kind, row.message, aware(row.created_at) or datetime.min,
                  row.channel, row.id, row.state, row.attempts, row.last_error)


async def add_notices(conn: AsyncConnection, notices: Sequence[Notice]) -> None:
    for n in notices:
        await conn.execute(t.feed_notices.insert().values(
            feed_id=n.feed_id, kind=n.kind, message=n.message, created_at=naive(n.created_at),
            channel=n.channel, state="pending" if n.channel else "logged", attempts=0,
            next_attempt_at=naive(n.created_at)))


async def due_notices(conn: AsyncConnection, now: datetime, limit: int,
                      lease_until: datetime) -> list[Notice]:
    """Claim due notices: they are not due for anyone else until ``lease_until`` (another
    instance, a concurrent sender), and each is settled by ``finish_notice``."""
    n = t.feed_notices
    query = (select(n).where(n.c.state == "pending").where(n.c.next_attempt_at <= naive(now))
             .order_by(n.c.id).limit(limit).with_for_update(skip_locked=True))
    rows = (await conn.execute(query)).all()
    if rows:
        await conn.execute(update(n).where(n.c.id.in_([r.id for r in rows]))
                           .values(next_attempt_at=naive(lease_until)))
    return [_notice(r) for r in rows]


async def finish_notice(conn: AsyncConnection, notice_id: int, *, state: str, now: datetime,
                        error: str | None, next_attempt_at: datetime | None) -> None:
    await conn.execute(update(t.feed_notices).where(t.feed_notices.c.id == notice_id).values(
        state=state, attempts=t.feed_notices.c.attempts + 1, last_error=error,
        next_attempt_at=naive(next_attempt_at),
        sent_at=naive(now) if state == "sent" else None))


async def notices(conn: AsyncConnection, feed_id: str | None, limit: int) -> list[Notice]:
    query = select(t.feed_notices).order_by(t.feed_notices.c.id.desc()).limit(limit)
    if feed_id is not None:
        query = query.where(t.feed_notices.c.feed_id == feed_id)
    return [_notice(r) for r in (await conn.execute(query)).all()]
