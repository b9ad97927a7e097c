"""Hot reload: edited rule and gazetteer files are taken up by a running daemon, safely."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import AsyncIterator, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
from conftest import REPO
from watchfiles import Change

from ingest.config import Settings
from ingest.nlp.pipeline import Analyzer
from ingest.service.app import App
from ingest.service.scheduler import Daemon
from ingest.service.watch import ChangeFilter, Target, targets_for
from ingest.testing import FeedServer

RULE = "id: {id}\ntitle: {id}\nwhen: {{keyword: {id}}}\n"
ITEM = "  - id: {id}\n    title: {id}\n    when: {{keyword: {id}}}\n"  # under `rules:`
GAZETTEER = """\
countries:
  - {code: "US", name: United States, aliases: [USA]}
entities:
  - {id: jane-example, name: Jane Example, country: "US"}
"""
NEW_ENTITY = "  - {id: test-sam, name: Test SAM, label: WEAPON}\n"


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """A small rules folder of our own (two rules, a gazetteer, lists/), quick to reload."""
    folder = tmp_path / "rules"
    (folder / "lists").mkdir(parents=True)
    (folder / "entities.yaml").write_text(GAZETTEER)
    for word in ("missile", "minister"):  # both occur in the seed feeds
        (folder / f"{word}.yaml").write_text(RULE.format(id=word))
    return folder


async def start_app(tmp_path: Path, analyzer: Analyzer, **extra: Any) -> App:
    settings = Settings.model_validate({
        "database_url": f"sqlite:///{tmp_path / 'ingest.db'}",
        "rules_dir": str(tmp_path / "rules"),
        "channels": {"out": {"type": "file", "path": str(tmp_path / "alerts.jsonl")}},
        "polling": {"tick": 1, "timeout": 2, "connect_timeout": 2},
        **extra,
    })
    return await App.start(settings, analyzer=analyzer)


@asynccontextmanager
async def running(daemon: Daemon) -> AsyncIterator[asyncio.Task[None]]:
    """The daemon running in a task; stopped (and awaited) on the way out."""
    task = asyncio.create_task(daemon.run())
    try:
        yield task
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, 30)
        await daemon.app.close()


async def until(condition: Callable[[], object], what: str, timeout: float = 8.0) -> None:
    """Wait for ``condition()`` to hold, checking often; fail naming ``what`` after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def events(logs: Sequence[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


async def test_edited_rule_file_is_taken_up(tmp_path: Path, rules: Path,
                                            analyzer: Analyzer) -> None:
    """Adding a rule to a rule file puts it in force within seconds, without a signal."""
    desk = rules / "desk.yaml"
    desk.write_text("rules:\n" + ITEM.format(id="first"))
    app = await start_app(tmp_path, analyzer)
    before = len(app.rules)
    assert app.rules.get("first") and not app.rules.get("second")
    async with running(Daemon(app)):
        desk.write_text(desk.read_text() + ITEM.format(id="second"))
        await until(lambda: app.rules.get("second"), "the added rule")
    assert len(app.rules) == before + 1


@pytest.mark.parametrize(("text", "line", "why"), [
    ("id: broken\ntitle: B\nwhen: {keyword: [x, y}\n", 3, "not valid YAML"),
    ("id: broken\ntitle: B\nwhen: {kword: x}\n", 3, "kword"),
], ids=["yaml-syntax", "unknown-key"])
async def test_broken_file_keeps_the_rules_in_force(tmp_path: Path, rules: Path,
                                                    analyzer: Analyzer, text: str, line: int,
                                                    why: str) -> None:
    """A broken rule file is logged with file:line, the rules stay; the fix is taken up."""
    app = await start_app(tmp_path, analyzer)
    before = app.rules
    broken = rules / "broken.yaml"
    with structlog.testing.capture_logs() as logs:
        async with running(Daemon(app)):
            await until(lambda: events(logs, "rules.watching"), "the watcher")
            broken.write_text(text)
            await until(lambda: events(logs, "rules.reload_failed"), "the failure")
            error = events(logs, "rules.reload_failed")[0]["error"]
            assert f"{broken}:{line}: " in error and why in error
            assert app.rules is before
            broken.write_text(RULE.format(id="fixed"))
            await until(lambda: app.rules.get("fixed"), "the fixed rule")
    assert events(logs, "rules.reloaded")[-1]["rules"] == len(before) + 1


@pytest.mark.parametrize("outside", [False, True], ids=["in-rules-dir", "own-folder"])
async def test_edited_gazetteer_is_taken_up(tmp_path: Path, rules: Path, analyzer: Analyzer,
                                            outside: bool) -> None:
    """An entity added to the gazetteer is in force within seconds, wherever the file is."""
    gazetteer = rules / "entities.yaml"
    extra: dict[str, Any] = {}
    if outside:
        (tmp_path / "gaz").mkdir()
        gazetteer = gazetteer.rename(tmp_path / "gaz" / "entities.yaml")
        extra["gazetteer"] = str(gazetteer)
    app = await start_app(tmp_path, analyzer, **extra)
    assert "test-sam" not in app.runner.analyzer.gaz.entities
    async with running(Daemon(app)):
        gazetteer.write_text(gazetteer.read_text() + NEW_ENTITY)
        await until(lambda: "test-sam" in app.runner.analyzer.gaz.entities, "the new entity")


async def test_sighup_reloads_without_the_watcher(tmp_path: Path, rules: Path,
                                                  analyzer: Analyzer) -> None:
    """SIGHUP reloads the rules when watching is off."""
    app = await start_app(tmp_path, analyzer)
    with structlog.testing.capture_logs() as logs:
        async with running(Daemon(app, watch=False)):
            await until(lambda: events(logs, "daemon.running"), "the daemon")
            (rules / "extra.yaml").write_text(RULE.format(id="extra"))
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: app.rules.get("extra"), "the rule added before SIGHUP")
    assert not events(logs, "rules.watching")


async def test_burst_of_requests_is_one_reload(tmp_path: Path, rules: Path,
                                               analyzer: Analyzer) -> None:
    """Many reload requests at once (SIGHUP and file changes) are served by one reload."""
    app = await start_app(tmp_path, analyzer)
    with structlog.testing.capture_logs() as logs:
        daemon = Daemon(app, watch=False)
        async with running(daemon):
            await until(lambda: events(logs, "daemon.running"), "the daemon")
            for _ in range(10):
                daemon.request_reload("SIGHUP")
                daemon.request_reload("watch")
            await until(lambda: events(logs, "rules.unchanged"), "the reload")
            await daemon.reload()  # waits for the lock behind any reload still queued
            assert len(events(logs, "rules.unchanged")) == 2


async def test_shutdown_with_the_watcher_is_prompt(tmp_path: Path, rules: Path,
                                                   analyzer: Analyzer) -> None:
    """SIGTERM stops a daemon that is watching files at once."""
    (tmp_path / "gaz").mkdir()
    shutil.copy(rules / "entities.yaml", tmp_path / "gaz")
    app = await start_app(tmp_path, analyzer, gazetteer=str(tmp_path / "gaz" / "entities.yaml"))
    with structlog.testing.capture_logs() as logs:
        async with running(Daemon(app)) as task:
            await until(lambda: len(events(logs, "rules.watching")) == 2, "both watchers")
            await until(lambda: events(logs, "poll.done"), "the first poll")
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(task, 2)
    assert events(logs, "daemon.stopped")
    assert not events(logs, "rules.watch_failed")


async def test_missing_rules_folder_is_watched_once_back(tmp_path: Path, rules: Path,
                                                         analyzer: Analyzer) -> None:
    """A rules folder that is gone does not stop the daemon; once back, it is watched."""
    app = await start_app(tmp_path, analyzer)
    rules.rename(tmp_path / "away")
    with structlog.testing.capture_logs() as logs:
        async with running(Daemon(app)):
            await until(lambda: events(logs, "rules.watch_missing"), "the warning")
            (tmp_path / "away" / "extra.yaml").write_text(RULE.format(id="extra"))
            (tmp_path / "away").rename(rules)
            await until(lambda: app.rules.get("extra"), "the rule in the folder come back")


async def test_replaced_rules_folder_is_watched_anew(tmp_path: Path, rules: Path,
                                                    analyzer: Analyzer) -> None:
    """A rules folder swapped for a new one (as a deploy does) is reloaded and watched."""
    (rules / "extra.yaml").write_text(RULE.format(id="extra"))
    app = await start_app(tmp_path, analyzer)
    with structlog.testing.capture_logs() as logs:
        async with running(Daemon(app)):
            await until(lambda: events(logs, "rules.watching"), "the watcher")
            shutil.copytree(rules, tmp_path / "next")
            (tmp_path / "next" / "extra.yaml").unlink()
            rules.rename(tmp_path / "old")
            (tmp_path / "next").rename(rules)
            await until(lambda: not app.rules.get("extra"), "the replaced folder's rules")
            (rules / "later.yaml").write_text(RULE.format(id="later"))
            await until(lambda: app.rules.get("later"), "an edit in the replaced folder")


async def test_reloads_during_processing_neither_drop_nor_repeat(
        tmp_path: Path, rules: Path, analyzer: Analyzer, feed_server: FeedServer) -> None:
    """Rule sets swapped all through a cycle: the same alerts as a cycle without swaps."""
    urls = feed_server.serve_dir(REPO / "seeds" / "feeds")
    feeds = [{"id": Path(name).stem, "url": url} for name, url in urls.items()]
    app = await start_app(tmp_path, analyzer, feeds=feeds)
    daemon = Daemon(app, watch=False)
    never = rules / "never.yaml"

    async def swap_rules() -> None:  # a rule that never fires, in and out, again and again
        while True:
            if never.exists():
                never.unlink()
            else:
                never.write_text(RULE.format(id="zzqx-never"))
            assert await daemon.reload()
            await asyncio.sleep(0.02)

    with structlog.testing.capture_logs() as logs:
        async with running(daemon):
            swapper = asyncio.create_task(swap_rules())
            await until(lambda: [e for e in events(logs, "cycle.done") if e["processed"]],
                        "processing of the new entries", timeout=60)
            swapper.cancel()
            await asyncio.gather(swapper, return_exceptions=True)
            swapped = await app.store.alerts(limit=10_000)
            assert not await app.store.unprocessed_entries(limit=1)
    names = [e["event"] for e in logs]
    done = next(i for i, e in enumerate(logs) if e["event"] == "cycle.done" and e["processed"])
    assert names[:done].count("rules.reloaded") >= 2  # during the cycle
    never.unlink(missing_ok=True)
    (tmp_path / "ref").mkdir()
    ref = await start_app(tmp_path / "ref", analyzer, feeds=feeds, rules_dir=str(rules))
    try:
        await ref.run_cycle(force=True)
        expected = await ref.store.alerts(limit=10_000)
    finally:
        await ref.close()
    assert expected
    assert sorted((a.rule_id, a.entry_key) for a in swapped) == \
        sorted((a.rule_id, a.entry_key) for a in expected)


def test_filter_keeps_yaml_and_folders_drops_editor_files(tmp_path: Path) -> None:
    """Only YAML files and folders count; swap, backup, lock files and .git do not."""
    (tmp_path / "lists").mkdir()
    keep = ChangeFilter(Target(tmp_path))
    assert keep(Change.modified, str(tmp_path / "a.yaml"))
    assert keep(Change.added, str(tmp_path / "lists" / "terms.yml"))
    assert keep(Change.added, str(tmp_path / "lists"))
    assert keep(Change.deleted, str(tmp_path / "moved-away"))
    for name in (".a.yaml.swp", "a.yaml~", ".#a.yaml", "#a.yaml#", "notes.md",
                 "a.yaml.tmp", ".git/objects/ab/cdef", ".git/config.yaml", "flycheck_a.yaml"):
        assert not keep(Change.added, str(tmp_path / name)), name
    only = ChangeFilter(Target(tmp_path, recursive=False, name="entities.yaml"))
    assert only(Change.modified, str(tmp_path / "entities.yaml"))
    assert not only(Change.modified, str(tmp_path / "other.yaml"))


def test_gazetteer_outside_the_rules_folder_is_watched_on_its_own() -> None:
    """The gazetteer beside the rules needs no watch of its own; elsewhere it gets one."""
    rules, gaz = Path("/srv/rules"), Path("/etc/ingest/entities.yaml")
    assert targets_for(rules, rules / "entities.yaml") == [Target(rules)]
    assert targets_for(rules, gaz) == [
        Target(rules), Target(Path("/etc/ingest"), recursive=False, name="entities.yaml")]
