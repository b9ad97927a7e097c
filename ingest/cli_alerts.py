"""``ingest alerts list|show|retry``: what was decided, where it went, and replaying it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer

from ingest.cli_common import ConfigOpt, handles_errors, parse_since
from ingest.cli_ops import with_store
from ingest.model import Alert
from ingest.notify.render import alert_payload
from ingest.store.base import AlertSummary, AttemptRow, DeliveryRow
from ingest.store.sql import SqlStore

alerts_app = typer.Typer(help="Alerts and their deliveries: list, show, retry.",
                         no_args_is_help=True)


class DeliveryState(StrEnum):
    pending = "pending"
    sending = "sending"
    delivered = "delivered"
    failed = "failed"
    dead = "dead"


def _time(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _delivery_json(d: DeliveryRow) -> dict[str, Any]:
    return {"id": d.id, "channel": d.channel, "revision": d.revision, "state": d.state,
            "attempts": d.attempts, "next_attempt_at": _time(d.next_attempt_at),
            "last_error": d.last_error, "receipt": d.receipt,
            "created_at": _time(d.created_at), "delivered_at": _time(d.delivered_at)}


def _attempt_json(a: AttemptRow) -> dict[str, Any]:
    return {"delivery_id": a.delivery_id, "attempt": a.attempt, "outcome": a.outcome,
            "started_at": _time(a.started_at), "finished_at": _time(a.finished_at),
            "detail": a.detail}


def _states(deliveries: tuple[DeliveryRow, ...]) -> str:
    parts = []
    for d in deliveries:
        rev = f"@r{d.revision}" if d.revision else ""
        tries = f"({d.attempts})" if d.attempts > 1 or d.state in ("failed", "dead") else ""
        parts.append(f"{d.channel}{rev}:{d.state}{tries}")
    return " ".join(parts) or "(no deliveries)"


def _summary_line(s: AlertSummary) -> str:
    a = s.alert
    title = " ".join(a.entry_title.split())
    title = title if len(title) <= 70 else title[:69] + "…"
    state = "" if a.state == "fired" else f" [{a.state}]"
    return (f"{a.id[:12]}  {a.created_at:%Y-%m-%d %H:%M}  {a.severity:8} {a.rule_id}{state}  "
            f"{_states(s.deliveries)}  {title}")


@alerts_app.command("list")
@handles_errors
def alerts_list(
        state: Annotated[DeliveryState | None, typer.Option(
            help="Only alerts with a delivery in this state.")] = None,
        rule: Annotated[str | None, typer.Option(help="Only this rule's alerts.")] = None,
        since: Annotated[str | None, typer.Option(help="Only alerts this recent, e.g. 1h.")]
        = None,
        limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
        config: ConfigOpt = None) -> None:
    """List alerts, newest first, with the state of each delivery (channel:state(attempts))."""
    after = (datetime.now(UTC) - timedelta(seconds=parse_since(since, "--since"))
             if since else None)

    async def work(store: SqlStore) -> list[AlertSummary]:
        return await store.alert_summaries(state=state.value if state else None,
                                           rule_id=rule, since=after, limit=limit)

    found = with_store(config, work)
    if as_json:
        typer.echo(json.dumps([{"alert": alert_payload(s.alert), "state": s.alert.state,
                                "deliveries": [_delivery_json(d) for d in s.deliveries]}
                               for s in found], ensure_ascii=False, indent=2))
        return
    for summary in found:
        typer.echo(_summary_line(summary))
    if not found:
        typer.echo("no alerts" + (" with that filter" if state or rule or since else ""))


def _one_alert(store_alerts: list[Alert], prefix: str) -> Alert:
    if not store_alerts:
        typer.echo(f"error: no alert id starts with {prefix!r}; see `ingest alerts list`",
                   err=True)
        raise typer.Exit(2)
    if len(store_alerts) > 1:
        typer.echo(f"error: {prefix!r} starts several alert ids; give more characters",
                   err=True)
        raise typer.Exit(2)
    return store_alerts[0]


@alerts_app.command("show")
@handles_errors
def alerts_show(alert_id: Annotated[str, typer.Argument(help="An alert id or its start.")],
                as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")]
                = False,
                config: ConfigOpt = None) -> None:
    """Show an alert's payload, its deliveries and every attempt of each."""

    async def work(store: SqlStore) -> tuple[Alert, list[DeliveryRow], list[AttemptRow]]:
        alert = _one_alert(await store.find_alert(alert_id), alert_id)
        return alert, await store.deliveries(alert.id), await store.delivery_attempts(alert.id)

    alert, deliveries, attempts = with_store(config, work)
    if as_json:
        typer.echo(json.dumps({"alert": alert_payload(alert), "state": alert.state,
                               "deliveries": [_delivery_json(d) for d in deliveries],
                               "attempts": [_attempt_json(a) for a in attempts]},
                              ensure_ascii=False, indent=2))
        return
    typer.echo(json.dumps(alert_payload(alert), ensure_ascii=False, indent=2))
    typer.echo(f"\nstate: {alert.state}\n\ndeliveries:")
    for d in deliveries:
        due = f", next attempt {d.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC" \
            if d.next_attempt_at and d.state in ("pending", "failed", "sending") else ""
        typer.echo(f"  #{d.id} {d.channel} revision {d.revision}: {d.state}, "
                   f"{d.attempts} attempt(s){due}")
        if d.receipt:
            typer.echo(f"      receipt: {d.receipt}")
        if d.last_error and d.state != "delivered":
            typer.echo(f"      last error: {d.last_error}")
        for a in (a for a in attempts if a.delivery_id == d.id):
            took = ((a.finished_at - a.started_at).total_seconds() * 1000
                    if a.finished_at and a.started_at else 0.0)
            at = f"{a.started_at:%Y-%m-%d %H:%M:%S}" if a.started_at else "?"
            typer.echo(f"      attempt {a.attempt} at {at} UTC ({took:.0f} ms): {a.outcome}"
                       f" — {a.detail}")


@alerts_app.command("retry")
@handles_errors
def alerts_retry(
        alert_id: Annotated[str | None, typer.Argument(
            help="An alert id (or its start): its dead and failed deliveries go again.")]
        = None,
        all_dead: Annotated[bool, typer.Option("--all-dead", help="Every dead delivery.")]
        = False,
        config: ConfigOpt = None) -> None:
    """Send dead deliveries again, with a fresh count of attempts (the running service
    sends them within `delivery.tick`; with no service running, `ingest run --once`)."""
    if (alert_id is None) == (not all_dead):
        typer.echo("error: give an alert id, or --all-dead (not both)", err=True)
        raise typer.Exit(2)

    async def work(store: SqlStore) -> int:
        target = None
        if alert_id is not None:
            target = _one_alert(await store.find_alert(alert_id), alert_id).id
        return await store.retry_deliveries(datetime.now(UTC), target)

    count = with_store(config, work)
    typer.echo(f"{count} deliver{'y' if count == 1 else 'ies'} queued again")
