"""Throughput of each stage, against a baseline measured in the same run.

    .venv/bin/python bench/run.py [--entries N]

Baselines: feedparser alone (for our parse stage), spaCy's ``nlp.pipe`` alone (for
our analysis: spaCy plus gazetteer, titles and roles).  Ratios are what matter:
these machines are noisy, absolute numbers move between runs.  Input: the real
feeds in ../shared/corpus/realfeeds when present, else the embedded sample feeds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import feedparser

from ingest.config import Settings
from ingest.logs import configure_logging
from ingest.model import Entry
from ingest.nlp.gazetteer import load_gazetteer
from ingest.nlp.pipeline import Analyzer, load_model
from ingest.parse.normalize import parse_document
from ingest.rules.load import load_rules
from ingest.rules.match import match_all
from ingest.service.app import App
from ingest.testing import FeedServer, Route

REPO = Path(__file__).resolve().parent.parent
REALFEEDS = REPO.parent / "shared" / "corpus" / "realfeeds"
NOW = datetime(2026, 11, 25, tzinfo=UTC)


def documents() -> tuple[str, list[bytes]]:
    paths = sorted(p for p in REALFEEDS.rglob("*") if p.suffix in (".xml", ".rss", ".atom")) \
        if REALFEEDS.exists() else []
    if paths:
        return f"{len(paths)} real feeds (../shared/corpus/realfeeds)", \
            [p.read_bytes() for p in paths]
    paths = sorted((REPO / "seeds" / "feeds").iterdir())
    return f"{len(paths)} sample feeds (seeds/feeds; ../shared absent)", \
        [p.read_bytes() for p in paths]


def best_of(runs: int, fn: Callable[[], object]) -> float:
    """The median of ``runs`` timings of ``fn`` (seconds)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def row(name: str, items: int, seconds: float, baseline: float | None) -> str:
    ratio = f"{seconds / baseline:6.2f}x" if baseline else "  (base)"
    return f"| {name:44} | {items:7} | {seconds:8.3f} | {items / seconds:10.1f} | {ratio} |"


async def end_to_end(docs: list[bytes], analyzer: Analyzer) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp, FeedServer() as server:
        feeds = []
        for i, body in enumerate(docs):
            server.routes[f"/f{i}"] = Route(body)
            feeds.append({"id": f"f{i}", "url": server.url(f"/f{i}")})
        settings = Settings.model_validate({
            "database_url": f"sqlite:///{tmp}/bench.db", "rules_dir": str(REPO / "rules"),
            "feeds": feeds, "channels": {"sink": {"type": "file", "path": f"{tmp}/a.jsonl"}}})
        app = await App.start(settings, analyzer=analyzer)
        try:
            start = time.perf_counter()
            report = await app.run_cycle(force=True)
            elapsed = time.perf_counter() - start
        finally:
            await app.close()
        return report.processed, elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1000, help="entries for the NLP rows")
    args = parser.parse_args()
    configure_logging("error", "console")
    source, docs = documents()
    gaz = load_gazetteer(REPO / "rules" / "entities.yaml")
    rules = load_rules([REPO / "rules"], gaz)
    nlp = load_model("en_core_web_sm")
    analyzer = Analyzer(nlp, gaz)
    print(f"Input: {source}; {len(rules)} rules; {len(gaz.entities)} gazetteer entities\n")
    print(f"| {'stage':44} | {'items':>7} | {'seconds':>8} | {'items/s':>10} | {'ratio':>6} |")
    print(f"|{'-' * 46}|{'-' * 9}|{'-' * 10}|{'-' * 12}|{'-' * 8}|")

    n_entries = sum(len(feedparser.parse(d).entries) for d in docs)
    base = best_of(3, lambda: [feedparser.parse(d) for d in docs])
    print(row("parse: feedparser.parse alone (baseline)", n_entries, base, None))
    ours = best_of(3, lambda: [parse_document(d, feed_id="b", url="b", now=NOW) for d in docs])
    print(row("parse: parse_document (+ normalise, keys)", n_entries, ours, base))

    entries: list[Entry] = [e for d in docs
                            for e in parse_document(d, feed_id="b", url="b", now=NOW).entries]
    entries = (entries * (args.entries // max(1, len(entries)) + 1))[:args.entries]
    texts = [e.document(20_000) for e in entries]
    dates = [(e.published or NOW).date() for e in entries]
    base = best_of(1, lambda: list(nlp.pipe(texts, batch_size=32)))
    print(row("nlp: spaCy nlp.pipe alone (baseline)", len(texts), base, None))
    analyses = []
    ours = best_of(1, lambda: analyses.extend(analyzer.analyze(texts, dates)))
    print(row("nlp: Analyzer (spaCy + gazetteer + roles)", len(texts), ours, base))
    match_s = best_of(3, lambda: [match_all(rules.rules, a, "b") for a in analyses])
    print(row("rules: match_all on analysed entries", len(analyses), match_s, ours))

    sample = docs[:8]
    processed, e2e = asyncio.run(end_to_end(sample, analyzer))
    print(row(f"end to end: one cycle, {len(sample)} feeds over HTTP", processed, e2e, None))
    print("\nratio: time relative to the row marked (base) above it; rules are relative to NLP.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
