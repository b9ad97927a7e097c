"""The whole shared corpus through the real service, in one run.

Every document of ``../shared/corpus/feedparser-tests`` (feedparser's own test suite,
about 2,100 files) and ``../shared/corpus/realfeeds`` (75 news feeds) is served by the
loopback :class:`~ingest.testing.FeedServer` and polled by :class:`~ingest.service.app.App`
as one feed each.  The service must not crash; every feed must end with a success or a
recorded error; a feed that succeeds must have every entry stored, counted independently
with feedparser and the same key function; a feed that fails must carry its reason.
The realfeeds then go through NLP and the rules (``run_cycle``).
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import feedparser
import pytest
from conftest import REPO, SHARED
from structlog.testing import capture_logs

from ingest.config import Settings
from ingest.nlp.pipeline import Analyzer
from ingest.parse.dedup import entry_key
from ingest.service.app import App
from ingest.store.base import FeedRow
from ingest.testing import FeedServer, Route

pytestmark = pytest.mark.skipif(
    not (SHARED / "corpus" / "realfeeds").is_dir()
    or not (SHARED / "corpus" / "feedparser-tests").is_dir(),
    reason=f"{SHARED / 'corpus'} is absent: these tests need the shared corpus beside the "
           "repository")

SUFFIXES = (".xml", ".rss", ".atom", ".json")
# feedparser-tests give some files their own response headers (encoding tests).
_HEADER = re.compile(rb"^\s*Header:\s*Content-type:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
# Documents the service refuses on purpose.  Each is checked below to have no feed
# feedparser itself could take entries from, except those named here with the reason.
DELIBERATE_REFUSALS: dict[str, str] = {}


@dataclass(frozen=True)
class Doc:
    """One corpus file served as one feed."""

    feed_id: str
    path: Path
    body: bytes
    content_type: str


def corpus_docs(*corpora: str) -> list[Doc]:
    docs, seen = [], Counter[str]()
    for corpus in corpora:
        root = SHARED / "corpus" / corpus
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in SUFFIXES):
            slug = re.sub(r"[^a-z0-9._-]+", "-", str(path.relative_to(root)).lower())
            feed_id = f"{corpus[:2]}.{slug}".strip("-.")
            seen[feed_id] += 1
            if seen[feed_id] > 1:
                feed_id += f"-{seen[feed_id]}"
            body = path.read_bytes()
            docs.append(Doc(feed_id, path, body, content_type(path, body)))
    return docs


def content_type(path: Path, body: bytes) -> str:
    """The test file's own Content-Type header, else the type FeedServer.serve_dir uses."""
    if header := _HEADER.search(body[:2000]):
        return header.group(1).decode("ascii", errors="replace")
    if path.suffix == ".json":
        return "application/feed+json"
    kind = "application/atom+xml" if path.suffix == ".atom" else "application/rss+xml"
    return f"{kind}; charset=utf-8"


def expected_keys(doc: Doc) -> dict[str, list[str]]:
    """Independently: the entry keys feedparser's entries give (guid, else link, else raw
    title and text), each with the titles of the entries that share it.  feedparser 6.0
    cannot read JSON Feed: its items are read with the json module."""
    if doc.path.suffix == ".json":
        items = json.loads(doc.body).get("items", [])
        pairs = [(entry_key(str(i.get("id", "")) or None, i.get("url"), i.get("title", ""),
                            i.get("content_html") or i.get("content_text", "")),
                  i.get("title", "")) for i in items]
    else:
        parsed = feedparser.parse(io.BytesIO(doc.body),
                                  response_headers={"content-type": doc.content_type})
        pairs = []
        for raw in parsed.entries:
            body = max((c.get("value", "") for c in raw.get("content", []) or []), key=len,
                       default="") or raw.get("summary", "")
            key = entry_key((raw.get("id") or "").strip() or None,
                            (raw.get("link") or "").strip(), raw.get("title", ""), body)
            pairs.append((key, " ".join(raw.get("title", "").split())))
    keys: dict[str, list[str]] = {}
    for key, title in pairs:
        keys.setdefault(key, []).append(title)
    return keys


def settings_for(tmp_path: Path, docs: list[Doc], server: FeedServer) -> Settings:
    return Settings.model_validate({
        "database_url": f"sqlite:///{tmp_path / 'corpus.db'}",
        "rules_dir": str(REPO / "rules"),
        "feeds": [{"id": d.feed_id, "url": server.url(f"/{d.feed_id}")} for d in docs],
        # One loopback host serves every feed: no per-host limits or spacing.
        "polling": {"concurrency": 64, "per_host": 64, "host_spacing": 0, "timeout": 60},
        "nlp": {"workers": 0},
    })


