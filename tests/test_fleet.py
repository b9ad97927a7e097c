"""`ingest run` as operators run it: a fleet on PostgreSQL, and one process's life.

Every test runs the real command (``python -m ingest run --config …``) in subprocesses
against loopback feed servers and webhook receivers, and reads what happened from the
feed server's access log (:attr:`FeedServer.log`: arrival time, path, User-Agent), the
receiver, the daemons' JSON logs and the database:

* three instances on one PostgreSQL database poll 300 feeds, one is SIGKILLed mid-run:
  each feed is polled once per interval, by one instance, and every alert is delivered
  once;
* SIGTERM in the middle of a busy cycle exits 0 within ``shutdown_timeout`` and leaves
  no lease held; the next start finishes the work;
* a second instance on one SQLite file is refused, and the first runs on;
* ``/metrics``, ``/readyz`` and ``/healthz`` of a running daemon;
* SIGHUP puts an edited config in force, and keeps the one in force when the edit is
  broken.

The rules are a keyword rule on "zebra" (as in test_delivery_crash.py): each item with
the word raises one alert, whatever the model's version, and the NLP it needs (NER and
sentences, no parser) keeps three instances light on two shared cores.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
import yaml
from conftest import REPO
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url
from test_delivery_crash import db_rows

from ingest.testing import FeedServer, Route, WebhookReceiver, free_port

PG_URL = os.environ.get("INGEST_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
START_TIMEOUT_S = 120.0  # a start loads spaCy; three at once on two busy cores take a while
ZEBRA_RULE = ("id: zebra-sighting\ntitle: Zebra sighted\nseverity: medium\n"
              "when: {keyword: [zebra]}\n")


# -- feeds ---------------------------------------------------------------------------------

SYLLABLES = ["ba", "ko", "ri", "tu", "mel", "dar", "sen", "vo", "qui", "lan", "pe", "zor",
             "fi", "gal", "nu", "tre", "hos", "wi", "ca", "jun", "ple", "mo", "sta", "ex"]


class Words:
    """Made-up words: texts built from them share (almost) no 3-grams, so each item is a
    story of its own and each zebra item raises an alert of its own."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.vocabulary = [self.word() for _ in range(800)]

    def word(self) -> str:
        return "".join(self.rng.choice(SYLLABLES) for _ in range(self.rng.randint(2, 4)))

    def text(self, n: int) -> str:
        return " ".join(self.rng.sample(self.vocabulary, n))


@dataclass(frozen=True)
class Item:
    guid: str
    title: str
    description: str
    published: datetime


def item(words: Words, guid: str, *, zebra: bool) -> Item:
    town = words.word().capitalize()
    if zebra:
        title = f"Zebra {guid} sighted near {town} {words.word()}"
        body = f"In {town} a zebra was counted. {words.text(20).capitalize()}."
    else:
        title = f"{town} {words.text(4)}"
        body = f"{words.text(20).capitalize()}."
    return Item(guid, title, body, datetime.now(UTC))


def rss(title: str, base: str, items: Sequence[Item]) -> bytes:
    """An RSS 2.0 document, newest item first."""
    parts = [f"<item><title>{escape(i.title)}</title><link>{base}/{i.guid}</link>"
             f"<guid isPermaLink=\"false\">{i.guid}</guid>"
             f"<pubDate>{format_datetime(i.published)}</pubDate>"
             f"<description>{escape(i.description)}</description></item>"
             for i in reversed(items)]
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel>"
            f"<title>{escape(title)}</title><link>{base}</link><description>d</description>"
            + "".join(parts) + "</channel></rss>\n").encode()


class Catalogue:
    """Feeds ``/f<n>.xml`` on one server; ``grow`` adds a zebra item to each alert feed."""

    def __init__(self, server: FeedServer, count: int, *, items: int, alert_every: int,
                 zebra_every: int = 0, delay_s: float = 0.0, seed: int = 1) -> None:
        self.server = server
        self.words = Words(seed)
        self.delay_s = delay_s
        self.items: dict[str, list[Item]] = {}
        for n in range(count):
            feed_id = f"f{n:03d}"
            self.items[feed_id] = [
                item(self.words, f"{feed_id}-{k}", zebra=bool(zebra_every) and k % zebra_every == 0)
                for k in range(items)]
            self._serve(feed_id)
        self.alert_feeds = ([f"f{n:03d}" for n in range(0, count, alert_every)]
                            if alert_every else [])
        self.lock = threading.Lock()

    def _serve(self, feed_id: str) -> None:
        body = rss(f"Feed {feed_id}", self.server.url(f"/{feed_id}"), self.items[feed_id])
        self.server.routes[f"/{feed_id}.xml"] = Route(body, delay_s=self.delay_s)

    def url(self, feed_id: str) -> str:
        return self.server.url(f"/{feed_id}.xml")

    def grow(self) -> None:
        with self.lock:
            for feed_id in self.alert_feeds:
                k = len(self.items[feed_id])
                self.items[feed_id].append(item(self.words, f"{feed_id}-{k}", zebra=True))
                self._serve(feed_id)

    def zebra_guids(self) -> set[str]:
        with self.lock:
            return {i.guid for items in self.items.values() for i in items
                    if i.title.startswith("Zebra")}

    def feeds(self) -> list[dict[str, str]]:
        return [{"id": feed_id, "url": self.url(feed_id)} for feed_id in self.items]


