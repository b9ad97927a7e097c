"""Recording processed entries: stories, matches and the alerts they raise, in one transaction.

The policy (:mod:`ingest.rules.policy`) is pure; this module reads the history it
needs from the same connection the outcome is written with, so a decision and its
record cannot drift apart, and a crash leaves the entry unprocessed to be done again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.model import Entry
from ingest.rules.alerts import with_source
from ingest.rules.policy import AlertRef, Decision, History, PriorMatch, Silence, decide
from ingest.store import schema as t
from ingest.store.base import AlertChange, EntryOutcome, ProposedMatch
from ingest.store.rows import alert_from_json, alert_to_json, aware, insert_for, naive


async def active_silences(conn: AsyncConnection, now: datetime) -> list[Silence]:
    query = (select(t.silences).where(t.silences.c.expires_at > naive(now))
             .order_by(t.silences.c.id))
    return [silence_from_row(r) for r in (await conn.execute(query)).all()]


def silence_from_row(r: Any) -> Silence:
    created, expires = aware(r.created_at), aware(r.expires_at)
    assert created is not None and expires is not None
    return Silence(r.id, r.rule_id, r.tag, r.entity, r.reason, created, expires)


async def record_outcomes(conn: AsyncConnection, dialect: str, outcomes: Sequence[EntryOutcome],
                          now: datetime) -> list[AlertChange]:
    """Write each entry's story, fingerprint and matches; apply the policy to each match."""
    silences = tuple(await active_silences(conn, now))
    changes: list[AlertChange] = []
    for out in outcomes:
        await conn.execute(update(t.entries).where(t.entries.c.id == out.entry_id).values(
            story_id=out.story_id, canonical_link=out.canonical_link or None,
            signature=out.fingerprint.signature if out.fingerprint else None,
            language=out.language, analysis=out.analysis, processed_at=naive(now),
            leased_by=None, lease_until=None))
        await conn.execute(delete(t.story_bands).where(t.story_bands.c.entry_id == out.entry_id))
        if out.fingerprint is not None and out.fingerprint.bands:
            await conn.execute(t.story_bands.insert(), [
                {"entry_id": out.entry_id, "band_key": key, "created_at": naive(now)}
                for key in out.fingerprint.bands])
        for proposed in out.matches:
            change = await _record_match(conn, dialect, out, proposed, silences, now)
            if change is not None:
                changes.append(change)
    return changes


async def _history(conn: AsyncConnection, p: ProposedMatch,
                   silences: tuple[Silence, ...]) -> History:
    ev, rule = p.event, p.rule
    row = (await conn.execute(select(t.alerts.c.id, t.alerts.c.state, t.alerts.c.revision)
                              .where(t.alerts.c.rule_id == ev.rule_id)
                              .where(t.alerts.c.story_id == ev.story_id))).first()
    story_alert = AlertRef(row.id, row.state, row.revision) if row is not None else None
    window: tuple[PriorMatch, ...] = ()
    if rule.threshold is not None and story_alert is None:
        span = timedelta(seconds=rule.threshold.window)
        rows = (await conn.execute(
            select(t.matches.c.entry_id, t.matches.c.feed_id, t.matches.c.story_id,
                   t.matches.c.at)
            .where(t.matches.c.rule_id == ev.rule_id)
            .where(t.matches.c.at >= naive(ev.at - span))
            .where(t.matches.c.at <= naive(ev.at + span)))).all()
        window = tuple(PriorMatch(r.entry_id, r.feed_id, r.story_id, aware(r.at)) for r in rows)
    dedupe_alert = None
    if rule.dedupe is not None and story_alert is None:
        span = timedelta(seconds=rule.dedupe.window)
        row = (await conn.execute(
            select(t.alerts.c.id, t.alerts.c.state, t.alerts.c.revision)
            .where(t.alerts.c.rule_id == ev.rule_id)
            .where(t.alerts.c.dedupe_key == ev.dedupe_key)
            .where(t.alerts.c.state == "fired")
            .where(t.alerts.c.at >= naive(ev.at - span))
            .where(t.alerts.c.at <= naive(ev.at + span))
            .order_by(t.alerts.c.at.desc()).limit(1))).first()
        dedupe_alert = AlertRef(row.id, row.state, row.revision) if row is not None else None
    return History(story_alert, window, dedupe_alert, silences)


