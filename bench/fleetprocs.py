"""The ``ingest run`` processes of ``bench/fleet.py``: each instance's config, its start,
readiness, log and process tree, and the fleet's start and stop.

Each instance is ``python -m ingest run --config`` in a folder of its own, with a config of
its own (the shared database, feeds and shipped rules; ``nlp.workers``; a ``file`` channel
of its own; ``http.listen`` on a port of its own; polling every 2 s, 1 s ticks, no host
spacing) and its JSON log on stderr in ``ingest.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import procstats as ps  # bench/
import yaml

REPO = Path(__file__).resolve().parent.parent
POLLING = {"interval": "2s", "min_interval": "1s", "tick": "1s", "host_spacing": 0,
           "per_host": 8}
READY_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 60.0


@dataclass
class Instance:
    """One ``ingest run`` process and where it logs."""

    folder: Path
    http_port: int
    proc: subprocess.Popen[bytes]
    log: Path
    peak_mb: float = 0.0
    exit_code: int | None = None

    @classmethod
    def start(cls, folder: Path, config: Path, http_port: int) -> Instance:
        env = {k: v for k, v in os.environ.items()
               if k not in ("INGEST_DATABASE_URL", "INGEST_CONFIG")}
        log = folder / "ingest.log"
        with log.open("wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "ingest", "run", "--config",
                                     str(config)], cwd=folder, env=env,
                                    stdout=subprocess.DEVNULL, stderr=err)
        return cls(folder, http_port, proc, log)

    def events(self) -> Iterator[dict[str, Any]]:
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    yield event

    def ready(self) -> bool:
        """``/readyz`` answers 200; without the endpoint, ``daemon.running`` is logged."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"instance {self.folder.name} exited with {self.proc.returncode}"
                               f" before it was ready:\n{tail(self.log)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/readyz",
                                        timeout=5) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError:
            return False  # 503: up, not ready yet
        except OSError:  # nothing listens: no endpoint in this version, or not yet bound
            return any(e.get("event") == "daemon.running" for e in self.events())

    def tree(self) -> list[int]:
        """The daemon's pid and its descendants' (its worker processes)."""
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                with contextlib.suppress(OSError):
                    todo += [int(k) for k in task.read_text().split()]
        return found

    def cpu_s(self) -> float:
        return sum(ps.proc_cpu_s(pid) for pid in self.tree())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def reap(self, deadline: float) -> None:
        """Wait for the exit code until ``deadline`` (monotonic); then kill (None)."""
        try:
            self.exit_code = self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()  # our own child, by its pid
            self.proc.wait()
            self.exit_code = None


def tail(path: Path, lines: int = 8) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(folder: Path, url: str, feeds_file: Path, nlp_workers: int,
                 http_port: int) -> Path:
    config = {
        "database_url": url, "rules_dir": str(REPO / "rules"), "feed_files": [str(feeds_file)],
        "rules_watch": False, "polling": POLLING, "nlp": {"workers": nlp_workers},
        "channels": {"archive": {"type": "file", "path": str(folder / "alerts.jsonl")}},
        "http": {"listen": f"127.0.0.1:{http_port}"}, "log": {"level": "info", "format": "json"}}
    path = folder / "ingest.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def start_instances(instances: list[Instance], count: int, folder: Path, url: str,
                          feeds_file: Path, nlp_workers: int, together: bool) -> None:
    """Start ``count`` daemons into ``instances``; unless ``together``, the others only once
    the first has made the database and stored the feeds."""
    for n in range(1, count + 1):
        sub = folder / f"instance-{n}"
        sub.mkdir()
        port = free_port()
        config = write_config(sub, url, feeds_file, nlp_workers, port)
        instances.append(Instance.start(sub, config, port))
        if n == 1 and not together:
            await wait_logged(instances[0], "app.started")


def stop_instances(instances: list[Instance]) -> float:
    """SIGTERM every instance, then wait for all; the seconds it took."""
    start = time.perf_counter()
    for inst in instances:
        inst.stop()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for inst in instances:
        inst.reap(deadline)
    return time.perf_counter() - start


async def wait_ready(instances: list[Instance]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = list(instances)
    while waiting:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(waiting)} instance(s) not ready after "
                               f"{READY_TIMEOUT_S:.0f} s:\n{tail(waiting[0].log)}")
        waiting = [i for i in waiting if not await asyncio.to_thread(i.ready)]
        if waiting:
            await asyncio.sleep(0.5)


async def wait_logged(instance: Instance, event: str) -> None:
    """Until ``instance`` logs ``event`` (``app.started``: the database is made and the
    feeds are in it)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not any(e.get("event") == event for e in instance.events()):
        if instance.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"instance {instance.folder.name} did not log {event}:\n"
                               f"{tail(instance.log)}")
        await asyncio.sleep(0.5)
