"""Feed list files: ``feeds.yaml`` (``feeds: [...]``) and OPML subscription lists.

Reading (``load_feed_file``) serves the config; the rest serves ``ingest feeds import``
and ``export``: reading a list with the line of each feed, checking every URL, planning
the merge into the configured feeds (``plan_import``, pure), and writing YAML.  New
feeds are appended as text to the end of an existing ``feeds:`` block list, so the
file's other entries and its comments stay as they are; the result is loaded again
before it replaces the file.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from pydantic import TypeAdapter, ValidationError

from ingest.atomic import write_atomically
from ingest.errors import ConfigError, Problem
from ingest.model import Feed
from ingest.opml import ListedFeed, read_opml
from ingest.yamlfile import YamlProblem, interpolate, load_yaml, parse_yaml

OPML_SUFFIXES = {".opml", ".xml"}
MAX_URL_LENGTH = 2048
NEW_LIST_HEADER = "# Feeds polled by ingest: a `feeds:` list (README.md, \"Managing feeds\").\n"
_HOST = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")  # one label, after IDNA


def load_feed_file(path: Path) -> list[Feed]:
    """Feeds listed in ``path``, by its suffix: ``.opml``/``.xml`` or YAML."""
    if path.suffix.lower() in OPML_SUFFIXES:
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

    Every URL must be http(s) without a password (:func:`feed_url_problem`): an OPML
    list is often shared, and must not make the service read local files.
    """
    listed = read_opml(path)
    problems = [Problem(str(path), item.line, f"xmlUrl: {problem}") for item in listed
                if (problem := feed_url_problem(item.feed.url, local=False)) is not None]
    if problems:
        raise ConfigError(problems)
    return [item.feed for item in listed]


def is_opml(path: Path) -> bool:
    """OPML by suffix; for another suffix than YAML's, by a first character ``<``."""
    suffix = path.suffix.lower()
    if suffix in OPML_SUFFIXES or suffix in {".yaml", ".yml"}:
        return suffix in OPML_SUFFIXES
    try:
        with path.open("rb") as fh:
            return fh.read(512).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")
    except OSError:
        return False


# -- reading a list to import -------------------------------------------------------------

