"""The apprise channel, through Apprise's json:// service to a loopback WebhookReceiver."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_notify import make_alert

from ingest.config import load_config
from ingest.errors import ConfigError, DeliveryError
from ingest.notify import apprise_channel
from ingest.notify.base import ChannelContext, delivery_client
from ingest.notify.registry import build_notifier
from ingest.testing import WebhookReceiver


@pytest.fixture
async def ctx() -> AsyncIterator[ChannelContext]:
    async with delivery_client("ingest-test") as client:
        yield ChannelContext(client, 5.0)


def settings(url: str | list[str], **extra: Any) -> apprise_channel.Settings:
    return apprise_channel.Settings.model_validate({"type": "apprise", "url": url, **extra})


def json_url(receiver: WebhookReceiver, path: str = "/alerts") -> str:
    return f"json://127.0.0.1:{receiver.port}{path}"


async def test_delivered_alert_carries_rule_title_and_link(webhook: WebhookReceiver,
                                                           ctx: ChannelContext) -> None:
    """Apprise's json:// POSTs title and Markdown message with the rule title and link."""
    alert = make_alert()
    notifier = build_notifier("chat", settings(json_url(webhook), title_prefix="[ingest] "), ctx)
    receipt = await notifier.send(alert)
    assert receipt == "apprise json:// ok"
    assert len(webhook.received) == 1 and webhook.received[0].path == "/alerts"
    payload = json.loads(webhook.received[0].body)
    assert payload["title"].startswith("[ingest] [HIGH] Arms transfer to a conflict zone")
    assert alert.rule_title in payload["message"]
    assert f"]({alert.entry_link})" in payload["message"]  # a Markdown link to the entry
    assert payload["type"] == "warning"  # high severity


async def test_every_url_of_a_list_gets_the_alert(ctx: ChannelContext) -> None:
    """A list of URLs notifies each service once."""
    with WebhookReceiver() as one, WebhookReceiver() as two:
        notifier = build_notifier("chat", settings([json_url(one), json_url(two)]), ctx)
        await notifier.send(make_alert(severity="critical"))
        assert [len(one.received), len(two.received)] == [1, 1]
        assert json.loads(two.received[0].body)["type"] == "failure"


async def test_receiver_error_is_a_retryable_delivery_error(ctx: ChannelContext) -> None:
    """A service answering 500 raises DeliveryError, not permanent, naming only the scheme."""
    with WebhookReceiver(status=500) as failing:
        url = json_url(failing, "/secret-token-path")
        notifier = build_notifier("chat", settings(url), ctx)
        with pytest.raises(DeliveryError) as caught:
            await notifier.send(make_alert())
    assert len(failing.rejected) == 1
    assert caught.value.permanent is False and caught.value.channel == "chat"
    assert "json://" in str(caught.value) and "secret-token-path" not in str(caught.value)


async def test_unparseable_url_is_a_config_error_at_build(ctx: ChannelContext) -> None:
    """A URL Apprise cannot load fails the build, naming the channel but not the secret."""
    with pytest.raises(ConfigError) as caught:
        build_notifier("team-chat", settings("nosuchservice://s3cr3t-token@host/x"), ctx)
    message = str(caught.value)
    assert "'team-chat'" in message and "nosuchservice://" in message
    assert "s3cr3t-token" not in message


def test_missing_apprise_is_a_config_error_naming_the_extra(
        ctx: ChannelContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the apprise package, building the channel says how to install it."""
    monkeypatch.setitem(sys.modules, "apprise", None)  # what `import apprise` sees if absent
    with pytest.raises(ConfigError) as caught:
        build_notifier("chat", settings("ntfy://alerts"), ctx)
    assert "pip install 'ingest[apprise]'" in str(caught.value)
    assert "'chat'" in str(caught.value)


def test_config_file_validates_apprise_channels(tmp_path: Path) -> None:
    """load_config reads an apprise channel (one URL or a list) from ingest.yaml."""
    path = tmp_path / "ingest.yaml"
    path.write_text(
        "channels:\n"
        "  chat:\n"
        "    type: apprise\n"
        "    url: tgram://123456:ABC-token/987654\n"
        "    title_prefix: '[ingest] '\n"
        "    min_severity: high\n"
        "  rooms:\n"
        "    type: apprise\n"
        "    url: [ntfy://alerts, json://127.0.0.1:9/hook]\n", encoding="utf-8")
    settings_ = load_config(path)
    chat, rooms = settings_.channels["chat"], settings_.channels["rooms"]
    assert isinstance(chat, apprise_channel.Settings)
    assert isinstance(rooms, apprise_channel.Settings)
    assert chat.urls() == ["tgram://123456:ABC-token/987654"]
    assert chat.title_prefix == "[ingest] " and chat.min_severity == "high"
    assert rooms.schemes() == ["ntfy", "json"]
    assert "ABC-token" not in repr(chat)  # URLs are secrets


def test_config_file_rejects_a_url_without_scheme(tmp_path: Path) -> None:
    """A url that is not scheme://… is a located config error that does not echo it."""
    path = tmp_path / "ingest.yaml"
    path.write_text("channels:\n  chat:\n    type: apprise\n    url: my-token-123\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "ingest.yaml:" in message and "channels.chat." in message
    assert "not an Apprise URL" in message
    assert "my-token-123" not in message


def test_message_body_escapes_feed_text_and_counts_sources() -> None:
    """Brackets in a feed title cannot break the Markdown link; sources are counted."""
    alert = dataclasses.replace(make_alert(entry_title="Strike [video]"),
                                sources=({"feed": "a"}, {"feed": "b"}, {"feed": "c"}))
    body = apprise_channel.message_body(alert)
    assert "[Strike \\[video\\]](" in body
    assert "3 sources" in body
