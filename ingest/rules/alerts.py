"""Turning a rule match on an entry into an :class:`~ingest.model.Alert` (pure)."""

from __future__ import annotations

from datetime import datetime

from ingest.model import Alert, Entry, Mention, RuleMatch
from ingest.parse.dedup import alert_id
from ingest.rules.compile import CompiledRule


def entity_summary(m: Mention) -> dict[str, object]:
    """The JSON-friendly description of a matched entity."""
    return {"text": m.text, "name": m.name, "label": m.label, "id": m.id, "country": m.country,
            "roles": list(m.roles), "start": m.start, "end": m.end}


def make_alert(rule: CompiledRule, match: RuleMatch, entry: Entry, now: datetime,
               channels: tuple[str, ...]) -> Alert:
    """The alert ``rule`` raises on ``entry``; its id is stable per (rule, feed, entry)."""
    spec = rule.spec
    return Alert(
        id=alert_id(spec.id, entry.feed_id, entry.key),
        rule_id=spec.id, rule_title=spec.title, severity=spec.severity, tags=tuple(spec.tags),
        feed_id=entry.feed_id, entry_key=entry.key, entry_title=entry.title,
        entry_link=entry.link, published=entry.published, created_at=now,
        entities=tuple(entity_summary(m) for m in match.entities), terms=match.terms,
        snippet=match.snippet, channels=channels)
