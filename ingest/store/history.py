"""Queries over what has been recorded: story candidates, silences, matches, backtests, pruning.

Plain functions on an open connection; :class:`~ingest.store.sql.SqlStore` wraps each
in a transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.model import Entry
from ingest.rules.policy import Silence
from ingest.store import schema as t
from ingest.store.base import BacktestEntry, MatchRow
from ingest.store.outcomes import silence_from_row
from ingest.store.rows import aware, naive
from ingest.stories.cluster import StoryCandidate

_CHUNK = 500  # bound parameters per IN (...) list


async def story_candidates(conn: AsyncConnection, band_keys: Sequence[int], links: Sequence[str],
                           since: datetime) -> list[StoryCandidate]:
    """Recent processed entries sharing an LSH band or a canonical link with the batch."""
    ids: set[int] = set()
    keys = sorted(set(band_keys))
    for i in range(0, len(keys), _CHUNK):
        rows = await conn.execute(
            select(t.story_bands.c.entry_id).where(t.story_bands.c.band_key.in_(keys[i:i + _CHUNK]))
            .where(t.story_bands.c.created_at >= naive(since)))
        ids.update(r.entry_id for r in rows)
    wanted = sorted({u for u in links if u})
    for i in range(0, len(wanted), _CHUNK):
        rows = await conn.execute(
            select(t.entries.c.id).where(t.entries.c.canonical_link.in_(wanted[i:i + _CHUNK]))
            .where(t.entries.c.fetched_at >= naive(since)))
        ids.update(r.id for r in rows)
    out: list[StoryCandidate] = []
    found = sorted(ids)
    for i in range(0, len(found), _CHUNK):
        chunk = found[i:i + _CHUNK]
        bands: dict[int, list[int]] = {}
        for r in await conn.execute(select(t.story_bands.c.entry_id, t.story_bands.c.band_key)
                                    .where(t.story_bands.c.entry_id.in_(chunk))):
            bands.setdefault(r.entry_id, []).append(r.band_key)
        rows = await conn.execute(
            select(t.entries.c.id, t.entries.c.story_id, t.entries.c.canonical_link,
                   t.entries.c.signature)
            .where(t.entries.c.id.in_(chunk)).where(t.entries.c.story_id.is_not(None)))
        out.extend(StoryCandidate(r.id, r.story_id, r.canonical_link or "", r.signature or b"",
                                  tuple(bands.get(r.id, ()))) for r in rows)
    return sorted(out, key=lambda c: c.entry_id)


async def add_silence(conn: AsyncConnection, s: Silence, created_by: str) -> Silence:
    row = (await conn.execute(t.silences.insert().values(
        rule_id=s.rule_id, tag=s.tag, entity=s.entity, reason=s.reason, created_by=created_by,
        created_at=naive(s.created_at), expires_at=naive(s.expires_at))
        .returning(t.silences.c.id))).first()
    assert row is not None
    return Silence(row.id, s.rule_id, s.tag, s.entity, s.reason, s.created_at, s.expires_at)


async def silences(conn: AsyncConnection, now: datetime, include_expired: bool) -> list[Silence]:
    query = select(t.silences).order_by(t.silences.c.id)
    if not include_expired:
        query = query.where(t.silences.c.expires_at > naive(now))
    return [silence_from_row(r) for r in (await conn.execute(query)).all()]


async def expire_silence(conn: AsyncConnection, silence_id: int, now: datetime) -> bool:
    result = await conn.execute(update(t.silences).where(t.silences.c.id == silence_id)
                                .where(t.silences.c.expires_at > naive(now))
                                .values(expires_at=naive(now)))
    return bool(result.rowcount)


async def matches(conn: AsyncConnection, *, rule_id: str | None, since: datetime | None,
                  state: str | None, limit: int) -> list[MatchRow]:
    query = (select(t.matches, t.entries.c.title, t.entries.c.link)
             .join(t.entries, t.entries.c.id == t.matches.c.entry_id)
             .order_by(t.matches.c.at.desc(), t.matches.c.id.desc()).limit(limit))
    if rule_id is not None:
        query = query.where(t.matches.c.rule_id == rule_id)
    if since is not None:
        query = query.where(t.matches.c.at >= naive(since))
    if state is not None:
        query = query.where(t.matches.c.state == state)
    return [_match_row(r) for r in (await conn.execute(query)).all()]


def _match_row(r: Any) -> MatchRow:
    at = aware(r.at)
    assert at is not None
    return MatchRow(r.id, r.rule_id, r.entry_id, r.story_id, r.feed_id, at, r.state, r.alert_id,
                    r.title, r.link)


async def backtest_entries(conn: AsyncConnection, since: datetime,
                           limit: int | None) -> list[BacktestEntry]:
    """Processed entries fetched since ``since`` whose text is still kept, oldest first."""
    query = (select(t.entries).where(t.entries.c.fetched_at >= naive(since))
             .where(t.entries.c.processed_at.is_not(None))
             .where(t.entries.c.story_id.is_not(None))
             .where(t.entries.c.analysis.is_not(None))  # pruned entries have none
             .order_by(t.entries.c.fetched_at, t.entries.c.id))
    if limit is not None:
        query = query.limit(limit)
    out = []
    for r in (await conn.execute(query)).all():
        entry = Entry(r.feed_id, r.key, r.title, r.link, r.summary, r.content,
                      aware(r.published), r.guid)
        fetched = aware(r.fetched_at)
        assert fetched is not None
        at = min(entry.published, fetched) if entry.published else fetched
        out.append(BacktestEntry(r.id, entry, r.story_id, at, r.language, r.analysis))
    return out


async def prune(conn: AsyncConnection, before: datetime) -> int:
    old = select(t.entries.c.id).where(t.entries.c.fetched_at < naive(before))
    await conn.execute(delete(t.story_bands).where(t.story_bands.c.entry_id.in_(old)))
    result = await conn.execute(
        update(t.entries).where(t.entries.c.fetched_at < naive(before))
        .where(t.entries.c.processed_at.is_not(None))
        .where(or_(t.entries.c.analysis.is_not(None), t.entries.c.summary != "",
                   t.entries.c.content != ""))
        .values(summary="", content="", analysis=None, signature=None))
    return int(result.rowcount or 0)
