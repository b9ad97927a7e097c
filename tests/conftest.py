"""Shared fixtures: the repository's rules and gazetteer, the spaCy analyzer, loopback servers."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ingest.logs import configure_logging
from ingest.nlp.gazetteer import Gazetteer, load_gazetteer
from ingest.nlp.pipeline import Analyzer, load_model
from ingest.rules.load import RuleSet, load_rules
from ingest.testing import FeedServer, SmtpSink, WebhookReceiver

REPO = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("INGEST_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
SHARED = Path(os.environ.get("INGEST_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test saying why (users' clones lack it)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: this test needs the shared corpus beside the repository")
    return path


@pytest.fixture(scope="session")
def gazetteer() -> Gazetteer:
    return load_gazetteer(REPO / "rules" / "entities.yaml")


@pytest.fixture(scope="session")
def analyzer(gazetteer: Gazetteer) -> Analyzer:
    return Analyzer(load_model("en_core_web_sm"), gazetteer)


@pytest.fixture(scope="session")
def ruleset(gazetteer: Gazetteer) -> RuleSet:
    return load_rules([REPO / "rules"], gazetteer)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(autouse=True)
def _info_logging() -> None:
    """Each test starts with the service's logging at info level: a command run by an
    earlier test may have raised the level, which would hide events tests capture."""
    configure_logging("info", "json")


@contextlib.asynccontextmanager
async def empty_database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database: a SQLite file under ``tmp_path``, or a fresh
    PostgreSQL database on the test server (``$INGEST_TEST_DATABASE_URL``), dropped after.
    Skips, saying why, only when no PostgreSQL server answers."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'ingest.db'}"
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    server = make_url(PG_URL)
    admin_dsn = server.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False)
    try:
        admin = await asyncpg.connect(admin_dsn, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"no PostgreSQL server answers at {server.host}:{server.port}: {exc}")
    name = f"ingest_test_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