async def _record_match(conn: AsyncConnection, dialect: str, out: EntryOutcome,
                        p: ProposedMatch, silences: tuple[Silence, ...],
                        now: datetime) -> AlertChange | None:
    ev = p.event
    recorded = (await conn.execute(select(t.matches.c.id)
                                   .where(t.matches.c.rule_id == ev.rule_id)
                                   .where(t.matches.c.entry_id == out.entry_id))).first()
    if recorded is not None:  # recorded before (a retry, or another instance): change nothing
        return None
    history = await _history(conn, p, silences)
    decision = decide(p.rule, ev, history, now)
    alert = None
    if decision.state in ("new", "silenced"):
        alert = dataclasses.replace(p.alert, state="fired" if decision.state == "new"
                                    else "silenced")
        alert = await _with_window_sources(conn, alert, history, ev.story_id, now)
        inserted = (await conn.execute(
            insert_for(dialect, t.alerts).values(
                id=alert.id, rule_id=alert.rule_id, entry_id=out.entry_id,
                story_id=ev.story_id, severity=alert.severity, state=alert.state,
                at=naive(ev.at), dedupe_key=ev.dedupe_key, revision=0,
                created_at=naive(now), updated_at=naive(now), payload=alert_to_json(alert))
            .on_conflict_do_nothing().returning(t.alerts.c.id))).first()
        if inserted is None:  # another instance recorded this story's alert first
            return None
        if decision.state == "new":
            await _add_deliveries(conn, dialect, alert.id, alert.channels, 0, now)
        decision = dataclasses.replace(decision, alert_id=alert.id)
    elif decision.state == "update" and decision.alert_id is not None:
        alert = await _update_alert(conn, dialect, decision, out, now)
    await conn.execute(insert_for(dialect, t.matches).values(
        rule_id=ev.rule_id, entry_id=out.entry_id, story_id=ev.story_id, feed_id=ev.feed_id,
        at=naive(ev.at), state=decision.state, alert_id=decision.alert_id,
        silence_id=decision.silence_id, dedupe_key=ev.dedupe_key, created_at=naive(now),
        evidence=list(p.alert.evidence)).on_conflict_do_nothing())
    return AlertChange(alert, decision.state, decision.notify, ev.rule_id, out.entry_id)


async def _with_window_sources(conn: AsyncConnection, alert: Any, history: History,
                               story_id: int, now: datetime) -> Any:
    """The alert with the earlier copies of its story that counted towards its threshold."""
    ids = sorted({m.entry_id for m in history.window if m.story_id == story_id})
    if not ids:
        return alert
    rows = (await conn.execute(select(t.entries).where(t.entries.c.id.in_(ids))
                               .order_by(t.entries.c.id))).all()
    for r in rows:
        entry = Entry(r.feed_id, r.key, r.title, r.link, r.summary, r.content,
                      aware(r.published), r.guid)
        alert = with_source(alert, entry, now, notify=False)
    return alert


async def _update_alert(conn: AsyncConnection, dialect: str, decision: Decision,
                        out: EntryOutcome, now: datetime) -> Any:
    row = (await conn.execute(select(t.alerts.c.payload)
                              .where(t.alerts.c.id == decision.alert_id))).first()
    if row is None:
        return None
    alert = with_source(alert_from_json(row.payload), out.entry, now, notify=decision.notify)
    await conn.execute(update(t.alerts).where(t.alerts.c.id == alert.id).values(
        payload=alert_to_json(alert), revision=alert.revision, updated_at=naive(now)))
    if decision.notify:
        await _add_deliveries(conn, dialect, alert.id, alert.channels, alert.revision, now)
    return alert


async def _add_deliveries(conn: AsyncConnection, dialect: str, alert_id: str,
                          channels: Sequence[str], revision: int, now: datetime) -> None:
    for channel in channels:
        await conn.execute(insert_for(dialect, t.deliveries).values(
            alert_id=alert_id, channel=channel, revision=revision, state="pending",
            attempts=0, created_at=naive(now), updated_at=naive(now)).on_conflict_do_nothing())