def serve(server: FeedServer, docs: list[Doc]) -> None:
    for doc in docs:
        server.routes[f"/{doc.feed_id}"] = Route(doc.body, doc.content_type)


async def stored_counts(app: App) -> Counter[str]:
    return Counter(s.entry.feed_id for s in await app.store.unprocessed_entries(limit=10**6))


def outcome(row: FeedRow) -> str:
    """ok | failed, checking the row is one or the other, never both or neither."""
    failed = bool(row.state.last_error)
    assert failed == (row.state.error_count > 0), (row.feed.id, row.state)
    assert failed or row.last_success_at is not None, (row.feed.id, "neither ok nor failed")
    return "failed" if failed else "ok"


async def test_every_corpus_document_is_stored_or_refused_with_a_reason(
        tmp_path: Path, analyzer: Analyzer, feed_server: FeedServer) -> None:
    """All ~2,200 corpus documents in one poll: no crash, every feed ok or failed with a
    reason, every entry of an ok feed stored (duplicate keys collapse, and are counted)."""
    docs = corpus_docs("feedparser-tests", "realfeeds")
    assert len(docs) > 2000
    serve(feed_server, docs)
    app = await App.start(settings_for(tmp_path, docs, feed_server), analyzer=analyzer)
    try:
        report = await app.poll(force=True)
        rows = {r.feed.id: r for r in await app.store.feeds()}
        stored = await stored_counts(app)
    finally:
        await app.close()
    assert report.polled == len(docs) == len(rows)

    problems: list[str] = []
    collapsed: dict[str, int] = {}  # entries sharing a key with another of their feed
    refusals: dict[str, str] = {}
    for doc in docs:
        row = rows[doc.feed_id]
        keys = expected_keys(doc)
        if outcome(row) == "failed":
            reason = row.state.last_error or ""
            refusals[doc.feed_id] = reason
            if "internal error" in reason:
                problems.append(f"{doc.path}: crashed: {reason}")
            elif keys and doc.feed_id not in DELIBERATE_REFUSALS:
                problems.append(f"{doc.path}: refused ({reason}) though feedparser finds "
                                f"{len(keys)} entries")
            continue
        if shared := {k: t for k, t in keys.items() if len(set(t)) > 1}:
            problems.append(f"{doc.path}: entries with different titles share a key: {shared}")
        if count := sum(len(t) for t in keys.values()) - len(keys):
            collapsed[doc.feed_id] = count
        if stored[doc.feed_id] != len(keys):
            problems.append(f"{doc.path}: stored {stored[doc.feed_id]} entries, expected "
                            f"{len(keys)} distinct keys")
    assert not problems, "\n".join(problems)
    # Every refusal says why: "no feed", an XML error, or an HTML page; none is empty.
    assert all(len(reason) > 20 for reason in refusals.values()), refusals
    assert len(refusals) < 20, refusals
    # Entries sharing a key within their feed are stored once: a handful of feedparser
    # tests repeat an entry on purpose, and real feeds repeat a guid now and then.
    print(f"\n{len(docs)} documents: {len(docs) - len(refusals)} stored "
          f"({sum(stored.values())} entries; {sum(collapsed.values())} collapsed onto an "
          f"equal key: {collapsed}), {len(refusals)} refused: {sorted(set(refusals.values()))}")
    assert sum(stored.values()) > 5647


@pytest.mark.slow
async def test_realfeeds_go_through_nlp_and_rules(tmp_path: Path, analyzer: Analyzer,
                                                 feed_server: FeedServer) -> None:
    """The real news feeds, polled and then analysed and matched (run_cycle): every stored
    entry is processed, none fails or is left behind."""
    docs = corpus_docs("realfeeds")
    serve(feed_server, docs)
    app = await App.start(settings_for(tmp_path, docs, feed_server), analyzer=analyzer)
    try:
        with capture_logs() as logs:
            report = await app.run_cycle(force=True)
        rows = await app.store.feeds()
        left = await stored_counts(app)
    finally:
        await app.close()
    assert report.polled == len(docs) and not report.errors, report.errors
    assert all(outcome(row) == "ok" for row in rows)
    assert report.processed == report.new_entries > 5000
    assert not left
    failures = [e for e in logs if e["event"] in ("entry.failed", "process.batch_failed",
                                                  "process.failed", "feed.crashed")]
    assert not failures, failures[:3]
