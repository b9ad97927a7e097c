"""Rendering an alert for people and programs: JSON payload, email subject and bodies."""

from __future__ import annotations

import html
import json
from typing import Any

from ingest.model import Alert

SCHEMA_VERSION = 1


def delivery_key(alert: Alert) -> str:
    """What receivers de-duplicate on: the alert id, plus the revision for updates."""
    return alert.id if alert.revision == 0 else f"{alert.id}.r{alert.revision}"


def _time(when: Any) -> str | None:
    return when.isoformat() if when is not None else None


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The product's JSON payload for an alert (``schema_version`` 1; fields only added)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "event": "alert.updated" if alert.revision else "alert.fired",
        "alert_id": alert.id,
        "revision": alert.revision,
        "rule": {"id": alert.rule_id, "title": alert.rule_title,
                 "severity": alert.severity, "tags": list(alert.tags)},
        "entry": {
            "feed": alert.feed_id,
            "key": alert.entry_key,
            "title": alert.entry_title,
            "link": alert.entry_link,
            "published": alert.published.isoformat() if alert.published else None,
        },
        "entities": [dict(e) for e in alert.entities],
        "terms": list(alert.terms),
        "snippet": alert.snippet,
        "created_at": alert.created_at.isoformat(),
        "story": {"id": alert.story_id, "first_seen": _time(alert.first_seen),
                  "last_seen": _time(alert.last_seen), "source_count": len(alert.sources),
                  "sources": [dict(s) for s in alert.sources]},
        "evidence": [dict(e) for e in alert.evidence],
    }


def payload_bytes(alert: Alert) -> bytes:
    """The payload as compact, key-sorted UTF-8 JSON: the exact bytes that are signed."""
    return json.dumps(alert_payload(alert), ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def subject(alert: Alert) -> str:
    """``[HIGH] Rule title: entry title``, on one line."""
    title = " ".join(alert.entry_title.split())
    update = f" (update: {len(alert.sources)} sources)" if alert.revision else ""
    return f"[{alert.severity.upper()}] {alert.rule_title}: {title}{update}"[:250]


def _entity_line(entity: dict[str, Any]) -> str:
    extras = [str(entity[k]) for k in ("label", "country") if entity.get(k)]
    roles = entity.get("roles") or []
    extras.extend(str(r) for r in roles)
    return f"{entity.get('name') or entity.get('text')} ({', '.join(extras)})"


def text_body(alert: Alert) -> str:
    """The plain-text part of an alert email."""
    lines = [
        f"Rule:      {alert.rule_title} ({alert.rule_id})",
        f"Severity:  {alert.severity}",
        f"Story:     {alert.entry_title}",
        f"Link:      {alert.entry_link}",
        f"Feed:      {alert.feed_id}",
        f"Published: {alert.published.isoformat() if alert.published else 'unknown'}",
        "",
        alert.snippet,
        "",
        "Matched entities:",
        *(f"  - {_entity_line(e)}" for e in alert.entities),
        f"Matched terms: {', '.join(alert.terms) or '-'}",
        "",
        f"Sources ({len(alert.sources)}):",
        *(f"  - {s.get('feed')}: {s.get('title')} <{s.get('link')}>" for s in alert.sources),
        "",
        f"Alert id: {alert.id}" + (f" (revision {alert.revision})" if alert.revision else ""),
    ]
    return "\n".join(lines) + "\n"


def html_body(alert: Alert) -> str:
    """The HTML part of an alert email; every piece of feed text is escaped."""
    e = html.escape
    entities = "".join(f"<li>{e(_entity_line(x))}</li>" for x in alert.entities)
    sources = "".join(f"<li>{e(str(s.get('feed')))}: "
                      f"<a href=\"{e(str(s.get('link')), quote=True)}\">"
                      f"{e(str(s.get('title')))}</a></li>" for s in alert.sources)
    published = alert.published.isoformat() if alert.published else "unknown"
    return (
        "<!doctype html><html><body style=\"font-family:sans-serif\">"
        f"<p><strong>[{e(alert.severity.upper())}] {e(alert.rule_title)}</strong></p>"
        f"<h2><a href=\"{e(alert.entry_link, quote=True)}\">{e(alert.entry_title)}</a></h2>"
        f"<p>{e(alert.feed_id)} &middot; {e(published)}</p>"
        f"<blockquote>{e(alert.snippet)}</blockquote>"
        f"<p>Matched entities:</p><ul>{entities}</ul>"
        f"<p>Matched terms: {e(', '.join(alert.terms) or '-')}</p>"
        f"<p>Sources ({len(alert.sources)}):</p><ul>{sources}</ul>"
        f"<p style=\"color:#777\">Alert id {e(alert.id)} &middot; rule {e(alert.rule_id)}</p>"
        "</body></html>"
    )
