"""Rendering an alert for people and programs: the JSON payload and a one-line subject.

Email bodies are Jinja2 templates: see :mod:`ingest.notify.mail`.
"""

from __future__ import annotations

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
