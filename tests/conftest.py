"""Shared fixtures: the repository's rules and gazetteer, the spaCy analyzer, loopback servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.logs import configure_logging
from ingest.nlp.gazetteer import Gazetteer, load_gazetteer
from ingest.nlp.pipeline import Analyzer, load_model
from ingest.rules.load import RuleSet, load_rules
from ingest.testing import FeedServer, SmtpSink, WebhookReceiver

REPO = Path(__file__).resolve().parent.parent
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
