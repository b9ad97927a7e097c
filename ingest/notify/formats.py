"""Webhook body formats (pure): the product's JSON, CloudEvents 1.0, Slack-style blocks.

Each format turns an alert into ``(content_type, body bytes)``; the webhook channel
picks one by its ``format`` setting from :data:`FORMATS` and signs the bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ingest.model import Alert
from ingest.notify.render import alert_payload, delivery_key, payload_bytes, subject

CLOUDEVENTS_TYPE = "org.ingest.alert"  # reverse-DNS prefix; ".fired" / ".updated" follow
SLACK_TEXT_LIMIT = 3000  # characters in one Slack section


def _compact(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def json_body(alert: Alert) -> tuple[str, bytes]:
    """The product's own payload (``schema_version`` 1)."""
    return "application/json", payload_bytes(alert)


def cloudevents_body(alert: Alert) -> tuple[str, bytes]:
    """A CloudEvents 1.0 event in structured JSON mode, the payload as ``data``."""
    when = alert.last_seen if alert.revision and alert.last_seen else alert.created_at
    event = {
        "specversion": "1.0",
        "type": f"{CLOUDEVENTS_TYPE}.{'updated' if alert.revision else 'fired'}",
        "source": f"/ingest/rules/{alert.rule_id}",
        "id": delivery_key(alert),
        "time": when.isoformat(),
        "subject": alert.id,
        "datacontenttype": "application/json",
        "data": alert_payload(alert),
    }
    return "application/cloudevents+json; charset=utf-8", _compact(event)


def _mrkdwn(text: str) -> str:
    """Feed text made inert for Slack's mrkdwn (only &, < and > are special)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(alert: Alert) -> tuple[str, bytes]:
    """A Slack/Mattermost incoming-webhook message: fallback text plus blocks."""
    title = _mrkdwn(" ".join(alert.entry_title.split()))
    link = alert.entry_link.replace(">", "%3E").replace("|", "%7C")
    headline = f"<{link}|{title}>" if link else title
    sources = ", ".join(sorted({str(s.get("feed")) for s in alert.sources})) or alert.feed_id
    update = f" · update: {len(alert.sources)} sources" if alert.revision else ""
    header = f"[{alert.severity.upper()}] {alert.rule_title}"[:150]
    text = f"*{headline}*\n{_mrkdwn(alert.snippet)}"[:SLACK_TEXT_LIMIT]
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "emoji": False, "text": header}},
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn(
            f"rule {alert.rule_id} · sources: {sources}{update} · alert {alert.id}")}]},
    ]
    return "application/json", _compact({"text": _mrkdwn(subject(alert)), "blocks": blocks})


FORMATS: dict[str, Callable[[Alert], tuple[str, bytes]]] = {
    "json": json_body,
    "cloudevents": cloudevents_body,
    "slack": slack_body,
}
