"""Row conversions shared by the SQL store's modules: UTC datetimes and alert JSON."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from ingest.model import Alert, Entry
from ingest.store.base import StoredEntry

_ALERT_TIMES = ("published", "created_at", "first_seen", "last_seen")
_ALERT_TUPLES = ("tags", "terms", "channels", "entities", "sources", "evidence")


def insert_for(dialect: str, table: Any) -> Any:
    """An INSERT that supports ``on_conflict_do_nothing`` on this dialect."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


def naive(when: datetime | None) -> datetime | None:
    return when.astimezone(UTC).replace(tzinfo=None) if when is not None else None


def aware(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def alert_to_json(alert: Alert) -> dict[str, Any]:
    data = dataclasses.asdict(alert)
    for key in _ALERT_TIMES:
        data[key] = data[key].isoformat() if data[key] else None
    return data


def alert_from_json(data: dict[str, Any]) -> Alert:
    data = dict(data)
    for key in _ALERT_TIMES:
        data[key] = datetime.fromisoformat(data[key]) if data.get(key) else None
    for key in _ALERT_TUPLES:
        data[key] = tuple(data.get(key) or ())
    known = {f.name for f in dataclasses.fields(Alert)}
    return Alert(**{k: v for k, v in data.items() if k in known})




def stored_entry(row: Any) -> StoredEntry:
    """An ``entries`` row as the entry it stores."""
    return StoredEntry(row.id, Entry(row.feed_id, row.key, row.title, row.link, row.summary,
                                     row.content, aware(row.published), row.guid, row.language),
                       aware(row.fetched_at))
