"""Feed list files: ``feeds.yaml`` (``feeds: [...]``) and OPML subscription lists."""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import TypeAdapter, ValidationError

from ingest.errors import ConfigError, Problem
from ingest.model import Feed
from ingest.yamlfile import YamlProblem, load_yaml


def load_feed_file(path: Path) -> list[Feed]:
    """Feeds listed in ``path``, by its suffix: ``.opml``/``.xml`` or YAML."""
    if path.suffix.lower() in {".opml", ".xml"}:
        return parse_opml(path)
    return _parse_yaml_list(path)


def _parse_yaml_list(path: Path) -> list[Feed]:
    from ingest.config import FeedSettings  # the model lives with the rest of the config

    try:
        data, locator = load_yaml(path, interpolate_env=True)
    except YamlProblem as exc:
        raise ConfigError(exc.problems) from exc
    if not isinstance(data, dict) or not isinstance(data.get("feeds"), list):
        raise ConfigError([Problem(str(path), 1, "a feed list needs a top-level `feeds:` list")])
    try:
        items = TypeAdapter(list[FeedSettings]).validate_python(data["feeds"])
    except ValidationError as exc:
        raise ConfigError(locator.problems(exc, prefix=("feeds",))) from exc
    return [item.to_feed() for item in items]


def parse_opml(path: Path) -> list[Feed]:
    """Feeds in an OPML file: every outline with an ``xmlUrl``; categories become tags.

    Uses the standard library's ElementTree: OPML is a tiny format and the
    dedicated libraries add nothing for reading a local subscription list.
    """
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        line = getattr(exc, "position", (None,))[0]
        raise ConfigError([Problem(str(path), line, f"not a readable OPML file: {exc}")]) from exc
    feeds: list[Feed] = []
    taken: set[str] = set()
    for outline in root.iter("outline"):
        url = outline.get("xmlUrl")
        if not url:
            continue
        title = outline.get("title") or outline.get("text") or ""
        tags = tuple(t.strip() for t in (outline.get("category") or "").split(",") if t.strip())
        feed_id = outline.get("id") or slug_for(title, url)
        if feed_id in taken:
            feed_id = f"{feed_id}-{hashlib.sha1(url.encode()).hexdigest()[:6]}"
        taken.add(feed_id)
        feeds.append(Feed(feed_id, url, title, tags))
    return feeds


def slug_for(title: str, url: str) -> str:
    """A feed id from its title, or from its URL's host and path when untitled."""
    base = title or (urlsplit(url).netloc + urlsplit(url).path)
    slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")
    return slug[:60] or hashlib.sha1(url.encode()).hexdigest()[:12]
