"""The status endpoint: ``/healthz``, ``/readyz`` and ``/metrics`` on aiohttp.web.

* ``/healthz``: 200 while the event loop answers (a liveness probe; restart when not).
* ``/readyz``: 200 when every readiness check passes, else 503 with each failing check's
  reason (take the instance out of rotation; do not restart it).
* ``/metrics``: the Prometheus exposition of :class:`~ingest.service.metrics.Metrics`.

Access logs are off: a scrape every few seconds is not news.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

import structlog
from aiohttp import web

from ingest.errors import ConfigError
from ingest.service.metrics import Metrics

__all__ = ["Readiness", "StatusServer"]

log = structlog.get_logger("ingest.http")

# Check name → None when fine, else the reason it is not.
Readiness = Callable[[], Awaitable[Mapping[str, str | None]]]


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) as a host and a port; ConfigError when malformed."""
    host, _, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"http.listen {listen!r}: write host:port, e.g. 127.0.0.1:9464")
    return host, int(port)


class StatusServer:
    """Serves health, readiness and metrics on ``listen`` until :meth:`stop`."""

    def __init__(self, listen: str, metrics: Metrics, readiness: Readiness,
                 readiness_timeout: float = 3.0) -> None:
        self._listen = listen
        self._metrics = metrics
        self._readiness = readiness
        self._timeout = readiness_timeout
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def port(self) -> int:
        """The bound port (useful with port 0); 0 before :meth:`start`."""
        return self._port

    async def start(self) -> None:
        """Bind and serve; ConfigError when the address is taken or cannot be bound."""
        host, port = split_listen(self._listen)
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            reason = (os.strerror(exc.errno).lower()  # e.g. "address already in use"
                      if exc.errno and not isinstance(exc, socket.gaierror)
                      else exc.strerror or str(exc))
            raise ConfigError(f"http.listen {self._listen}: {reason}; set http.listen to a "
                              "free port, or run with --no-http") from exc
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(self._timeout):
                results = dict(await self._readiness())
        except TimeoutError:
            results = {"readiness": f"no answer within {self._timeout:g} s"}
        except Exception as exc:
            results = {"readiness": f"{type(exc).__name__}: {exc}"}
        checks = {name: "ok" if reason is None else reason for name, reason in results.items()}
        ready = all(reason is None for reason in results.values())
        self._metrics.ready.set(1 if ready else 0)
        if not ready:
            log.debug("http.not_ready", checks=checks)
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    async def _metrics_page(self, _request: web.Request) -> web.Response:
        body, content_type = self._metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})
