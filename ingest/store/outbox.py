"""The outbox: delivery rows claimed, sent and settled, each step one transaction.

A delivery is one revision of an alert to one channel.  Its states:

* ``pending``: written with the alert, in the transaction that decided it;
* ``sending``: claimed by a sender.  The claim counts the attempt, names the sender
  (``claimed_by``, a token per claim) and lasts until ``next_attempt_at`` (the lease);
* ``delivered``: the receiver accepted it;
* ``failed``: the attempt failed and the row is due again at ``next_attempt_at``;
* ``dead``: given up (a permanent refusal, too many attempts, too old), until an
  operator retries it (``ingest alerts retry``).

A crash at any point loses nothing: a row whose claim ran out while ``sending`` is
claimed again (its lost attempt recorded as ``interrupted``), and an outcome is
recorded only by the claim that holds the row.  Receivers de-duplicate resends with
the idempotency key.  Claims use ``FOR UPDATE SKIP LOCKED`` where the database has
it (PostgreSQL), so concurrent senders never take the same row; SQLite serialises
writers instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.model import Alert
from ingest.store import schema as t
from ingest.store.base import AlertSummary, AttemptRow, DeliveryResult, DeliveryRow, PendingDelivery
from ingest.store.rows import alert_from_json, aware, naive

d = t.deliveries
INTERRUPTED = ("interrupted: the claim ran out before the outcome was recorded "
               "(the sender crashed or was stopped mid-send)")


async def claim(conn: AsyncConnection, channel: str, *, now: datetime, lease_until: datetime,
                token: str, limit: int, max_attempts: int,
                held_after: datetime | None = None) -> list[PendingDelivery]:
    """Claim up to ``limit`` due deliveries of ``channel`` (oldest first) for ``token``.

    Due: pending or failed rows whose time has come, and rows whose claim ran out.
    ``held_after`` (digests): first attempts of rows created at or after it wait.
    """
    n = naive(now)
    due = and_(d.c.state.in_(("pending", "failed")),
               or_(d.c.next_attempt_at.is_(None), d.c.next_attempt_at <= n))
    expired = and_(d.c.state == "sending", d.c.next_attempt_at <= n)
    cond = and_(d.c.channel == channel, or_(due, expired))
    if held_after is not None:
        cond = and_(cond, or_(d.c.attempts > 0, d.c.created_at < naive(held_after)))
    while True:  # rows found to have no attempts left are settled, then look again
        rows = (await conn.execute(
            select(d.c.id, d.c.state, d.c.attempts, d.c.updated_at).where(cond)
            .order_by(d.c.id).limit(limit).with_for_update(skip_locked=True))).all()
        ids = await _settle_lost(conn, rows, n, max_attempts)
        if ids or not rows:
            break
    if not ids:
        return []
    await conn.execute(update(d).where(d.c.id.in_(ids)).values(
        state="sending", attempts=d.c.attempts + 1, claimed_by=token,
        next_attempt_at=naive(lease_until), updated_at=n))
    claimed = (await conn.execute(
        select(d.c.id, d.c.channel, d.c.attempts, d.c.revision, d.c.created_at,
               t.alerts.c.payload)
        .join(t.alerts, t.alerts.c.id == d.c.alert_id)
        .where(d.c.id.in_(ids)).order_by(d.c.id))).all()
    return [PendingDelivery(r.id, r.channel, r.attempts,
                            dataclasses.replace(alert_from_json(r.payload), revision=r.revision),
                            aware(r.created_at))
            for r in claimed]


async def _settle_lost(conn: AsyncConnection, rows: Sequence[Any], n: datetime | None,
                       max_attempts: int) -> list[int]:
    """Record the lost attempt of each row whose claim ran out; those with no attempts
    left become dead.  Return the ids still to claim."""
    lost = [r for r in rows if r.state == "sending"]
    if lost:
        await _log_attempts(conn, [{"delivery_id": r.id, "attempt": r.attempts,
                                    "started_at": r.updated_at, "finished_at": n,
                                    "outcome": "interrupted", "detail": INTERRUPTED}
                                   for r in lost])
    spent = [r.id for r in lost if r.attempts >= max_attempts]
    if spent:
        await conn.execute(update(d).where(d.c.id.in_(spent)).values(
            state="dead", claimed_by=None, next_attempt_at=None, updated_at=n,
            last_error=f"{INTERRUPTED}; no attempts left"))
    return [r.id for r in rows if r.id not in set(spent)]


async def finish(conn: AsyncConnection, token: str, results: Sequence[DeliveryResult],
                 now: datetime) -> int:
    """Record outcomes of rows ``token`` still holds; return how many it held."""
    if not results:
        return 0
    held = set((await conn.execute(
        select(d.c.id).where(d.c.id.in_([r.delivery_id for r in results]))
        .where(d.c.claimed_by == token).where(d.c.state == "sending")
        .with_for_update())).scalars())
    mine = [r for r in results if r.delivery_id in held]
    done = [r for r in mine if r.state == "delivered"]
    undone = [r for r in mine if r.state != "delivered"]
    n = naive(now)
    if done:
        await conn.execute(
            update(d).where(d.c.id == bindparam("b_id"), d.c.claimed_by == token,
                            d.c.state == "sending").values(
                state="delivered", receipt=bindparam("b_detail"), claimed_by=None,
                next_attempt_at=None, delivered_at=bindparam("b_at"), updated_at=n),
            [{"b_id": r.delivery_id, "b_detail": r.detail[:500], "b_at": naive(r.finished_at)}
             for r in done])
    if undone:
        await conn.execute(
            update(d).where(d.c.id == bindparam("b_id"), d.c.claimed_by == token,
                            d.c.state == "sending").values(
                state=bindparam("b_state"), last_error=bindparam("b_detail"), claimed_by=None,
                next_attempt_at=bindparam("b_retry"), updated_at=n),
            [{"b_id": r.delivery_id, "b_state": r.state, "b_detail": r.detail[:2000],
              "b_retry": naive(r.retry_at) if r.state == "failed" else None} for r in undone])
    await _log_attempts(conn, [{"delivery_id": r.delivery_id, "attempt": r.attempt,
                                "started_at": naive(r.started_at),
                                "finished_at": naive(r.finished_at), "outcome": r.state,
                                "detail": r.detail[:2000]} for r in mine])
    return len(mine)


async def release(conn: AsyncConnection, now: datetime, token: str | None = None, *,
                  instance: str | None = None) -> int:
    """Make rows being sent (by ``token``, by any claim of ``instance``, or by anyone) due
    again at once, their attempt recorded as interrupted.  For a stop mid-send, a dead
    instance, and a single instance's restart."""
    cond = d.c.state == "sending"
    if token is not None:
        cond = and_(cond, d.c.claimed_by == token)
    if instance is not None:  # claim tokens are "<instance>:<random>"
        cond = and_(cond, d.c.claimed_by.startswith(f"{instance}:", autoescape=True))
    rows = (await conn.execute(select(d.c.id, d.c.attempts, d.c.updated_at).where(cond))).all()
    if not rows:
        return 0
    n = naive(now)
    await _log_attempts(conn, [{"delivery_id": r.id, "attempt": r.attempts,
                                "started_at": r.updated_at, "finished_at": n,
                                "outcome": "interrupted", "detail": INTERRUPTED} for r in rows])
    await conn.execute(update(d).where(d.c.id.in_([r.id for r in rows])).values(
        state="failed", claimed_by=None, next_attempt_at=n, updated_at=n,
        last_error=INTERRUPTED))
    return len(rows)


