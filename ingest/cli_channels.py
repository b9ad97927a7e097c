"""``ingest channels list`` and ``ingest channels test NAME``: what is configured, and
whether it delivers.  Neither shows a secret (passwords, webhook secrets, Apprise URLs)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from ingest.cli_common import ConfigOpt, handles_errors, settings_from
from ingest.notify import apprise_channel, email, file, webhook
from ingest.notify.registry import ChannelSettings
from ingest.notify.webhook import public_url

channels_app = typer.Typer(help="List the configured channels; send one a test alert.",
                           no_args_is_help=True)

_PERIODS = {1.0: "s", 60.0: "min", 3600.0: "h"}
# A path segment that looks like a token (Slack's /services/T…/B…/XXXX, Discord's …/ID/TOKEN).


def _rate(rate: tuple[float, float] | None) -> str | None:
    if rate is None:
        return None
    count, period = rate
    unit = _PERIODS.get(period)
    return f"{count:g}/{unit}" if unit else f"{count:g} per {period:g}s"


def describe(name: str, channel: ChannelSettings) -> dict[str, Any]:
    """What ``channels list`` shows of one channel: options and target, no secrets."""
    row: dict[str, Any] = {
        "name": name, "type": channel.type, "min_severity": channel.min_severity,
        "concurrency": channel.concurrency, "rate_limit": _rate(channel.rate_limit)}
    if hasattr(channel, "digest"):  # channels that can batch alerts
        digest = getattr(channel, "digest", None)
        row["digest"] = None if digest is None else str(digest)
    if isinstance(channel, webhook.Settings):
        row.update(url=public_url(channel.url), format=channel.format,
                   signed=bool(channel.secrets()))
    elif isinstance(channel, email.Settings):
        row.update(server=f"{channel.host}:{channel.effective_port}",
                   security=channel.security, to=list(channel.to))
    elif isinstance(channel, file.Settings):
        row.update(path=str(channel.path))
    elif isinstance(channel, apprise_channel.Settings):
        row.update(services=[f"{s}://" for s in channel.schemes()])
    return row


def _target(row: dict[str, Any]) -> str:
    if row["type"] == "webhook":
        return f"{row['url']} ({row['format']}{', signed' if row['signed'] else ''})"
    if row["type"] == "email":
        return f"{row['server']} ({row['security']}) → {', '.join(row['to'])}"
    if row["type"] == "file":
        return str(row["path"])
    if row["type"] == "apprise":
        return ", ".join(row["services"])
    return "standard output" if row["type"] == "stdout" else ""


def _options(row: dict[str, Any]) -> str:
    shown = [f"min_severity {row['min_severity'] or 'any'}",
             f"concurrency {row['concurrency']}",
             f"rate_limit {row['rate_limit'] or 'none'}"]
    if "digest" in row:
        shown.append(f"digest {row['digest'] or 'off'}")
    return " · ".join(shown)


@channels_app.command("list")
@handles_errors
def channels_list(config: ConfigOpt = None,
                  as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Each configured channel: type, where it delivers and its options (no secrets)."""
    settings = settings_from(config)
    rows = [describe(name, ch) for name, ch in settings.channels.items()]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        typer.echo(f"no channels configured in {settings.source} (add some under channels:)")
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        typer.echo(f"{r['name']:{width}}  {r['type']:8} {_target(r)}")
        typer.echo(f"{'':{width}}  {'':8} {_options(r)}")


@channels_app.command("test")
@handles_errors
def channels_test(name: Annotated[str, typer.Argument(help="The channel, as named in "
                                                       "channels: of the config.")],
                  config: ConfigOpt = None) -> None:
    """Send one test alert to a channel now (not through the outbox); show its answer.

    Exit 0 when it was delivered, 1 when the channel refused or failed, 2 for an unknown
    channel or one that cannot be built from its settings."""
    from ingest.notify.probe import probe_channels

    settings = settings_from(config)
    if name not in settings.channels:
        typer.echo(f"error: no channel {name!r} in {settings.source}; configured: "
                   f"{', '.join(settings.channels) or 'none'}", err=True)
        raise typer.Exit(2)
    [result] = asyncio.run(probe_channels(settings, [name]))
    typer.echo(result.line())
    raise typer.Exit(0 if result.ok else 1)
