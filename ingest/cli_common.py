"""What every command shares: the --config option, error handling, durations, the store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ingest.config import Settings, load_config, resolve_config_path
from ingest.durations import parse_duration
from ingest.errors import IngestError
from ingest.logs import configure_logging

if TYPE_CHECKING:
    from ingest.store.sql import SqlStore

ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", help="Config file (default: $INGEST_CONFIG, else ./ingest.yaml).")]
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def handles_errors(func: F) -> F:
    """Print IngestErrors as one clear message; exit 2 for the user's errors, else 1."""
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except IngestError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2 if exc.user_error else 1) from None
    return wrapper  # type: ignore[return-value]


def settings_from(config: Path | None) -> Settings:
    settings = load_config(resolve_config_path(config))
    configure_logging(settings.log.level, settings.log.format, settings.log.modules)
    return settings


def parse_since(text: str, option: str) -> float:
    """Seconds in a duration option, or exit 2 with an example."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        typer.echo(f"error: {option}: {exc}", err=True)
        raise typer.Exit(2) from None
    if seconds <= 0:
        typer.echo(f"error: {option} must be longer than zero, e.g. 8h", err=True)
        raise typer.Exit(2)
    return seconds


def require_database(settings: Settings, why: str = "") -> None:
    """Exit 2 when ``database_url`` names a SQLite file that does not exist: operator
    commands read what the service recorded and must not create an empty database."""
    from sqlalchemy.engine import make_url

    from ingest.store.sql import async_url

    parsed = make_url(async_url(settings.database_url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database).expanduser()
    if not path.exists():
        typer.echo(f"error: no database at {path}{why}; check database_url in "
                   f"{settings.source} (the service creates it when it first runs)", err=True)
        raise typer.Exit(2)


def run_with_store(settings: Settings, work: Callable[[SqlStore], Awaitable[T]],
                   why: str = "", *, migrate: bool = True, must_exist: bool = True) -> T:
    """Run ``work`` on the configured database, migrated first (``migrate``), which must
    exist (the service made it) unless ``must_exist`` is False; ``why`` ends the message
    when it does not (see :func:`require_database`)."""
    from ingest.store.sql import open_store

    if must_exist:
        require_database(settings, why)

    async def main() -> T:
        store = open_store(settings.database_url)
        try:
            if migrate:
                await store.init()
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())


def with_store(config: Path | None, work: Callable[[SqlStore], Awaitable[T]]) -> T:
    """Run ``work`` on the database of the config ``config`` (see :func:`run_with_store`)."""
    return run_with_store(settings_from(config), work)