async def abandon(conn: AsyncConnection, configured: Sequence[str], now: datetime) -> int:
    """Give up the unsent deliveries of channels no longer configured (state dead); rows
    another instance is sending under a live claim are left to it."""
    n = naive(now)
    live = and_(d.c.state == "sending", d.c.next_attempt_at > n)
    result = await conn.execute(
        update(d).where(d.c.state.in_(("pending", "failed", "sending")))
        .where(d.c.channel.not_in(list(configured))).where(~live).values(
            state="dead", claimed_by=None, next_attempt_at=None, updated_at=n,
            last_error="its channel is not configured; add it back and run "
                       "`ingest alerts retry --all-dead`"))
    return int(result.rowcount or 0)


async def retry(conn: AsyncConnection, now: datetime, alert_id: str | None = None) -> int:
    """Make dead deliveries (of one alert: dead or failed) due now, with fresh attempts."""
    cond = (d.c.state == "dead" if alert_id is None
            else and_(d.c.alert_id == alert_id, d.c.state.in_(("dead", "failed"))))
    result = await conn.execute(update(d).where(cond).values(
        state="pending", attempts=0, next_attempt_at=None, claimed_by=None,
        updated_at=naive(now)))
    return int(result.rowcount or 0)


def delivery_row(r: Any) -> DeliveryRow:
    return DeliveryRow(r.id, r.alert_id, r.channel, r.state, r.attempts, r.last_error,
                       r.receipt, r.revision, aware(r.next_attempt_at), aware(r.created_at),
                       aware(r.delivered_at))


async def summaries(conn: AsyncConnection, *, state: str | None, rule_id: str | None,
                    since: datetime | None, limit: int) -> list[AlertSummary]:
    query = select(t.alerts.c.id, t.alerts.c.payload).order_by(t.alerts.c.created_at.desc(),
                                                              t.alerts.c.id)
    if rule_id is not None:
        query = query.where(t.alerts.c.rule_id == rule_id)
    if since is not None:
        query = query.where(t.alerts.c.created_at >= naive(since))
    if state is not None:
        query = query.where(exists().where(d.c.alert_id == t.alerts.c.id)
                            .where(d.c.state == state))
    alerts = (await conn.execute(query.limit(limit))).all()
    by_alert: dict[str, list[DeliveryRow]] = {a.id: [] for a in alerts}
    if alerts:
        rows = (await conn.execute(select(d).where(d.c.alert_id.in_(list(by_alert)))
                                   .order_by(d.c.id))).all()
        for r in rows:
            by_alert[r.alert_id].append(delivery_row(r))
    return [AlertSummary(alert_from_json(a.payload), tuple(by_alert[a.id])) for a in alerts]


async def find_alert(conn: AsyncConnection, id_prefix: str) -> list[Alert]:
    """Alerts whose id starts with ``id_prefix`` (at most two: enough to see ambiguity)."""
    rows = (await conn.execute(select(t.alerts.c.payload)
                               .where(t.alerts.c.id.startswith(id_prefix, autoescape=True))
                               .limit(2))).all()
    return [alert_from_json(r.payload) for r in rows]


async def attempts(conn: AsyncConnection, alert_id: str) -> list[AttemptRow]:
    a = t.delivery_attempts
    rows = (await conn.execute(
        select(a).join(d, d.c.id == a.c.delivery_id).where(d.c.alert_id == alert_id)
        .order_by(a.c.delivery_id, a.c.id))).all()
    return [AttemptRow(r.delivery_id, r.attempt, aware(r.started_at), aware(r.finished_at),
                       r.outcome, r.detail) for r in rows]


async def _log_attempts(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(t.delivery_attempts), rows)
