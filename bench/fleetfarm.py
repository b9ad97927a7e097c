"""A gated feed farm for ``bench/fleet.py``: ``bench/feedfarm.py``'s farm, with event news,
serving empty feeds until it is opened.

    .venv/bin/python bench/fleetfarm.py --feeds 100 [--items 20] [--ports 64]

Until ``POST /open``, every feed is a valid RSS document with no items (its own ETag), so
instances can start, poll and settle without being given work.  ``/open`` swaps in the
full documents (new ETags and Last-Modified): each instance's next poll of a feed gets a
200 with ``--items`` items.  About a quarter of the items report an event the shipped
rules watch (a missile test, sanctions, a naval clash, ministers' talks…), written from
the templates below with countries, numbers and days drawn per item, so that stories
vary; the rest are ``feedfarm``'s quiet world news.  ``/stats`` is ``feedfarm``'s.

:class:`GatedFarm` runs it as a child process (as :class:`feedfarm.Farm` does);
:meth:`GatedFarm.open` opens it.
"""

from __future__ import annotations

import json
import random
import time
import urllib.request
from html import escape

from aiohttp import web
from feedfarm import (  # bench/
    NAMESPACES,
    Farm,
    FarmApp,
    format_datetime_gmt,
    main,
    render_item,
)

# (country, demonym): actors and targets of the events.
STATES = [("China", "Chinese"), ("Russia", "Russian"), ("Japan", "Japanese"),
          ("India", "Indian"), ("Pakistan", "Pakistani"), ("Iran", "Iranian"),
          ("Turkey", "Turkish"), ("France", "French"), ("Germany", "German"),
          ("Poland", "Polish"), ("Ukraine", "Ukrainian"), ("the Philippines", "Philippine"),
          ("Vietnam", "Vietnamese"), ("South Korea", "South Korean"),
          ("North Korea", "North Korean"), ("Israel", "Israeli"), ("Egypt", "Egyptian"),
          ("Australia", "Australian"), ("Britain", "British"), ("Finland", "Finnish"),
          ("Greece", "Greek"), ("Canada", "Canadian"), ("Sweden", "Swedish")]
PLACES = ["Khartoum", "Tripoli", "Niamey", "Port-au-Prince", "Kabul", "Bamako", "Juba",
          "Sanaa", "Beirut", "Minsk", "Manila", "Hanoi", "Vilnius", "Tallinn", "Riga"]
WEAPONS = ["ballistic missiles", "cruise missiles", "short-range missiles",
           "hypersonic missiles", "anti-ship missiles", "submarine-launched missiles"]
SECTORS = ["shipping firms", "drone makers", "banks", "oil traders", "arms suppliers",
           "airlines", "mining companies", "chip importers"]
AIRCRAFT = ["fighter jets", "attack helicopters", "transport aircraft", "tanker aircraft",
            "maritime patrol aircraft"]
TARGETS = ["railway signalling system", "power grid operator", "foreign ministry",
           "largest port", "election commission", "water utilities", "defence contractors"]
