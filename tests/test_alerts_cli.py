"""``ingest alerts list|show|retry`` on a database filled by a real cycle."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from test_alerting import RULE_ID, Clock, running
from test_ops_cli import filled_database, ingest

from ingest.config import load_config
from ingest.nlp.pipeline import Analyzer
from ingest.testing import FeedServer, WebhookReceiver


def test_dead_deliveries_listed_shown_and_retried(tmp_path: Path, analyzer: Analyzer,
                                                  feed_server: FeedServer,
                                                  webhook: WebhookReceiver) -> None:
    """A receiver refusing with 404 kills every delivery; list/show explain it; retry, and
    the next drain delivers each alert once to each channel."""
    webhook.status = 404
    config, report = filled_database(tmp_path, analyzer, feed_server, webhook)
    fired = {a.id for a in report.alerts}
    assert fired and report.failed_deliveries == 2 * len(fired)

    listed = ingest("alerts", "list", "--state", "dead", "--rule", RULE_ID, "--since", "1h",
                    "--json", "--config", str(config))
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert {r["alert"]["alert_id"] for r in rows} == fired
    assert {d["state"] for r in rows for d in r["deliveries"]} == {"dead"}
    assert ingest("alerts", "list", "--state", "delivered", "--config",
                  str(config)).stdout.strip() == "no alerts with that filter"

    one = sorted(fired)[0]
    shown = ingest("alerts", "show", one[:10], "--config", str(config))
    assert shown.exit_code == 0, shown.output
    assert f'"alert_id": "{one}"' in shown.stdout
    assert "attempt 1 at" in shown.stdout and "HTTP 404" in shown.stdout
    assert ingest("alerts", "show", "ffffffffffffff", "--config", str(config)).exit_code == 2

    assert ingest("alerts", "retry", "--config", str(config)).exit_code == 2
    retried = ingest("alerts", "retry", "--all-dead", "--config", str(config))
    assert retried.exit_code == 0, retried.output
    assert retried.stdout.strip() == f"{2 * len(fired)} deliveries queued again"

    webhook.status = 200

    async def drain() -> tuple[int, int]:
        async with running(load_config(config), analyzer, Clock()) as app:
            return await app.dispatcher.drain()

    assert asyncio.run(drain()) == (2 * len(fired), 0)
    received = [json.loads(r.body)["alert_id"] for r in webhook.received]
    assert sorted(received) == sorted([*fired, *fired])
    after = json.loads(ingest("alerts", "show", one, "--json", "--config", str(config)).stdout)
    assert [a["outcome"] for a in after["attempts"] if a["delivery_id"]
            == after["deliveries"][0]["id"]] == ["dead", "delivered"]
