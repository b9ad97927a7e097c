"""OPML subscription lists: read (with the line of each outline) and write (OPML 2.0).

Every ``<outline>`` with an ``xmlUrl`` is a feed; its ``category`` (comma-separated)
becomes tags and an ``id`` attribute, when present, its id.  lxml (a dependency of
trafilatura) is used rather than ElementTree because it knows each element's line, so
``ingest feeds import`` can point at the outline that is wrong.  Entities are not
resolved and nothing is fetched from the network while parsing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlsplit

from lxml import etree

from ingest.errors import ConfigError, Problem
from ingest.model import Feed

# Characters XML 1.0 cannot hold at all (control characters other than tab and newlines).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


@dataclass(frozen=True)
class ListedFeed:
    """A feed read from a list file, with the line it starts on (None when unknown)."""

    feed: Feed
    line: int | None


def read_opml(path: Path) -> list[ListedFeed]:
    """The feeds of an OPML file, in document order; ids made unique within the file."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True,
                             remove_pis=True)
    try:
        root = etree.parse(str(path), parser).getroot()
    except OSError as exc:
        raise ConfigError([Problem(str(path), None, f"cannot read: {exc}")]) from exc
    except etree.XMLSyntaxError as exc:
        raise ConfigError([Problem(str(path), exc.lineno,
                                   f"not a readable OPML file: {exc.msg}")]) from exc
    if root.tag != "opml":
        raise ConfigError([Problem(str(path), root.sourceline,
                                   f"not an OPML file: the root element is <{root.tag}>, "
                                   "not <opml>")])
    listed: list[ListedFeed] = []
    taken: set[str] = set()
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        if not url:
            continue  # a folder, or a plain outline
        title = outline.get("title") or outline.get("text") or ""
        tags = tuple(t.strip() for t in (outline.get("category") or "").split(",") if t.strip())
        feed_id = outline.get("id") or slug_for(title, url)
        if feed_id in taken:
            feed_id = f"{feed_id}-{hashlib.sha1(url.encode()).hexdigest()[:6]}"
        taken.add(feed_id)
        listed.append(ListedFeed(Feed(feed_id, url, title, tags), outline.sourceline))
    return listed


def slug_for(title: str, url: str) -> str:
    """A feed id from its title, or from its URL's host and path when untitled."""
    base = title or (urlsplit(url).netloc + urlsplit(url).path)
    slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")
    return slug[:60] or hashlib.sha1(url.encode()).hexdigest()[:12]


def unrepresentable(feed: Feed) -> list[str]:
    """The options of ``feed`` that OPML has no place for (export drops them)."""
    dropped = [name for name, value in (
        ("interval", feed.interval_s), ("min_interval", feed.min_interval_s),
        ("max_interval", feed.max_interval_s)) if value is not None]
    if feed.fulltext:
        dropped.append("fulltext")
    if feed.headers:
        dropped.append("headers")
    if not feed.enabled:
        dropped.append("enabled")
    return dropped


def write_opml(feeds: Sequence[Feed], now: datetime, title: str = "ingest feeds") -> bytes:
    """An OPML 2.0 document listing ``feeds``: title, xmlUrl, id and tags (as category).

    An untitled feed gets its id as ``text`` (OPML requires one), so it comes back
    titled with its id.  Options OPML cannot hold are left out (see ``unrepresentable``).
    """
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = format_datetime(now)
    etree.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = etree.SubElement(root, "body")
    for feed in feeds:
        title = _XML_INVALID.sub("", feed.title)
        outline = etree.SubElement(body, "outline", type="rss", text=title or feed.id)
        if title:
            outline.set("title", title)
        outline.set("xmlUrl", _XML_INVALID.sub("", feed.url))
        outline.set("id", feed.id)
        if feed.tags:
            outline.set("category", _XML_INVALID.sub("", ",".join(feed.tags)))
    return bytes(etree.tostring(root, pretty_print=True, xml_declaration=True,
                                encoding="UTF-8"))
