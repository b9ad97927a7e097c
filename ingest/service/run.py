"""``ingest run``: the status endpoint, the service, and the daemon or a single pass.

Order: the status endpoint first (``/healthz`` answers while the model loads, so a
supervisor can tell a slow start from a hung one; ``/readyz`` says 503 until the
daemon runs), then the service (:meth:`App.start`: rules, model, database migrated
under a lock, the instance joined), then the daemon, which tells systemd it is ready.
Closing runs in reverse: the daemon drains, the service leaves the fleet (every lease
released), the endpoint stops.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from ingest.config import Settings
from ingest.errors import StorageError
from ingest.service.app import App
from ingest.service.fleet import SqliteGuard, new_instance_id
from ingest.service.http import StatusServer
from ingest.service.metrics import Metrics
from ingest.service.scheduler import CLOSE_S, Daemon
from ingest.store.sql import sqlite_file

log = structlog.get_logger("ingest.run")


@dataclass
class _Parts:
    """What is up so far, for ``/readyz``."""

    app: App | None = None
    daemon: Daemon | None = None

    async def readiness(self) -> dict[str, str | None]:
        if self.app is None:
            return {"startup": "starting: loading the model and opening the database"}
        checks: dict[str, str | None] = {"model": None}  # loaded before the app exists
        try:
            await self.app.store.ping()
            checks["database"] = None
        except StorageError as exc:
            checks["database"] = str(exc)
        daemon = self.daemon
        checks["scheduler"] = (None if daemon is not None and daemon.running
                               else "stopping" if daemon is not None and daemon.stop.is_set()
                               else "not running")
        return checks


async def run_service(settings: Settings, *, once: bool = False, grace_s: float | None = None,
                      http: bool = True) -> int:
    """Run until SIGTERM/SIGINT (or one pass with ``once``); return the exit code."""
    instance = new_instance_id()
    structlog.contextvars.bind_contextvars(instance=instance)
    metrics = Metrics(instance)
    parts = _Parts()
    # A second instance on a SQLite file is refused before anything else (its port, too,
    # is the first one's): say that, not "address in use".
    database = sqlite_file(settings.database_url)
    guard = SqliteGuard(database) if database is not None else None
    if guard is not None:
        guard.acquire()
    server = (StatusServer(settings.http.listen, metrics, parts.readiness)
              if http and settings.http.enabled else None)
    try:
        if server is not None:
            await server.start()
            log.info("http.listening", listen=settings.http.listen, port=server.port,
                     endpoints=["/healthz", "/readyz", "/metrics"])
        parts.app = service = await App.start(settings, instance=instance, metrics=metrics,
                                              guard=guard)
        try:
            if once:
                report = await service.run_cycle(force=True)
                all_failed = report.polled > 0 and len(report.errors) == report.polled
                return 1 if report.failed_deliveries or all_failed else 0
            parts.daemon = Daemon(service, grace_s, watch=settings.rules_watch)
            await parts.daemon.run()
            return 0
        finally:
            await service.close(timeout_s=CLOSE_S)
    finally:
        if server is not None:
            await server.stop()
        if guard is not None:
            guard.release()
