"""The data that flows between the stages, as frozen dataclasses.

Feed (config) -> FetchResult (fetch/) -> Entry (parse/) -> Analysis (nlp/)
-> RuleMatch (rules/) -> Alert (service/) -> delivery outcome (notify/).

Everything here is plain data: picklable (so NLP can move to worker processes),
comparable, and free of I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Feed:
    """A feed to poll, as configured."""

    id: str
    url: str
    title: str = ""
    tags: tuple[str, ...] = ()
    interval_s: float | None = None  # first interval, before its history is known
    enabled: bool = True
    min_interval_s: float | None = None  # None: polling.min_interval
    max_interval_s: float | None = None  # None: polling.max_interval
    fulltext: bool = False  # fetch each item's linked page and extract its main text
    headers: tuple[tuple[str, str], ...] = ()  # extra request headers (e.g. a token)


@dataclass(frozen=True)
class FeedState:
    """What the store remembers about a feed between polls (its history, for the schedule).

    ``url`` is where it is polled now: the configured URL, or where a permanent
    redirect (301/308) moved it.
    """

    feed_id: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    next_poll_at: datetime | None = None
    error_count: int = 0  # consecutive failed polls
    last_error: str | None = None
    failing_since: datetime | None = None  # first failure of the current run of errors
    not_found_since: datetime | None = None  # first 404 of the current run of 404s
    last_success_at: datetime | None = None
    last_new_entry_at: datetime | None = None  # when a poll last brought a new entry
    update_interval_s: float | None = None  # learned mean time between new entries
    health: str = "ok"  # ok | failing | silent | disabled (see service/health.py)
    health_since: datetime | None = None
    fetch_time_avg_s: float | None = None  # moving average of the fetch time
    disabled_reason: str | None = None  # 410 Gone, or 404 for too long: not polled


@dataclass(frozen=True)
class FetchResult:
    """The outcome of one HTTP (or file) fetch of a feed."""

    url: str  # where the document was finally read (after every redirect)
    status: int  # 200, or 304 when not modified
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    elapsed_s: float = 0.0
    # Where 301/308 redirects alone lead, when that differs from the URL asked for:
    # the feed's new address (302/307 are temporary and do not count).
    moved_to: str | None = None
    cache_control: str | None = None  # raw response headers, read by fetch/schedule.py
    expires: str | None = None
    date: str | None = None
    wire_bytes: int = 0  # bytes received before decompression

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True)
class Entry:
    """One normalised feed item.  ``key`` is stable across polls and restarts."""

    feed_id: str
    key: str
    title: str
    link: str
    summary: str  # plain text
    content: str  # plain text, may be empty
    published: datetime | None  # UTC
    guid: str | None = None
    language: str | None = None  # ISO 639-1, as the feed declares it (None: not declared)

    @property
    def body(self) -> str:
        """The longer of content and summary: what the rules read besides the title."""
        return self.content if len(self.content) > len(self.summary) else self.summary

    def document(self, max_chars: int | None = None) -> str:
        """The text analysed for this entry: title, a blank line, then the body."""
        text = f"{self.title}\n\n{self.body}" if self.body else self.title
        return text[:max_chars] if max_chars else text


@dataclass(frozen=True)
class Token:
    """One token of analysed text, with character offsets into the document."""

    text: str
    lemma: str
    start: int
    sent: int  # index of the sentence holding this token
    head: int = -1  # index (in Analysis.tokens) of its syntactic head; itself for a root
    dep: str = ""  # dependency label (dobj, nsubjpass, compound, prep, pobj, ...)
    pos: str = ""  # coarse part of speech (VERB, NOUN, PROPN, ...)

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass(frozen=True)
class Mention:
    """A recognised entity in the text: from spaCy, the gazetteer or a role title."""

    text: str
    start: int
    end: int
    label: str  # PERSON, GPE, NORP, ORG, WEAPON, ...
    sent: int
    name: str  # canonical name (gazetteer) or the surface text
    id: str | None = None  # gazetteer id, when known
    country: str | None = None  # ISO 3166-1 alpha-2
    roles: tuple[str, ...] = ()
    source: str = "ner"  # ner | gazetteer | title


@dataclass(frozen=True)
class Analysis:
    """The NLP view of one document: tokens, sentences and entity mentions."""

    text: str
    tokens: tuple[Token, ...]
    sentences: tuple[tuple[int, int], ...]  # character (start, end) of each sentence
    mentions: tuple[Mention, ...]


@dataclass(frozen=True)
class Hit:
    """One piece of evidence a rule leaf found: a term or an entity, with offsets."""

    kind: str  # entity | keyword | lemma | phrase | regex | source
    text: str
    start: int
    end: int
    leaf: str  # a short description of the leaf that produced it


@dataclass(frozen=True)
class RuleMatch:
    """A rule that matched an entry, with the evidence."""

    rule_id: str
    entities: tuple[Mention, ...]
    terms: tuple[str, ...]
    hits: tuple[Hit, ...]
    snippet: str


@dataclass(frozen=True)
class Alert:
    """A decided alert: written to the store before any channel sees it."""

    id: str
    rule_id: str
    rule_title: str
    severity: str
    tags: tuple[str, ...]
    feed_id: str
    entry_key: str
    entry_title: str
    entry_link: str
    published: datetime | None
    created_at: datetime
    entities: tuple[dict[str, object], ...] = field(default=())
    terms: tuple[str, ...] = ()
    snippet: str = ""
    channels: tuple[str, ...] = ()
    story_id: int | None = None
    state: str = "fired"  # fired | silenced
    revision: int = 0  # 0 when first fired; +1 for each update sent to channels
    sources: tuple[dict[str, object], ...] = ()  # every entry of the story that matched
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    evidence: tuple[dict[str, object], ...] = ()  # per leaf: the spans that satisfied it
    dedupe_key: str = ""
