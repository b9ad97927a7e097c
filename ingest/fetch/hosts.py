"""Politeness shared by every HTTP fetch: a global in-flight cap and per-host limits.

:class:`HostLimits` hands out a *slot* for one request.  A slot to a host is granted when

* fewer than ``per_host`` requests to that host are in flight,
* fewer than ``concurrency`` requests are in flight over all hosts, and
* at least ``spacing`` seconds have passed since the last request to that host started.

A host is ``host:port`` (:func:`host_key`), so two servers on one address but two ports
are two hosts.  Waiting for a busy host holds no global slot, so a hundred feeds on one
host queue behind each other and never delay feeds on other hosts.

Each known host costs one small object in a dict (no task, no timer); hosts idle for
longer than ``spacing`` are dropped once the dict grows, so 10,000 feeds stay cheap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SWEEP_MIN = 1024  # never sweep idle hosts while fewer than this are known


def host_key(url: httpx.URL) -> str:
    """The politeness key of a URL: lowercase host and effective port, ``host:port``."""
    port = url.port or _DEFAULT_PORTS.get(url.scheme, 0)
    return f"{url.host.lower()}:{port}"


def same_origin(origin: httpx.URL, target: httpx.URL) -> bool:
    """Whether a feed's own headers (tokens), configured for ``origin``, may go to ``target``.

    * The same ``host:port`` (:func:`host_key`): yes, unless ``target`` downgrades https
      to plain http (the token would cross the network in clear).
    * An upgrade from http to https on the same host, from its default port to the
      default one (``http://host/`` to ``https://host/``): yes, the token is safer there.
    * Anything else, another host or another port: no.

    Used for redirects (:mod:`ingest.fetch.redirects`) and for a feed polled at the URL a
    permanent redirect moved it to.
    """
    if (origin.scheme, target.scheme) == ("https", "http"):
        return False
    if host_key(origin) == host_key(target):
        return True
    return ((origin.scheme, target.scheme) == ("http", "https")
            and origin.host.lower() == target.host.lower()
            and origin.port is None and target.port is None)  # httpx: None is the default


class _Host:
    """One host's state: its in-flight slots, when its next request may start, its users."""

    __slots__ = ("next_start", "slots", "users")

    def __init__(self, per_host: int) -> None:
        self.slots = asyncio.Semaphore(per_host)
        self.next_start = 0.0  # monotonic time before which no request to it may start
        self.users = 0  # requests holding or waiting for a slot


class HostLimits:
    """Global and per-host request limits; share one instance between all fetchers."""

    def __init__(self, concurrency: int, per_host: int, spacing: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._global = asyncio.Semaphore(concurrency)
        self._per_host = per_host
        self._spacing = spacing
        self._clock = clock
        self._hosts: dict[str, _Host] = {}
        self._sweep_at = _SWEEP_MIN

    def __len__(self) -> int:
        """How many hosts are remembered (busy, or idle and not yet swept)."""
        return len(self._hosts)

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        """Wait until a request to ``key`` may start, and hold its slot for the block."""
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(self._per_host)
        host.users += 1
        try:
            async with host.slots:
                # Wait out the spacing holding nothing global ...
                await self._spaced(host)
                async with self._global:
                    # ... and again if another request to this host started meanwhile.
                    await self._spaced(host)
                    host.next_start = self._clock() + self._spacing
                    yield
        finally:
            host.users -= 1
            if len(self._hosts) > self._sweep_at:
                self._sweep()

    async def _spaced(self, host: _Host) -> None:
        while (delay := host.next_start - self._clock()) > 0:
            await asyncio.sleep(delay)

    def _sweep(self) -> None:
        """Forget hosts nobody is using whose spacing has passed."""
        now = self._clock()
        idle = [k for k, h in self._hosts.items() if not h.users and h.next_start <= now]
        for key in idle:
            del self._hosts[key]
        self._sweep_at = max(_SWEEP_MIN, 2 * len(self._hosts))
