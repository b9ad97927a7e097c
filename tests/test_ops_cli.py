"""Operator commands on recorded state: `ingest matches`, `ingest rules backtest`,
`ingest rules schema`, and the user errors of `ingest silence`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_alerting import (
    OUTLETS,
    RULE_ID,
    STORIES,
    Clock,
    Newsroom,
    running,
    settings_for,
    story,
    wire_copy,
    write_config,
    write_rule,
)
from typer.testing import CliRunner

from ingest.cli import app
from ingest.nlp.pipeline import Analyzer
from ingest.service.app import CycleReport
from ingest.store.sql import open_store
from ingest.testing import FeedServer, WebhookReceiver

runner = CliRunner()
INGEST = Path(sys.executable).parent / "ingest"
WIRE_FEEDS = OUTLETS[:3]
WIRE_TITLE = wire_copy(0, datetime.now(UTC)).title  # the first outlet's headline


def filled_database(tmp_path: Path, analyzer: Analyzer, server: FeedServer,
                    hook: WebhookReceiver, **policy: Any) -> tuple[Path, CycleReport]:
    """One real App cycle over three outlets' copies of the wire story and a fourth outlet's
    different story, with the plant-fire rule (``policy`` added); return the config file."""
    clock = Clock()
    news = Newsroom(server)
    feeds = [news.feed(slug) for slug in [*WIRE_FEEDS, "wire"]]
    for i, slug in enumerate(WIRE_FEEDS):
        news.publish(slug, wire_copy(i, clock() - timedelta(hours=3, minutes=-i)))
    news.publish("wire", story("poznan", clock() - timedelta(hours=2)))
    write_rule(tmp_path / "rules", **policy)
    settings = settings_for(tmp_path, feeds, hook)

    async def cycle() -> CycleReport:
        async with running(settings, analyzer, clock) as service:
            return await service.run_cycle(force=True)

    return write_config(tmp_path, feeds, hook), asyncio.run(cycle())


def ingest(*args: str) -> Any:
    return runner.invoke(app, list(args))


# --- ingest matches -------------------------------------------------------------------


def test_matches_lists_states_as_json(tmp_path: Path, analyzer: Analyzer,
                                      feed_server: FeedServer, webhook: WebhookReceiver) -> None:
    """`ingest matches --rule X --since 24h --json` lists each recorded match with its state."""
    config, report = filled_database(
        tmp_path, analyzer, feed_server, webhook,
        threshold={"count": 5, "window": "6h", "distinct": "source"})
    assert report.processed == 4 and report.alerts == []
    result = ingest("matches", "--rule", RULE_ID, "--since", "24h", "--json",
                    "--config", str(config))
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert sorted((r["feed"], r["state"]) for r in rows) == sorted(
        [(slug, "below-threshold") for slug in [*WIRE_FEEDS, "wire"]])
    assert {r["rule"] for r in rows} == {RULE_ID}
    assert all(r["alert_id"] is None for r in rows)
    assert STORIES["poznan"][0] in {r["title"] for r in rows}
    assert len({r["story_id"] for r in rows}) == 2  # the wire copies are one story


def test_matches_filters_and_plain_output(tmp_path: Path, analyzer: Analyzer,
                                          feed_server: FeedServer,
                                          webhook: WebhookReceiver) -> None:
    """--state filters, --since excludes older matches, and the plain listing names states."""
    config, _ = filled_database(tmp_path, analyzer, feed_server, webhook)
    new = json.loads(ingest("matches", "--state", "new", "--json", "--config",
                            str(config)).stdout)
    updates = json.loads(ingest("matches", "--state", "update", "--json", "--config",
                                str(config)).stdout)
    assert sorted(r["feed"] for r in [*new, *updates]) == sorted([*WIRE_FEEDS, "wire"])
    assert STORIES["poznan"][0] in {r["title"] for r in new} and len(new) == 2
    assert len(updates) == 2 and {r["feed"] for r in updates} < set(WIRE_FEEDS)
    assert [r["at"] for r in updates] == sorted((r["at"] for r in updates), reverse=True)
    assert {r["alert_id"] for r in updates} < {r["alert_id"] for r in new}
    plain = ingest("matches", "--rule", RULE_ID, "--config", str(config))
    assert plain.exit_code == 0, plain.output
    lines = [line for line in plain.stdout.splitlines() if RULE_ID in line]
    assert len(lines) == 4
    assert sum("update" in line for line in lines) == 2
    recent = ingest("matches", "--since", "1h", "--config", str(config))
    assert recent.exit_code == 0 and "no matches recorded in that period" in recent.stdout


# --- ingest rules backtest ------------------------------------------------------------


def test_backtest_folds_copies_and_sends_nothing(tmp_path: Path, analyzer: Analyzer,
                                                 feed_server: FeedServer,
                                                 webhook: WebhookReceiver) -> None:
    """`ingest rules backtest RULE --since 30d --json` reports per-rule alerts with their
    stories, the wire copies folded into one; no channel receives anything."""
    config, report = filled_database(tmp_path, analyzer, feed_server, webhook)
    assert len(report.alerts) == 2
    sent_before = len(webhook.received)
    matches_before = ingest("matches", "--json", "--config", str(config)).stdout
    result = ingest("rules", "backtest", RULE_ID, "--since", "30d", "--json",
                    "--config", str(config))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["entries"] == 4
    [rule] = data["rules"]
    assert (rule["rule"], rule["alerts"], rule["matches"], rule["updates"]) == (RULE_ID, 2, 4, 2)
    by_title = {s["title"]: s for s in rule["stories"]}
    wire = by_title[WIRE_TITLE]
    assert sorted(wire["feeds"]) == sorted(WIRE_FEEDS)
    assert by_title[STORIES["poznan"][0]]["feeds"] == ["wire"]
    assert sum(rule["per_day"].values()) == 2
    assert len(webhook.received) == sent_before
    assert ingest("matches", "--json", "--config", str(config)).stdout == matches_before


def test_backtest_a_rule_file_not_yet_live(tmp_path: Path, analyzer: Analyzer,
                                           feed_server: FeedServer,
                                           webhook: WebhookReceiver) -> None:
    """A rule file outside the rules folder is replayed with its dedupe policy."""
    config, _ = filled_database(tmp_path, analyzer, feed_server, webhook)
    draft = write_rule(tmp_path / "drafts", "plant-fire-daily",
                       dedupe={"key": ["rule"], "window": "24h"})
    sent_before = len(webhook.received)
    result = ingest("rules", "backtest", str(draft), "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    [rule] = json.loads(result.stdout)["rules"]
    assert (rule["rule"], rule["alerts"], rule["updates"], rule["suppressed"]) == \
        ("plant-fire-daily", 1, 2, 1)
    assert sorted(rule["stories"][0]["feeds"]) == sorted(WIRE_FEEDS)
    human = ingest("rules", "backtest", str(draft), "--config", str(config))
    assert human.exit_code == 0, human.output
    assert "plant-fire-daily: 1 alerts" in human.stdout and "[3 sources]" in human.stdout
    assert "nothing is sent" in human.stdout
    assert len(webhook.received) == sent_before


# --- ingest rules schema --------------------------------------------------------------


def test_rules_schema_is_json_with_policy_keys() -> None:
    """`ingest rules schema` prints a JSON Schema that knows threshold, dedupe and on_update."""
    result = ingest("rules", "schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    props = schema["$defs"]["RuleSpec"]["properties"]
    assert {"threshold", "dedupe", "on_update", "when", "id"} <= set(props)
    assert sorted(props["on_update"]["enum"]) == ["notify", "silent"]
    assert set(schema["$defs"]["ThresholdSpec"]["properties"]) == {"count", "window", "distinct"}


# --- user errors ----------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["silence", "add", "--for", "8h", "--reason", "x"], "say what to silence"),
    (["silence", "add", "--rule", RULE_ID, "--for", "soon", "--reason", "x"], "--for"),
    (["silence", "add", "--rule", RULE_ID, "--for", "0h", "--reason", "x"],
     "must be longer than zero"),
    (["silence", "remove", "99"], "no silence #99 in force"),
    (["matches", "--since", "yesterday"], "--since"),
    (["rules", "backtest", "no-such-rule"], "no rule 'no-such-rule'"),
    (["rules", "backtest", "--since", "a month"], "--since"),
])
def test_user_errors_exit_2(args: list[str], message: str, tmp_path: Path,
                            webhook: WebhookReceiver) -> None:
    """Operator mistakes exit 2 with a message saying what was wrong, and record nothing."""
    write_rule(tmp_path / "rules")
    config = write_config(tmp_path, [], webhook)
    asyncio.run(_create_database(tmp_path / "ingest.db"))  # as the service would have
    result = ingest(*args, "--config", str(config))
    assert result.exit_code == 2, result.output
    assert message in result.output
    listed = ingest("silence", "list", "--all", "--json", "--config", str(config))
    assert json.loads(listed.stdout) == []


async def _create_database(path: Path) -> None:
    store = open_store(f"sqlite:///{path}")
    await store.init()
    await store.close()


def test_commands_refuse_a_missing_database(tmp_path: Path, webhook: WebhookReceiver) -> None:
    """A database_url naming no existing file is an error, not a new empty database."""
    write_rule(tmp_path / "rules")
    config = write_config(tmp_path, [], webhook)
    for args in (["silence", "add", "--tag", "fire", "--for", "1h", "--reason", "x"],
                 ["silence", "list"], ["matches"], ["rules", "backtest"]):
        result = ingest(*args, "--config", str(config))
        assert result.exit_code == 2, (args, result.output)
        assert "no database at" in result.output
    assert not (tmp_path / "ingest.db").exists()


def test_silence_for_an_unknown_rule_is_refused(tmp_path: Path,
                                                webhook: WebhookReceiver) -> None:
    """Silencing a rule id that no rule file defines (a typo) exits 2 and records nothing."""
    write_rule(tmp_path / "rules")
    config = write_config(tmp_path, [], webhook)
    result = ingest("silence", "add", "--rule", "plant-fir", "--for", "8h", "--reason", "x",
                    "--config", str(config))
    assert result.exit_code == 2 and "plant-fir" in result.output


def test_silence_commands_in_a_real_process(tmp_path: Path, webhook: WebhookReceiver) -> None:
    """The installed `ingest` program adds, lists and removes a silence in the database."""
    write_rule(tmp_path / "rules")
    config = write_config(tmp_path, [], webhook)
    asyncio.run(_create_database(tmp_path / "ingest.db"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(INGEST), *args, "--config", str(config)], capture_output=True,
                              text=True, timeout=120, check=False)

    added = run("silence", "add", "--tag", "industry", "--for", "2d", "--reason", "plant week",
                "--by", "desk")
    assert added.returncode == 0, added.stderr
    [shown] = json.loads(run("silence", "list", "--json").stdout)
    assert (shown["tag"], shown["rule"], shown["reason"], shown["active"]) == \
        ("industry", None, "plant week", True)
    removed = run("silence", "remove", str(shown["id"]))
    assert removed.returncode == 0 and f"silence #{shown['id']} ended" in removed.stdout
    assert json.loads(run("silence", "list", "--json").stdout) == []
    again = run("silence", "remove", str(shown["id"]))
    assert again.returncode == 2 and "no silence" in again.stderr