FEATURES = ["shoal", "reef", "atoll", "islands", "sandbank"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
COUNTS = ["two", "three", "four", "five", "six", "several", "eight"]
ISSUES = ["joint patrols", "air defence", "ammunition production", "a training mission",
          "port access", "exercises next spring", "intelligence sharing"]
REACTIONS = ["Officials in {B} called the move provocative and summoned {a} diplomats.",
             "Analysts said the step was the most serious of its kind this year.",
             "The foreign ministry in {B} said it was studying its response.",
             "Regional governments urged both sides to show restraint.",
             "{A} said the decision was in line with its commitments.",
             "Markets in {B} fell slightly after the announcement.",
             "A spokesperson for {A} declined to give further details.",
             "It is the {nth} such incident reported since the start of the year."]
NTH = ["second", "third", "fourth", "fifth", "sixth"]

# (rule the event is written for, headline, lead sentence)
EVENTS = [
    ("weapons-test", "{A} test-fires {weapon}, {B} says",
     "{A} test-fired {n} {weapon} into the sea off its {side} coast on {day}, {b} "
     "military officials said."),
    ("sanctions-announced", "{A} imposes sanctions on {b} {sector}",
     "{A} adopted new sanctions on {n} {b} {sector} on {day}, freezing their assets and "
     "banning travel for their executives."),
    ("defence-minister-contact", "{a} and {b} defence ministers hold talks on {issue}",
     "{A}'s defence minister held talks with his {b} counterpart in {place} on {day} "
     "about {issue}."),
    ("naval-incident", "{a} coast guard ship rams {b} vessel near disputed {feature}",
     "A {a} coast guard ship rammed a {b} supply vessel near the disputed {feature} on "
     "{day}, {B}'s foreign ministry said."),
    ("airspace-violation", "{a} military aircraft violate {b} airspace",
     "{N} {a} military aircraft violated {b} airspace for {minutes} minutes on {day}, the "
     "defence ministry in {B} said."),
    ("embassy-closure", "{A} closes embassy in {place} as fighting spreads",
     "{A} closed its embassy in {place} and evacuated its staff on {day} as fighting spread "
     "to the centre of the city."),
    ("ceasefire-agreed", "{A} and {B} agree ceasefire after {n} days of clashes",
     "{A} and {B} agreed a ceasefire on {day} after {n} days of clashes along their border, "
     "mediators in {place} said."),
    ("force-deployment", "{A} to deploy {thousands} troops to {B}",
     "{A} will deploy a brigade of {thousands} troops to {B} from next year, its defence "
     "minister said on {day}."),
    ("state-cyberattack", "{B} blames {a} hackers for attack on its {target}",
     "{B} said {a} military intelligence hackers were behind a cyberattack on its {target} "
     "on {day}."),
    ("arms-transfer", "{A} approves sale of {count} {aircraft} to {B}",
     "{A} approved the sale of {count} {aircraft} to {B} worth ${billions} billion on {day}."),
]
EVENT_SHARE = 0.25


def render_event(feed: int, item: int, rng: random.Random, published: float) -> str:
    """An item reporting an event one of the shipped rules watches, with drawn slots."""
    rule, headline, lead = EVENTS[rng.randrange(len(EVENTS))]
    (a_name, a_dem), (b_name, b_dem) = rng.sample(STATES, 2)
    n = rng.choice(COUNTS)
    slots = {"A": a_name, "a": a_dem, "B": b_name, "b": b_dem, "day": rng.choice(DAYS),
             "weapon": rng.choice(WEAPONS), "n": n, "N": n.capitalize(),
             "place": rng.choice(PLACES), "side": rng.choice(["east", "west", "south", "north"]),
             "issue": rng.choice(ISSUES), "sector": rng.choice(SECTORS),
             "feature": rng.choice(FEATURES), "minutes": str(rng.randint(3, 40)),
             "target": rng.choice(TARGETS), "aircraft": rng.choice(AIRCRAFT),
             "thousands": f"{rng.randint(2, 9)},{rng.choice(['000', '500'])}",
             "count": str(rng.randint(6, 80)), "billions": str(rng.randint(1, 30)),
             "nth": rng.choice(NTH)}
    title, lead = headline.format(**slots), lead.format(**slots)
    reactions = " ".join(r.format(**slots) for r in rng.sample(REACTIONS, rng.randint(1, 3)))
    body = [lead[0].upper() + lead[1:], reactions]
    html = "".join(f"<p>{escape(p, quote=False)}</p>" for p in body)
    link = f"https://news{feed % 50}.example/{rule}/{feed}-{item}"
    return (f"<item><title>{escape(title[0].upper() + title[1:])}</title><link>{link}</link>"
            f'<guid isPermaLink="false">fleet-{feed}-{item}</guid>'
            f"<pubDate>{format_datetime_gmt(published)}</pubDate><category>world</category>"
            f"<description><![CDATA[{html}]]></description></item>")


def render_feed(feed: int, items: int, now: float) -> bytes:
    """Feed ``feed``: ``items`` items, about :data:`EVENT_SHARE` of them events."""
    rng = random.Random(feed * 6151 + 29)
    newest = now - rng.randrange(60, 3600)
    body = "".join((render_event if rng.random() < EVENT_SHARE else render_item)(
        feed, j, rng, newest - j * rng.randrange(300, 3600)) for j in range(items))
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" {NAMESPACES}>'
            f"<channel><title>Fleet outlet {feed}</title><link>https://news{feed % 50}"
            f".example/</link><description>Synthetic news feed {feed}</description>"
            f"<language>en</language><lastBuildDate>{format_datetime_gmt(newest)}"
            f"</lastBuildDate>{body}</channel></rss>\n").encode()


class GatedFarmApp(FarmApp):
    """``FarmApp`` serving its empty documents until :meth:`open` swaps in the full ones."""

    def __init__(self, feeds: int, items: int) -> None:
        super().__init__(feeds, 0)  # valid feeds with no items, each with its ETag
        now = time.time()
        self.full = [render_feed(i, items, now) for i in range(feeds)]
        self.opened_at: float | None = None

    def route(self, app: web.Application) -> None:
        super().route(app)
        app.router.add_post("/open", self.open)

    @property
    def size(self) -> int:
        return sum(map(len, self.full))

    async def open(self, request: web.Request) -> web.Response:
        if self.opened_at is None:
            self.opened_at = time.time()
            self.bodies = self.full
            self.etags = [f'"full-{i}-{len(b)}"' for i, b in enumerate(self.full)]
            self.modified_ts = int(self.opened_at)
            self.modified = format_datetime_gmt(self.modified_ts)
        return web.json_response({"opened_at": self.opened_at})


class GatedFarm(Farm):
    """The gated farm as a child process: ``with GatedFarm(n, items) as farm: farm.open()``."""

    script = __file__

    def open(self) -> float:
        """Serve the full feeds from now on; the farm's time of opening (``time.time()``)."""
        request = urllib.request.Request(self.stats_url.replace("/stats", "/open"),
                                         method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            opened: float = json.load(response)["opened_at"]
            return opened


if __name__ == "__main__":
    main(GatedFarmApp, __doc__)
