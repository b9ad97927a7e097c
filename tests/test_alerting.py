"""Alert policy through the real App: stories across outlets, updates, thresholds, dedupe
and silences, on loopback feeds, a SQLite file and a recording webhook."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
import yaml
from conftest import REPO
from typer.testing import CliRunner, Result

from ingest.cli import app as cli_app
from ingest.config import Settings
from ingest.model import Alert
from ingest.nlp.pipeline import Analyzer
from ingest.service.app import App, CycleReport
from ingest.testing import FeedServer, Route, WebhookReceiver

RULE_ID = "plant-fire"
CHANNEL_PATHS = {"ops-webhook": "/ops", "desk-webhook": "/desk"}

# --- what the outlets publish ---------------------------------------------------------

OUTLETS = [
    "baltic-courier", "north-ledger", "harbour-times", "daily-dispatch", "river-post",
    "coastal-herald", "metro-wire", "evening-star", "valley-news", "capital-record",
    "morning-bulletin", "city-observer", "plain-gazette", "tribune-east", "lakeside-journal",
    "frontier-mail", "summit-press", "bay-chronicle", "union-review", "pioneer-daily",
]

# One wire story; each outlet changes a few words and adds its headline, byline and footer.
WIRE = ("Firefighters battled a large blaze at a lithium battery plant on the outskirts of "
        "Gdansk on {day} night, forcing the evacuation of {about} 300 workers. Local officials "
        "said the fire started in a storage hall where finished cells were kept and spread to "
        "an adjoining warehouse before midnight. No injuries were reported, but residents of two "
        "nearby villages were told to keep their windows closed because of the smoke. The plant, "
        "which supplies electric car makers across Europe, employs {staff} people. Poland's "
        "environment inspectorate said it would test air and water samples over the coming days.")
HEADLINES = ["Fire at Gdansk battery plant forces evacuation",
             "Blaze hits lithium cell factory in Poland",
             "Hundreds evacuated as battery factory burns near Gdansk",
             "Polish battery plant fire: workers sent home"]
DAYS = ["Tuesday", "Tuesday", "late Tuesday"]
ABOUT = ["about", "some", "roughly", "around"]
STAFF = ["roughly 1,200", "about 1,200", "around 1,200", "1,200"]

# Different stories the same rule matches (no two are near-duplicates).
STORIES = {
    "poznan": ("Furniture factory fire in Poznan",
               "A fire tore through a furniture factory in Poznan early on Sunday, destroying a "
               "warehouse full of timber and lacquer. Poland's state fire service sent forty "
               "engines and the flames were under control by dawn. Two night-shift workers were "
               "treated for smoke inhalation, and the company said production would move to its "
               "second site while inspectors assess the damage."),
    "wroclaw": ("Wroclaw fertiliser plant blaze contained",
                "Emergency crews in Wroclaw contained a blaze at a fertiliser plant on Thursday "
                "after a conveyor belt caught fire. Poland's chemical safety agency said no "
                "ammonia had leaked and lifted a shelter-in-place order for the surrounding "
                "district in the afternoon. Investigators are looking into why the belt's "
                "sprinklers failed."),
    "lodz": ("Old textile mill burns in Lodz",
             "A fire gutted a disused textile factory in the centre of Lodz on Friday night, "
             "sending a column of black smoke over the city. Firefighters kept the flames from "
             "spreading to neighbouring flats. The nineteenth-century building, listed as a "
             "monument in Poland, had been due to become a museum next year."),
    "katowice": ("Steel plant fire near Katowice halts coke ovens",
                 "Production stopped at a steel plant near Katowice on Monday after a fire broke "
                 "out in its coke oven battery. Poland's mining and industry ministry said the "
                 "plant's own rescue team put out the fire within two hours. Output is expected "
                 "to resume by the end of the week, the operator told shareholders."),
    "rzeszow": ("Aircraft parts plant evacuated in Rzeszow",
                "An aircraft parts plant in Rzeszow was evacuated on Wednesday morning when a "
                "fire started in its paint shop. About 500 employees waited in the car park "
                "while firefighters ventilated the hall. Poland's civil aviation office said "
                "deliveries of wing components to European customers would be delayed."),
    "gdynia": ("Shipyard workshop fire in Gdynia",
               "A fire in a welding workshop at a Gdynia shipyard was put out on Saturday before "
               "it reached a ferry under construction next door. The factory's managers said "
               "insulation panels had caught fire during repairs. Poland's labour inspectorate "
               "opened an inquiry into safety procedures at the yard."),
}


@dataclass(frozen=True)
class Item:
    title: str
    body: str
    link: str
    published: datetime


def wire_copy(i: int, published: datetime) -> Item:
    """Outlet ``i``'s copy of the wire story: its own headline, byline, words, footer, link."""
    name = OUTLETS[i].replace("-", " ").title()
    body = WIRE.format(day=DAYS[i % 3], about=ABOUT[i % 4], staff=STAFF[(i // 2) % 4])
    return Item(f"{HEADLINES[i % 4]} ({name})",
                f"By Staff Reporter {i + 1}, {name}. {body} Read more from {name}: "
                "subscribe to our newsletter.",
                f"https://www.{OUTLETS[i]}.example.com/news/2026/gdansk-plant-fire-{i}",
                published)


def story(name: str, published: datetime, outlet: str = "wire") -> Item:
    title, body = STORIES[name]
    return Item(title, body, f"https://www.{outlet}.example.com/news/{name}-fire", published)


def rss(name: str, items: list[Item]) -> bytes:
    entries = "".join(
        f"<item><title>{escape(i.title)}</title><link>{escape(i.link)}</link>"
        f"<guid isPermaLink=\"true\">{escape(i.link)}</guid>"
        f"<pubDate>{format_datetime(i.published, usegmt=True)}</pubDate>"
        f"<description>{escape(i.body)}</description></item>" for i in items)
    return (f"<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\"><channel>"
            f"<title>{escape(name)}</title><link>https://{name}.example.com/</link>"
            f"<description>{escape(name)} news</description>{entries}</channel></rss>"
            ).encode()


@dataclass
class Newsroom:
    """Feeds on the loopback server whose items the test publishes in turn."""

    server: FeedServer
    items: dict[str, list[Item]] = field(default_factory=dict)

    def feed(self, slug: str) -> dict[str, Any]:
        """A feed (empty until something is published on it) as the config lists it."""
        self.items.setdefault(slug, [])
        self.server.routes[f"/{slug}.xml"] = Route(rss(slug, self.items[slug]))
        return {"id": slug, "url": self.server.url(f"/{slug}.xml")}

    def publish(self, slug: str, item: Item) -> None:
        self.items.setdefault(slug, []).append(item)
        self.server.routes[f"/{slug}.xml"] = Route(rss(slug, self.items[slug]))


# --- the service ----------------------------------------------------------------------


class Clock:
    """Real time moved forward by hand: the CLI stamps silences with real time, so the
    service's clock must not lag behind it."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


def write_rule(rules_dir: Path, rule_id: str = RULE_ID, **policy: Any) -> Path:
    """A rule on fires at Polish plants, with ``policy`` (threshold, dedupe, on_update...)."""
    rules_dir.mkdir(parents=True, exist_ok=True)
    spec = {"id": rule_id, "title": "Fire at an industrial plant in Poland", "severity": "high",
            "tags": ["industry", "fire"],
            "when": {"all": [{"lemma": ["fire", "blaze"]}, {"lemma": ["plant", "factory"]},
                             {"entity": {"country": "PL"}}]},
            "notify": list(CHANNEL_PATHS), **policy}
    path = rules_dir / f"{rule_id}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def config_data(tmp_path: Path, feeds: list[dict[str, Any]], hook: WebhookReceiver
                ) -> dict[str, Any]:
    return {
        "database_url": f"sqlite:///{tmp_path / 'ingest.db'}",
        "rules_dir": str(tmp_path / "rules"),
        "gazetteer": str(REPO / "rules" / "entities.yaml"),
        "feeds": feeds,
        "channels": {name: {"type": "webhook", "url": hook.url(path)}
                     for name, path in CHANNEL_PATHS.items()},
        "polling": {"timeout": 5, "connect_timeout": 2},
        "delivery": {"timeout": 5},
        "log": {"level": "warning"},
    }


def settings_for(tmp_path: Path, feeds: list[dict[str, Any]], hook: WebhookReceiver) -> Settings:
    return Settings.model_validate(config_data(tmp_path, feeds, hook))


def write_config(tmp_path: Path, feeds: list[dict[str, Any]], hook: WebhookReceiver) -> Path:
    """The same settings as a config file, for the CLI."""
    path = tmp_path / "ingest.yaml"
    path.write_text(yaml.safe_dump(config_data(tmp_path, feeds, hook)))
    return path


@asynccontextmanager
async def running(settings: Settings, analyzer: Analyzer, clock: Callable[[], datetime]
                  ) -> AsyncIterator[App]:
    app = await App.start(settings, analyzer=analyzer, clock=clock)
    try:
        yield app
    finally:
        await app.close()


def payloads(hook: WebhookReceiver, path: str | None = None) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in hook.received if path is None or r.path == path]


def per_channel(hook: WebhookReceiver) -> dict[str, int]:
    return {path: sum(r.path == path for r in hook.received) for path in CHANNEL_PATHS.values()}


def source_feeds(alert: Alert) -> set[str]:
    return {str(s["feed"]) for s in alert.sources}


async def cli(*args: str) -> Result:
    """``ingest ARGS`` through typer's runner, in a thread (the command runs its own loop)."""
    return await asyncio.to_thread(CliRunner().invoke, cli_app, list(args))


# --- a. twenty outlets, one story -----------------------------------------------------


async def test_twenty_copies_make_one_alert(tmp_path: Path, analyzer: Analyzer,
                                            feed_server: FeedServer,
                                            webhook: WebhookReceiver) -> None:
    """Twenty outlets' copies of one wire story raise one alert listing all twenty sources."""
    clock = Clock()
    news = Newsroom(feed_server)
    feeds = [news.feed(slug) for slug in OUTLETS]
    for i, slug in enumerate(OUTLETS):
        news.publish(slug, wire_copy(i, clock() - timedelta(minutes=60 - i)))
    write_rule(tmp_path / "rules")
    async with running(settings_for(tmp_path, feeds, webhook), analyzer, clock) as app:
        report = await app.run_cycle(force=True)
        alerts = await app.store.alerts()
        matches = await app.store.matches(rule_id=RULE_ID)
        deliveries = await app.store.deliveries()
    assert report.new_entries == 20 and report.processed == 20
    assert len(report.alerts) == 1 and report.updates == 19
    [alert] = alerts
    assert source_feeds(alert) == set(OUTLETS) and len(alert.sources) == 20
    assert sorted(m.state for m in matches) == ["new"] + ["update"] * 19
    assert len({m.story_id for m in matches}) == 1
    assert {m.alert_id for m in matches} == {alert.id}
    assert per_channel(webhook) == {"/ops": 1, "/desk": 1}
    assert {(d.channel, d.revision, d.state) for d in deliveries} == {
        ("ops-webhook", 0, "delivered"), ("desk-webhook", 0, "delivered")}
    [sent] = payloads(webhook, "/ops")
    assert sent["event"] == "alert.fired" and sent["alert_id"] == alert.id


async def test_copies_over_several_cycles_stay_one_silent_alert(
        tmp_path: Path, analyzer: Analyzer, feed_server: FeedServer,
        webhook: WebhookReceiver) -> None:
    """Copies arriving over four cycles (and a restart) fold into the first alert, sent once."""
    clock = Clock()
    news = Newsroom(feed_server)
    feeds = [news.feed(slug) for slug in OUTLETS]
    write_rule(tmp_path / "rules")
    settings = settings_for(tmp_path, feeds, webhook)
    reports: list[CycleReport] = []
    for batch in range(4):
        async with running(settings, analyzer, clock) as app:  # a restart between batches
            for i in range(batch * 5, batch * 5 + 5):
                news.publish(OUTLETS[i], wire_copy(i, clock() - timedelta(minutes=5)))
            reports.append(await app.run_cycle(force=True))
            alerts = await app.store.alerts()
        clock.advance(minutes=20)
    assert [len(r.alerts) for r in reports] == [1, 0, 0, 0]
    assert [r.updates for r in reports] == [4, 5, 5, 5]
    [alert] = alerts
    assert source_feeds(alert) == set(OUTLETS)
    assert alert.revision == 0
    assert per_channel(webhook) == {"/ops": 1, "/desk": 1}


async def test_notify_on_update_sends_each_later_copy(tmp_path: Path, analyzer: Analyzer,
                                                      feed_server: FeedServer,
                                                      webhook: WebhookReceiver) -> None:
    """With on_update: notify, each later copy is an alert.updated delivery with its own key."""
    clock = Clock()
    news = Newsroom(feed_server)
    feeds = [news.feed(slug) for slug in OUTLETS[:6]]
    write_rule(tmp_path / "rules", on_update="notify")
    async with running(settings_for(tmp_path, feeds, webhook), analyzer, clock) as app:
        for i in range(6):
            news.publish(OUTLETS[i], wire_copy(i, clock() - timedelta(minutes=5)))
            await app.run_cycle(force=True)
            clock.advance(minutes=15)
        [alert] = await app.store.alerts()
    assert alert.revision == 5 and source_feeds(alert) == set(OUTLETS[:6])
    assert per_channel(webhook) == {"/ops": 6, "/desk": 6}
    sent = [(json.loads(r.body), r.headers["Idempotency-Key"]) for r in webhook.received
            if r.path == "/ops"]
    assert [p["event"] for p, _ in sent] == ["alert.fired"] + ["alert.updated"] * 5
    assert [p["revision"] for p, _ in sent] == [0, 1, 2, 3, 4, 5]
    assert [p["story"]["source_count"] for p, _ in sent] == [1, 2, 3, 4, 5, 6]
    assert {p["alert_id"] for p, _ in sent} == {alert.id}
    keys = [key for _, key in sent]
    assert len(set(keys)) == 6 and keys[0] == alert.id
    desk_keys = [r.headers["Idempotency-Key"] for r in webhook.received if r.path == "/desk"]
    assert sorted(desk_keys) == sorted(keys)  # the same revision has the same key everywhere


# --- b. thresholds --------------------------------------------------------------------


async def test_threshold_fires_on_third_source_after_restart(
        tmp_path: Path, analyzer: Analyzer, feed_server: FeedServer,
        webhook: WebhookReceiver) -> None:
    """count 3 / distinct source: two sources record below-threshold; after a restart the
    third source fires the alert."""
    clock = Clock()
    news = Newsroom(feed_server)
    write_rule(tmp_path / "rules", threshold={"count": 3, "window": "6h", "distinct": "source"})
    feeds = [news.feed(slug) for slug in OUTLETS[:3]]
    for i in range(2):
        news.publish(OUTLETS[i], wire_copy(i, clock() - timedelta(hours=2, minutes=i)))
    async with running(settings_for(tmp_path, feeds[:2], webhook), analyzer, clock) as app:
        first = await app.run_cycle(force=True)
        held = await app.store.matches(rule_id=RULE_ID)
        assert await app.store.alerts() == []
    assert first.alerts == [] and first.suppressed == 2
    assert sorted((m.feed_id, m.state, m.alert_id) for m in held) == [
        (OUTLETS[0], "below-threshold", None), (OUTLETS[1], "below-threshold", None)]
    assert webhook.received == []

    clock.advance(minutes=30)
    news.publish(OUTLETS[2], wire_copy(2, clock() - timedelta(minutes=10)))
    async with running(settings_for(tmp_path, feeds, webhook), analyzer, clock) as app:
        second = await app.run_cycle(force=True)
        alerts = await app.store.alerts()
        states = sorted(m.state for m in await app.store.matches(rule_id=RULE_ID))
    assert len(second.alerts) == 1
    [alert] = alerts
    assert alert.feed_id == OUTLETS[2]
    assert states == ["below-threshold", "below-threshold", "new"]
    assert per_channel(webhook) == {"/ops": 1, "/desk": 1}


async def test_threshold_alert_lists_the_sources_that_reached_it(
        tmp_path: Path, analyzer: Analyzer, feed_server: FeedServer,
        webhook: WebhookReceiver) -> None:
    """The alert a threshold releases names every source counted towards it."""
    clock = Clock()
    news = Newsroom(feed_server)
    write_rule(tmp_path / "rules", threshold={"count": 3, "window": "6h", "distinct": "source"})
    feeds = [news.feed(slug) for slug in OUTLETS[:3]]
    for i in range(3):
        news.publish(OUTLETS[i], wire_copy(i, clock() - timedelta(minutes=30 - i)))
    async with running(settings_for(tmp_path, feeds, webhook), analyzer, clock) as app:
        await app.run_cycle(force=True)
        [alert] = await app.store.alerts()
    [sent] = payloads(webhook, "/ops")
    assert sent["story"]["source_count"] == 3
    assert source_feeds(alert) == set(OUTLETS[:3])


async def test_threshold_window_ignores_older_matches(tmp_path: Path, analyzer: Analyzer,
                                                      feed_server: FeedServer,
                                                      webhook: WebhookReceiver) -> None:
    """Matches published before the 6h window do not count towards the threshold."""
    clock = Clock()
    news = Newsroom(feed_server)
    write_rule(tmp_path / "rules", threshold={"count": 3, "window": "6h", "distinct": "source"})
    feeds = [news.feed(slug) for slug in OUTLETS[:5]]
    start = clock()
    news.publish(OUTLETS[0], wire_copy(0, start - timedelta(hours=10)))
    news.publish(OUTLETS[1], wire_copy(1, start - timedelta(hours=9)))
    news.publish(OUTLETS[2], wire_copy(2, start - timedelta(minutes=30)))
    async with running(settings_for(tmp_path, feeds, webhook), analyzer, clock) as app:
        first = await app.run_cycle(force=True)
        clock.advance(hours=1)
        news.publish(OUTLETS[3], wire_copy(3, clock() - timedelta(minutes=20)))
        second = await app.run_cycle(force=True)
        clock.advance(hours=1)
        news.publish(OUTLETS[4], wire_copy(4, clock() - timedelta(minutes=20)))
        third = await app.run_cycle(force=True)
        by_feed = {m.feed_id: m.state for m in await app.store.matches(rule_id=RULE_ID)}
        [alert] = await app.store.alerts()
    assert (first.alerts, second.alerts, len(third.alerts)) == ([], [], 1)
    assert by_feed == {OUTLETS[0]: "below-threshold", OUTLETS[1]: "below-threshold",
                       OUTLETS[2]: "below-threshold", OUTLETS[3]: "below-threshold",
                       OUTLETS[4]: "new"}
    assert alert.feed_id == OUTLETS[4]
    assert per_channel(webhook) == {"/ops": 1, "/desk": 1}


async def test_threshold_counts_sources_that_arrive_out_of_order(
        tmp_path: Path, analyzer: Analyzer, feed_server: FeedServer,
        webhook: WebhookReceiver) -> None:
    """Three sources published within an hour fire the threshold even when the feeds that
    published first are polled last (slow feeds)."""
    clock = Clock()
    news = Newsroom(feed_server)
    write_rule(tmp_path / "rules", threshold={"count": 3, "window": "6h", "distinct": "source"})
    feeds = [news.feed(slug) for slug in OUTLETS[:3]]
    async with running(settings_for(tmp_path, feeds, webhook), analyzer, clock) as app:
        for i, minutes in enumerate((10, 30, 50)):  # each one published before the last
            news.publish(OUTLETS[i], wire_copy(i, clock() - timedelta(minutes=minutes)))
            await app.run_cycle(force=True)
            clock.advance(minutes=5)
        states = sorted(m.state for m in await app.store.matches(rule_id=RULE_ID))
    assert states == ["below-threshold", "below-threshold", "new"]
    assert per_channel(webhook) == {"/ops": 1, "/desk": 1}


# --- c. dedupe ------------------------------------------------------------------------


async def test_dedupe_holds_back_other_stories_within_the_window(
        tmp_path: Path, analyzer: Analyzer, feed_server: FeedServer,
        webhook: WebhookReceiver) -> None:
    """dedupe [rule] 24h: a second story is recorded as deduped (across a restart); after
    the window a third story alerts again."""
    clock = Clock()
    news = Newsroom(feed_server)
    write_rule(tmp_path / "rules", dedupe={"key": ["rule"], "window": "24h"})
    settings = settings_for(tmp_path, [news.feed("wire")], webhook)
    news.publish("wire", story("poznan", clock() - timedelta(minutes=30)))
    async with running(settings, analyzer, clock) as app:
        first = await app.run_cycle(force=True)
    [fired] = first.alerts
    clock.advance(hours=3)
    news.publish("wire", story("wroclaw", clock() - timedelta(minutes=30)))
    async with running(settings, analyzer, clock) as app:  # restarted
        second = await app.run_cycle(force=True)
        [deduped] = await app.store.matches(state="deduped")
        clock.advance(hours=24)
        news.publish("wire", story("katowice", clock() - timedelta(minutes=30)))
        third = await app.run_cycle(force=True)
        alerts = await app.store.alerts()
    assert second.alerts == [] and second.suppressed == 1
    assert deduped.entry_title == STORIES["wroclaw"][0] and deduped.alert_id == fired.id
    assert len(third.alerts) == 1 and third.alerts[0].entry_title == STORIES["katowice"][0]
    assert len(alerts) == 2
    assert [p["entry"]["title"] for p in payloads(webhook, "/ops")] == [
        STORIES["poznan"][0], STORIES["katowice"][0]]
    assert per_channel(webhook) == {"/ops": 2, "/desk": 2}


async def test_dedupe_holds_back_a_story_published_earlier_but_fetched_later(
        tmp_path: Path, analyzer: Analyzer, feed_server: FeedServer,
        webhook: WebhookReceiver) -> None:
    """A second story that reaches the service after the first alert, though published an
    hour before it, is within the 24h dedupe window too."""
    clock = Clock()
    news = Newsroom(feed_server)
    write_rule(tmp_path / "rules", dedupe={"key": ["rule"], "window": "24h"})
    feeds = [news.feed("fast"), news.feed("slow")]
    async with running(settings_for(tmp_path, feeds, webhook), analyzer, clock) as app:
        news.publish("fast", story("poznan", clock() - timedelta(minutes=5), "fast"))
        await app.run_cycle(force=True)
        clock.advance(minutes=10)
        news.publish("slow", story("wroclaw", clock() - timedelta(hours=1), "slow"))
        late = await app.run_cycle(force=True)
    assert late.alerts == [] and late.suppressed == 1
    assert per_channel(webhook) == {"/ops": 1, "/desk": 1}


MINISTERS = {
    "austin-belousov": (
        "Austin and Belousov speak by phone",
        "US Defense Secretary Lloyd Austin spoke by phone with Russian Defence Minister Andrei "
        "Belousov on Friday, the Pentagon said. The two discussed the war in Ukraine."),
    "austin-belousov-again": (
        "Austin and Belousov hold a second call",
        "Lloyd Austin held another call with Andrei Belousov on Friday evening to discuss the "
        "risk of escalation, officials in Washington said."),
    "austin-belousov-chiefs": (
        "Second call between US and Russian defence chiefs",
        "Lloyd Austin held another call with Andrei Belousov on Friday night to discuss "
        "prisoner exchanges, officials in Washington said."),
    "austin-pistorius": (
        "Austin meets Pistorius in Berlin",
        "US Defense Secretary Lloyd Austin met German Defence Minister Boris Pistorius in "
        "Berlin on Friday to talk about air defence deliveries."),
    "austin-belousov-sunday": (
        "Austin, Belousov talk again after drone incident",
        "Defense Secretary Lloyd Austin and Russian Defence Minister Andrei Belousov talked on "
        "Sunday about a drone that came down near a NATO exercise, according to both sides."),
    "austin-belousov-titles": (
        "Pentagon chief talks to Russian counterpart",
        "The Pentagon chief held a call with his Russian counterpart on Friday night. Lloyd "
        "Austin and Andrei Belousov discussed prisoner exchanges, a spokesman said."),
}


def minister_item(name: str, published: datetime) -> Item:
    title, body = MINISTERS[name]
    return Item(title, body, f"https://www.wire.example.com/defence/{name}", published)


def write_minister_rule(rules_dir: Path) -> None:
    rules_dir.mkdir(parents=True, exist_ok=True)
    (rules_dir / "minister-call.yaml").write_text(yaml.safe_dump({
        "id": "minister-call", "title": "Defence ministers of two countries talk",
        "tags": ["military"], "scope": "sentence",
        "when": {"all": [{"entity": {"role": "defence-minister", "min": 2,
                                     "distinct": "country"}},
                         {"lemma": ["call", "speak", "talk", "meet"]}]},
        "dedupe": {"key": ["rule", "entity.role:defence-minister"], "window": "24h"}}))


async def test_dedupe_by_minister_pair(tmp_path: Path, analyzer: Analyzer,
                                       feed_server: FeedServer,
                                       webhook: WebhookReceiver) -> None:
    """dedupe [rule, entity.role:defence-minister]: the same pair within 24h is deduped; a
    different pair alerts; the same pair two days later alerts again."""
    day = datetime(2024, 7, 12, tzinfo=UTC)  # roles are resolved on the publication date
    news = Newsroom(feed_server)
    write_minister_rule(tmp_path / "rules")
    settings = settings_for(tmp_path, [news.feed("wire")], webhook)
    news.publish("wire", minister_item("austin-belousov", day + timedelta(hours=10)))
    news.publish("wire", minister_item("austin-belousov-again", day + timedelta(hours=18)))
    news.publish("wire", minister_item("austin-pistorius", day + timedelta(hours=20)))
    async with running(settings, analyzer, Clock()) as app:
        first = await app.run_cycle(force=True)
        news.publish("wire", minister_item("austin-belousov-sunday",
                                           day + timedelta(days=2, hours=9)))
        second = await app.run_cycle(force=True)
        states = {m.entry_title: m.state for m in await app.store.matches(rule_id="minister-call")}
    assert sorted(a.entry_title for a in first.alerts) == [
        "Austin and Belousov speak by phone", "Austin meets Pistorius in Berlin"]
    assert states["Austin and Belousov hold a second call"] == "deduped"
    assert len(second.alerts) == 1
    assert per_channel(webhook) == {"/ops": 3, "/desk": 3}


@pytest.mark.parametrize("later", [
    "austin-belousov-chiefs",
    "austin-belousov-titles",
])
async def test_dedupe_by_minister_pair_named_by_title(later: str, tmp_path: Path,
                                                      analyzer: Analyzer,
                                                      feed_server: FeedServer,
                                                      webhook: WebhookReceiver) -> None:
    """The same pair is deduped when a story also names them by title ('defence chiefs',
    'Pentagon chief', 'his Russian counterpart')."""
    day = datetime(2024, 7, 12, tzinfo=UTC)
    news = Newsroom(feed_server)
    write_minister_rule(tmp_path / "rules")
    settings = settings_for(tmp_path, [news.feed("wire")], webhook)
    news.publish("wire", minister_item("austin-belousov", day + timedelta(hours=10)))
    news.publish("wire", minister_item(later, day + timedelta(hours=21)))
    async with running(settings, analyzer, Clock()) as app:
        await app.run_cycle(force=True)
        states = {m.entry_title: m.state for m in await app.store.matches(rule_id="minister-call")}
    assert states[MINISTERS[later][0]] == "deduped"


# --- d. silences ----------------------------------------------------------------------


async def test_silence_by_rule_from_the_cli(tmp_path: Path, analyzer: Analyzer,
                                            feed_server: FeedServer,
                                            webhook: WebhookReceiver) -> None:
    """`ingest silence add --rule` records the next alert as silenced and sends nothing;
    `silence list` shows it; `silence remove` ends it and alerts flow again."""
    clock = Clock()
    news = Newsroom(feed_server)
    write_rule(tmp_path / "rules")
    feeds = [news.feed("wire")]
    settings = settings_for(tmp_path, feeds, webhook)
    config = write_config(tmp_path, feeds, webhook)
    async with running(settings, analyzer, clock) as app:
        added = await cli("silence", "add", "--rule", RULE_ID, "--for", "8h",
                          "--reason", "drill at the Gdansk plant", "--config", str(config))
        assert added.exit_code == 0, added.output
        assert "rule=plant-fire" in added.output
        news.publish("wire", story("poznan", clock() - timedelta(minutes=10)))
        silenced = await app.run_cycle(force=True)
        listed = await cli("silence", "list", "--json", "--config", str(config))
        [shown] = json.loads(listed.stdout)
        assert webhook.received == []
        removed = await cli("silence", "remove", str(shown["id"]), "--config", str(config))
        news.publish("wire", story("wroclaw", clock() - timedelta(minutes=5)))
        clock.advance(seconds=1)  # the service acts after the removal
        after = await app.run_cycle(force=True)
        states = {m.entry_title: m.state for m in await app.store.matches(rule_id=RULE_ID)}
        gone = await cli("silence", "list", "--config", str(config))
    assert [a.state for a in silenced.alerts] == ["silenced"]
    assert silenced.delivered == 0
    assert (shown["rule"], shown["reason"], shown["active"]) == (
        RULE_ID, "drill at the Gdansk plant", True)
    assert removed.exit_code == 0 and f"silence #{shown['id']} ended" in removed.output
    assert "no silences in force" in gone.output
    assert [a.state for a in after.alerts] == ["fired"]
    assert states == {STORIES["poznan"][0]: "silenced", STORIES["wroclaw"][0]: "new"}
    assert [p["entry"]["title"] for p in payloads(webhook, "/ops")] == [STORIES["wroclaw"][0]]


async def test_silenced_story_stays_silent_as_copies_arrive(
        tmp_path: Path, analyzer: Analyzer, feed_server: FeedServer,
        webhook: WebhookReceiver) -> None:
    """Later copies of a silenced story update it silently, even after the silence ends."""
    clock = Clock()
    news = Newsroom(feed_server)
    write_rule(tmp_path / "rules", on_update="notify")
    feeds = [news.feed(slug) for slug in OUTLETS[:3]]
    config = write_config(tmp_path, feeds, webhook)
    async with running(settings_for(tmp_path, feeds, webhook), analyzer, clock) as app:
        added = await cli("silence", "add", "--rule", RULE_ID, "--for", "1h", "--reason", "x",
                          "--config", str(config))
        assert added.exit_code == 0, added.output
        news.publish(OUTLETS[0], wire_copy(0, clock() - timedelta(minutes=5)))
        await app.run_cycle(force=True)
        news.publish(OUTLETS[1], wire_copy(1, clock() - timedelta(minutes=4)))
        await app.run_cycle(force=True)
        clock.advance(hours=2)
        news.publish(OUTLETS[2], wire_copy(2, clock() - timedelta(minutes=4)))
        await app.run_cycle(force=True)
        [alert] = await app.store.alerts()
    assert alert.state == "silenced" and source_feeds(alert) == set(OUTLETS[:3])
    assert webhook.received == []


@pytest.mark.parametrize(("option", "value"), [("--tag", "industry"), ("--entity", "Poland"),
                                               ("--entity", "country:pl")])
async def test_silence_by_tag_or_entity(option: str, value: str, tmp_path: Path,
                                        analyzer: Analyzer, feed_server: FeedServer,
                                        webhook: WebhookReceiver) -> None:
    """A silence by tag or by entity (name or gazetteer id) covers the rule's alerts."""
    clock = Clock()
    news = Newsroom(feed_server)
    write_rule(tmp_path / "rules")
    feeds = [news.feed("wire")]
    config = write_config(tmp_path, feeds, webhook)
    async with running(settings_for(tmp_path, feeds, webhook), analyzer, clock) as app:
        added = await cli("silence", "add", option, value, "--for", "2h", "--reason", "noise",
                          "--config", str(config))
        assert added.exit_code == 0, added.output
        news.publish("wire", story("gdynia", clock() - timedelta(minutes=10)))
        report = await app.run_cycle(force=True)
    assert [a.state for a in report.alerts] == ["silenced"]
    assert webhook.received == []


async def test_silence_on_another_entity_or_tag_does_not_apply(
        tmp_path: Path, analyzer: Analyzer, feed_server: FeedServer,
        webhook: WebhookReceiver) -> None:
    """Silences naming an entity or tag the alert lacks, or rule AND another tag, let it through."""
    clock = Clock()
    news = Newsroom(feed_server)
    write_rule(tmp_path / "rules")
    feeds = [news.feed("wire")]
    config = write_config(tmp_path, feeds, webhook)
    async with running(settings_for(tmp_path, feeds, webhook), analyzer, clock) as app:
        for args in (["--entity", "Germany"], ["--tag", "military"],
                     ["--rule", RULE_ID, "--tag", "military"]):
            added = await cli("silence", "add", *args, "--for", "2h", "--reason", "other",
                              "--config", str(config))
            assert added.exit_code == 0, added.output
        news.publish("wire", story("lodz", clock() - timedelta(minutes=10)))
        report = await app.run_cycle(force=True)
    assert [a.state for a in report.alerts] == ["fired"]
    assert per_channel(webhook) == {"/ops": 1, "/desk": 1}


async def test_expired_silence_no_longer_applies(tmp_path: Path, analyzer: Analyzer,
                                                 feed_server: FeedServer,
                                                 webhook: WebhookReceiver) -> None:
    """Once the clock passes a silence's expiry, the rule's next story alerts as usual."""
    clock = Clock()
    news = Newsroom(feed_server)
    write_rule(tmp_path / "rules")
    feeds = [news.feed("wire")]
    config = write_config(tmp_path, feeds, webhook)
    async with running(settings_for(tmp_path, feeds, webhook), analyzer, clock) as app:
        added = await cli("silence", "add", "--rule", RULE_ID, "--for", "8h", "--reason", "x",
                          "--config", str(config))
        assert added.exit_code == 0, added.output
        news.publish("wire", story("rzeszow", clock() - timedelta(minutes=10)))
        during = await app.run_cycle(force=True)
        clock.advance(hours=8, minutes=1)
        news.publish("wire", story("katowice", clock() - timedelta(minutes=10)))
        after = await app.run_cycle(force=True)
        listed = await cli("silence", "list", "--all", "--json", "--config", str(config))
    assert [a.state for a in during.alerts] == ["silenced"]
    assert [a.state for a in after.alerts] == ["fired"]
    assert [p["entry"]["title"] for p in payloads(webhook, "/ops")] == [STORIES["katowice"][0]]
    assert [s["rule"] for s in json.loads(listed.stdout)] == [RULE_ID]
