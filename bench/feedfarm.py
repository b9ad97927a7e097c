"""A synthetic feed farm for ``bench/poll.py``: N RSS 2.0 feeds on loopback, many ports.

    .venv/bin/python bench/feedfarm.py --feeds 1000 [--items 20] [--ports 64]

Feed ``i`` is ``/f/<i>.xml``: 20 distinct items (guid, link, pubDate, category, an HTML
description of a few hundred characters of news-like text built from the word lists
below), pre-rendered at start.  Every port serves every feed; clients spread feeds over
the ports round-robin (:meth:`Farm.urls`), so that a client keying hosts by host:port
sees ``--ports`` hosts, as a real deployment sees many outlets.  Each answer carries an
``ETag`` and a ``Last-Modified``; a matching ``If-None-Match`` (or, without one, an
``If-Modified-Since`` not older than the feed) gets ``304``.  ``/stats`` counts answers
per status and the farm's CPU time; ``/stats?reset=1`` zeroes the counts (:func:`farm_stats`).

Run as a script it binds 127.0.0.1 only, prints one JSON line ``{"ports": [...]}`` when
ready and serves until its stdin closes.  :class:`Farm` runs it as a child process, so
its CPU time is not the client's (on a 2-core machine it still competes for the cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from html import escape
from typing import Any, Self

from aiohttp import web

COUNTRIES = ["Germany", "France", "Japan", "India", "Brazil", "Canada", "Poland", "Turkey",
             "Egypt", "Kenya", "Mexico", "Norway", "Vietnam", "Chile", "Nigeria", "Spain",
             "Indonesia", "Australia", "Ukraine", "South Korea", "Morocco", "Argentina"]
CITIES = ["Berlin", "Paris", "Tokyo", "New Delhi", "Brasilia", "Ottawa", "Warsaw", "Ankara",
          "Cairo", "Nairobi", "Mexico City", "Oslo", "Hanoi", "Santiago", "Abuja", "Madrid",
          "Jakarta", "Canberra", "Kyiv", "Seoul", "Rabat", "Buenos Aires", "Geneva"]
ROLES = ["prime minister", "foreign minister", "defence minister", "finance minister",
         "central bank governor", "opposition leader", "trade commissioner", "health minister",
         "interior minister", "energy minister", "army chief of staff", "president"]
BODIES = ["parliament", "the central bank", "the supreme court", "the election commission",
          "the coast guard", "the health ministry", "the navy", "the statistics office",
          "a parliamentary committee", "the energy regulator", "the port authority",
          "the audit office", "the armed forces", "the finance ministry", "state media"]
TOPICS = ["grain exports", "a border dispute", "fuel prices", "a rail strike", "flood relief",
          "a cyberattack on hospitals", "a new gas pipeline", "fishing rights",
          "the budget deficit", "wildfire evacuations", "a corruption inquiry",
          "drone sightings near an airbase", "a missile test", "refugee arrivals",
          "a power grid failure", "interest rates", "a ceasefire proposal",
          "sanctions on shipping firms", "a teachers' pay deal", "copper mining licences",
          "a bird flu outbreak", "naval exercises", "vaccine supplies", "a drought"]
VERBS = ["announces", "rejects", "warns over", "signs deal on", "opens talks on",
         "calls for inquiry into", "backs plan for", "delays vote on", "defends response to",
         "faces protests over", "unveils measures on", "drops opposition to"]
NOUN_PHRASES = ["officials", "analysts", "residents", "diplomats", "economists", "lawmakers",
                "union leaders", "aid workers", "investors", "local authorities", "witnesses"]
REPORTING = ["said on Tuesday", "told reporters", "said in a statement", "confirmed late on Friday",
             "wrote on social media", "said after a cabinet meeting", "told state radio",
             "said at a news conference", "added, without giving details"]
DETAILS = ["the measures would take effect next month", "talks would resume within days",
           "no casualties had been reported", "damage was still being assessed",
           "the figures were higher than expected", "an agreement was close",
           "the decision could be challenged in court", "more troops would be sent",
           "prices had risen for a third straight month", "the plan had broad support",
           "several hundred people had been evacuated", "the ministry would publish a review",
           "exports fell by nearly a fifth", "the vote was postponed until next week"]
CONTEXT = ["The move follows weeks of pressure from", "The announcement comes amid criticism from",
           "It was welcomed by", "The dispute has strained ties with",
           "Markets reacted calmly, according to", "The issue was raised earlier by",
           "Similar steps were taken last year by", "Questions remain, said"]
SECTIONS = ["world", "politics", "business", "europe", "asia", "africa", "americas", "defence"]
QUOTES = ["“We will not accept this,”", "“This is a first step,”", "“The situation is serious,”",
          "“We expect results quickly,”", "“Nothing has been decided yet,”"]

NAMESPACES = 'xmlns:dc="http://purl.org/dc/elements/1.1/"'


def _sentence(rng: random.Random, country: str) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return (f"{country}'s {rng.choice(ROLES)} {rng.choice(REPORTING)} that "
                f"{rng.choice(DETAILS)}.")
    if kind == 1:
        return f"{rng.choice(CONTEXT)} {rng.choice(NOUN_PHRASES)} in {rng.choice(CITIES)}."
    if kind == 2:
        return (f"{rng.choice(QUOTES)} a spokesperson for {rng.choice(BODIES)} said, adding "
                f"that {rng.choice(DETAILS)}.")
    return (f"According to {rng.choice(BODIES)}, {rng.choice(TOPICS)} and "
            f"{rng.choice(TOPICS)} will dominate a meeting in {rng.choice(CITIES)} "
            f"on {rng.choice(['Monday', 'Wednesday', 'Thursday', 'the weekend'])}.")


def render_item(feed: int, item: int, rng: random.Random, published: float) -> str:
    country = rng.choice(COUNTRIES)
    topic = rng.choice(TOPICS)
    title = f"{country} {rng.choice(VERBS)} {topic}"
    if rng.random() < 0.4:
        title += f", {rng.choice(NOUN_PHRASES)} say"
    lead = (f"{rng.choice(CITIES).upper()} — {country}'s {rng.choice(ROLES)} said on "
            f"{rng.choice(['Monday', 'Tuesday', 'Friday', 'Sunday'])} that "
            f"{rng.choice(DETAILS)}, as {rng.choice(NOUN_PHRASES)} debated {topic}.")
    paragraphs = [lead] + [" ".join(_sentence(rng, country) for _ in range(rng.randint(1, 2)))
                           for _ in range(rng.randint(1, 2))]
    html = "".join(f"<p>{escape(p, quote=False)}</p>" for p in paragraphs)
    if rng.random() < 0.3:
        html += (f'<p><a href="https://news{feed % 50}.example/related/{item}">'
                 f"Read more on {escape(topic)}</a></p>")
    section = rng.choice(SECTIONS)
    slug = "-".join(title.lower().replace(",", "").replace("'", "").split()[:8])
    link = f"https://news{feed % 50}.example/{section}/{slug}-{feed}-{item}"
    when = format_datetime_gmt(published)
    return (f"<item><title>{escape(title)}</title><link>{link}</link>"
            f'<guid isPermaLink="false">farm-{feed}-{item}</guid><pubDate>{when}</pubDate>'
            f"<category>{section}</category><dc:creator>Staff reporter</dc:creator>"
            f"<description><![CDATA[{html}]]></description></item>")


def format_datetime_gmt(ts: float) -> str:
    return format_datetime(datetime.fromtimestamp(int(ts), UTC), usegmt=True)


def render_feed(feed: int, items: int, now: float) -> bytes:
    rng = random.Random(feed * 7919 + 17)
    newest = now - rng.randrange(60, 6 * 3600)
    body = "".join(render_item(feed, j, rng, newest - j * rng.randrange(600, 7200))
                   for j in range(items))
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" {NAMESPACES}>'
            f"<channel><title>Farm outlet {feed}</title><link>https://news{feed % 50}.example/"
            f"</link><description>Synthetic news feed {feed}</description><language>en"
            f"</language><lastBuildDate>{format_datetime_gmt(newest)}</lastBuildDate>{body}"
            f"</channel></rss>\n").encode()


class FarmApp:
    """The pre-rendered feeds and the per-status counts."""

    def __init__(self, feeds: int, items: int) -> None:
        now = time.time()
        self.bodies = [render_feed(i, items, now) for i in range(feeds)]
        self.etags = [f'"{zlib.crc32(b):08x}"' for b in self.bodies]
        self.modified_ts = int(now) - 60
        self.modified = format_datetime_gmt(self.modified_ts)
        self.counts: dict[str, int] = {}

    def _count(self, status: int) -> None:
        self.counts[str(status)] = self.counts.get(str(status), 0) + 1

    async def feed(self, request: web.Request) -> web.Response:
        try:
            i = int(request.match_info["n"])
            body, etag = self.bodies[i], self.etags[i]
        except (ValueError, IndexError):
            self._count(404)
            raise web.HTTPNotFound() from None
        headers = {"ETag": etag, "Last-Modified": self.modified}
        if self._fresh(request, etag):
            self._count(304)
            return web.Response(status=304, headers=headers)
        self._count(200)
        return web.Response(body=body, headers=headers,
                            content_type="application/rss+xml", charset="utf-8")

    def _fresh(self, request: web.Request, etag: str) -> bool:
        inm = request.headers.get("If-None-Match")
        if inm is not None:
            return etag in [t.strip().removeprefix("W/") for t in inm.split(",")] or inm == "*"
        ims = request.headers.get("If-Modified-Since")
        if ims:
            try:
                return parsedate_to_datetime(ims).timestamp() >= self.modified_ts
            except (TypeError, ValueError):
                return False
        return False

    def route(self, app: web.Application) -> None:
        app.router.add_get("/f/{n}.xml", self.feed)
        app.router.add_get("/stats", self.stats)

    @property
    def size(self) -> int:
        """Bytes of the feeds served."""
        return sum(map(len, self.bodies))

    async def stats(self, request: web.Request) -> web.Response:
        payload: dict[str, Any] = {"counts": dict(self.counts), "cpu_s": time.process_time()}
        if request.query.get("reset"):
            self.counts.clear()
        return web.json_response(payload)


async def serve(farm: FarmApp, ports: int) -> None:
    """Serve ``farm`` on ``ports`` loopback ports until stdin closes; first print one JSON
    line: the ports and the bytes of the feeds."""
    app = web.Application()
    farm.route(app)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    bound = []
    for _ in range(ports):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        await web.SockSite(runner, sock).start()
        bound.append(sock.getsockname()[1])
    print(json.dumps({"ports": bound, "bytes": farm.size}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    await runner.cleanup()


class Farm:
    """The farm as a child process: ``with Farm(n) as farm: farm.urls()``.  ``script``: the
    farm script the child runs (a subclass names its own, which calls :func:`main`)."""

    script = __file__

    def __init__(self, feeds: int, items: int = 20, ports: int = 64) -> None:
        self.feeds, self.items, self.nports = feeds, items, ports
        self.ports: list[int] = []
        self.bytes = 0
        self.urls_file = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Self:
        self._proc = subprocess.Popen(
            [sys.executable, self.script, "--feeds", str(self.feeds), "--items", str(self.items),
             "--ports", str(self.nports)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the feed farm did not start")
        ready = json.loads(line)
        self.ports, self.bytes = ready["ports"], ready["bytes"]
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(self.urls(), f)  # for clients in other processes
        self.urls_file = f.name
        return self

    def __exit__(self, *exc: object) -> None:
        if self.urls_file:
            os.unlink(self.urls_file)
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.ports[i % len(self.ports)]}/f/{i}.xml"
                for i in range(self.feeds)]

    @property
    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[0]}/stats"


def farm_stats(stats_url: str, reset: bool = False) -> dict[str, Any]:
    """The farm's answers per status since the last reset, and its CPU seconds."""
    with urllib.request.urlopen(stats_url + ("?reset=1" if reset else ""),
                                timeout=30) as response:
        stats: dict[str, Any] = json.load(response)
        return stats


def main(make: Callable[[int, int], FarmApp] = FarmApp, doc: str = __doc__) -> None:
    """The script: ``make(feeds, items)`` served (:func:`serve`); ``doc``: its help."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=100)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--ports", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(serve(make(args.feeds, args.items), args.ports))


if __name__ == "__main__":
    main()
