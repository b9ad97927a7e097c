"""Webhook body formats (CloudEvents, Slack) and secret rotation, on a real loopback receiver."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from pydantic import ValidationError
from test_notify import lower_keys, make_alert

from ingest.notify import webhook as webhook_channel
from ingest.notify.base import ChannelContext, delivery_client
from ingest.notify.formats import cloudevents_body, slack_body
from ingest.notify.render import alert_payload
from ingest.notify.signing import HEADER, signature, verify
from ingest.testing import WebhookReceiver

NEW, OLD = "new-secret", "old-secret"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with delivery_client("ingest-test") as client:
        yield client


def notifier(http: aiohttp.ClientSession, url: str, **settings: object
             ) -> webhook_channel.WebhookNotifier:
    config = webhook_channel.Settings.model_validate({"type": "webhook", "url": url, **settings})
    return webhook_channel.build("hook", config, ChannelContext(http, 5.0))


# -- pure formats ---------------------------------------------------------------------

def test_cloudevents_is_a_structured_1_0_event_carrying_the_payload() -> None:
    alert = make_alert()
    content_type, body = cloudevents_body(alert)
    event = json.loads(body)
    assert content_type.startswith("application/cloudevents+json")
    assert event["specversion"] == "1.0"
    assert event["type"] == "org.ingest.alert.fired"
    assert event["source"] == "/ingest/rules/arms-transfer"
    assert event["id"] == alert.id
    assert event["datacontenttype"] == "application/json"
    assert event["data"] == json.loads(json.dumps(alert_payload(alert)))
    assert event["time"] == alert.created_at.isoformat()


def test_cloudevents_update_has_its_own_type_and_id() -> None:
    later = dataclasses.replace(make_alert(), revision=2, last_seen=make_alert().created_at)
    event = json.loads(cloudevents_body(later)[1])
    assert event["type"] == "org.ingest.alert.updated"
    assert event["id"] == f"{later.id}.r2"


def test_slack_body_has_text_and_blocks_with_feed_text_made_inert() -> None:
    alert = make_alert(entry_title="Strikes <@channel> & <!here> hit depots",
                       snippet="Officials said <b>two</b> depots burned.")
    content_type, body = slack_body(alert)
    message = json.loads(body)
    assert content_type == "application/json"
    assert message["text"].startswith("[HIGH] ")
    assert [b["type"] for b in message["blocks"]] == ["header", "section", "context"]
    rendered = json.dumps(message)
    assert "<@channel>" not in rendered and "<!here>" not in rendered
    assert "&lt;@channel&gt; &amp; &lt;!here&gt;" in message["blocks"][1]["text"]["text"]
    assert "&lt;b&gt;two&lt;/b&gt;" in message["blocks"][1]["text"]["text"]
    assert alert.entry_link.split("?")[0] in message["blocks"][1]["text"]["text"]


# -- rotation ---------------------------------------------------------------------------

def test_two_secrets_give_two_v1_values_each_verifying() -> None:
    header = signature([NEW, OLD], b"body", 1_714_564_800)
    assert header.count("v1=") == 2
    assert verify(NEW, header, b"body", now=1_714_564_800)
    assert verify(OLD, header, b"body", now=1_714_564_800)
    assert not verify("other", header, b"body", now=1_714_564_800)


def test_more_than_two_secrets_are_refused() -> None:
    with pytest.raises(ValidationError, match="two while rotating"):
        webhook_channel.Settings.model_validate(
            {"type": "webhook", "url": "http://127.0.0.1/x", "secret": ["a", "b", "c"]})


# -- real deliveries ----------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "cloudevents", "slack"])
async def test_each_format_is_delivered_signed(fmt: str, webhook: WebhookReceiver,
                                               http: aiohttp.ClientSession) -> None:
    """Every format reaches the receiver with its content type, key and a valid signature."""
    alert = make_alert()
    assert await notifier(http, webhook.url("/h"), format=fmt, secret=NEW).send(alert) \
        == "HTTP 200"
    [request] = webhook.received
    headers = lower_keys(request.headers)
    body = json.loads(request.body)
    expected_type = {"json": "application/json", "slack": "application/json",
                     "cloudevents": "application/cloudevents+json; charset=utf-8"}[fmt]
    assert headers["content-type"] == expected_type
    assert headers["idempotency-key"] == alert.id
    assert verify(NEW, headers[HEADER.lower()], request.body, now=time.time())
    marker = {"json": "schema_version", "cloudevents": "specversion", "slack": "blocks"}[fmt]
    assert marker in body


async def test_rotation_delivery_verifies_with_old_and_new(webhook: WebhookReceiver,
                                                           http: aiohttp.ClientSession) -> None:
    """During rotation one delivery carries both signatures: old and new receivers accept."""
    await notifier(http, webhook.url("/h"), secret=[NEW, OLD]).send(make_alert())
    [request] = webhook.received
    header = lower_keys(request.headers)[HEADER.lower()]
    assert verify(NEW, header, request.body, now=time.time())
    assert verify(OLD, header, request.body, now=time.time())


# -- Retry-After ----------------------------------------------------------------------------

def test_retry_after_seconds_and_dates_are_read() -> None:
    from datetime import UTC, datetime

    from ingest.notify.retry import parse_retry_after, retry_at

    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Wed, 01 May 2024 12:05:00 GMT", now) == 300.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now) == 0.0  # already past
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    # The longer of the backoff and the receiver's wish, capped at a day; jitter adds ≤ 10 %.
    assert (retry_at(now, 1, retry_after_s=600) - now).total_seconds() == 600
    assert (retry_at(now, 1, retry_after_s=5) - now).total_seconds() == 30
    assert (retry_at(now, 1, retry_after_s=10 ** 9) - now).total_seconds() == 86400
    assert (retry_at(now, 1, jitter=0.999) - now).total_seconds() == pytest.approx(33, abs=0.01)


@pytest.mark.parametrize("status", [429, 503])
async def test_429_and_503_carry_the_receivers_retry_after(status: int,
                                                           webhook: WebhookReceiver,
                                                           http: aiohttp.ClientSession) -> None:
    from ingest.errors import DeliveryError

    webhook.status = status
    webhook.response_headers["Retry-After"] = "90"
    with pytest.raises(DeliveryError) as caught:
        await notifier(http, webhook.url("/h")).send(make_alert())
    assert caught.value.retry_after_s == 90.0
    assert not caught.value.permanent
    assert "Retry-After: 90s" in str(caught.value)


def readme_verifier() -> object:
    """The receiver-side verifier printed in README.md, loaded as a user would copy it."""
    from conftest import REPO

    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("```python\nimport hashlib, hmac, time\n\ndef verify(")
    code = text[start + len("```python\n"):text.index("```", start + 10)]
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # our own README, as users copy it
    return namespace["verify"]


async def test_the_readme_verifier_accepts_real_deliveries(webhook: WebhookReceiver,
                                                           http: aiohttp.ClientSession) -> None:
    """The README's verifier accepts a real delivery signed during rotation with either
    secret, and refuses a wrong secret or a changed body."""
    verify_as_documented = readme_verifier()
    await notifier(http, webhook.url("/h"), secret=[NEW, OLD], format="cloudevents").send(
        make_alert())
    [request] = webhook.received
    header = lower_keys(request.headers)[HEADER.lower()]
    assert verify_as_documented(NEW, header, request.body)  # type: ignore[operator]
    assert verify_as_documented(OLD, header, request.body)  # type: ignore[operator]
    assert not verify_as_documented("wrong", header, request.body)  # type: ignore[operator]
    assert not verify_as_documented(NEW, header, request.body + b" ")  # type: ignore[operator]
