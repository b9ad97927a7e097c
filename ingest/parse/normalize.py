"""feedparser's view of a document, adapted into our :class:`~ingest.model.Entry`."""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser

from ingest.errors import ParseError
from ingest.model import Entry
from ingest.nlp.language import declared
from ingest.parse.dedup import entry_key
from ingest.parse.text import html_to_text, normalise_space

# A publication date further ahead than this is treated as unknown (clock skew or typo).
FUTURE_TOLERANCE = timedelta(days=1)
# Dates before this are placeholders (1970-01-01, 1900-01-01), not publication dates.
EARLIEST_PLAUSIBLE = datetime(1995, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ParsedFeed:
    """A parsed document: its title, its entries and a warning when feedparser had to guess."""

    title: str
    entries: tuple[Entry, ...]
    warning: str | None = None


def parse_document(body: bytes, *, feed_id: str, url: str, now: datetime,
                   content_type: str | None = None) -> ParsedFeed:
    """Parse a feed document.  Raise :class:`ParseError` when it holds no usable feed."""
    headers = {"content-type": content_type} if content_type else None
    parsed = feedparser.parse(body, response_headers=headers, sanitize_html=True,
                              resolve_relative_uris=True)
    warning = None
    if parsed.get("bozo"):
        exc = parsed.get("bozo_exception")
        warning = f"{type(exc).__name__}: {exc}" if exc else "malformed feed"
    if not parsed.get("version") and not parsed.entries:
        reason = warning or "no RSS, Atom or RDF feed found"
        head = body.lstrip().removeprefix(b"\xef\xbb\xbf").lstrip()[:15].lower()
        if head.startswith((b"<!doctype html", b"<html")):
            reason = "this is an HTML page, not a feed"
        raise ParseError(url, reason)
    feed_language = parsed.feed.get("language") if parsed.get("feed") else None
    entries = tuple(normalize_entry(raw, feed_id=feed_id, now=now, feed_language=feed_language)
                    for raw in parsed.entries)
    title = html_to_text(parsed.feed.get("title", "")) if parsed.get("feed") else ""
    return ParsedFeed(title, entries, warning)


def normalize_entry(raw: Mapping[str, Any], *, feed_id: str, now: datetime,
                    feed_language: str | None = None) -> Entry:
    """One feedparser entry as an :class:`Entry` (pure: ``now`` judges future dates)."""
    title = normalise_space(html_to_text(raw.get("title", "")))
    summary = html_to_text(raw.get("summary", ""))
    contents = [c.get("value", "") for c in raw.get("content", []) or []]
    content = max((html_to_text(c) for c in contents), key=len, default="")
    if content == summary:
        content = ""
    link = (raw.get("link") or "").strip()
    guid = (raw.get("id") or "").strip() or None
    body = content or summary
    return Entry(
        feed_id=feed_id,
        key=entry_key(guid, link, title, body),
        title=title,
        link=link,
        summary=summary,
        content=content,
        published=published_at(raw, now),
        guid=guid,
        language=declared(_entry_language(raw) or feed_language),
    )


def _entry_language(raw: Mapping[str, Any]) -> str | None:
    for key in ("title_detail", "summary_detail"):
        detail = raw.get(key)
        if isinstance(detail, Mapping) and detail.get("language"):
            return str(detail["language"])
    return None


def published_at(raw: Mapping[str, Any], now: datetime) -> datetime | None:
    """The entry's publication time in UTC, or None when missing or implausible.

    Implausible: more than a day ahead of ``now``, or before 1995 (a placeholder date).

    feedparser normalises dates to UTC ``struct_time``; a date without a zone is read as UTC.
    """
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        # dict.get: FeedParserDict's own lookup maps updated->published with a warning.
        value = dict.get(raw, key) if isinstance(raw, dict) else raw.get(key)
        if value:
            try:
                when = datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
            except (OverflowError, ValueError, TypeError):
                continue
            if when > now + FUTURE_TOLERANCE or when < EARLIEST_PLAUSIBLE:
                return None
            return when
    return None
