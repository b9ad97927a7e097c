"""Fleet coordination in the database: feed and entry leases, instances and heartbeats.

Several instances share one PostgreSQL database.  Nothing is coordinated outside it:

* **Feeds** are claimed with ``SELECT … FOR UPDATE SKIP LOCKED``: a claim names the
  instance (``leased_by``) and an expiry (``lease_until``).  A leased feed is not due
  for anyone else until its lease ends; recording the poll clears the lease.
* **Entries** waiting for NLP are claimed the same way, so each is analysed by one
  instance; recording its outcome marks it processed.
* **Deliveries** are claimed by the outbox (:mod:`ingest.store.outbox`), whose claim
  tokens start with the instance id.
* **Instances** heartbeat into ``instances`` every ``fleet.heartbeat``; each heartbeat
  extends the instance's feed and entry leases.  An instance whose heartbeat is older
  than ``fleet.lease`` is dead: the next heartbeat of any other instance frees its
  feeds, entries and deliveries at once (its deliveries' lost attempts are recorded
  as interrupted) and marks it ``dead``.  A clean stop releases everything and marks
  the instance ``stopped``.

SQLite has no ``SKIP LOCKED`` (the clause is left out there): it serves one instance,
which ``service/fleet.py`` enforces with a lock file.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.model import Feed, FeedState
from ingest.store import outbox
from ingest.store import schema as t
from ingest.store.base import InstanceRow, StoredEntry
from ingest.store.feeds import feed_from_row
from ingest.store.rows import aware, naive, stored_entry

f, e, i = t.feeds, t.entries, t.instances
_CHUNK = 5_000  # ids per UPDATE (PostgreSQL takes at most 32,767 parameters)
OPEN_STATES = ("pending", "sending", "failed", "dead")  # deliveries counted for metrics


def _free(table: Any, now: datetime) -> Any:
    """Not leased, or leased by someone whose lease has run out."""
    return or_(table.c.lease_until.is_(None), table.c.lease_until <= naive(now))


async def claim_feeds(conn: AsyncConnection, *, now: datetime, due_by: datetime, limit: int,
                      instance: str, lease_until: datetime) -> list[tuple[Feed, FeedState]]:
    """Lease up to ``limit`` enabled feeds due by ``due_by`` that nobody holds, the
    longest-waiting first."""
    query = (select(f).where(f.c.enabled.is_(True), f.c.disabled_reason.is_(None))
             .where(or_(f.c.next_poll_at.is_(None), f.c.next_poll_at <= naive(due_by)))
             .where(_free(f, now))
             .order_by(f.c.next_poll_at).limit(limit).with_for_update(skip_locked=True))
    rows = (await conn.execute(query)).all()
    await _lease(conn, f, [r.id for r in rows], instance, lease_until)
    return [feed_from_row(r) for r in rows]


async def claim_entries(conn: AsyncConnection, *, now: datetime, limit: int, instance: str,
                        lease_until: datetime) -> list[StoredEntry]:
    """Lease up to ``limit`` unprocessed entries nobody holds, oldest first."""
    query = (select(e).where(e.c.processed_at.is_(None)).where(_free(e, now))
             .order_by(e.c.id).limit(limit).with_for_update(skip_locked=True))
    rows = (await conn.execute(query)).all()
    await _lease(conn, e, [r.id for r in rows], instance, lease_until)
    return [stored_entry(r) for r in rows]


async def _lease(conn: AsyncConnection, table: Any, ids: list[Any], instance: str,
                 lease_until: datetime) -> None:
    for start in range(0, len(ids), _CHUNK):  # bound parameters per statement are limited
        await conn.execute(update(table).where(table.c.id.in_(ids[start:start + _CHUNK]))
                           .values(leased_by=instance, lease_until=naive(lease_until)))


async def _wait_for_locks_briefly(conn: AsyncConnection) -> None:
    """PostgreSQL: a row lock held by a half-dead connection fails this transaction after
    a few seconds instead of holding it (and the heartbeats behind it) indefinitely."""
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")


async def release_feeds(conn: AsyncConnection, instance: str) -> int:
    """Free the feeds ``instance`` holds (they stay due when they were)."""
    result = await conn.execute(update(f).where(f.c.leased_by == instance)
                                .values(leased_by=None, lease_until=None))
    return int(result.rowcount or 0)


async def release_entries(conn: AsyncConnection, instance: str) -> int:
    """Free the unprocessed entries ``instance`` holds."""
    result = await conn.execute(update(e).where(e.c.leased_by == instance)
                                .where(e.c.processed_at.is_(None))
                                .values(leased_by=None, lease_until=None))
    return int(result.rowcount or 0)


async def release_all(conn: AsyncConnection, now: datetime) -> None:
    """A single instance's start (SQLite: no one else can be running): free every feed and
    entry lease, and mark instances that did not stop cleanly dead."""
    for table in (f, e):
        await conn.execute(update(table).where(table.c.leased_by.is_not(None))
                           .values(leased_by=None, lease_until=None))
    await conn.execute(update(i).where(i.c.state.in_(("running", "stopping")))
                       .values(state="dead", stopped_at=naive(now)))


async def register(conn: AsyncConnection, row: InstanceRow) -> None:
    await conn.execute(i.insert().values(
        id=row.id, host=row.host, pid=row.pid, version=row.version,
        started_at=naive(row.started_at), heartbeat_at=naive(row.heartbeat_at),
        state=row.state, leases={}))


async def heartbeat(conn: AsyncConnection, instance: str, *, now: datetime,
                    lease_until: datetime, state: str = "running") -> dict[str, int]:
    """Renew the instance's row, then its leases; return the leases it holds by kind
    (and ``revived: 1`` when the others had taken it for dead: its work was handed over).

    The row comes first: reaping takes the same order (instances, then feeds, entries).
    """
    await _wait_for_locks_briefly(conn)
    previous = (await conn.execute(select(i.c.state).where(i.c.id == instance)
                                   .with_for_update())).scalar()
    if previous is None:  # its row was removed by hand: join again
        await register(conn, InstanceRow.joining(instance, "", now))
    until = naive(lease_until)
    # SKIP LOCKED: rows this instance is writing right now (a poll's record, an entry's
    # outcome) are skipped, not waited for, so a heartbeat never deadlocks with them.
    held_feeds = select(f.c.id).where(f.c.leased_by == instance).with_for_update(
        skip_locked=True).scalar_subquery()
    feeds = (await conn.execute(update(f).where(f.c.id.in_(held_feeds))
                                .values(lease_until=until))).rowcount or 0
    held_entries = select(e.c.id).where(e.c.leased_by == instance).where(
        e.c.processed_at.is_(None)).with_for_update(skip_locked=True).scalar_subquery()
    entries = (await conn.execute(update(e).where(e.c.id.in_(held_entries))
                                  .values(lease_until=until))).rowcount or 0
    deliveries = (await conn.execute(
        select(func.count()).select_from(t.deliveries)
        .where(t.deliveries.c.state == "sending")
        .where(t.deliveries.c.claimed_by.startswith(f"{instance}:", autoescape=True))
    )).scalar() or 0
    leases = {"feeds": int(feeds), "entries": int(entries), "deliveries": int(deliveries)}
    await conn.execute(update(i).where(i.c.id == instance).values(
        heartbeat_at=naive(now), state=state, leases=leases, stopped_at=None))
    return {**leases, "revived": 1} if previous == "dead" else leases


async def reap(conn: AsyncConnection, *, now: datetime, dead_before: datetime) -> list[str]:
    """Free what instances silent since ``dead_before`` held; mark them dead.  On
    PostgreSQL a row still locked by a half-dead connection makes this give up after a
    few seconds (``lock_timeout``) instead of waiting: the next heartbeat tries again."""
    await _wait_for_locks_briefly(conn)
    dead = list((await conn.execute(
        select(i.c.id).where(i.c.state.in_(("running", "stopping")))
        .where(i.c.heartbeat_at < naive(dead_before)).with_for_update(skip_locked=True)
    )).scalars())
    for instance in dead:
        await release_feeds(conn, instance)
        await release_entries(conn, instance)
        await outbox.release(conn, now, instance=instance)
    if dead:
        await conn.execute(update(i).where(i.c.id.in_(dead)).values(
            state="dead", stopped_at=naive(now)))
    return dead


async def retire(conn: AsyncConnection, instance: str, now: datetime) -> dict[str, int]:
    """A clean stop: release every lease of ``instance`` and mark it stopped."""
    released = {"feeds": await release_feeds(conn, instance),
                "entries": await release_entries(conn, instance),
                "deliveries": await outbox.release(conn, now, instance=instance)}
    await conn.execute(update(i).where(i.c.id == instance).values(
        state="stopped", stopped_at=naive(now), heartbeat_at=naive(now), leases={}))
    return released


async def instances(conn: AsyncConnection, *, include_stopped: bool = False,
                    limit: int = 100) -> list[InstanceRow]:
    query = select(i).order_by(i.c.started_at.desc()).limit(limit)
    if not include_stopped:
        query = query.where(i.c.state.in_(("running", "stopping")))
    return [InstanceRow(r.id, r.host, r.pid, r.version, aware(r.started_at) or datetime.min,
                        aware(r.heartbeat_at) or datetime.min, r.state, dict(r.leases or {}),
                        aware(r.stopped_at))
            for r in (await conn.execute(query)).all()]


async def stats(conn: AsyncConnection, live_after: datetime) -> tuple[int, dict[str, int], int]:
    """Fleet-wide figures for metrics: (entries waiting for NLP, deliveries by state,
    live instances)."""
    waiting = (await conn.execute(select(func.count()).select_from(e)
                                  .where(e.c.processed_at.is_(None)))).scalar() or 0
    d = t.deliveries  # delivered rows are most of the table and never pruned: not counted
    by_state = {str(s): int(n) for s, n in (await conn.execute(
        select(d.c.state, func.count()).where(d.c.state.in_(OPEN_STATES))
        .group_by(d.c.state))).all()}
    live = (await conn.execute(select(func.count()).select_from(i)
                               .where(and_(i.c.state == "running",
                                           i.c.heartbeat_at >= naive(live_after))))).scalar()
    return int(waiting), by_state, int(live or 0)
