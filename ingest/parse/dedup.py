"""Stable entry keys and canonical URLs: how "seen before" is decided."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_TRACKING_PREFIXES = ("utm_", "mc_", "pk_", "piwik_", "hsa_")
_TRACKING_KEYS = {"fbclid", "gclid", "dclid", "msclkid", "igshid", "yclid", "_ga", "ref",
                  "cmpid", "ocid", "smid", "rss", "at_medium", "at_campaign"}


def canonical_url(url: str) -> str:
    """``url`` with scheme and host lower-cased, default port, fragment and tracking removed."""
    url = url.strip()
    if not url:
        return ""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = parts.port
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not (k.lower().startswith(_TRACKING_PREFIXES) or k.lower() in _TRACKING_KEYS)]
    path = parts.path or "/"
    return urlunsplit((scheme, host, path, urlencode(sorted(query)), ""))


def content_hash(*parts: str) -> str:
    """A short hex digest of the given texts (whitespace-insensitive)."""
    joined = "\x1f".join(" ".join(p.split()) for p in parts)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:32]


def entry_key(guid: str | None, link: str | None, title: str, body: str) -> str:
    """The stable id of an entry within its feed: guid, else canonical link, else content.

    A link to a site's front page (no path, no query) identifies no entry: scraped
    feeds give it to every item, which would make them all one entry.  Prefixed by its
    origin so a guid can never collide with a hash.
    """
    if guid and guid.strip():
        return "guid:" + guid.strip()[:500]
    if link and link.strip():
        canonical = canonical_url(link)
        parts = urlsplit(canonical)
        if parts.path not in ("", "/") or parts.query:
            return "link:" + canonical[:500]
    return "hash:" + content_hash(title, body)


def alert_id(rule_id: str, feed_id: str, key: str) -> str:
    """The stable id of the alert a rule raises on an entry: one per (rule, entry)."""
    return hashlib.sha256(f"{rule_id}\x1f{feed_id}\x1f{key}".encode()).hexdigest()[:32]
