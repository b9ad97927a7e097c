"""What ``ingest feeds`` shows of feeds: each feed's status (from its database row and the
config), the status table, one feed's detail with its notices, and the plain-text tables
and relative times they are made of.

Pure formatting: the commands in :mod:`ingest.cli_feeds` read the config and the
database, pass ``now`` in, and print what these functions return.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from ingest.model import Feed
from ingest.store.base import FeedRow, Notice


def shown_path(path: str | Path) -> str:
    """A path relative to the working directory when it is below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns two spaces apart, the header first."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *rows]]


def cut(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


# -- relative times -------------------------------------------------------------------------

def span(seconds: float) -> str:
    """A short, rounded duration: 45s, 3m, 1.5h, 20h, 3d."""
    if round(seconds) < 60:
        return f"{round(seconds)}s"
    if round(seconds / 60) < 60:
        return f"{round(seconds / 60)}m"
    hours = seconds / 3600
    if round(hours) < 48:
        return f"{hours:.1f}".removesuffix(".0") + "h" if hours < 10 else f"{hours:.0f}h"
    return f"{round(seconds / 86400)}d"


def ago(when: datetime | None, now: datetime) -> str:
    """How long before ``now``: "3m ago", "just now", or "never"."""
    if when is None:
        return "never"
    seconds = (now - when).total_seconds()
    return "just now" if seconds < 1 else f"{span(seconds)} ago"


def until(when: datetime | None, now: datetime) -> str:
    """How long after ``now``: "in 5m", "due now", or "-"."""
    if when is None:
        return "-"
    seconds = (when - now).total_seconds()
    return "due now" if seconds <= 0 else f"in {span(seconds)}"


# -- one feed's status ----------------------------------------------------------------------

def _disabled(row: FeedRow, conf: tuple[Feed, str] | None, known: bool) -> str | None:
    """Why the feed is not polled, or None."""
    if row.state.disabled_reason:
        return row.state.disabled_reason
    if row.feed.enabled:
        return None
    if conf is not None:
        return (f"enabled: false in {conf[1]}" if not conf[0].enabled else
                f"enabled in {conf[1]}, which the service reads when it next starts")
    return "not in the config any more" if known else "not enabled"


_NOT_POLLED = dict.fromkeys((
    "polled_url", "moved_to", "health_since", "disabled_reason", "disabled_by",
    "last_polled_at", "last_success_at", "last_error", "last_error_at", "failing_since",
    "next_poll_at", "fetch_time_avg_ms", "warning", "note"))


def feed_status(row: FeedRow | None, conf: tuple[Feed, str] | None,
                known: bool) -> dict[str, Any]:
    """One feed's status: from its database row, and the config when it lists the feed.
    ``known`` says whether the config's feed lists could be read."""
    if row is None:
        assert conf is not None
        feed, source = conf
        return {**_NOT_POLLED, "id": feed.id, "title": feed.title, "url": feed.url,
                "source": source, "in_config": True, "in_database": False,
                "enabled": feed.enabled, "health": "new", "error_count": 0,
                "entries_per_day": 0.0, "entries_seen": 0,
                "note": "not in the database yet: the service adds it when it next starts"}
    s = row.state
    config_url = row.config_url or row.feed.url
    reason = _disabled(row, conf, known)
    return {"id": row.feed.id, "title": conf[0].title if conf else row.feed.title,
            "url": config_url, "polled_url": s.url,
            "moved_to": s.url if s.url != config_url else None,
            "source": conf[1] if conf else None, "in_config": conf is not None,
            "in_database": True, "enabled": row.feed.enabled,
            "health": "disabled" if reason else (s.health or "ok"),
            "health_since": s.health_since, "disabled_reason": reason,
            "disabled_by": None if reason is None else
            "server" if s.disabled_reason else "config",
            "last_polled_at": row.last_polled_at, "last_success_at": row.last_success_at,
            "last_error": s.last_error, "last_error_at": row.last_error_at,
            "error_count": s.error_count, "failing_since": s.failing_since,
            "next_poll_at": None if reason else s.next_poll_at,
            "entries_per_day": row.entries_per_day, "entries_seen": row.entries_seen,
            "fetch_time_avg_ms": None if s.fetch_time_avg_s is None
            else round(s.fetch_time_avg_s * 1000, 1),
            "warning": row.warning, "note": None}


# -- views ----------------------------------------------------------------------------------

def to_json(value: Any) -> str:
    """``--json`` output: indented, datetimes in ISO 8601."""
    return json.dumps(value, ensure_ascii=False, indent=2,
                      default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


def _notes(st: dict[str, Any]) -> list[str]:
    """The advice lines under the table for one feed."""
    notes = []
    if st["moved_to"]:
        where = f" ({shown_path(st['source'])})" if st["source"] else ""
        notes.append(f"moved to {st['moved_to']}: update the config{where}")
    if st["disabled_reason"]:
        notes.append(f"disabled: {st['disabled_reason']}" + (
            f" (`ingest feeds reset {st['id']}` polls it again)"
            if st["disabled_by"] == "server" else ""))
    if st["note"]:
        notes.append(st["note"])
    if st["warning"]:
        notes.append(f"warning: {st['warning']}")
    return notes


def status_table(statuses: list[dict[str, Any]], now: datetime) -> list[str]:
    """``ingest feeds status``: one row a feed, the advice notes, a count by health."""
    rows = []
    for st in statuses:
        error = (f"{ago(st['last_error_at'], now)}: {cut(st['last_error'], 60)}"
                 if st["last_error"] else "-")
        next_poll = "at start" if not st["in_database"] else (
            "not polled" if st["disabled_reason"] else until(st["next_poll_at"], now))
        fetch = "-" if st["fetch_time_avg_ms"] is None else f"{st['fetch_time_avg_ms']:.0f} ms"
        rows.append([st["id"], st["health"], ago(st["last_success_at"], now),
                     str(st["error_count"]), next_poll, f"{st['entries_per_day']:.1f}", fetch,
                     error])
    lines = text_table(["ID", "HEALTH", "LAST SUCCESS", "ERRORS", "NEXT POLL", "PER DAY",
                        "AVG FETCH", "LAST ERROR"], rows)
    notes = [f"{st['id']}: {n}" for st in statuses for n in _notes(st)]
    counts: dict[str, int] = {}
    for st in statuses:
        counts[st["health"]] = counts.get(st["health"], 0) + 1
    summary = ", ".join(f"{n} {h}" for h, n in sorted(counts.items()))
    return [*lines, *(["", *notes] if notes else []), "", f"{len(statuses)} feeds: {summary}"]


def detail(st: dict[str, Any], notices: list[Notice], now: datetime) -> list[str]:
    """``ingest feeds status ID``: one feed's fields, advice and recent notices."""
    def at(key: str) -> str:
        when = st[key]
        return ago(when, now) + (f" ({when:%Y-%m-%d %H:%M:%S} UTC)" if when else "")

    fields = [
        ("title", st["title"] or "-"), ("url", st["url"]),
        ("source", shown_path(st["source"]) if st["source"] else "not in the config"),
        ("health", st["health"] + (f" since {ago(st['health_since'], now)}"
                                   if st["health_since"] else "")),
        ("last poll", at("last_polled_at")), ("last success", at("last_success_at")),
        ("last error", f"{at('last_error_at')}: {st['last_error']}" if st["last_error"]
         else "none"),
        ("errors", f"{st['error_count']} in a row"
         + (f", failing since {ago(st['failing_since'], now)}" if st["failing_since"] else "")),
        ("next poll", until(st["next_poll_at"], now)),
        ("entries/day", f"{st['entries_per_day']:.1f} ({st['entries_seen']} seen in all)"),
        ("avg fetch", "-" if st["fetch_time_avg_ms"] is None
         else f"{st['fetch_time_avg_ms']:.0f} ms")]
    lines = [st["id"], *(f"  {k:13}{v}" for k, v in fields), *(f"  {n}" for n in _notes(st))]
    lines.append("notices:" if notices else "notices: none")
    lines += [f"  {n.created_at:%Y-%m-%d %H:%M} UTC  {n.kind:9} {n.message}  [{n.state}"
              f"{' to ' + n.channel if n.channel else ''}]" for n in notices]
    return lines


def notice_json(n: Notice) -> dict[str, Any]:
    """A notice as ``feeds status ID --json`` lists it."""
    return {"kind": n.kind, "message": n.message, "created_at": n.created_at,
            "channel": n.channel, "state": n.state, "attempts": n.attempts,
            "last_error": n.last_error}