def fetches(server: FeedServer, last: int = 0) -> list[tuple[float, str, str]]:
    """(arrival time, feed id, User-Agent) of every request so far (or the ``last`` few)."""
    return [(at, path.strip("/").removesuffix(".xml"),
             {k.lower(): v for k, v in headers.items()}.get("user-agent", ""))
            for at, path, headers in server.log[-last:]]


# -- configuration and processes ---------------------------------------------------------

def write_config(path: Path, *, database_url: str, feeds: list[dict[str, Any]], hook: str,
                 user_agent: str = "ingest-test", port: int | None = None,
                 polling: dict[str, Any] | None = None, **extra: Any) -> Path:
    """An ingest.yaml beside ``path``'s rules folder (created with the zebra rule)."""
    rules = path.parent / "rules"
    if not rules.exists():
        rules.mkdir()
        (rules / "zebra.yaml").write_text(ZEBRA_RULE)
    settings: dict[str, Any] = {
        "database_url": database_url,
        "rules_dir": str(rules),
        "gazetteer": str(REPO / "rules" / "entities.yaml"),
        "feeds": feeds,
        "channels": {"hook": {"type": "webhook", "url": hook}},
        "polling": {"tick": "1s", "per_host": 8, "host_spacing": "0s", "concurrency": 8,
                    "user_agent": user_agent, "timeout": "10s", **(polling or {})},
        "delivery": {"timeout": "5s", "tick": "1s"},
        "nlp": {"workers": 0},
        "rules_watch": False,
        "log": {"level": "info", "format": "json"},
        "http": ({"enabled": False} if port is None
                 else {"enabled": True, "listen": f"127.0.0.1:{port}"}),
        **extra,
    }
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def child_env() -> dict[str, str]:
    """This environment without the variables that would override the config file."""
    return {k: v for k, v in os.environ.items()
            if k not in ("INGEST_DATABASE_URL", "INGEST_CONFIG")}