def read_for_import(path: Path) -> tuple[list[ListedFeed], list[Problem]]:
    """The feeds of an OPML or YAML list with their lines, and the YAML items that are
    not valid feeds (one problem each).  ``${VAR}`` references in YAML are kept as
    written, so a token in a header is copied as a reference, never as its value."""
    if is_opml(path):
        return read_opml(path), []
    from ingest.config import FeedSettings

    try:
        text = path.read_text(encoding="utf-8")
        data, locator = parse_yaml(text, str(path))
    except OSError as exc:
        raise ConfigError([Problem(str(path), None, f"cannot read: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(str(path), None, "not UTF-8 text")]) from exc
    except YamlProblem as exc:
        raise ConfigError(exc.problems) from exc
    if not isinstance(data, dict) or not isinstance(data.get("feeds"), list):
        raise ConfigError([Problem(str(path), 1, "not a feed list: a feed list is OPML, or "
                                                 "YAML with a top-level `feeds:` list")])
    listed: list[ListedFeed] = []
    problems: list[Problem] = []
    for i, item in enumerate(data["feeds"]):
        try:
            listed.append(ListedFeed(FeedSettings.model_validate(item).to_feed(),
                                     locator.line(("feeds", i))))
        except ValidationError as exc:
            found = locator.problems(exc, prefix=("feeds", i))
            problems.append(Problem(str(path), locator.line(("feeds", i)),
                                    "; ".join(p.message for p in found)))
    return listed, problems


# -- checking URLs --------------------------------------------------------------------------

PASSWORD_ADVICE = "put credentials in headers: {Authorization: ...}"


def feed_url_problem(url: str, *, local: bool = True) -> str | None:
    """Why ``url`` cannot be polled as a configured feed, or None.

    http(s) URLs may be, and with ``local`` also ``file:`` URLs and plain paths (a
    Windows drive letter is a path).  A password in the URL never is: commands print
    feed URLs, and logs and stored errors hold them.  Lighter than :func:`url_problem`
    (for imports): ``${VAR}`` references kept as written pass.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    scheme = parts.scheme.lower()
    if not scheme or scheme == "file" or (len(scheme) == 1 and url[1:3] in (":\\", ":/")):
        if not local:
            return ("a local file: a feed list file may name only http:// and https:// "
                    "feeds, so that a shared list cannot make ingest read local files; "
                    "list local feeds under `feeds:` in the config")
    elif scheme not in ("http", "https"):
        return (f"{scheme}: URLs are not polled; use http://, https://"
                + (", file:// or a path" if local else ""))
    if parts.password is not None:
        return f"holds a password: {PASSWORD_ADVICE}, not in the URL (URLs are shown and logged)"
    return None


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be imported as a feed, or None: an absolute http(s) URL with a
    valid host, no whitespace or control characters, and no password in it."""
    if not url:
        return "no URL"
    if len(url) > MAX_URL_LENGTH:
        return f"longer than {MAX_URL_LENGTH} characters"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return "contains spaces or control characters (percent-encode them: %20)"
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return (f"{parts.scheme}: URLs are not imported; only http:// and https://"
                if parts.scheme else "not an absolute URL (it must start with https://)")
    try:
        host, _ = parts.hostname or "", parts.port
    except ValueError as exc:
        return f"bad host or port ({exc})"
    if parts.password is not None:
        return "holds a password: put credentials in the feed's headers, not in its URL"
    if not host:
        return "has no host"
    return None if _valid_host(host, bracketed="[" in parts.netloc) else f"bad host {host!r}"


def _valid_host(host: str, *, bracketed: bool) -> bool:
    if bracketed:
        try:
            return ipaddress.ip_address(host).version == 6
        except ValueError:
            return False
    try:
        ascii_host = host.rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return all(_HOST.fullmatch(label) for label in ascii_host.split("."))


def url_key(url: str) -> str:
    """What makes two feed URLs the same feed: case-insensitive host, http and https
    alike, no default port, no fragment or credentials, no trailing slash."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    host = (parts.hostname or "").lower()
    if port and port not in (80, 443):
        host = f"{host}:{port}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{host}{parts.path.rstrip('/')}{query}"


# -- planning an import ---------------------------------------------------------------------

@dataclass(frozen=True)
class ImportPlan:
    """What importing a list would do.  ``invalid`` holds one located problem per feed."""

    new: list[Feed]
    present: list[str]  # already configured: one line each, saying as which feed
    repeated: list[str]  # listed twice in the file: the later copies
    invalid: list[Problem]
    renamed: list[tuple[str, str]]  # (id in the file, id given) when the id was taken


def plan_import(listed: Sequence[ListedFeed], existing: Sequence[Feed], source: str,
                extra_tags: Sequence[str] = (), *,
                step: Callable[[], None] | None = None) -> ImportPlan:
    """Check every feed and compare it with the configured ones (by URL, then id).

    A feed whose URL is configured already is skipped; one whose id is taken by another
    URL gets the id plus a short hash of its URL.  ``step`` is called once per feed.
    """
    by_url = {url_key(f.url): f.id for f in existing}
    ids = {f.id for f in existing}
    new_lines: dict[str, int | None] = {}
    plan = ImportPlan([], [], [], [], [])
    for item in listed:
        feed = item.feed
        if extra_tags:
            feed = replace(feed, tags=tuple(dict.fromkeys([*feed.tags, *extra_tags])))
        where = f"{source}:{item.line}" if item.line else source
        problem = _feed_problem(feed)
        if problem is not None:
            plan.invalid.append(Problem(source, item.line, f"{feed.url!r}: {problem}"))
        elif (key := url_key(feed.url)) in new_lines:
            line = new_lines[key]
            plan.repeated.append(f"{where}: {feed.url} is listed before"
                                 + (f", on line {line}" if line else ""))
        elif key in by_url:
            plan.present.append(f"{where}: {feed.url} is configured already as {by_url[key]}")
        else:
            if feed.id in ids:
                suffix = hashlib.sha1(feed.url.encode()).hexdigest()
                given = next(f"{feed.id}-{suffix[:n]}" for n in range(6, 41)
                             if f"{feed.id}-{suffix[:n]}" not in ids)
                plan.renamed.append((feed.id, given))
                feed = replace(feed, id=given)
            new_lines[key] = item.line
            by_url[key] = feed.id
            ids.add(feed.id)
            plan.new.append(feed)
        if step is not None:
            step()
    return plan


def _feed_problem(feed: Feed) -> str | None:
    """The URL's problem (``${VAR}`` resolved from the environment), else the schema's."""
    from ingest.config import FeedSettings

    url = feed.url
    if "${" in url:
        try:
            url = interpolate(url, "url")
        except YamlProblem as exc:
            return exc.problems[0].message
    problem = url_problem(url)
    if problem is not None:
        return problem
    try:
        FeedSettings(id=feed.id, url=feed.url, title=feed.title, tags=list(feed.tags))
    except ValidationError as exc:
        return "; ".join(f"{'.'.join(map(str, e['loc']))} {feed.id!r}: {e['msg']}"
                         for e in exc.errors())
    return None


# -- writing YAML ---------------------------------------------------------------------------

def duration_text(seconds: float) -> str:
    """Seconds as the config writes durations: ``90s``, ``15m``, ``1h30m``, ``2d``."""
    if seconds != int(seconds):
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    rest, parts = int(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


def _quote(text: str, keep_refs: bool) -> str:
    """A YAML double-quoted scalar.  Unless ``keep_refs``, ``${`` is escaped so that
    loading the file with environment interpolation gives back ``text`` unchanged."""
    out = ['"']
    for i, ch in enumerate(text):
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "$" and not keep_refs and text[i + 1:i + 2] == "{":
            out.append("\\x24")
        elif code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF \
                or code in (0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF):
            out.append(f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join([*out, '"'])


def feed_yaml(feed: Feed, indent: int = 2, *, keep_refs: bool = False) -> str:
    """One ``- id: …`` item of a feed list, with only the keys that differ from defaults."""
    def q(text: str) -> str:
        return _quote(text, keep_refs)

    pad = " " * (indent + 2)
    lines = [f"{' ' * indent}- id: {feed.id}", f"{pad}url: {q(feed.url)}"]
    if feed.title:
        lines.append(f"{pad}title: {q(feed.title)}")
    if feed.tags:
        lines.append(f"{pad}tags: [{', '.join(q(t) for t in feed.tags)}]")
    for key, value in (("interval", feed.interval_s), ("min_interval", feed.min_interval_s),
                       ("max_interval", feed.max_interval_s)):
        if value is not None:
            lines.append(f"{pad}{key}: {duration_text(value)}")
    if feed.fulltext:
        lines.append(f"{pad}fulltext: true")
    if feed.headers:
        lines.append(f"{pad}headers: {{{', '.join(f'{q(k)}: {q(v)}' for k, v in feed.headers)}}}")
    if not feed.enabled:
        lines.append(f"{pad}enabled: false")
    return "\n".join(lines) + "\n"


def yaml_feed_list(feeds: Iterable[Feed], comment: str) -> str:
    """A whole feed list document."""
    items = "".join(feed_yaml(f) for f in feeds)
    return f"# {comment}\n" + (f"feeds:\n{items}" if items else "feeds: []\n")


def append_feeds(path: Path, feeds: Sequence[Feed], comment: str, *,
                 keep_refs: bool = False) -> None:
    """Add ``feeds`` at the end of the ``feeds:`` list of the YAML file ``path``
    (created when missing), keeping everything already there, then check the result
    loads with exactly the feeds expected before it replaces the file."""
    text = path.read_text(encoding="utf-8") if path.exists() else NEW_LIST_HEADER
    new_text, listed = _with_items(text, str(path), feeds, comment, keep_refs)
    before = [f.id for f in _parse_yaml_list(path)] if listed else []
    added = [f.id for f in feeds]

    def check(temp: Path) -> None:
        try:
            after = [f.id for f in _parse_yaml_list(temp)]
        except ConfigError as exc:
            raise ConfigError([Problem(str(path), None, "ingest could not add the feeds "
                                       "without breaking the file, so it is unchanged: "
                                       f"{exc.problems[0].message}")]) from exc
        if after != before + added or set(before) & set(added):
            raise ConfigError([Problem(str(path), None, "ingest could not add the feeds "
                                       "to this file's list, so it is unchanged")])

    write_atomically(path, new_text, check=check)


def _with_items(text: str, name: str, feeds: Sequence[Feed], comment: str,
                keep_refs: bool) -> tuple[str, bool]:
    """The text with the feeds added, and whether it listed feeds before."""
    try:
        _, locator = parse_yaml(text, name)
    except YamlProblem as exc:
        raise ConfigError(exc.problems) from exc
    root = locator.root
    if root is not None and not isinstance(root, yaml.MappingNode):
        raise ConfigError([Problem(name, 1, "not a feed list: the top level is not a mapping")])
    pairs = root.value if root is not None else []
    key, value = next(((k, v) for k, v in pairs if k.value == "feeds"), (None, None))
    if key is None or value is None:  # no `feeds:` yet: add it at the end
        indent = (pairs[0][0].start_mark.column if pairs else 0) + 2
        head = text + ("\n" if text and not text.endswith("\n") else "")
        return head + "feeds:\n" + _block(feeds, indent, comment, keep_refs, spaced=False), False
    if isinstance(value, yaml.SequenceNode) and not value.flow_style and value.value:
        return _after_last_item(text, value, feeds, comment, keep_refs), True
    empty = (isinstance(value, yaml.ScalarNode) and value.tag.endswith(":null")) or (
        isinstance(value, yaml.SequenceNode) and not value.value)
    if not empty:
        raise ConfigError([Problem(name, key.start_mark.line + 1, "`feeds:` is not a block list "
                                   "(one `- id: …` per line); rewrite it as one, or import "
                                   "--into another file")])
    text = text[:value.start_mark.index] + text[value.end_mark.index:]  # drop `[]` or `~`
    end = text.find("\n", key.start_mark.index)
    head, tail = (text + "\n", "") if end < 0 else (text[:end + 1], text[end + 1:])
    return head + _block(feeds, key.start_mark.column + 2, comment, keep_refs,
                         spaced=False) + tail, False


def _after_last_item(text: str, seq: yaml.SequenceNode, feeds: Sequence[Feed], comment: str,
                     keep_refs: bool) -> str:
    """Insert after the line holding the last item's last value; comments after it (often
    the next section's) stay below the new items."""
    end = _content_end(seq.value[-1])
    if end > 0 and text[end - 1] != "\n":
        newline = text.find("\n", end)
        end = len(text) if newline < 0 else newline + 1
    spaced = len(seq.value) > 1 and "\n\n" in text[_content_end(seq.value[0]) - 1:
                                                   seq.value[1].start_mark.index]
    block = _block(feeds, seq.start_mark.column, comment, keep_refs, spaced=spaced)
    head = text[:end] + ("\n" if end and text[end - 1] != "\n" else "")
    return head + ("\n" if spaced else "") + block + text[end:]


def _content_end(node: yaml.Node) -> int:
    """Where a node's own text ends (a block collection's end mark lies past the
    comments that follow it; its last value's does not)."""
    if isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1])
    return int(node.end_mark.index)


def _block(feeds: Sequence[Feed], indent: int, comment: str, keep_refs: bool, *,
           spaced: bool) -> str:
    sep = "\n" if spaced else ""
    return f"{' ' * indent}# {comment}\n" + sep.join(
        feed_yaml(f, indent, keep_refs=keep_refs) for f in feeds)
