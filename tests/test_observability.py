"""The status server, metrics, sd_notify and per-module log levels, over real sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path

import aiohttp
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from ingest.errors import ConfigError
from ingest.logs import configure_logging
from ingest.service import sdnotify
from ingest.service.http import StatusServer
from ingest.service.metrics import Metrics

Checks = Mapping[str, str | None]


def _fixed(checks: Checks) -> Callable[[], Awaitable[Checks]]:
    async def readiness() -> Checks:
        return checks
    return readiness


async def _hang() -> Checks:
    await asyncio.sleep(30)
    return {}


async def _raise() -> Checks:
    raise RuntimeError("database pool closed")


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[tuple[StatusServer, str]]]]:
    """Start StatusServers on 127.0.0.1:0; yields a starter returning (server, base URL)."""
    servers: list[StatusServer] = []

    async def start(readiness: Callable[[], Awaitable[Checks]] | None = None,
                    metrics: Metrics | None = None, timeout: float = 3.0
                    ) -> tuple[StatusServer, str]:
        server = StatusServer("127.0.0.1:0", metrics or Metrics(),
                              readiness or _fixed({"database": None}), timeout)
        await server.start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        await server.stop()


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def test_healthz_answers_ok(serve) -> None:
    """/healthz is 200 {"status": "ok"} while the loop runs."""
    _, base = await serve()
    status, body = await _get(base + "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})


async def test_readyz_ready_when_every_check_passes(serve) -> None:
    """/readyz is 200 with each check "ok", and ingest_ready reads 1."""
    metrics = Metrics()
    _, base = await serve(_fixed({"database": None, "scheduler": None}), metrics)
    status, body = await _get(base + "/readyz")
    assert status == 200
    assert json.loads(body) == {"ready": True, "checks": {"database": "ok", "scheduler": "ok"}}
    assert metrics.registry.get_sample_value("ingest_ready") == 1


async def test_readyz_503_names_the_failing_check(serve) -> None:
    """A failing check makes /readyz 503 with its reason, and ingest_ready 0."""
    metrics = Metrics()
    metrics.ready.set(1)
    _, base = await serve(_fixed({"database": "connection refused", "scheduler": None}), metrics)
    status, body = await _get(base + "/readyz")
    assert status == 503
    assert json.loads(body) == {"ready": False, "checks": {"database": "connection refused",
                                                           "scheduler": "ok"}}
    assert metrics.registry.get_sample_value("ingest_ready") == 0


async def test_readyz_503_when_readiness_raises(serve) -> None:
    """A readiness function that raises is a 503 carrying the error."""
    _, base = await serve(_raise)
    status, body = await _get(base + "/readyz")
    assert status == 503
    assert "database pool closed" in json.loads(body)["checks"]["readiness"]


async def test_readyz_503_when_readiness_hangs(serve) -> None:
    """A readiness function that does not answer in time is a 503, not a hung probe."""
    _, base = await serve(_hang, timeout=0.2)
    status, body = await _get(base + "/readyz")
    assert status == 503
    assert "no answer within 0.2 s" in json.loads(body)["checks"]["readiness"]


async def test_unknown_path_is_404(serve) -> None:
    """Only the three endpoints exist."""
    _, base = await serve()
    assert (await _get(base + "/admin"))[0] == 404


async def test_metrics_exposes_what_was_counted(serve) -> None:
    """/metrics parses as Prometheus text and reads back counted values."""
    metrics = Metrics(instance="host-1")
    metrics.feeds_polled.labels("ok").inc(3)
    metrics.fetch_duration.observe(0.2)
    metrics.fetch_duration.observe(1.5)
    metrics.set_states(metrics.deliveries, {"pending": 4}, ("pending", "failed"))
    _, base = await serve(metrics=metrics)
    status, body = await _get(base + "/metrics")
    assert status == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(body) for s in family.samples}
    assert samples[("ingest_feeds_polled_total", (("outcome", "ok"),))] == 3
    assert samples[("ingest_feeds_polled_total", (("outcome", "error"),))] == 0  # pre-created
    assert samples[("ingest_fetch_duration_seconds_count", ())] == 2
    assert samples[("ingest_deliveries", (("state", "pending"),))] == 4
    assert samples[("ingest_deliveries", (("state", "dead"),))] == 0
    assert samples[("ingest_leases_held", (("kind", "entries"),))] == 0
    build = [k for k in samples if k[0] == "ingest_build_info"]
    assert dict(build[0][1])["instance"] == "host-1"


async def test_taken_port_is_a_config_error(serve) -> None:
    """A second server on a taken port raises ConfigError naming the address."""
    first, _ = await serve()
    listen = f"127.0.0.1:{first.port}"
    second = StatusServer(listen, Metrics(), _fixed({}))
    with pytest.raises(ConfigError, match=f"http.listen {listen}: address already in use"):
        await second.start()


def test_two_metrics_objects_do_not_clash() -> None:
    """Each Metrics has its own registry: counts stay apart, nothing is registered twice."""
    first, second = Metrics(), Metrics()
    first.entries_ingested.inc(5)
    assert first.registry.get_sample_value("ingest_entries_ingested_total") == 5
    assert second.registry.get_sample_value("ingest_entries_ingested_total") == 0


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_sdnotify_ready_reaches_a_path_socket(tmp_path: Path) -> None:
    """READY=1 arrives at the socket $NOTIFY_SOCKET names."""
    path = str(tmp_path / "notify.sock")
    with _receiver(path) as sock:
        assert sdnotify.ready(environ={"NOTIFY_SOCKET": path})
        assert sock.recv(4096) == b"READY=1"
        assert sdnotify.ready("polling 3 feeds", environ={"NOTIFY_SOCKET": path})
        assert sock.recv(4096) == b"READY=1\nSTATUS=polling 3 feeds"


def test_sdnotify_abstract_socket(tmp_path: Path) -> None:
    """An @name is the abstract socket of that name."""
    name = f"ingest-test-{os.getpid()}-{tmp_path.name}"
    with _receiver("\0" + name) as sock:
        assert sdnotify.reloading(environ={"NOTIFY_SOCKET": "@" + name})
        lines = sock.recv(4096).decode().split("\n")
        assert lines[0] == "RELOADING=1"
        assert lines[1].startswith("MONOTONIC_USEC=") and lines[1].split("=")[1].isdigit()


def test_sdnotify_without_socket_is_a_no_op(tmp_path: Path) -> None:
    """Unset $NOTIFY_SOCKET: False; a socket that is gone: False, not an exception."""
    assert sdnotify.notify("READY=1", environ={}) is False
    assert sdnotify.stopping(environ={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False


@pytest.fixture
def _restore_logging() -> Iterator[None]:
    yield
    configure_logging("info", "json")


@pytest.mark.usefixtures("_restore_logging")
def test_per_module_levels(capsys: pytest.CaptureFixture[str]) -> None:
    """log.modules lowers one module's level for structlog and stdlib loggers alike."""
    configure_logging("warning", "json", {"ingest.fetch": "debug", "apscheduler": "info"})
    structlog.get_logger("ingest.fetch.client").debug("fetch detail", url="u")
    structlog.get_logger("ingest.fetcher").info("not ingest.fetch")
    structlog.get_logger("ingest.app").info("app chatter")
    structlog.get_logger("ingest.app").warning("app warning")
    logging.getLogger("apscheduler.scheduler").info("job added")
    logging.getLogger("aiosqlite").info("stdlib chatter")
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(e["event"], e["logger"]) for e in events] == [
        ("fetch detail", "ingest.fetch.client"), ("app warning", "ingest.app"),
        ("job added", "apscheduler.scheduler")]


@pytest.mark.usefixtures("_restore_logging")
def test_reconfiguring_resets_module_levels(capsys: pytest.CaptureFixture[str]) -> None:
    """A later configuration without modules undoes the earlier per-module levels."""
    configure_logging("warning", "json", {"apscheduler": "debug"})
    configure_logging("warning", "json")
    logging.getLogger("apscheduler").info("quiet again")
    structlog.get_logger("ingest.fetch").info("quiet too")
    assert capsys.readouterr().err == ""
