"""``ingest demo``: the whole path on loopback, with the embedded sample feeds.

Starts a feed server for ``seeds/feeds/``, a webhook receiver and an SMTP sink,
runs the real service for one cycle (httpx, SQLite in a temporary folder, spaCy,
the shipped rules, delivery), then a second cycle to show that nothing repeats, and
finally sends each channel a test alert as ``ingest channels test`` does.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ingest.config import Settings
from ingest.notify.probe import ProbeResult, probe_channels
from ingest.notify.signing import HEADER, verify
from ingest.service.app import App
from ingest.testing import FeedServer, SmtpSink, WebhookReceiver

DEMO_SECRET = "demo-secret-change-me"


def find_dir(name: str, explicit: Path | None) -> Path:
    """``explicit``, else ``./name``, else the folder beside the installed package."""
    if explicit is not None:
        return explicit
    here = Path.cwd() / name
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / name


@dataclass
class DemoResult:
    feeds: int
    entries: int
    alerts: list[str]  # "rule-id: entry title"
    alerted_entries: int  # entries that raised at least one alert
    webhook: list[dict[str, object]]
    webhook_signed: bool
    emails: list[str]  # subjects
    second_cycle_alerts: int
    second_cycle_not_modified: int
    # `ingest channels test` of each channel, run after the counts above were taken
    probes: list[ProbeResult] = field(default_factory=list)


def demo_settings(seeds: Path, rules: Path, workdir: Path, feeds: FeedServer,
                  hook: WebhookReceiver, smtp: SmtpSink) -> Settings:
    urls = feeds.serve_dir(seeds / "feeds")
    return Settings.model_validate({
        "database_url": f"sqlite:///{workdir / 'ingest.db'}",
        "rules_dir": str(rules),
        "feeds": [{"id": Path(name).stem, "url": url, "title": name} for name, url in urls.items()],
        "channels": {
            "ops-webhook": {"type": "webhook", "url": hook.url("/alerts"), "secret": DEMO_SECRET},
            "analysts-email": {"type": "email", "host": "127.0.0.1", "port": smtp.port,
                               "security": "none", "from": "ingest@localhost",
                               "to": ["analysts@localhost"]},
        },
        "source": "<demo>",
    })


async def run_demo(seeds: Path, rules: Path, say: Callable[[str], None]) -> DemoResult:
    with tempfile.TemporaryDirectory(prefix="ingest-demo-") as tmp, FeedServer() as feeds, \
            WebhookReceiver() as hook, SmtpSink() as smtp:
        settings = demo_settings(seeds, rules, Path(tmp), feeds, hook, smtp)
        say(f"Feed server   {feeds.url('/')}  ({len(feeds.routes)} sample feeds from {seeds})")
        say(f"Webhook       {hook.url('/alerts')}")
        say(f"SMTP sink     127.0.0.1:{smtp.port}")
        say(f"Database      {settings.database_url}")
        say("Loading the spaCy model and the rules…")
        app = await App.start(settings)
        try:
            first = await app.run_cycle(force=True)
            second = await app.run_cycle(force=True)
        finally:
            await app.close()
        payloads = [json.loads(r.body) for r in hook.received]
        signed = all(verify(DEMO_SECRET, r.headers.get(HEADER, ""), r.body, time.time())
                     for r in hook.received)
        result = DemoResult(
            feeds=first.polled, entries=first.new_entries,
            alerts=[f"{a.rule_id}: {a.entry_title}" for a in first.alerts],
            # the payloads list every copy of a story; the cycle's alerts only the first
            alerted_entries=len({(s.get("feed"), s.get("entry_key"))
                                 for p in payloads for s in p["story"]["sources"]}),
            webhook=payloads, webhook_signed=signed and bool(hook.received),
            emails=[str(m["Subject"]) for m in smtp.messages],
            second_cycle_alerts=len(second.alerts),
            second_cycle_not_modified=second.not_modified)
        # The test alerts reach the same sinks, so they are sent after the counting.
        result.probes = await probe_channels(settings, list(settings.channels))
        return result


def _other_sources(p: dict[str, object]) -> list[dict[str, object]]:
    """The story's sources in a payload other than the alert's own entry."""
    story, entry = p["story"], p["entry"]
    assert isinstance(story, dict) and isinstance(entry, dict)
    return [s for s in story["sources"]
            if (s.get("feed"), s.get("entry_key")) != (entry["feed"], entry["key"])]


def report_lines(r: DemoResult) -> list[str]:
    lines = ["", f"Cycle 1: polled {r.feeds} feeds, {r.entries} new entries, "
             f"{len(r.alerts)} alerts."]
    by_alert: dict[str, dict[str, object]] = {}
    for p in r.webhook:
        rule, entry = p["rule"], p["entry"]
        assert isinstance(rule, dict) and isinstance(entry, dict)
        by_alert[f"{rule['id']}: {entry['title']}"] = p
    for a in r.alerts:
        lines.append(f"  ALERT  {a}")
        others = _other_sources(by_alert[a]) if a in by_alert else []
        lines += [f"         + same story from {s.get('feed')}: {s.get('title')}" for s in others]
    lines.append(f"  quiet  {r.entries - r.alerted_entries} other entries raised no alert")
    lines += ["", f"Webhook received {len(r.webhook)} alert(s) "
              f"(signatures {'verified' if r.webhook_signed else 'NOT verified'}):"]
    for p in r.webhook:
        rule, entry, story = p["rule"], p["entry"], p["story"]
        assert isinstance(rule, dict) and isinstance(entry, dict) and isinstance(story, dict)
        lines.append(f"  [{rule['severity']}] {rule['id']}: {entry['title']}")
        lines.append(f"      snippet: {p['snippet']}")
        if len(story["sources"]) > 1:
            feeds = ", ".join(str(s.get("feed")) for s in story["sources"])
            lines.append(f"      sources: {len(story['sources'])} ({feeds}), one alert")
    lines += ["", f"SMTP sink received {len(r.emails)} email(s):"]
    lines += [f"  Subject: {s}" for s in r.emails]
    lines += ["", f"Cycle 2: {r.second_cycle_not_modified} feeds not modified (HTTP 304), "
              f"{r.second_cycle_alerts} new alerts: nothing is processed or sent twice."]
    if r.probes:
        lines += ["", "Channel tests (as `ingest channels test NAME` sends them):"]
        lines += [f"  {p.line()}" for p in r.probes]
    return lines
