"""Robustness on real documents: feedparser's own test feeds and real news feeds (../shared)."""

from __future__ import annotations

from datetime import UTC, datetime

from conftest import shared_path

from ingest.errors import ParseError
from ingest.parse.normalize import parse_document

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def test_feedparser_suite_never_crashes_the_parser() -> None:
    """Every feedparser test document either parses or raises ParseError, nothing else."""
    root = shared_path("corpus", "feedparser-tests")
    files = [p for p in root.rglob("*") if p.suffix in (".xml", ".json")]
    parsed = refused = 0
    for path in files:
        try:
            result = parse_document(path.read_bytes(), feed_id="t", url=str(path), now=NOW)
        except ParseError:
            refused += 1
            continue
        parsed += 1
        for entry in result.entries:
            assert entry.key and isinstance(entry.title, str)
            assert entry.published is None or entry.published.tzinfo is not None
            assert "<script" not in entry.summary.lower()
    assert len(files) > 1000 and parsed > 900


def test_real_feeds_yield_entries_with_stable_keys() -> None:
    """Real outlets' feeds parse to entries whose keys are stable across two parses."""
    root = shared_path("corpus", "realfeeds")
    files = sorted(p for p in root.rglob("*") if p.suffix in (".xml", ".rss", ".atom"))
    total = 0
    for path in files:
        body = path.read_bytes()
        first = parse_document(body, feed_id="t", url=str(path), now=NOW)
        second = parse_document(body, feed_id="t", url=str(path), now=NOW)
        assert [e.key for e in first.entries] == [e.key for e in second.entries]
        total += len(first.entries)
    assert len(files) >= 70 and total > 5000
