"""Telling an HTML page from a feed, and finding the feeds an HTML page links to.

A feed URL that answers with a web page (a site's front page, a login wall, a "feed
moved" page) is the commonest configuration mistake.  The page usually names its feeds
in ``<link rel="alternate" type="application/rss+xml" href="...">``: the error then says
which URL to configure instead.  Only the first :data:`HEAD_BYTES` are read, so a huge
page costs no more than a small one.
"""

from __future__ import annotations

import codecs
import re
from urllib.parse import urljoin, urlsplit

from lxml import etree

HEAD_BYTES = 256 * 1024
MAX_LISTED = 5  # feed links named in one message
FEED_TYPES = frozenset({
    "application/rss+xml", "application/atom+xml", "application/rdf+xml",
    "application/feed+json", "application/x-rss+xml", "application/x-atom+xml",
    "application/x.atom+xml", "text/rss+xml", "text/atom+xml",
})
_HTML_TYPES = ("text/html", "application/xhtml+xml")
# What may come before the root element: spaces, the XML declaration, comments, PIs; then
# a doctype (an RSS feed may carry an XHTML doctype: its root element decides).
_PROLOG_ITEM = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->)", re.DOTALL)
_DOCTYPE = re.compile(rb"<!doctype\s+([a-z]*)[^\[>]*(?:\[.*?\])?\s*>", re.DOTALL | re.IGNORECASE)
_HTML_ROOT = re.compile(rb"<html\b", re.IGNORECASE)
_HTML_TAGS = re.compile(rb"<(?:html|head|body)\b", re.IGNORECASE)


def starts_as_html(body: bytes) -> bool:
    """Whether ``body`` is an HTML page by its root element: <html> (after any byte-order
    mark, spaces, XML declaration, comments and doctype)."""
    return _HTML_ROOT.match(_prolog(_ascii_head(body))[1]) is not None


def is_html(body: bytes, content_type: str | None) -> bool:
    """Whether a document that holds no feed is an HTML page: served as one, with an HTML
    doctype or root, or with an <html>, <head> or <body> element."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    head = _ascii_head(body)
    doctype, rest = _prolog(head)
    return (media_type in _HTML_TYPES or doctype == b"html" or _HTML_ROOT.match(rest) is not None
            or _HTML_TAGS.search(head) is not None)


def html_page_problem(body: bytes, url: str) -> str:
    """The error for an HTML page at ``url``: what it is, and the feed URLs it names."""
    problem = "this is an HTML page, not a feed"
    feeds = feed_links(body, url)
    if not feeds:
        return problem + ", and it links to no feed (no <link rel=\"alternate\"> of a feed type)"
    if len(feeds) == 1:
        return f"{problem}; it links to a feed at {feeds[0][0]} — use that URL"
    named = ", ".join(f'{href} ("{title}")' if title else href for href, title in feeds)
    return f"{problem}; it links to feeds at {named} — use one of those URLs"


def feed_links(body: bytes, url: str) -> list[tuple[str, str]]:
    """(absolute URL, title) of each feed the page names in a ``<link>``, in page order."""
    try:
        root = etree.HTML(_ascii_head(body),
                          etree.HTMLParser(no_network=True, remove_comments=True))
    except (etree.ParserError, ValueError):
        return []
    if root is None:
        return []
    base = url
    for tag in root.iter("base"):
        if tag.get("href"):
            base = urljoin(url, tag.get("href", "").strip())
            break
    found: dict[str, str] = {}
    for link in root.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").split(";", 1)[0].strip().lower()
        href = (link.get("href") or "").strip()
        if not href or len(href) > 2000 or not ("feed" in rel or
                                                ("alternate" in rel and kind in FEED_TYPES)):
            continue
        absolute = urljoin(base, href)
        if _usable(absolute, url) and absolute not in found:
            found[absolute] = " ".join((link.get("title") or "").split())[:100]
        if len(found) == MAX_LISTED:
            break
    return list(found.items())


def _usable(href: str, page_url: str) -> bool:
    scheme = urlsplit(href).scheme.lower()
    return scheme in ("http", "https") or (not scheme and not urlsplit(page_url).scheme)


def _ascii_head(body: bytes) -> bytes:
    """The start of ``body`` without a byte-order mark, UTF-16 turned into ASCII-compatible."""
    head = body[:HEAD_BYTES]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", errors="replace").encode("utf-8", errors="replace")
    return head.removeprefix(codecs.BOM_UTF8)


def _prolog(head: bytes) -> tuple[bytes, bytes]:
    """The doctype's name (lower-case, empty when none) and what follows the prolog."""
    rest, doctype = _skip(head), b""
    if match := _DOCTYPE.match(rest):
        doctype, rest = match.group(1).lower(), _skip(rest[match.end():])
    return doctype, rest


def _skip(head: bytes) -> bytes:
    """``head`` after its leading spaces, processing instructions and comments."""
    pos = 0
    while match := _PROLOG_ITEM.match(head, pos):
        pos = match.end()
    return head[pos:].lstrip()
