"""``ingest db`` (schema migrations) and ``ingest instances`` (the fleet)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from ingest.cli_common import ConfigOpt, handles_errors, run_with_store, settings_from, with_store

if TYPE_CHECKING:  # the database modules load Alembic: only when a command needs them
    from ingest.store.migrate import Migration
    from ingest.store.sql import SqlStore

db_app = typer.Typer(help="The database: schema migrations.", no_args_is_help=True)


@db_app.command("upgrade")
@handles_errors
def db_upgrade(config: ConfigOpt = None) -> None:
    """Create the database's tables or migrate them to this version (``ingest run`` does
    this at start too, under the same lock)."""
    async def work(store: SqlStore) -> tuple[str, Migration]:
        return store.where, await store.init()

    where, migration = run_with_store(settings_from(config), work, migrate=False,
                                      must_exist=False)
    if migration.before is None:
        typer.echo(f"created {where} at revision {migration.after}")
    elif migration.changed:
        typer.echo(f"upgraded {where}: {migration.before} -> {migration.after}")
    else:
        typer.echo(f"{where} is up to date (revision {migration.after})")


@db_app.command("status")
@handles_errors
def db_status(config: ConfigOpt = None) -> None:
    """Show the database's revision and the newest this version knows (exit 1 if behind)."""
    current, head = run_with_store(settings_from(config), lambda store: store.revision(),
                                   migrate=False)  # reads only: no migration
    typer.echo(f"database revision: {current or 'none (not created, or made before Alembic)'}")
    typer.echo(f"this version's head: {head}")
    raise typer.Exit(0 if current == head else 1)


def instances_command(
        config: ConfigOpt = None,
        everything: Annotated[bool, typer.Option(
            "--all", help="Also instances that stopped or died.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
) -> None:
    """List the service instances sharing this database, with their heartbeats and leases."""
    rows = with_store(config, lambda store: store.instances(include_stopped=everything))
    if as_json:
        typer.echo(json.dumps([{
            "id": r.id, "host": r.host, "pid": r.pid, "version": r.version,
            "state": r.state, "started_at": r.started_at.isoformat(),
            "heartbeat_at": r.heartbeat_at.isoformat(), "leases": r.leases,
            "stopped_at": r.stopped_at.isoformat() if r.stopped_at else None} for r in rows],
            indent=2))
        return
    if not rows:
        typer.echo("no instance is running" + ("" if everything else " (--all: past ones)"))
        return
    now = datetime.now(UTC)
    for r in rows:
        leases = ", ".join(f"{n} {k}" for k, n in r.leases.items() if n) or "no leases"
        age = (now - r.heartbeat_at).total_seconds()
        typer.echo(f"{r.id}  {r.state}  heartbeat {age:.0f}s ago  {leases}  "
                   f"(version {r.version or '?'}, since {r.started_at:%Y-%m-%d %H:%M}Z)")
