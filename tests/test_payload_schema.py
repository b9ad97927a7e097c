"""The webhook payload's JSON Schema (ingest/notify/payload.schema.json): valid itself,
satisfied by the payloads the real service sends for the sample feeds, strict where it
promises to be, and shown verbatim in the README."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from jsonschema import Draft202012Validator, FormatChecker
from test_service import EXPECTED, seed_feeds

from ingest.config import Settings
from ingest.model import Alert
from ingest.nlp.pipeline import Analyzer
from ingest.notify.formats import FORMATS
from ingest.notify.render import alert_payload
from ingest.service.app import App
from ingest.testing import FeedServer, WebhookReceiver

SCHEMA_PATH = REPO / "ingest" / "notify" / "payload.schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))

# RFC 3339 `date-time`, offset required.  jsonschema checks "date-time" only when the
# optional rfc3339-validator is installed, so the test brings its own strict check.
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def format_checker() -> FormatChecker:
    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True  # formats only constrain strings
        if RFC3339.fullmatch(value) is None:
            return False
        datetime.fromisoformat(value)  # ValueError for a month 13, a 25th hour, ...
        return True

    return checker


VALIDATOR = Draft202012Validator(SCHEMA, format_checker=format_checker())


def problems(payload: object) -> list[str]:
    """Every schema violation in ``payload``, as "path: message"; empty when it is valid."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in VALIDATOR.iter_errors(payload)]


@dataclass
class SeedRun:
    alerts: list[Alert]  # the cycle's new alerts, as first made
    stored: list[Alert]  # the same alerts as the store now holds them (sources added)
    json_bodies: list[dict[str, Any]]  # what the json webhook received
    cloudevents: list[dict[str, Any]]  # what the cloudevents webhook received


async def _run_seeds(tmp: Path, analyzer: Analyzer, feeds: FeedServer, json_hook: WebhookReceiver,
                     events_hook: WebhookReceiver) -> tuple[list[Alert], list[Alert]]:
    settings = Settings.model_validate({
        "database_url": f"sqlite:///{tmp / 'ingest.db'}",
        "rules_dir": str(REPO / "rules"),
        "feeds": seed_feeds(feeds),
        "channels": {
            "json-hook": {"type": "webhook", "url": json_hook.url("/json"), "format": "json"},
            "events-hook": {"type": "webhook", "url": events_hook.url("/events"),
                            "format": "cloudevents"},
        },
        "polling": {"timeout": 2, "connect_timeout": 2},
        "delivery": {"timeout": 5},
    })
    app = await App.start(settings, analyzer=analyzer)
    try:
        report = await app.run_cycle(force=True)
        stored = await app.store.alerts(limit=1000)
    finally:
        await app.close()
    return report.alerts, stored


@pytest.fixture(scope="module")
def seed_run(analyzer: Analyzer, tmp_path_factory: pytest.TempPathFactory) -> SeedRun:
    """One cycle of the real service (loopback HTTP, SQLite, spaCy, the shipped rules)
    over the sample feeds, delivering to a json and a cloudevents webhook."""
    # One receiver per channel, as in test_service: a single loopback server's listen
    # backlog can refuse some of twice as many simultaneous POSTs.
    with FeedServer() as feeds, WebhookReceiver() as json_hook, \
            WebhookReceiver() as events_hook:
        alerts, stored = asyncio.run(_run_seeds(tmp_path_factory.mktemp("seeds"), analyzer,
                                                feeds, json_hook, events_hook))
    return SeedRun(alerts, stored, [json.loads(r.body) for r in json_hook.received],
                   [json.loads(r.body) for r in events_hook.received])


def rich_payload(run: SeedRun) -> dict[str, Any]:
    """A real payload with entities and evidence spans, so every level is present."""
    return next(p for p in map(alert_payload, run.stored)
                if p["entities"] and p["evidence"] and p["evidence"][0]["spans"])


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["$id"].endswith("/alert-payload-1.json")


