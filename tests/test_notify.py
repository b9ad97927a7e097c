"""Notification channels: signing, webhook, email and file, against real loopback servers."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ingest.errors import DeliveryError
from ingest.model import Alert
from ingest.notify import email as email_channel
from ingest.notify import file as file_channel
from ingest.notify import webhook as webhook_channel
from ingest.notify.base import ChannelContext, delivery_client
from ingest.notify.render import SCHEMA_VERSION, payload_bytes
from ingest.notify.signing import DEFAULT_TOLERANCE_S, HEADER, signature, verify
from ingest.parse.dedup import alert_id
from ingest.testing import SmtpSink, WebhookReceiver, free_port

SECRET = "s3cret"
BODY = b'{"alert_id":"abc","schema_version":1}'
T0 = 1_714_564_800  # 2024-05-01T12:00:00Z


def make_alert(**changes: Any) -> Alert:
    """A realistic alert, with any field overridden by ``changes``."""
    entry_key = "guid:https://www.example.com/world/2024/05/01/arms-shipment-123"
    alert = Alert(
        id=alert_id("arms-transfer", "reuters-world", entry_key),
        rule_id="arms-transfer",
        rule_title="Arms transfer to a conflict zone",
        severity="high",
        tags=("conflict", "arms"),
        feed_id="reuters-world",
        entry_key=entry_key,
        entry_title="Ukraine receives new air-defence systems from Germany",
        entry_link="https://www.example.com/world/2024/05/01/arms-shipment-123?utm=x&y=1",
        published=datetime(2024, 5, 1, 9, 30, tzinfo=UTC),
        created_at=datetime(2024, 5, 1, 9, 31, 12, tzinfo=UTC),
        entities=(
            {"text": "Ukraine", "name": "Ukraine", "label": "GPE", "country": "UA"},
            {"text": "Germany", "name": "Germany", "label": "GPE", "country": "DE"},
        ),
        terms=("air-defence", "systems"),
        snippet="Ukraine receives new air-defence systems from Germany, officials said.",
        channels=("ops-webhook", "ops-email"),
    )
    return dataclasses.replace(alert, **changes)


def lower_keys(headers: dict[str, str]) -> dict[str, str]:
    """Headers with lower-cased names, since HTTP header names are case-insensitive."""
    return {k.lower(): v for k, v in headers.items()}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with delivery_client("ingest-test") as client:
        yield client


def webhook_notifier(http: aiohttp.ClientSession, url: str) -> webhook_channel.WebhookNotifier:
    settings = webhook_channel.Settings(type="webhook", url=url, secret=SECRET)
    return webhook_channel.build("ops-webhook", settings, ChannelContext(http, 5.0))


def email_notifier(http: aiohttp.ClientSession, port: int) -> email_channel.EmailNotifier:
    settings = email_channel.Settings.model_validate({
        "type": "email", "host": "127.0.0.1", "port": port, "security": "none",
        "from": "ingest@localhost", "to": ["a@localhost"]})
    return email_channel.build("ops-email", settings, ChannelContext(http, 5.0))


# -- signing ----------------------------------------------------------------


def test_signature_verifies() -> None:
    """A signature made with the secret verifies for the same body at the same time."""
    header = signature(SECRET, BODY, T0)
    assert header.startswith(f"t={T0},v1=")
    assert verify(SECRET, header, BODY, now=T0)


def test_signature_changed_body_fails() -> None:
    """A body changed by one byte no longer verifies."""
    header = signature(SECRET, BODY, T0)
    assert not verify(SECRET, header, BODY.replace(b"abc", b"abd"), now=T0)


def test_signature_wrong_secret_fails() -> None:
    """A signature made with another secret does not verify."""
    header = signature("other-secret", BODY, T0)
    assert not verify(SECRET, header, BODY, now=T0)


def test_signature_stale_timestamp_fails() -> None:
    """A timestamp older than the tolerance fails; one just within it passes."""
    header = signature(SECRET, BODY, T0)
    assert verify(SECRET, header, BODY, now=T0 + DEFAULT_TOLERANCE_S)
    assert not verify(SECRET, header, BODY, now=T0 + DEFAULT_TOLERANCE_S + 1)
    assert not verify(SECRET, header, BODY, now=T0 + 60, tolerance_s=30)


def test_signature_two_v1_values_either_matches() -> None:
    """A header carrying two v1= values (secret rotation) verifies if either one matches."""
    good = signature(SECRET, BODY, T0).split("v1=", 1)[1]
    bad = signature("old-secret", BODY, T0).split("v1=", 1)[1]
    assert verify(SECRET, f"t={T0},v1={bad},v1={good}", BODY, now=T0)
    assert verify(SECRET, f"t={T0},v1={good},v1={bad}", BODY, now=T0)
    assert not verify(SECRET, f"t={T0},v1={bad},v1={bad[::-1]}", BODY, now=T0)


@pytest.mark.parametrize("header", ["", "garbage", "v1=abc", "t=notanumber,v1=abc",
                                    f"t={T0}", f"t={T0},v1="])
def test_signature_malformed_header_fails(header: str) -> None:
    """A malformed or incomplete signature header is rejected, not an exception."""
    assert verify(SECRET, header, BODY, now=T0) is False


def test_signature_non_ascii_v1_fails() -> None:
    """A v1 value with non-ASCII characters (garbage from a client) is rejected, not a crash."""
    assert verify(SECRET, f"t={T0},v1=\u00e9t\u00e9", BODY, now=T0) is False


# -- webhook ----------------------------------------------------------------


async def test_webhook_delivers_signed_payload(webhook: WebhookReceiver,
                                               http: aiohttp.ClientSession) -> None:
    """The receiver gets the v1 JSON payload, the idempotency key and a valid signature."""
    alert = make_alert()
    receipt = await webhook_notifier(http, webhook.url("/hook")).send(alert)
    assert receipt == "HTTP 200"
    assert len(webhook.received) == 1
    request = webhook.received[0]
    assert request.path == "/hook"
    payload = json.loads(request.body)
    assert payload["schema_version"] == SCHEMA_VERSION == 1
    assert payload["alert_id"] == alert.id
    assert payload["rule"]["id"] == "arms-transfer"
    headers = lower_keys(request.headers)
    assert headers["idempotency-key"] == alert.id
    assert headers["content-type"] == "application/json"
    assert verify(SECRET, headers[HEADER.lower()], request.body, now=time.time())
    assert not verify("wrong", headers[HEADER.lower()], request.body, now=time.time())


async def test_webhook_500_is_retryable(webhook: WebhookReceiver,
                                        http: aiohttp.ClientSession) -> None:
    """A 500 answer raises a DeliveryError that is not permanent."""
    webhook.status = 500
    with pytest.raises(DeliveryError) as info:
        await webhook_notifier(http, webhook.url("/hook")).send(make_alert())
    assert not info.value.permanent
    assert "500" in str(info.value)
    assert len(webhook.rejected) == 1


async def test_webhook_400_is_permanent(webhook: WebhookReceiver,
                                        http: aiohttp.ClientSession) -> None:
    """A 400 answer raises a permanent DeliveryError."""
    webhook.status = 400
    with pytest.raises(DeliveryError) as info:
        await webhook_notifier(http, webhook.url("/hook")).send(make_alert())
    assert info.value.permanent
    assert info.value.channel == "ops-webhook"


async def test_webhook_429_is_retryable(webhook: WebhookReceiver,
                                        http: aiohttp.ClientSession) -> None:
    """A 429 (rate limited) answer raises a DeliveryError that is not permanent."""
    webhook.status = 429
    with pytest.raises(DeliveryError) as info:
        await webhook_notifier(http, webhook.url("/hook")).send(make_alert())
    assert not info.value.permanent


async def test_webhook_unreachable_raises_delivery_error(http: aiohttp.ClientSession) -> None:
    """A closed port on loopback raises DeliveryError, not an httpx exception."""
    url = f"http://127.0.0.1:{free_port()}/hook"
    with pytest.raises(DeliveryError) as info:
        await webhook_notifier(http, url).send(make_alert())
    assert not info.value.permanent


# -- email ------------------------------------------------------------------


def _parts(message: Any) -> dict[str, str]:
    return {part.get_content_type(): part.get_content()
            for part in message.walk() if not part.is_multipart()}


async def test_email_delivers_multipart_message(smtp_sink: SmtpSink,
                                                http: aiohttp.ClientSession) -> None:
    """One multipart message arrives with text and HTML parts, subject and alert id header."""
    alert = make_alert()
    receipt = await email_notifier(http, smtp_sink.port).send(alert)
    assert receipt.startswith("SMTP")
    assert len(smtp_sink.messages) == 1
    message = smtp_sink.messages[0]
    assert message.is_multipart()
    parts = _parts(message)
    assert set(parts) == {"text/plain", "text/html"}
    assert alert.id in parts["text/plain"]
    assert alert.entry_link in parts["text/plain"]
    subject = str(message["Subject"])
    assert subject.startswith("[HIGH]")
    assert alert.rule_title in subject
    assert message["X-Ingest-Alert-Id"] == alert.id
    assert message["To"] == "a@localhost"


async def test_email_html_escapes_entry_title(smtp_sink: SmtpSink,
                                              http: aiohttp.ClientSession) -> None:
    """Feed text such as a <script> title is escaped in the HTML part."""
    alert = make_alert(entry_title="Breaking <script>alert(1)</script> news",
                       snippet="<img src=x onerror=alert(2)>")
    await email_notifier(http, smtp_sink.port).send(alert)
    assert len(smtp_sink.messages) == 1
    html_part = _parts(smtp_sink.messages[0])["text/html"]
    assert "<script>" not in html_part
    assert "<img" not in html_part
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_part


async def test_email_unreachable_raises_delivery_error(http: aiohttp.ClientSession) -> None:
    """A closed SMTP port raises DeliveryError."""
    with pytest.raises(DeliveryError) as info:
        await email_notifier(http, free_port()).send(make_alert())
    assert info.value.channel == "ops-email"


# -- file -------------------------------------------------------------------


async def test_file_appends_one_json_line_per_alert(tmp_path: Path,
                                                     http: aiohttp.ClientSession) -> None:
    """Two sends append two lines, each a valid JSON payload of its alert."""
    path = tmp_path / "out" / "alerts.jsonl"
    notifier = file_channel.build("archive", file_channel.Settings(type="file", path=path),
                                  ChannelContext(http, 5.0))
    first, second = make_alert(), make_alert(id="b" * 32, entry_title="Second story")
    await notifier.send(first)
    await notifier.send(second)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2
    assert [json.loads(line)["alert_id"] for line in lines] == [first.id, second.id]
    assert json.loads(lines[1])["entry"]["title"] == "Second story"


# -- render -----------------------------------------------------------------


def _assert_sorted(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    assert keys == sorted(keys), keys
    return dict(pairs)


def test_payload_bytes_deterministic_and_sorted() -> None:
    """The same alert always renders to the same bytes, with every object's keys sorted."""
    alert = make_alert()
    data = payload_bytes(alert)
    assert data == payload_bytes(make_alert())
    assert data == payload_bytes(dataclasses.replace(alert))
    decoded = json.loads(data, object_pairs_hook=_assert_sorted)
    assert decoded["alert_id"] == alert.id
    assert data != payload_bytes(make_alert(snippet="different"))


def test_retry_delays_double_and_cap() -> None:
    """Retry delays start at 30 s, double per attempt and stop growing at one hour."""
    from datetime import UTC, datetime, timedelta

    from ingest.notify.retry import retry_at

    now = datetime(2026, 1, 1, tzinfo=UTC)
    delays = [(retry_at(now, n) - now) / timedelta(seconds=1) for n in (1, 2, 3, 20)]
    assert delays == [30, 60, 120, 3600]


async def test_email_with_one_refused_recipient_is_not_resent(smtp_sink) -> None:  # type: ignore[no-untyped-def]
    """When one recipient is refused, the others got it: the delivery counts as done."""
    from ingest.notify.email import Settings as EmailSettings
    from ingest.notify.email import build as build_email

    settings = EmailSettings.model_validate({
        "type": "email", "host": "127.0.0.1", "port": smtp_sink.port, "security": "none",
        "from": "ingest@localhost", "to": ["desk@localhost", "refused@localhost"]})
    async with delivery_client("ingest-test") as client:
        notifier = build_email("mail", settings, ChannelContext(client, 5.0))
        receipt = await notifier.send(make_alert())
    assert "refused@localhost" in receipt
    assert len(smtp_sink.messages) == 1
