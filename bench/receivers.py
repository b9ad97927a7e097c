"""Webhook receivers for bench/delivery.py: each answers 200 after a delay and keeps the
``Idempotency-Key`` of every request, for the bench to check that nothing was lost."""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import time
from contextlib import suppress
from typing import Protocol

from ingest.testing import WebhookReceiver


class Receiver(Protocol):
    url: str

    def take(self) -> list[str]:
        """The Idempotency-Key of every request accepted since the last take."""
        ...

    def close(self) -> None: ...


class ThreadReceiver:
    """A :class:`WebhookReceiver` in this process (its threads share our GIL)."""

    def __init__(self, delay_s: float) -> None:
        self._server = WebhookReceiver(delay_s=delay_s).start()
        self.url = self._server.url("/hook")

    def take(self) -> list[str]:
        with self._server.lock:
            keys = self._server.keys()
            self._server.received.clear()
            self._server.rejected.clear()
        return keys

    def close(self) -> None:
        self._server.stop()


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  delay_s: float, keys: list[str]) -> None:
    """One keep-alive connection: read each request, wait ``delay_s``, answer 200."""
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            headers = dict(line.split(": ", 1) for line in
                           head.decode("latin-1").split("\r\n")[1:] if ": " in line)
            lower = {k.lower(): v for k, v in headers.items()}
            await reader.readexactly(int(lower.get("content-length", "0")))
            await asyncio.sleep(delay_s)
            keys.append(lower.get("idempotency-key", ""))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _serve_async(delay_s: float, conn: multiprocessing.connection.Connection) -> None:
    """The child process of :class:`AsyncReceiver`: an asyncio HTTP/1.1 server."""

    async def main() -> None:
        keys: list[str] = []
        server = await asyncio.start_server(
            lambda r, w: _handle(r, w, delay_s, keys), "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        conn.send(f"http://127.0.0.1:{port}/hook")
        loop = asyncio.get_running_loop()
        stop = loop.create_future()

        def command() -> None:
            if conn.recv() == "take":
                conn.send(list(keys))
                keys.clear()
            elif not stop.done():
                stop.set_result(None)

        loop.add_reader(conn.fileno(), command)
        await stop
        server.close()

    asyncio.run(main())


def _serve(delay_s: float, conn: multiprocessing.connection.Connection) -> None:
    """The child process: a receiver answering commands ("take", "stop") on ``conn``."""
    server = ThreadReceiver(delay_s)
    conn.send(server.url)
    try:
        while (command := conn.recv()) != "stop":
            if command == "take":
                conn.send(server.take())
    finally:
        server.close()


class ProcessReceiver:
    """A :class:`WebhookReceiver` in a child process of its own."""

    serve = staticmethod(_serve)

    def __init__(self, delay_s: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=self.serve, args=(delay_s, child), daemon=True)
        self._proc.start()
        deadline = time.monotonic() + 60
        while not self._conn.poll(0.1):
            if not self._proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the receiver process did not start")
        self.url: str = self._conn.recv()

    def take(self) -> list[str]:
        self._conn.send("take")
        keys: list[str] = self._conn.recv()
        return keys

    def close(self) -> None:
        with suppress(OSError):
            self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)


class AsyncReceiver(ProcessReceiver):
    """A minimal asyncio HTTP/1.1 server in a child process: a receiver that is not the
    bottleneck (a thread per connection under one GIL adds its own queueing)."""

    serve = staticmethod(_serve_async)