def test_every_object_allows_added_fields() -> None:
    """Fields are only ever added: no object in the schema closes itself."""
    objects: list[dict[str, Any]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object":
                objects.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(SCHEMA)
    assert len(objects) >= 8  # payload, rule, entry, story, entity, span, evidence, source
    assert all(o.get("additionalProperties") is True for o in objects)


def test_schema_lists_every_field_the_payload_has(seed_run: SeedRun) -> None:
    """Each key a real payload carries, at every level, is described by the schema."""
    payload = rich_payload(seed_run)
    props, defs = SCHEMA["properties"], SCHEMA["$defs"]
    assert set(payload) == set(props) == set(SCHEMA["required"])
    for key in ("rule", "entry", "story"):
        assert set(payload[key]) == set(props[key]["properties"])
    nested = {"entity": payload["entities"], "evidence": payload["evidence"],
              "span": payload["evidence"][0]["spans"], "source": payload["story"]["sources"]}
    for name, items in nested.items():
        assert items, name
        assert all(set(item) == set(defs[name]["properties"]) for item in items), name


def test_seed_run_produced_the_expected_alerts(seed_run: SeedRun) -> None:
    """The payloads below are the real thing: every alert the sample feeds raise."""
    assert len(seed_run.alerts) == len(EXPECTED) >= 7
    assert {a.id for a in seed_run.stored} == {a.id for a in seed_run.alerts}
    assert len(seed_run.json_bodies) == len(seed_run.cloudevents) == len(EXPECTED)
    assert any(len(a.sources) == 2 for a in seed_run.stored)  # the wire copies' story


def test_real_payloads_satisfy_the_schema(seed_run: SeedRun) -> None:
    for alert in [*seed_run.alerts, *seed_run.stored]:
        assert problems(alert_payload(alert)) == [], alert.rule_id
    for body in seed_run.json_bodies:
        assert problems(body) == [], body["rule"]["id"]


def test_updates_and_undated_entries_satisfy_the_schema(seed_run: SeedRun) -> None:
    for alert in seed_run.stored:
        later = alert.created_at + timedelta(minutes=5)
        update = dataclasses.replace(alert, revision=1, last_seen=later)
        payload = alert_payload(update)
        assert payload["event"] == "alert.updated"
        assert problems(payload) == []
        assert problems(alert_payload(dataclasses.replace(update, revision=7))) == []
        sources = tuple({**s, "published": None} for s in alert.sources)
        undated = dataclasses.replace(alert, published=None, sources=sources)
        payload = alert_payload(undated)
        assert payload["entry"]["published"] is None
        assert problems(payload) == []


def test_cloudevents_data_satisfies_the_schema(seed_run: SeedRun) -> None:
    """The data of CloudEvents, as delivered and as the format builds them for an update."""
    for event in seed_run.cloudevents:
        assert event["specversion"] == "1.0"
        assert problems(event["data"]) == []
    alert = seed_run.stored[0]
    for a in (alert, dataclasses.replace(alert, revision=2)):
        content_type, body = FORMATS["cloudevents"](a)
        assert content_type.startswith("application/cloudevents+json")
        event = json.loads(body)
        assert event["data"]["revision"] == a.revision
        assert problems(event["data"]) == []
    assert problems(event) != []  # the envelope itself is not a payload


def _changed(payload: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """A deep copy of ``payload`` with the key at ``path`` (a/b/c) set, or removed when
    ``value`` is ``...``."""
    out = copy.deepcopy(payload)
    *parents, last = path.split("/")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


@pytest.mark.parametrize(("path", "value"), [
    ("alert_id", ...),
    ("schema_version", 2),
    ("event", "alert.deleted"),
    ("event", "alert.updated"),  # revision 0 is always alert.fired
    ("alert_id", "831EBD45C953A1A7069EE1FAB10715A0"),
    ("alert_id", "831ebd45"),
    ("revision", -1),
    ("revision", "0"),
    ("rule/severity", "urgent"),
    ("rule/tags", "military"),
    ("entry/published", "2024-07-12"),
    ("entry/published", "2024-07-12T20:30:00"),  # no UTC offset
    ("created_at", "yesterday"),
    ("entry/key", ...),
    ("story/id", "8"),
    ("story/sources/0/seen_at", None),
    ("evidence/0/spans/0/kind", "guess"),
    ("evidence/0/spans/0/start", -3),
    ("entities/0/start", "0"),
    ("entities/0/roles", ...),
])
def test_schema_rejects(seed_run: SeedRun, path: str, value: object) -> None:
    payload = rich_payload(seed_run)
    assert problems(payload) == []
    assert problems(_changed(payload, path, value)) != []


def test_schema_accepts_added_fields(seed_run: SeedRun) -> None:
    payload = rich_payload(seed_run)
    for path in ("x_new", "rule/x_new", "entry/x_new", "story/x_new",
                 "story/sources/0/x_new", "evidence/0/x_new", "evidence/0/spans/0/x_new"):
        assert problems(_changed(payload, path, {"any": ["thing"]})) == [], path


def test_readme_shows_the_schema_verbatim() -> None:
    """README's "### The JSON payload" folds the schema file, unchanged, in a json block."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n### The JSON payload\n", 1)[1].split("\n### ", 1)[0]
    summary = "<summary>JSON Schema (ingest/notify/payload.schema.json)</summary>"
    assert "<details>" in section and summary in section and "</details>" in section
    folded = section.split(summary, 1)[1].split("</details>", 1)[0]
    [block] = re.findall(r"^```json\n(.*?)^```$", folded, flags=re.DOTALL | re.MULTILINE)
    assert json.loads(block) == SCHEMA
    assert block == SCHEMA_PATH.read_text(encoding="utf-8")
    assert "ingest/notify/payload.schema.json" in section.split("<details>", 1)[0]
