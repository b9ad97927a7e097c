"""Turning a rule match on an entry into an :class:`~ingest.model.Alert` (pure),
and folding later copies of the same story into it."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from ingest.model import Alert, Entry, Hit, Mention, RuleMatch
from ingest.parse.dedup import alert_id
from ingest.rules.compile import CompiledRule, leaf_descriptions

MAX_SOURCES = 200  # an alert lists at most this many entries of its story


def entity_summary(m: Mention) -> dict[str, object]:
    """The JSON-friendly description of a matched entity."""
    return {"text": m.text, "name": m.name, "label": m.label, "id": m.id, "country": m.country,
            "roles": list(m.roles), "start": m.start, "end": m.end}


def evidence(rule: CompiledRule, hits: tuple[Hit, ...]) -> tuple[dict[str, object], ...]:
    """Per leaf of the rule, the text spans that satisfied it (offsets into the entry's text:
    its title, a blank line, then its body)."""
    described = leaf_descriptions(rule.when)
    by_leaf: dict[str, list[dict[str, object]]] = {}
    for h in hits:
        by_leaf.setdefault(h.leaf, []).append(
            {"kind": h.kind, "text": h.text, "start": h.start, "end": h.end})
    return tuple({"leaf": leaf, "describe": described.get(leaf, leaf), "spans": spans}
                 for leaf, spans in by_leaf.items())


def source_of(entry: Entry, seen_at: datetime) -> dict[str, object]:
    return {"feed": entry.feed_id, "entry_key": entry.key, "title": entry.title,
            "link": entry.link,
            "published": entry.published.isoformat() if entry.published else None,
            "seen_at": seen_at.isoformat()}


def make_alert(rule: CompiledRule, match: RuleMatch, entry: Entry, now: datetime,
               channels: tuple[str, ...], story_id: int | None = None,
               dedupe_key: str = "") -> Alert:
    """The alert ``rule`` raises on ``entry``; its id is stable per (rule, feed, entry)."""
    spec = rule.spec
    return Alert(
        id=alert_id(spec.id, entry.feed_id, entry.key),
        rule_id=spec.id, rule_title=spec.title, severity=spec.severity, tags=tuple(spec.tags),
        feed_id=entry.feed_id, entry_key=entry.key, entry_title=entry.title,
        entry_link=entry.link, published=entry.published, created_at=now,
        entities=tuple(entity_summary(m) for m in match.entities), terms=match.terms,
        snippet=match.snippet, channels=channels, story_id=story_id,
        sources=(source_of(entry, now),), first_seen=now, last_seen=now,
        evidence=evidence(rule, match.hits), dedupe_key=dedupe_key)


def with_source(alert: Alert, entry: Entry, now: datetime, *, notify: bool) -> Alert:
    """``alert`` after another entry of its story matched: one more source, seen later.

    ``notify`` (the rule's ``on_update: notify``) raises the revision, which is what
    channels are sent.
    """
    keys = {(s.get("feed"), s.get("entry_key")) for s in alert.sources}
    sources = alert.sources
    if (entry.feed_id, entry.key) not in keys and len(sources) < MAX_SOURCES:
        sources = (*sources, source_of(entry, now))
    return dataclasses.replace(alert, sources=sources, last_seen=now,
                               revision=alert.revision + (1 if notify else 0))
