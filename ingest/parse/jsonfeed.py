"""JSON Feed (https://jsonfeed.org, versions 1 and 1.1), which feedparser 6.0 cannot read.

The document is adapted into the shapes feedparser gives for RSS and Atom (a feed mapping
and entry mappings with the same keys), so :mod:`ingest.parse.normalize` has one adapter
into :class:`~ingest.model.Entry` for every format.
"""

from __future__ import annotations

import html
import json
import time
from datetime import UTC, datetime
from typing import Any

_WHITESPACE = b" \t\r\n\xef\xbb\xbf"


class NotJsonFeed(ValueError):
    """The document is JSON but not a JSON Feed, or not valid JSON."""


def looks_like_json(body: bytes) -> bool:
    """Whether ``body`` starts like a JSON object (after spaces and a UTF-8 BOM)."""
    return body.lstrip(_WHITESPACE)[:1] == b"{"


def parse_json_feed(body: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The feed's fields and its items, in feedparser's shapes.  Raise NotJsonFeed."""
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise NotJsonFeed(f"invalid JSON: {type(exc).__name__}: {exc}") from exc
    if not isinstance(doc, dict) or "jsonfeed.org/version/" not in str(doc.get("version", "")):
        raise NotJsonFeed('JSON, but not a JSON Feed (no "version": "https://jsonfeed.org/…")')
    items = doc.get("items")
    feed = {"title": _text(doc.get("title")), "language": _text(doc.get("language")) or None}
    return feed, [_entry(item) for item in items if isinstance(item, dict)] \
        if isinstance(items, list) else []


def _entry(item: dict[str, Any]) -> dict[str, Any]:
    content = _text(item.get("content_html")) or html.escape(_text(item.get("content_text")))
    raw: dict[str, Any] = {
        "id": _text(item.get("id")),
        "link": _text(item.get("url")) or _text(item.get("external_url")),
        "title": _text(item.get("title")),
        "summary": html.escape(_text(item.get("summary"))),
        "content": [{"value": content}] if content else [],
        "published_parsed": _date(item.get("date_published")),
        "updated_parsed": _date(item.get("date_modified")),
    }
    if language := _text(item.get("language")):
        raw["title_detail"] = {"language": language}
    return raw


def _text(value: object) -> str:
    return str(value) if isinstance(value, str | int | float) else ""


def _date(value: object) -> time.struct_time | None:
    """An RFC 3339 date as a UTC struct_time (no zone: UTC), or None."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip()[:64])
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC).utctimetuple()
    except (OverflowError, ValueError):
        return None
