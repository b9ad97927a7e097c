"""`ingest db upgrade`, `ingest db status` and `ingest instances`, on a SQLite file."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from ingest.cli import app
from ingest.store.base import InstanceRow
from ingest.store.migrate import head
from ingest.store.sql import SqlStore

runner = CliRunner()


def config(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "entities.yaml").write_text("entities: []\n")
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text(f"database_url: sqlite:///{tmp_path / 'ingest.db'}\nrules_dir: rules\n")
    return cfg


def test_db_upgrade_creates_then_finds_nothing_to_do(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    missing = runner.invoke(app, ["db", "status", "--config", str(cfg)])
    assert missing.exit_code == 2 and "no database at" in missing.output
    created = runner.invoke(app, ["db", "upgrade", "--config", str(cfg)])
    assert created.exit_code == 0, created.output
    assert f"created sqlite+aiosqlite:///{tmp_path / 'ingest.db'} at revision {head()}" \
        in created.output
    again = runner.invoke(app, ["db", "upgrade", "--config", str(cfg)])
    assert again.exit_code == 0 and f"is up to date (revision {head()})" in again.output
    status = runner.invoke(app, ["db", "status", "--config", str(cfg)])
    assert status.exit_code == 0
    assert f"database revision: {head()}" in status.output


def test_instances_lists_running_ones_and_all_with_all(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    now = datetime.now(UTC)

    async def fill() -> None:
        store = SqlStore(f"sqlite:///{tmp_path / 'ingest.db'}")
        await store.init()
        for name, state in (("alpha:11:aaaaaa", "running"), ("beta:22:bbbbbb", "running"),
                            ("gamma:33:cccccc", "running")):
            host, pid, _ = name.split(":")
            await store.register_instance(InstanceRow(name, host, int(pid), "0.1.0",
                                                      now - timedelta(minutes=5), now, state,
                                                      {}))
        await store.heartbeat("alpha:11:aaaaaa", now=now, lease_until=now + timedelta(minutes=1))
        await store.retire_instance("gamma:33:cccccc", now)
        await store.close()

    asyncio.run(fill())
    listed = runner.invoke(app, ["instances", "--config", str(cfg)])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert sorted(line.split()[0] for line in lines) == ["alpha:11:aaaaaa", "beta:22:bbbbbb"]
    assert all(" running " in line for line in lines)
    everything = json.loads(runner.invoke(
        app, ["instances", "--all", "--json", "--config", str(cfg)]).output)
    states = {row["id"]: row["state"] for row in everything}
    assert states == {"alpha:11:aaaaaa": "running", "beta:22:bbbbbb": "running",
                      "gamma:33:cccccc": "stopped"}
    assert {row["id"]: row["leases"] for row in everything}["alpha:11:aaaaaa"] == {
        "feeds": 0, "entries": 0, "deliveries": 0}
