"""The command line: exit codes, located errors, match output, and the daemon's signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO
from test_seeds import DEFENCE_DESK, WIRE_COPIES
from test_seeds import EXPECTED as STORY_RULES
from typer.testing import CliRunner

from ingest.cli import app
from ingest.testing import FeedServer, WebhookReceiver

runner = CliRunner()
# The rules the sample feeds raise alerts for: one per (rule, story), the wire story's
# two copies being one story.
ALERTED_RULES = sorted(rule for title, rules in STORY_RULES.items()
                       if title != WIRE_COPIES[1] for rule in rules)


def shipped_rule_count(rules_dir: Path) -> int:
    return len([p for p in rules_dir.glob("*.yaml") if p.name != "entities.yaml"])


def test_rules_check_ok() -> None:
    """The shipped rules pass `ingest rules check`."""
    result = runner.invoke(app, ["rules", "check", str(REPO / "rules")])
    assert result.exit_code == 0, result.output
    assert f"{shipped_rule_count(REPO / 'rules')} rules valid" in result.output


def test_rules_check_reports_file_and_line(tmp_path: Path) -> None:
    """A broken rule file gives file:line and exit code 2."""
    bad = tmp_path / "broken.yaml"
    bad.write_text("id: broken\ntitle: Broken\nseverity: urgent\nwhen: {keyword: x}\n")
    result = runner.invoke(app, ["rules", "check", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:3: severity" in result.output


def test_bad_config_exits_2_with_location(tmp_path: Path) -> None:
    """An invalid config names the file, the line and the field, and exits 2."""
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text("polling:\n  interval: soon\n")
    result = runner.invoke(app, ["rules", "check", "--config", str(cfg)])
    assert result.exit_code == 2
    assert f"{cfg}:2: polling.interval" in result.output


def test_missing_env_var_is_reported(tmp_path: Path) -> None:
    """`${VAR}` with VAR unset names the variable and the line."""
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text("channels:\n  hook:\n    type: webhook\n    url: ${INGEST_TEST_UNSET_URL}\n")
    result = runner.invoke(app, ["rules", "check", "--config", str(cfg)])
    assert result.exit_code == 2
    assert f"{cfg}:4: environment variable INGEST_TEST_UNSET_URL is not set" in result.output


def test_match_json_on_a_saved_feed() -> None:
    """`ingest match --json FEED` prints one JSON object per entry, with matches explained."""
    feed = REPO / "seeds" / "feeds" / "defence-desk.atom"
    result = runner.invoke(app, ["match", "--json", str(feed)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert {x["item"]: {m["rule"] for m in x["matches"]} for x in lines} == DEFENCE_DESK
    assert len(lines) == len(DEFENCE_DESK)
    [call] = [x for x in lines if x["item"] == "Austin and Belousov hold phone call, Pentagon says"]
    [match] = call["matches"]
    assert match["rule"] == "defence-minister-contact"
    assert {e["country"] for e in match["entities"]} >= {"US", "RU"}
    assert match["terms"] and match["snippet"]


def test_match_plain_text_from_stdin() -> None:
    """Plain text on stdin is one item; the human output names the rule and its evidence."""
    text = "The Pentagon said it will deploy Tomahawk missiles to Germany in 2026."
    result = runner.invoke(app, ["match", "-"], input=text)
    assert result.exit_code == 0, result.output
    assert "missile-deployment" in result.output and "Tomahawk" in result.output


def test_daemon_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """`ingest run` polls, delivers, and exits 0 soon after SIGTERM."""
    with FeedServer() as feeds, WebhookReceiver() as hook:
        urls = feeds.serve_dir(REPO / "seeds" / "feeds")
        cfg = tmp_path / "ingest.yaml"
        feed_lines = "".join(f"  - {{id: {Path(n).stem}, url: '{u}'}}\n" for n, u in urls.items())
        cfg.write_text(
            f"database_url: sqlite:///{tmp_path}/d.db\nrules_dir: {REPO / 'rules'}\n"
            f"feeds:\n{feed_lines}"
            f"channels:\n  ops-webhook: {{type: webhook, url: '{hook.url('/h')}'}}\n"
            "polling: {tick: 1s}\nlog: {format: json}\n")
        env = {**os.environ, "INGEST_CONFIG": str(cfg)}
        proc = subprocess.Popen([sys.executable, "-m", "ingest", "run"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while len(hook.received) < len(ALERTED_RULES) and time.monotonic() < deadline:
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert sorted(json.loads(r.body)["rule"]["id"] for r in hook.received) == ALERTED_RULES
        assert proc.returncode == 0, err.decode()
        assert b"daemon.stopped" in err


def test_sighup_reloads_rules_and_keeps_last_good(tmp_path: Path) -> None:
    """SIGHUP with a broken rule keeps the daemon and its rules; a fixed file is taken up."""
    import shutil

    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    shipped = shipped_rule_count(rules)
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text(f"database_url: sqlite:///{tmp_path}/d.db\nrules_dir: {rules}\n"
                   "channels:\n  out: {type: file, path: alerts.jsonl}\n"
                   "polling: {tick: 1s}\nlog: {format: json}\n")
    proc = subprocess.Popen([sys.executable, "-m", "ingest", "run", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1)
        err = b""
        deadline = time.monotonic() + 60
        while b"daemon.running" not in err and time.monotonic() < deadline:
            time.sleep(0.5)
            err += _peek(proc)
        (rules / "broken.yaml").write_text("id: broken\ntitle: B\nwhen: {kword: x}\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(3)
        (rules / "broken.yaml").write_text("id: fixed\ntitle: F\nwhen: {keyword: x}\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = err + rest
    assert proc.returncode == 0, log.decode()
    assert b"rules.reload_failed" in log and b"broken.yaml:3" in log
    # the fixed file was taken up: the shipped rules + 1
    assert f'"rules": {shipped + 1}'.encode() in log


def _peek(proc: subprocess.Popen[bytes]) -> bytes:
    """Whatever the process has written to stderr so far, without blocking."""
    import fcntl

    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    try:
        return proc.stderr.read() or b""
    except BlockingIOError:
        return b""


def test_run_once_twice_sends_each_alert_once(tmp_path: Path) -> None:
    """`ingest run --once` twice over the same feeds: each alert once, none repeated."""
    with FeedServer() as feeds:
        urls = feeds.serve_dir(REPO / "seeds" / "feeds")
        cfg = tmp_path / "ingest.yaml"
        feed_lines = "".join(f"  - {{id: {Path(n).stem}, url: '{u}'}}\n" for n, u in urls.items())
        cfg.write_text(f"database_url: sqlite:///{tmp_path}/d.db\nrules_dir: {REPO / 'rules'}\n"
                       f"feeds:\n{feed_lines}"
                       "channels:\n  out: {type: file, path: alerts.jsonl}\n")
        for _ in range(2):
            done = subprocess.run([sys.executable, "-m", "ingest", "run", "--once",
                                   "--config", str(cfg)], capture_output=True, timeout=120)
            assert done.returncode == 0, done.stderr.decode()
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    rules = sorted(json.loads(line)["rule"]["id"] for line in lines)
    assert rules == ALERTED_RULES


def test_config_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    """A config saved in Latin-1 is reported with its file and line, exit code 2."""
    cfg = tmp_path / "ingest.yaml"
    cfg.write_bytes(b"# caf\xe9\nrules_dir: rules\n")
    result = runner.invoke(app, ["rules", "check", "--config", str(cfg)])
    assert result.exit_code == 2
    assert f"{cfg}:1: not UTF-8" in result.output


def test_bad_database_url_is_a_clear_error(tmp_path: Path) -> None:
    """A database_url that is not a URL is named in one message, exit code 2."""
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text(f"database_url: nonsense\nrules_dir: {REPO / 'rules'}\n")
    result = runner.invoke(app, ["run", "--once", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "not a database URL" in result.output
