"""The worker-process runner: parsing and NLP in spawned processes give what the
in-process runner gives, and a reloaded gazetteer reaches the workers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from test_service import EXPECTED, seed_feeds, settings_for, story

from ingest.model import Feed
from ingest.nlp.gazetteer import Gazetteer, load_gazetteer
from ingest.nlp.pipeline import FULL, Analyzer
from ingest.service.app import App
from ingest.service.pool import ProcessRunner, _Pool
from ingest.service.workers import ThreadRunner
from ingest.testing import FeedServer, Route, WebhookReceiver

pytestmark = pytest.mark.slow

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
FEED = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Desk</title><link>https://desk.example/</link>
<description>d</description><ttl>30</ttl>
<item><title>Ministers meet in Brussels</title><link>https://desk.example/1</link>
<guid>1</guid><description>&lt;p&gt;The &lt;b&gt;talks&lt;/b&gt; ended late.&lt;/p&gt;</description>
<pubDate>Mon, 02 Mar 2026 10:00:00 GMT</pubDate></item>
</channel></rss>"""
EXTRA_FEED = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Extra</title>
<link>https://extra.example/</link><description>d</description>
<item><title>Harbour reopens after storm</title><link>https://extra.example/1</link>
<guid>x1</guid><description>Ferries ran again on Tuesday.</description></item>
</channel></rss>"""
TEXT = "Test Sam systems were moved to the border, officials in Brussels said on Monday."
GAZ = """\
countries:
  - {code: "BE", name: Belgium}
entities:
  - {id: jane-example, name: Jane Example, country: "BE"}
"""


def gazetteer_file(tmp_path: Path, extra: str = "") -> Gazetteer:
    path = tmp_path / f"gaz{len(extra)}.yaml"
    path.write_text(GAZ + extra)
    return load_gazetteer(path)


async def test_process_runner_matches_the_thread_runner(tmp_path: Path,
                                                        analyzer: Analyzer) -> None:
    """Same documents, same gazetteer: the worker processes give equal results, and a
    gazetteer put in force by ``configure`` is used by the workers from the next call."""
    plain = gazetteer_file(tmp_path)
    richer = gazetteer_file(tmp_path, "  - {id: test-sam, name: Test SAM, label: WEAPON}\n")
    local = ThreadRunner(Analyzer(analyzer.nlp, plain, 8, FULL))
    pool = ProcessRunner(1, "en_core_web_sm", plain, FULL, 8)
    try:
        await pool.start()
        parsed = await pool.parse(FEED, feed_id="desk", url="https://desk.example/rss", now=NOW,
                                  content_type="application/rss+xml")
        assert parsed == await local.parse(FEED, feed_id="desk", url="https://desk.example/rss",
                                           now=NOW, content_type="application/rss+xml")
        assert parsed.ttl_minutes == 30
        assert parsed.entries[0].summary == "The talks ended late."
        before = await pool.analyze([TEXT], [date(2026, 3, 2)])
        assert before == await local.analyze([TEXT], [date(2026, 3, 2)])
        assert "test-sam" not in {m.id for m in before[0].mentions}
        pool.configure(richer, FULL)
        local.configure(richer, FULL)
        after = await pool.analyze([TEXT], [date(2026, 3, 2)])
        assert "test-sam" in {m.id for m in after[0].mentions}
        assert after == await local.analyze([TEXT], [date(2026, 3, 2)])
        pinned = await pool.analyze([TEXT], [date(2026, 3, 2)], plain)  # a batch started earlier
        assert "test-sam" not in {m.id for m in pinned[0].mentions}
    finally:
        pool.close()
        local.close()


async def test_service_on_worker_processes_survives_bad_documents_and_dead_workers(
        tmp_path: Path, feed_server: FeedServer, webhook: WebhookReceiver) -> None:
    """The service as it runs by default (worker processes): an HTML page fails its own
    feed only; workers killed between cycles are replaced, and nothing is lost."""
    feeds = seed_feeds(feed_server)
    feed_server.routes["/page.html"] = Route(
        b"<!doctype html><html><head><link rel=alternate type=application/rss+xml "
        b"href=/news.rss></head><body>News</body></html>", content_type="text/html")
    feeds.append({"id": "page", "url": feed_server.url("/page.html")})
    settings = settings_for(tmp_path, feeds, webhook, nlp={"workers": 1},
                            polling={"host_spacing": 0, "per_host": 8})
    app = await App.start(settings)
    try:
        assert isinstance(app.runner, ProcessRunner)
        report = await app.run_cycle(force=True)
        assert set(report.errors) == {"page"}
        assert "links to a feed at " + feed_server.url("/news.rss") in report.errors["page"]
        assert {(a.rule_id, story(a.entry_title)) for a in report.alerts} == EXPECTED
        for pool in (app.runner._cpu, app.runner._nlp):  # kill every worker process
            for process in list(pool._executor._processes.values()):
                os.kill(process.pid, signal.SIGKILL)
        for row in await app.store.feeds():  # make every feed new to the service again
            await app.store.reset_feed(row.feed.id, NOW)
        feed_server.routes["/extra.xml"] = Route(EXTRA_FEED)
        await app.store.sync_feeds([*app.settings.all_feeds(),
                                    Feed("extra", feed_server.url("/extra.xml"))], NOW)
        again = await app.run_cycle(force=True)
        assert set(again.errors) == {"page"}
        assert again.new_entries == 1 and again.processed == 1
        assert not await app.store.unprocessed_entries(limit=10)
    finally:
        await app.close()


CHILD = """
import asyncio, sys
from datetime import date
from pathlib import Path
from ingest.nlp.gazetteer import load_gazetteer
from ingest.nlp.pipeline import FULL
from ingest.service.pool import ProcessRunner, _Pool

async def main() -> None:
    runner = ProcessRunner(1, "en_core_web_sm", load_gazetteer(Path(sys.argv[1])), FULL, 8)
    await runner.run_cpu(len, "warm")  # starts the cpu pool's worker too
    await runner.start()
    pids = [p.pid for pool in (runner._cpu, runner._nlp)
            for p in pool._executor._processes.values()]
    print(" ".join(map(str, pids)), flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def test_workers_end_when_the_service_is_killed(tmp_path: Path) -> None:
    """SIGKILL of the service (no chance to close its pools) still ends its workers."""
    gaz = tmp_path / "gaz.yaml"
    gaz.write_text(GAZ)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(gaz)], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None
        pids = [int(p) for p in child.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 15
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)]


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for its parent counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_an_overrunning_call_replaces_its_pool_and_queued_calls_still_run() -> None:
    """A call past its timeout has its pool's processes terminated; calls queued behind
    it run on the new pool instead of being lost."""
    pool = _Pool("test", 1)
    try:
        stuck = asyncio.ensure_future(pool.call(1.0, time.sleep, 30))
        # More than the pool hands its worker ahead: some wait in the executor itself.
        queued = [asyncio.ensure_future(pool.call(None, len, "q" * n)) for n in range(1, 6)]
        with pytest.raises(TimeoutError):
            await stuck
        assert await asyncio.wait_for(asyncio.gather(*queued), 30) == [1, 2, 3, 4, 5]
        assert await pool.call(None, len, "again") == 5
    finally:
        pool.close()