@dataclass
class Daemon:
    """One ``ingest run`` subprocess, its stderr in a file."""

    name: str
    proc: subprocess.Popen[bytes]
    err: Path
    port: int | None
    ready_at: float | None = None
    stopped_in: float | None = None  # seconds from SIGTERM to exit

    @classmethod
    def start(cls, cfg: Path, name: str, *args: str, port: int | None = None) -> Daemon:
        err = cfg.parent / f"{name}.err"
        with open(cfg.parent / f"{name}.out", "wb") as out, open(err, "wb") as errors:
            proc = subprocess.Popen([sys.executable, "-m", "ingest", "run", "--config", str(cfg),
                                     *args], stdout=out, stderr=errors, cwd=cfg.parent,
                                    env=child_env())
        return cls(name, proc, err, port)

    def text(self) -> str:
        return self.err.read_text(errors="replace")

    def tail(self, chars: int = 3000) -> str:
        return f"--- {self.name} ({self.err}) ---\n{self.text()[-chars:]}"

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        found = []
        for line in self.text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and (event is None or record.get("event") == event):
                found.append(record)
        return found

    @property
    def instance(self) -> str:
        joined = self.events("instance.joined")
        assert joined, f"{self.name} never joined\n{self.tail()}"
        return str(joined[0]["instance"])

    def get(self, path: str) -> tuple[int, bytes]:
        assert self.port is not None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def ready(self) -> bool:
        """/readyz answers 200 (or, without the endpoint, the log says the daemon runs)."""
        if self.port is None:
            return bool(self.events("daemon.running"))
        try:
            return self.get("/readyz")[0] == 200
        except OSError:  # not listening yet
            return False

    def terminate(self) -> None:
        self._sigterm_at = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout_s: float = 60.0) -> int:
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            raise AssertionError(f"{self.name} still ran {timeout_s:g}s after SIGTERM\n"
                                 f"{self.tail()}") from None
        self.stopped_in = time.monotonic() - self._sigterm_at
        return code

    def stop(self, timeout_s: float = 60.0) -> int:
        self.terminate()
        return self.wait_stopped(timeout_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def wait_until(predicate: Callable[[], bool], timeout_s: float, daemons: Sequence[Daemon],
               what: str, *, every_s: float = 0.2) -> None:
    """Poll ``predicate`` until it holds; fail saying ``what`` when a daemon exits first or
    time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return
        dead = [d for d in daemons if d.proc.poll() is not None]
        if dead:
            raise AssertionError(f"waiting for {what}: {dead[0].name} exited with "
                                 f"{dead[0].proc.returncode}\n{dead[0].tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout_s:g}s\n"
                                 + "\n".join(d.tail(1500) for d in daemons))
        time.sleep(every_s)


def wait_ready(daemons: Sequence[Daemon]) -> None:
    def all_ready() -> bool:
        for d in daemons:
            if d.ready_at is None and d.ready():
                d.ready_at = time.time()
        return all(d.ready_at is not None for d in daemons)

    wait_until(all_ready, START_TIMEOUT_S, daemons, "readiness", every_s=0.1)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test starts; any still running at the end are killed."""
    started: list[Daemon] = []
    yield started
    for d in started:
        d.kill()


# -- databases -----------------------------------------------------------------------------

def pg_rows(url: str, query: str, *args: Any) -> list[Any]:
    import asyncpg

    async def fetch() -> list[Any]:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(fetch())


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (``ingest_fleet_<random>``), dropped afterwards."""
    asyncpg = pytest.importorskip("asyncpg")
    server = make_url(PG_URL)
    admin = server.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False)
    name = f"ingest_fleet_{uuid.uuid4().hex[:10]}"

    async def execute(statement: str) -> None:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    try:
        asyncio.run(execute("SELECT 1"))
    except (OSError, TimeoutError, asyncpg.CannotConnectNowError) as exc:
        pytest.skip(f"no PostgreSQL server answers at {server.host}:{server.port} "
                    f"(set INGEST_TEST_DATABASE_URL): {exc}")
    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(drivername="postgresql", database=name).render_as_string(
            hide_password=False)
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))




# -- 1. the fleet ------------------------------------------------------------------------

FLEET_FEEDS = 300
ALERT_EVERY = 25  # feeds f000, f025, … (12 of them) get a new zebra story every round
INTERVAL_S = 15.0  # every feed's interval (min = max); the schedule adds up to 10 % jitter
JITTER = 0.1
TICK_S = 1.0
HEARTBEAT_S, LEASE_S = 1.0, 5.0
ROUND_S = 3.0
FETCH_DELAY_S = 0.05  # each feed answers this late: fetches are in flight at any moment
SHUTDOWN_S = 5.0
# Scheduling slack on two shared, busy cores: the wait for a host slot, a poll that ends
# after a tick, the loop's latency.  A gap past it is a feed dropped, not a slow machine.
SLACK_S = 5.0
VICTIM = 1


@pytest.mark.slow
def test_fleet_polls_each_feed_once_per_interval_and_delivers_each_alert_once(
        tmp_path: Path, pg_url: str, daemons: list[Daemon]) -> None:
    """Three `ingest run` instances started together on one empty PostgreSQL database, 300
    feeds every 15 s, one instance SIGKILLed mid-run while it has fetches in flight, the
    other two stopped with SIGTERM: every feed is polled in every interval by exactly one
    instance, every alert is delivered, and no alert is delivered by two instances.

    Polls, from the feed server's log (arrival time, feed, User-Agent = instance):

    * consecutive fetches of a feed are never closer than 0.85 × interval, with one
      exception: the killed instance's polls not yet recorded when it died are done again
      once its leases lapse, so a short gap is allowed when the earlier fetch was by the
      killed instance before the kill and the later one comes within lease + heartbeat +
      tick + slack after it;
    * nor farther apart than interval × 1.1 + tick + slack (lease + heartbeat more when
      the gap spans the kill: the killed instance's claimed feeds wait for its leases), and
      no feed goes that long without a fetch before the survivors stop;
    * all three instances polled before the kill, both survivors after it.

    Deliveries, from the database and the receiver (User-Agent = instance): every alert has
    a delivered row for the webhook; the receiver got every alert once, except that a
    delivery whose attempt by the killed instance is recorded as interrupted (killed
    mid-send: at-least-once, receivers de-duplicate by Idempotency-Key) may have reached
    it twice, once from the killed instance and once from a survivor.

    The fleet's records: the killed instance is reaped (``instance.reaped``) and marked
    dead, the two others stopped, each within shutdown_timeout of its SIGTERM and with
    exit code 0, and no feed, entry or delivery is still leased.

    ``nlp.workers: 0``: the model loads in each daemon's own process (a thread), three
    processes rather than six on two shared cores.
    """
    with FeedServer() as server, WebhookReceiver(delay_s=0.05) as hook:
        catalogue = Catalogue(server, FLEET_FEEDS, items=2, alert_every=ALERT_EVERY,
                              delay_s=FETCH_DELAY_S)
        agents = [f"ingest-fleet/{n}" for n in range(3)]
        fleet: list[Daemon] = []
        for n, agent in enumerate(agents):
            folder = tmp_path / f"i{n}"
            folder.mkdir()
            port = free_port()
            cfg = write_config(
                folder / "ingest.yaml", database_url=pg_url, feeds=catalogue.feeds(),
                hook=hook.url("/alerts"), user_agent=agent, port=port,
                polling={"interval": f"{INTERVAL_S:g}s", "min_interval": f"{INTERVAL_S:g}s",
                         "max_interval": f"{INTERVAL_S:g}s"},
                fleet={"heartbeat": f"{HEARTBEAT_S:g}s", "lease": f"{LEASE_S:g}s"},
                shutdown_timeout=f"{SHUTDOWN_S:g}s")
            fleet.append(Daemon.start(cfg, f"instance{n}", port=port))
        daemons.extend(fleet)
        victim, survivors = fleet[VICTIM], [d for i, d in enumerate(fleet) if i != VICTIM]

        growing = threading.Event()
        growing.set()

        def grow() -> None:
            while growing.is_set():
                catalogue.grow()
                time.sleep(ROUND_S)

        grower = threading.Thread(target=grow, daemon=True)
        grower.start()
        try:
            wait_ready(fleet)
            all_ready = max(d.ready_at or 0 for d in fleet)
            ids = {d.name: d.instance for d in fleet}

            # Two intervals with all three, then SIGKILL while the victim has a fetch in flight.
            time.sleep(max(0.0, all_ready + 2 * INTERVAL_S + 3 - time.time()))

            def victim_fetching() -> bool:
                recent = [f for f in fetches(server, 50)
                          if f[2] == agents[VICTIM] and f[0] > time.time() - FETCH_DELAY_S / 2]
                return bool(recent)

            wait_until(victim_fetching, 3 * INTERVAL_S, fleet, "fetch by the victim",
                       every_s=0.005)
            killed_at = time.time()
            victim.kill()

            def reaped() -> bool:
                return any(e.get("dead") == ids[victim.name]
                           for d in survivors for e in d.events("instance.reaped"))

            wait_until(reaped, LEASE_S + 30, survivors, "instance.reaped for the killed one")
            reaped_at = time.time()

            # More stories for another interval and a half, then let the fleet settle.
            time.sleep(max(0.0, killed_at + 1.5 * INTERVAL_S - time.time()))
            growing.clear()
            grower.join()
            grown_until = time.time()
            zebras = catalogue.zebra_guids()

            def settled() -> bool:
                [row] = pg_rows(pg_url, """
                    SELECT (SELECT count(*) FROM entries WHERE title LIKE 'Zebra %') AS zebras,
                           (SELECT count(*) FROM entries WHERE processed_at IS NULL) AS waiting,
                           (SELECT count(*) FROM alerts) AS alerts,
                           (SELECT count(*) FROM deliveries WHERE state = 'delivered') AS sent,
                           (SELECT count(*) FROM deliveries) AS deliveries""")
                return (row["zebras"] == len(zebras) and row["waiting"] == 0
                        and row["sent"] == row["deliveries"] >= row["alerts"])

            wait_until(settled, 3 * INTERVAL_S + 30, survivors,
                       "every story stored, processed and delivered", every_s=1.0)
            time.sleep(max(0.0, killed_at + 3 * INTERVAL_S - time.time()))
            stop_at = time.time()
            for d in survivors:
                d.terminate()
            codes = [d.wait_stopped(SHUTDOWN_S + 30) for d in survivors]
        finally:
            growing.clear()
        log = fetches(server)
        received = list(hook.received)

    logs = "\n".join(d.tail(2000) for d in fleet)
    for d, code in zip(survivors, codes, strict=True):
        assert code == 0, f"{d.name} exited with {code}\n{d.tail()}"
        assert d.stopped_in is not None and d.stopped_in <= SHUTDOWN_S + 5, (
            f"{d.name} took {d.stopped_in:.1f}s after SIGTERM (shutdown_timeout "
            f"{SHUTDOWN_S:g}s)\n{d.tail()}")

    # -- polls ------------------------------------------------------------------------
    agent_of = dict(enumerate(agents))
    by_feed: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for at, feed_id, agent in log:
        assert agent in agents, f"a request from {agent!r} for {feed_id}"
        if at <= stop_at:
            by_feed[feed_id].append((at, agent))
    assert sorted(by_feed) == sorted(catalogue.items), (
        f"never polled: {sorted(set(catalogue.items) - set(by_feed))[:10]}")
    first_ready = min(d.ready_at or 0 for d in fleet)
    normal_max = INTERVAL_S * (1 + JITTER) + TICK_S + SLACK_S
    kill_max = normal_max + LEASE_S + HEARTBEAT_S
    too_close, too_far, repeated = [], [], []
    gaps, kill_gaps = [], []
    for feed_id, polls in sorted(by_feed.items()):
        polls.sort()
        if polls[0][0] > first_ready + normal_max:
            too_far.append((feed_id, "first poll", round(polls[0][0] - first_ready, 1)))
        for (before, by), (after, then) in itertools.pairwise(polls):
            gap = after - before
            redone = (by == agent_of[VICTIM] and before <= killed_at + 0.5 < after
                      and after - killed_at <= LEASE_S + HEARTBEAT_S + TICK_S + SLACK_S)
            if gap < 0.85 * INTERVAL_S:
                if redone:
                    repeated.append(feed_id)
                else:
                    too_close.append((feed_id, round(before - first_ready, 2), by,
                                      round(after - first_ready, 2), then))
            spans_kill = before <= killed_at <= after
            if not (redone and gap < 0.85 * INTERVAL_S):
                (kill_gaps if spans_kill else gaps).append(gap)
            if gap > (kill_max if spans_kill else normal_max):
                too_far.append((feed_id, round(before - first_ready, 1), round(gap, 1)))
        if stop_at - polls[-1][0] > normal_max:
            too_far.append((feed_id, "last poll", round(stop_at - polls[-1][0], 1)))
    per_agent = Counter(agent for _, _, agent in log)
    shared = sum(len({agent for _, agent in polls}) > 1 for polls in by_feed.values())
    before_kill = {agent for at, _, agent in log if at < killed_at}
    after_kill = {agent for at, _, agent in log if at > killed_at + 1}
    summary = (f"{len(log)} fetches by {dict(per_agent)}, {shared} feeds polled by more "
               f"than one instance; killed {victim.name} at "
               f"+{killed_at - first_ready:.1f}s, reaped by +{reaped_at - first_ready:.1f}s, "
               f"{len(repeated)} of its polls repeated; stories until "
               f"+{grown_until - first_ready:.1f}s; survivors stopped at "
               f"+{stop_at - first_ready:.1f}s in "
               f"{[round(d.stopped_in or 0, 1) for d in survivors]}s; gaps "
               f"{min(gaps):.1f}-{max(gaps):.1f}s ({max(kill_gaps, default=0):.1f}s at most "
               f"over the kill) outside repeats")
    print(summary)
    assert not too_close, (f"{len(too_close)} feeds polled twice within an interval "
                           f"(feed, +s, by, +s, by): {too_close[:10]}; {summary}\n{logs}")
    assert not too_far, (f"{len(too_far)} gaps longer than an interval allows "
                         f"(max {normal_max:g}s, {kill_max:g}s over the kill): "
                         f"{too_far[:10]}; {summary}")
    assert before_kill == set(agents), (
        f"only {sorted(before_kill)} polled before the kill; {summary}")
    assert after_kill == {agent_of[i] for i in range(3) if i != VICTIM}, summary

    # -- alerts and deliveries --------------------------------------------------------
    alerts = {r["id"]: r["revision"] for r in pg_rows(pg_url, "SELECT id, revision FROM alerts")}
    entries = pg_rows(pg_url, "SELECT guid, processed_at, leased_by FROM entries")
    zebra_entries = {r["guid"] for r in entries if r["guid"] in zebras}
    assert zebra_entries == zebras, f"stories never stored: {sorted(zebras - zebra_entries)[:10]}"
    assert len(alerts) == len(zebras), f"{len(alerts)} alerts for {len(zebras)} zebra stories"
    deliveries = pg_rows(pg_url, "SELECT id, alert_id, revision, channel, state, claimed_by "
                                 "FROM deliveries")
    delivered = {(r["alert_id"], r["revision"]) for r in deliveries
                 if r["channel"] == "hook" and r["state"] == "delivered"}
    undelivered = sorted(set(alerts.items()) - delivered)
    assert undelivered == [], f"alerts without a delivered webhook: {undelivered[:10]}"
    assert Counter(r["state"] for r in deliveries) == Counter({"delivered": len(deliveries)})
    interrupted = {(r["alert_id"], r["revision"]) for r in pg_rows(pg_url, """
        SELECT d.alert_id, d.revision FROM delivery_attempts a
        JOIN deliveries d ON d.id = a.delivery_id WHERE a.outcome = 'interrupted'""")}
    copies: dict[str, list[str]] = defaultdict(list)
    for request in received:
        headers = {k.lower(): v for k, v in request.headers.items()}
        body = json.loads(request.body)
        key = headers.get("idempotency-key", "")
        expected_key = (body["alert_id"] if body.get("revision", 0) == 0
                        else f"{body['alert_id']}.r{body['revision']}")
        assert key == expected_key, (key, body["alert_id"], body.get("revision"))
        copies[key].append(headers.get("user-agent", ""))
    expected_keys = {a if rev == 0 else f"{a}.r{rev}" for a, rev in delivered}
    assert set(copies) == expected_keys, (
        f"never received: {sorted(expected_keys - set(copies))[:10]}; not decided: "
        f"{sorted(set(copies) - expected_keys)[:10]}")
    resent = {key: by for key, by in copies.items() if len(by) > 1}
    not_allowed = {}
    for key, by in resent.items():
        alert_id, _, rev = key.partition(".r")
        others = [a for a in by if a != agent_of[VICTIM]]
        if not ((alert_id, int(rev or 0)) in interrupted and len(others) == 1
                and Counter(by)[agent_of[VICTIM]] == len(by) - 1 == 1):
            not_allowed[key] = by
    print(f"{len(received)} webhook requests for {len(copies)} deliveries, "
          f"{len(resent)} resent after the kill, {len(interrupted)} interrupted attempts")
    assert not not_allowed, (f"{len(not_allowed)} alerts delivered twice other than a killed "
                             f"send redone (key: senders): {dict(list(not_allowed.items())[:10])}")

    # -- the fleet's records ----------------------------------------------------------
    states = {r["id"]: r["state"] for r in pg_rows(pg_url, "SELECT id, state FROM instances")}
    assert states == {ids[d.name]: ("dead" if d is victim else "stopped") for d in fleet}, states
    feed_leases = pg_rows(pg_url, "SELECT id, leased_by FROM feeds WHERE leased_by IS NOT NULL")
    assert feed_leases == [], f"feeds still leased: {feed_leases[:10]}"
    assert [r for r in entries if r["leased_by"] is not None] == []
    assert [r for r in entries if r["processed_at"] is None] == []
    assert [r for r in deliveries if r["claimed_by"] is not None] == []


# -- 2. SIGTERM mid-cycle, and the next start ------------------------------------------

LIFE_FEEDS, LIFE_ITEMS, ZEBRA_EVERY = 200, 20, 10
SLOW_S = 0.5  # each feed answers this late: 8 at a time, polling all takes 12 s or more
LIFE_SHUTDOWN_S = 5.0


@pytest.mark.slow
def test_sigterm_mid_cycle_exits_in_time_and_the_next_start_finishes(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    """SIGTERM while polls (slow feeds) and NLP are in flight: exit 0 within
    shutdown_timeout, every lease released, the instance stopped, work left undone; a
    second start polls exactly the feeds left, processes exactly the entries left, and
    delivers every alert (a resend only of a send the stop interrupted)."""
    db = tmp_path / "ingest.db"
    with FeedServer() as server, WebhookReceiver() as hook:
        catalogue = Catalogue(server, LIFE_FEEDS, items=LIFE_ITEMS, alert_every=0,
                              zebra_every=ZEBRA_EVERY, delay_s=SLOW_S)
        cfg = write_config(tmp_path / "ingest.yaml", database_url=f"sqlite:///{db}",
                           feeds=catalogue.feeds(), hook=hook.url("/alerts"),
                           shutdown_timeout=f"{LIFE_SHUTDOWN_S:g}s")
        first = Daemon.start(cfg, "run1")
        daemons.append(first)
        wait_ready([first])

        def processing() -> bool:  # some entries processed, more waiting: NLP is busy
            [(done, waiting)] = db_rows(
                db, "SELECT count(processed_at), count(*) - count(processed_at) "
                    "FROM entries") or [(0, 0)]
            return done > 0 and waiting > 0

        wait_until(processing, 120, [first], "entries processed while more wait")
        code = first.stop(LIFE_SHUTDOWN_S + 30)
        stopped_at = time.time()
        assert code == 0, first.tail()
        assert first.stopped_in is not None and first.stopped_in <= LIFE_SHUTDOWN_S + 4, (
            f"{first.stopped_in:.1f}s from SIGTERM to exit\n{first.tail()}")

        polled = {f for (f,) in db_rows(db, "SELECT id FROM feeds "
                                                "WHERE last_polled_at IS NOT NULL")}
        done_first = dict(db_rows(db, "SELECT id, processed_at FROM entries "
                                          "WHERE processed_at IS NOT NULL"))
        [(stored_first,)] = db_rows(db, "SELECT count(*) FROM entries")
        assert len(polled) < LIFE_FEEDS, "every feed was polled before SIGTERM: nothing was cut"
        assert db_rows(db, "SELECT id FROM feeds WHERE leased_by IS NOT NULL") == []
        assert db_rows(db, "SELECT id FROM entries WHERE leased_by IS NOT NULL") == []
        assert [s for (s,) in db_rows(db, "SELECT state FROM instances")] == ["stopped"]
        print(f"SIGTERM after {len(polled)} of {LIFE_FEEDS} feeds polled, {len(done_first)} of "
              f"{stored_first} entries stored processed; exit in {first.stopped_in:.1f}s")

        second = Daemon.start(cfg, "run2")
        daemons.append(second)
        entries_total = LIFE_FEEDS * LIFE_ITEMS
        alerts_total = entries_total // ZEBRA_EVERY

        def finished() -> bool:
            [(unpolled, stored, waiting, alerts, outstanding)] = db_rows(db, """
                SELECT (SELECT count(*) FROM feeds WHERE last_polled_at IS NULL),
                       (SELECT count(*) FROM entries),
                       (SELECT count(*) - count(processed_at) FROM entries),
                       (SELECT count(*) FROM alerts),
                       (SELECT count(*) FROM deliveries WHERE state != 'delivered')""")
            return (unpolled, stored, waiting, alerts, outstanding) == (
                0, entries_total, 0, alerts_total, 0)

        wait_until(finished, 240, [second], "every feed polled and every entry processed",
                   every_s=1.0)
        assert second.stop(LIFE_SHUTDOWN_S + 30) == 0, second.tail()
        log = fetches(server)
        received = list(hook.received)

    # Polls: the second start polled the feeds left, and only those.
    repolled = sorted({f for at, f, _ in log if at > stopped_at and f in polled})
    assert repolled == [], f"polled again although polled before SIGTERM: {repolled[:10]}"
    assert {f for _, f, _ in log} == set(catalogue.items)
    # Entries: each processed once; those processed before SIGTERM were not done again.
    processed = dict(db_rows(db, "SELECT id, processed_at FROM entries"))
    assert len(processed) == entries_total and None not in processed.values()
    assert {i: processed[i] for i in done_first} == done_first
    second_count = sum(e.get("processed", 0) for e in second.events("cycle.done"))
    assert second_count == entries_total - len(done_first), (
        f"the second start processed {second_count} entries, "
        f"{entries_total - len(done_first)} were left")
    matched = db_rows(db, "SELECT e.guid, count(*) FROM matches m "
                              "JOIN entries e ON e.id = m.entry_id GROUP BY e.guid")
    assert dict(matched) == {g: 1 for g in catalogue.zebra_guids()}
    # Deliveries: every alert received; twice only when a send was cut short by the stop.
    alerts = {a for (a,) in db_rows(db, "SELECT id FROM alerts")}
    keys = Counter(r.headers.get("Idempotency-Key", "") for r in received)
    interrupted = {a for (a,) in db_rows(db, """
        SELECT d.alert_id FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
        WHERE a.outcome = 'interrupted'""")}
    assert set(keys) == alerts
    assert {k for k, n in keys.items() if n > 1} <= interrupted


# -- 3. one SQLite file, one instance ------------------------------------------------------

def quick_config(tmp_path: Path, server: FeedServer, hook: WebhookReceiver, *,
                 feeds: int = 3, port: int | None = None, **extra: Any) -> tuple[Path, Catalogue]:
    """A daemon's config on SQLite polling ``feeds`` feeds every 2 s."""
    catalogue = Catalogue(server, feeds, items=4, alert_every=0, zebra_every=2)
    cfg = write_config(tmp_path / "ingest.yaml",
                       database_url=f"sqlite:///{tmp_path / 'ingest.db'}",
                       feeds=catalogue.feeds(), hook=hook.url("/alerts"), port=port,
                       polling={"interval": "2s", "min_interval": "2s", "max_interval": "2s"},
                       fleet={"heartbeat": "1s", "lease": "5s"}, **extra)
    return cfg, catalogue


@pytest.mark.slow
def test_second_instance_on_one_sqlite_file_is_refused(tmp_path: Path,
                                                       daemons: list[Daemon]) -> None:
    """A second `ingest run` on the same config (one SQLite file) exits 2 naming the
    database and PostgreSQL; the first runs on and stops cleanly."""
    with FeedServer() as server, WebhookReceiver() as hook:
        port = free_port()
        cfg, _ = quick_config(tmp_path, server, hook, port=port)
        first = Daemon.start(cfg, "first", port=port)
        daemons.append(first)
        wait_ready([first])
        second = subprocess.run([sys.executable, "-m", "ingest", "run", "--config", str(cfg)],
                                capture_output=True, text=True, timeout=120, cwd=tmp_path,
                                env=child_env())
        refused_at = time.time()
        wait_until(lambda: any(at > refused_at for at, _, _ in fetches(server, 5)), 30,
                   [first], "a poll after the refusal")
        assert first.get("/healthz")[0] == 200
        code = first.stop()
    assert second.returncode == 2, second.stderr
    assert str(tmp_path / "ingest.db") in second.stderr, second.stderr
    assert "PostgreSQL" in second.stderr, second.stderr
    assert code == 0, first.tail()
    assert first.events("daemon.stopped") and first.events("instance.left")


# -- 4. /metrics, /readyz, /healthz -----------------------------------------------------

def metric_samples(body: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples}


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.mark.slow
def test_metrics_of_a_running_daemon(tmp_path: Path, daemons: list[Daemon]) -> None:
    """While `ingest run` polls, processes and delivers, /metrics counts each part,
    /readyz says every check is ok and /healthz answers."""
    with FeedServer() as server, WebhookReceiver() as hook:
        port = free_port()
        cfg, _ = quick_config(tmp_path, server, hook, port=port)
        daemon = Daemon.start(cfg, "daemon", port=port)
        daemons.append(daemon)
        wait_ready([daemon])
        samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

        def counted() -> bool:
            samples.clear()
            samples.update(metric_samples(daemon.get("/metrics")[1]))
            delivered = value(samples, "ingest_delivery_attempts_total", channel="hook",
                              outcome="delivered")
            return bool(delivered) and bool(value(samples, "ingest_instances_live"))

        wait_until(counted, 60, [daemon], "a delivery counted in /metrics")
        ready, readiness = daemon.get("/readyz")
        health, liveness = daemon.get("/healthz")
        instance = daemon.instance
        assert daemon.stop() == 0, daemon.tail()

    assert (value(samples, "ingest_feeds_polled_total", outcome="ok") or 0) > 0
    assert (value(samples, "ingest_fetch_duration_seconds_count") or 0) > 0
    assert (value(samples, "ingest_entries_ingested_total") or 0) > 0
    assert (value(samples, "ingest_entries_processed_total") or 0) > 0
    assert (value(samples, "ingest_rule_matches_total", rule="zebra-sighting", state="new")
            or 0) > 0
    assert (value(samples, "ingest_delivery_attempts_total", channel="hook",
                  outcome="delivered") or 0) > 0
    kinds = {dict(labels)["kind"] for name, labels in samples if name == "ingest_leases_held"}
    assert kinds == {"feeds", "entries", "deliveries"}
    assert (value(samples, "ingest_instances_live") or 0) >= 1
    builds = [dict(labels) for name, labels in samples if name == "ingest_build_info"]
    assert [b["instance"] for b in builds] == [instance]
    assert ready == 200, readiness
    assert json.loads(readiness) == {"ready": True, "checks": {
        "model": "ok", "database": "ok", "scheduler": "ok"}}
    assert (health, json.loads(liveness)) == (200, {"status": "ok"})


# -- 5. SIGHUP ---------------------------------------------------------------------------

@pytest.mark.slow
def test_sighup_puts_an_edited_config_in_force_and_keeps_it_when_broken(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    """SIGHUP after adding a feed and changing polling.concurrency: the new feed is polled,
    ``config.reloaded`` names feeds and ``config.restart_needed`` names polling.  SIGHUP
    after breaking the file: ``config.reload_failed``, and both feeds are still polled."""
    with FeedServer() as server, WebhookReceiver() as hook:
        cfg, catalogue = quick_config(tmp_path, server, hook, feeds=2)
        settings = yaml.safe_load(cfg.read_text())
        both = settings["feeds"]
        cfg.write_text(yaml.safe_dump({**settings, "feeds": both[:1]}, sort_keys=False))
        daemon = Daemon.start(cfg, "daemon")
        daemons.append(daemon)
        wait_ready([daemon])
        wait_until(lambda: any(f == "f000" for _, f, _ in fetches(server)), 30, [daemon],
                   "a poll of the first feed")
        assert not any(f == "f001" for _, f, _ in fetches(server))

        settings["polling"] = {**settings["polling"], "concurrency": 4}
        cfg.write_text(yaml.safe_dump(settings, sort_keys=False))
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any(f == "f001" for _, f, _ in fetches(server)), 30, [daemon],
                   "a poll of the added feed")
        wait_until(lambda: bool(daemon.events("config.reloaded")), 10, [daemon],
                   "config.reloaded")
        reloaded = daemon.events("config.reloaded")
        restart = daemon.events("config.restart_needed")

        cfg.write_text(cfg.read_text() + "polling: {tick: [\n")
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: bool(daemon.events("config.reload_failed")), 30, [daemon],
                   "config.reload_failed")
        failed_at = time.time()

        def both_polled_since() -> bool:
            since = Counter(f for at, f, _ in fetches(server) if at > failed_at)
            return since["f000"] >= 2 and since["f001"] >= 2

        wait_until(both_polled_since, 30, [daemon], "polls after the failed reload")
        failed = daemon.events("config.reload_failed")
        assert daemon.stop() == 0, daemon.tail()

    assert len(reloaded) == 1 and "feeds" in reloaded[0]["changed"], reloaded
    assert reloaded[0]["feeds"] == 2
    assert [r["settings"] for r in restart] == [["polling"]], restart
    assert len(failed) == 1 and str(cfg) in failed[0]["error"], failed
    assert len(daemon.events("config.reloaded")) == 1  # the broken file changed nothing
    assert sorted(catalogue.items) == ["f000", "f001"]
