"""``ingest db`` (schema migrations) and ``ingest instances`` (the fleet)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from ingest.cli_common import (
    ConfigOpt,
    handles_errors,
    require_database,
    settings_from,
    with_store,
)
from ingest.store.sql import open_store

db_app = typer.Typer(help="The database: schema migrations.", no_args_is_help=True)


@db_app.command("upgrade")
@handles_errors
def db_upgrade(config: ConfigOpt = None) -> None:
    """Create the database's tables or migrate them to this version (``ingest run`` does
    this at start too, under the same lock)."""
    settings = settings_from(config)

    async def main() -> None:
        store = open_store(settings.database_url)
        try:
            migration = await store.init()
        finally:
            await store.close()
        if migration.before is None:
            typer.echo(f"created {store.where} at revision {migration.after}")
        elif migration.changed:
            typer.echo(f"upgraded {store.where}: {migration.before} -> {migration.after}")
        else:
            typer.echo(f"{store.where} is up to date (revision {migration.after})")

    asyncio.run(main())


@db_app.command("status")
@handles_errors
def db_status(config: ConfigOpt = None) -> None:
    """Show the database's revision and the newest this version knows (exit 1 if behind)."""
    settings = settings_from(config)
    require_database(settings)

    async def main() -> tuple[str | None, str]:  # reads only: no init(), no migration
        store = open_store(settings.database_url)
        try:
            return await store.revision()
        finally:
            await store.close()

    current, head = asyncio.run(main())
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
