"""A fetched document parsed into our :class:`~ingest.model.Entry` objects.

The readers (:mod:`~ingest.parse.xmlfeed` for RSS, Atom and RDF through feedparser,
:mod:`~ingest.parse.jsonfeed`) give feedparser's shapes; one adapter makes entries of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from ingest.errors import ParseError
from ingest.model import Entry
from ingest.nlp.language import declared
from ingest.parse.dates import published_at
from ingest.parse.dedup import entry_key
from ingest.parse.jsonfeed import NotJsonFeed, looks_like_json, parse_json_feed
from ingest.parse.sniff import html_page_problem, is_html, starts_as_html
from ingest.parse.text import html_to_text, normalise_space
from ingest.parse.xmlfeed import RawFeed, read_xml


@dataclass(frozen=True)
class ParsedFeed:
    """A parsed document: its title, its entries, and a warning when something in it had to
    be guessed or mended (malformed XML, a wrong encoding, dates in the future)."""

    title: str
    entries: tuple[Entry, ...]
    warning: str | None = None
    future_dated: int = 0  # entries dated after the fetch time, dated the fetch time instead
    ttl_minutes: int | None = None  # RSS <ttl>: how long the publisher says to cache it


def parse_document(body: bytes, *, feed_id: str, url: str, now: datetime,
                   content_type: str | None = None) -> ParsedFeed:
    """Parse a feed document (RSS, Atom, RDF or JSON Feed) fetched from ``url`` at ``now``.

    Raise :class:`ParseError` when it holds no usable feed; for an HTML page, the error
    names the feeds the page links to.
    """
    if starts_as_html(body):
        raise ParseError(url, html_page_problem(body, url))
    raw = _read(body, content_type, url)
    if not raw.found:
        if is_html(body, content_type):
            raise ParseError(url, html_page_problem(body, url))
        raise ParseError(url, raw.warning or "no RSS, Atom, RDF or JSON feed found")
    feed_language = raw.feed.get("language")
    entries, future = [], 0
    for item in raw.entries:
        entry, in_future = _entry(item, feed_id=feed_id, url=url, now=now,
                                  feed_language=feed_language)
        entries.append(entry)
        future += in_future
    warning = raw.warning
    if future:
        note = (f"{future} entr{'y' if future == 1 else 'ies'} dated in the future: "
                "dated the fetch time instead")
        warning = f"{warning}; {note}" if warning else note
    return ParsedFeed(html_to_text(raw.feed.get("title", "")), tuple(entries), warning, future,
                      _ttl_minutes(raw.feed.get("ttl")))


def _read(body: bytes, content_type: str | None, url: str) -> RawFeed:
    if looks_like_json(body):
        try:
            feed, items = parse_json_feed(body)
        except NotJsonFeed as exc:
            raise ParseError(url, str(exc)) from exc
        return RawFeed(feed, list(items), True)
    return read_xml(body, content_type, url)


def _ttl_minutes(value: object) -> int | None:
    """RSS ``<ttl>`` in minutes, when it is a whole number from 1 minute to a year.

    The length is checked first: ``int()`` refuses more than 4,300 digits (ValueError).
    """
    text = str(value or "").strip()
    if len(text) > 7 or not (text.isascii() and text.isdigit()):
        return None
    minutes = int(text)
    return minutes if 0 < minutes <= 525_600 else None


def normalize_entry(raw: Mapping[str, Any], *, feed_id: str, now: datetime,
                    feed_language: str | None = None, url: str = "") -> Entry:
    """One feedparser entry as an :class:`Entry` (pure: ``now`` is the fetch time)."""
    return _entry(raw, feed_id=feed_id, url=url, now=now, feed_language=feed_language)[0]


def _entry(raw: Mapping[str, Any], *, feed_id: str, url: str, now: datetime,
           feed_language: str | None) -> tuple[Entry, bool]:
    """The entry, and whether its date lay in the future."""
    title = normalise_space(html_to_text(raw.get("title", "")))
    summary = html_to_text(raw.get("summary", ""))
    contents = [c.get("value", "") for c in raw.get("content", []) or []]
    content = max((html_to_text(c) for c in contents), key=len, default="")
    if content == summary:
        content = ""
    link = (raw.get("link") or "").strip()
    guid = (raw.get("id") or "").strip() or None
    published = published_at(raw, now)
    entry = Entry(
        feed_id=feed_id,
        # The key reads the link as written, so it stays what it always was.
        key=entry_key(guid, link, title, content or summary),
        title=title,
        link=_absolute(link, url),
        summary=summary,
        content=content,
        published=published.when,
        guid=guid,
        language=declared(_entry_language(raw) or feed_language),
    )
    return entry, published.future


def _absolute(link: str, url: str) -> str:
    """A relative entry link resolved against the feed's URL (http and https feeds only)."""
    if not link or urlsplit(link).scheme or urlsplit(url).scheme not in ("http", "https"):
        return link
    return urljoin(url, link)


def _entry_language(raw: Mapping[str, Any]) -> str | None:
    for key in ("title_detail", "summary_detail"):
        detail = raw.get(key)
        if isinstance(detail, Mapping) and detail.get("language"):
            return str(detail["language"])
    return None
