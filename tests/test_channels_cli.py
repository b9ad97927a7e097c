"""`ingest channels list` and `ingest channels test NAME`, against loopback receivers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import REPO
from typer.testing import CliRunner

from ingest.cli import app
from ingest.demo import report_lines, run_demo
from ingest.notify.probe import TEST_RULE_ID
from ingest.notify.signing import HEADER, verify
from ingest.notify.webhook import public_url
from ingest.testing import SmtpSink, WebhookReceiver

runner = CliRunner()
SECRET = "hook-s3cret-value"


def write_config(tmp_path: Path, channels: str) -> Path:
    """An ingest.yaml holding only ``channels`` (YAML, indented under ``channels:``)."""
    path = tmp_path / "ingest.yaml"
    path.write_text(f"log:\n  level: warning\nchannels:\n{channels}", encoding="utf-8")
    return path


def webhook_channel(hook: WebhookReceiver, secret: str | None = SECRET) -> str:
    lines = f"  hook:\n    type: webhook\n    url: {hook.url('/alerts')}\n"
    return lines + (f"    secret: {secret}\n" if secret else "")


def test_test_webhook_delivers_one_signed_test_alert(tmp_path: Path,
                                                     webhook: WebhookReceiver) -> None:
    """A 200 answer exits 0, prints it, and the receiver got one signed test alert."""
    config = write_config(tmp_path, webhook_channel(webhook))
    result = runner.invoke(app, ["channels", "test", "hook", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith('ok: hook (webhook) answered "HTTP 200" in ')
    assert len(webhook.received) == 1
    request = webhook.received[0]
    payload = json.loads(request.body)
    assert payload["rule"]["id"] == TEST_RULE_ID
    assert payload["rule"]["severity"] == "info"
    assert payload["alert_id"].startswith("test-") and len(payload["alert_id"]) == 17
    assert verify(SECRET, request.headers[HEADER], request.body, time.time())


def test_test_webhook_failure_exits_1_with_status(tmp_path: Path) -> None:
    """A 500 answer exits 1, printing the HTTP status and that a retry could help."""
    with WebhookReceiver(status=500) as failing:
        config = write_config(tmp_path, webhook_channel(failing))
        result = runner.invoke(app, ["channels", "test", "hook", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "failed: hook (webhook):" in result.output
    assert "HTTP 500" in result.output and "retryable" in result.output
    assert len(failing.rejected) == 1


def test_test_webhook_permanent_failure_says_so(tmp_path: Path) -> None:
    """A 404 is reported as permanent."""
    with WebhookReceiver(status=404) as failing:
        config = write_config(tmp_path, webhook_channel(failing, secret=None))
        result = runner.invoke(app, ["channels", "test", "hook", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "HTTP 404" in result.output and "permanent" in result.output


def test_test_email_sends_one_message(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    """An email channel on the SMTP sink exits 0 and the sink holds one test message."""
    config = write_config(tmp_path, (
        "  desk:\n    type: email\n    host: 127.0.0.1\n"
        f"    port: {smtp_sink.port}\n    security: none\n"
        "    from: ingest@localhost\n    to: [desk@localhost]\n"))
    result = runner.invoke(app, ["channels", "test", "desk", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith('ok: desk (email) answered "SMTP ')
    assert len(smtp_sink.messages) == 1
    assert "Test alert from ingest" in str(smtp_sink.messages[0]["Subject"])


def test_test_unknown_channel_exits_2_listing_channels(tmp_path: Path,
                                                        webhook: WebhookReceiver) -> None:
    """An unknown name exits 2 and lists the configured channels; nothing is sent."""
    config = write_config(tmp_path, webhook_channel(webhook))
    result = runner.invoke(app, ["channels", "test", "nope", "--config", str(config)])
    assert result.exit_code == 2
    assert "no channel 'nope'" in result.output and "configured: hook" in result.output
    assert webhook.received == []


def test_test_channel_that_cannot_be_built_exits_2(tmp_path: Path) -> None:
    """A channel whose notifier cannot be built (a bad Apprise URL) exits 2."""
    config = write_config(tmp_path, "  chat:\n    type: apprise\n    url: nosuch://tok3n\n")
    result = runner.invoke(app, ["channels", "test", "chat", "--config", str(config)])
    assert result.exit_code == 2
    assert "'chat'" in result.output and "tok3n" not in result.output


def test_list_json_shows_channels_without_secrets(tmp_path: Path) -> None:
    """`channels list --json` shows each channel's target and options, never a secret."""
    config = write_config(tmp_path, (
        "  hook:\n    type: webhook\n"
        "    url: https://bot:pa55word@hooks.example.com/services/T0AB12CD/X9fKq2LmN8pQr7sT"
        "?token=q7tok\n"
        f"    secret: {SECRET}\n    rate_limit: 30/min\n    min_severity: high\n"
        "  desk:\n    type: email\n    host: smtp.example.com\n    username: ingest\n"
        "    password_file: pw.txt\n"
        "    from: ingest@example.com\n    to: [desk@example.com]\n    digest: 15m\n"
        "  chat:\n    type: apprise\n    url: tgram://123456:ABCtok/987\n"))
    (tmp_path / "pw.txt").write_text("smtp-pa55\n", encoding="utf-8")
    result = runner.invoke(app, ["channels", "list", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    for secret in (SECRET, "pa55word", "q7tok", "X9fKq2LmN8pQr7sT", "smtp-pa55", "ABCtok"):
        assert secret not in result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["hook"]["url"] == "https://hooks.example.com/services/***/***"
    assert rows["hook"]["signed"] is True and rows["hook"]["rate_limit"] == "30/min"
    assert rows["hook"]["min_severity"] == "high" and rows["hook"]["concurrency"] == 16
    assert rows["desk"]["server"] == "smtp.example.com:587"
    assert rows["desk"]["to"] == ["desk@example.com"] and rows["desk"]["digest"] == "15m"
    assert rows["chat"]["services"] == ["tgram://"]


def test_list_text_names_each_channel(tmp_path: Path, webhook: WebhookReceiver) -> None:
    """The text listing has one entry per channel with where it delivers."""
    config = write_config(tmp_path, webhook_channel(webhook) + "  out:\n    type: stdout\n")
    result = runner.invoke(app, ["channels", "list", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert f"hook  webhook  {webhook.url('/alerts')} (json, signed)" in result.output
    assert "out   stdout   standard output" in result.output
    assert SECRET not in result.output


def test_public_url_keeps_plain_paths_and_ports() -> None:
    """Ordinary paths and ports stay; userinfo, query and fragment go."""
    assert public_url("http://u:p@127.0.0.1:8080/hooks/ingest?k=v#f") == \
        "http://127.0.0.1:8080/hooks/ingest"
    assert public_url("https://[::1]:9/a") == "https://[::1]:9/a"


@pytest.mark.slow
async def test_demo_tests_each_channel_after_counting() -> None:
    """The demo sends each of its channels a test alert; its counts leave those out."""
    result = await run_demo(REPO / "seeds", REPO / "rules", lambda _line: None)
    assert [(p.channel, p.ok) for p in result.probes] == [("ops-webhook", True),
                                                           ("analysts-email", True)]
    assert result.alerts and len(result.emails) == len(result.webhook)
    assert TEST_RULE_ID not in json.dumps(result.webhook)
    lines = report_lines(result)
    assert any(line.startswith('  ok: ops-webhook (webhook) answered "HTTP 200"')
               for line in lines)
