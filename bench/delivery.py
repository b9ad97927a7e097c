"""Alerts/s delivered through the outbox to a local webhook receiver, against a baseline
measured in the same run.

    .venv/bin/python bench/delivery.py [--alerts 2000] [--slow-alerts 500]
        [--base-alerts 500] [--slow-base-alerts 100] [--latencies 1,10,100]
        [--concurrency 16,32,64] [--quick] [--postgres] [--receiver asyncio|process|thread]

Each run: a fresh store (a SQLite file in a temp dir; ``--postgres``: a schema of its
own in postgresql://postgres@127.0.0.1:5432/test, dropped afterwards) holding N alerts
with one pending webhook delivery each, written directly into the tables; one webhook
channel at concurrency C; ``Dispatcher.drain()`` timed until nothing is due.  Then the
receiver must have got every alert's ``Idempotency-Key`` exactly once and every delivery
row must be ``delivered``: otherwise the bench stops with exit status 1 and prints no
number for that run.

The receiver answers 200 after ``delay_s``.  By default it is a small keep-alive asyncio
HTTP/1.1 server in a child process, as a real receiver would be another process: one
that is not itself the bottleneck.  ``--receiver process`` uses
:class:`ingest.testing.WebhookReceiver` (a thread per connection) in a child process,
and ``--receiver thread`` the same in this process, where its threads compete with the
dispatcher for the GIL and the CPU time measured.  Baseline: the same dispatcher at concurrency
1 (one request at a time, as a naive loop would send) at the same latency; fewer alerts
(``--base-alerts``) keep it short, rates are per second anyway.

Two references beside each run, with half as many alerts, tell which side limits it:
the same drain with a notifier that only waits the latency ("no-http": the dispatcher
and the store alone), and the same sends through the webhook notifier without store or
dispatcher ("alone": the HTTP client and the receiver alone).  "in flight" is the mean
number of sends under way during the drain (C at best); "claim s" and "finish s" the
time spent in ``claim_deliveries`` and ``finish_deliveries``.  Ratios are what matter:
these machines are noisy, absolute numbers move between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from outbox_db import (  # bench/
    CHANNEL,
    POSTGRES_URL,
    TimedStore,
    create_schema,
    delivery_states,
    drop_schema,
    make_alert,
    seed,
)
from receivers import AsyncReceiver, ProcessReceiver, Receiver, ThreadReceiver  # bench/

from ingest.config import Settings
from ingest.logs import configure_logging
from ingest.model import Alert
from ingest.notify.base import ChannelContext, Notifier, delivery_client
from ingest.notify.registry import build_notifier
from ingest.notify.render import delivery_key
from ingest.service.deliver import Dispatcher

DEFAULT_CONCURRENCY = 16  # ChannelOptions.concurrency
TARGET_PER_S = 500.0
TARGET_LATENCY_MS = 10.0


# -- one measurement ----------------------------------------------------------------

@dataclass
class Drained:
    """One timed drain: its length, this process's CPU time, and the store's share."""

    alerts: int
    seconds: float
    cpu_s: float  # this process's CPU time during the drain (the receiver runs apart)
    claim_s: float  # in claim_deliveries (between batches: nothing is being sent)
    finish_s: float  # in finish_deliveries (some of it while other sends are in flight)
    transactions: int  # claims and finishes
    busy_s: float  # the sum of every send's duration

    @property
    def per_s(self) -> float:
        return self.alerts / self.seconds

    @property
    def in_flight(self) -> float:
        """Sends in flight on average over the drain: at most the concurrency."""
        return self.busy_s / self.seconds


@dataclass
class Measured:
    latency_ms: float
    concurrency: int
    run: Drained  # through the webhook notifier to the receiver
    no_http_per_s: float  # the dispatcher and store, with a notifier that only waits
    alone_per_s: float  # the webhook notifier's sends, without store and dispatcher

    @property
    def per_s(self) -> float:
        return self.run.per_s


class Lost(Exception):
    """The run did not deliver every alert exactly once: its number must not be shown."""


def check_keys(where: str, keys: Sequence[str], alerts: Sequence[Alert]) -> None:
    """The receiver got every alert's ``Idempotency-Key``, each exactly once."""
    expected = {delivery_key(a) for a in alerts}
    got = set(keys)
    if got != expected:
        raise Lost(f"{where}: the receiver got {len(got & expected)} of {len(alerts)} alerts' "
                   f"keys (and {len(got - expected)} unknown keys)")
    if len(keys) != len(alerts):
        raise Lost(f"{where}: the receiver got {len(keys)} requests for {len(alerts)} alerts "
                   "(resends)")


class WaitingNotifier:
    """A notifier that only waits ``delay_s`` and succeeds: no HTTP, no receiver."""

    def __init__(self, name: str, delay_s: float) -> None:
        self.name = name
        self.delay_s = delay_s
        self.sent: list[str] = []

    async def send(self, alert: Alert) -> str:
        await asyncio.sleep(self.delay_s)
        self.sent.append(delivery_key(alert))
        return "HTTP 200"

    async def aclose(self) -> None:
        return None


class TimedNotifier:
    """Wraps a notifier to add up how long its sends take (for the mean in flight)."""

    def __init__(self, inner: Notifier) -> None:
        self.inner = inner
        self.name = inner.name
        self.busy_s = 0.0

    async def send(self, alert: Alert) -> str:
        start = time.perf_counter()
        try:
            return await self.inner.send(alert)
        finally:
            self.busy_s += time.perf_counter() - start

    async def aclose(self) -> None:
        await self.inner.aclose()


def channel_settings(url: str, concurrency: int) -> Settings:
    return Settings.model_validate({"channels": {CHANNEL: {
        "type": "webhook", "url": url, "concurrency": concurrency}}})


def http_client(settings: Settings) -> aiohttp.ClientSession:
    """As the service builds it (App.start): one client shared by every channel."""
    return delivery_client(settings.polling.user_agent)


async def sends_alone(receiver: Receiver, where: str, concurrency: int, n: int) -> float:
    """Alerts/s of the webhook notifier alone (no store, no dispatcher): the same alerts
    sent with ``concurrency`` in flight, what the client and receiver allow at best."""
    alerts = [make_alert(i) for i in range(1, n + 1)]
    settings = channel_settings(receiver.url, concurrency)
    gate = asyncio.Semaphore(concurrency)
    async with http_client(settings) as http:
        notifier = build_notifier(CHANNEL, settings.channels[CHANNEL],
                                  ChannelContext(http, settings.delivery.timeout))

        async def one(alert: Alert) -> None:
            async with gate:
                await notifier.send(alert)

        receiver.take()
        start = time.perf_counter()
        await asyncio.gather(*(one(a) for a in alerts))
        seconds = time.perf_counter() - start
    check_keys(f"{where}, sends alone", receiver.take(), alerts)
    return n / seconds


async def drain(receiver: Receiver | None, latency_ms: float, concurrency: int, n: int,
                postgres: bool) -> Drained:
    """``n`` due deliveries written to a fresh store, then one timed ``Dispatcher.drain()``:
    through the webhook notifier to ``receiver``, or (None) a :class:`WaitingNotifier`."""
    where = (f"{latency_ms:g} ms, concurrency {concurrency}"
             + ("" if receiver is not None else ", no HTTP"))
    alerts = [make_alert(i) for i in range(1, n + 1)]
    settings = channel_settings(receiver.url if receiver else "http://127.0.0.1:9/hook",
                                concurrency)
    async with AsyncExitStack() as stack:
        if postgres:
            schema = f"bench_delivery_{uuid.uuid4().hex[:12]}"
            await create_schema(schema)
            stack.push_async_callback(drop_schema, schema)
            store = TimedStore(POSTGRES_URL, schema)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-delivery-"))
            store = TimedStore(f"sqlite:///{tmp}/bench.db")
        stack.push_async_callback(store.close)
        await store.init()
        await seed(store, alerts)
        waiting = WaitingNotifier(CHANNEL, latency_ms / 1000)
        notifiers: dict[str, Notifier] = {CHANNEL: waiting}
        if receiver is not None:
            http = await stack.enter_async_context(http_client(settings))
            ctx = ChannelContext(http, settings.delivery.timeout)
            notifiers = {name: build_notifier(name, ch, ctx)
                         for name, ch in settings.channels.items()}
            receiver.take()  # nothing from an earlier run may count
        timed = {name: TimedNotifier(n) for name, n in notifiers.items()}
        dispatcher = Dispatcher(settings, timed, store, lambda: datetime.now(UTC))
        cpu, start = time.process_time(), time.perf_counter()
        delivered, failed = await dispatcher.drain()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        keys = receiver.take() if receiver is not None else waiting.sent
        states = await delivery_states(store)
    if (delivered, failed) != (n, 0):
        raise Lost(f"{where}: drain() reported {delivered} delivered, {failed} failed of {n}")
    check_keys(where, keys, alerts)
    if states != {"delivered": n}:
        raise Lost(f"{where}: delivery rows by state {states}, expected {n} delivered")
    return Drained(n, seconds, cpu, store.claim_s, store.finish_s, store.transactions,
                   sum(t.busy_s for t in timed.values()))


async def measure(receiver: Receiver, latency_ms: float, concurrency: int, n: int,
                  postgres: bool) -> Measured:
    """The drain to the receiver, and the two references (with half as many alerts)."""
    half = max(1, n // 2)
    alone = await sends_alone(receiver, f"{latency_ms:g} ms, concurrency {concurrency}",
                              concurrency, half)
    no_http = await drain(None, latency_ms, concurrency, half, postgres)
    run = await drain(receiver, latency_ms, concurrency, n, postgres)
    return Measured(latency_ms, concurrency, run, no_http.per_s, alone)


# -- the table ----------------------------------------------------------------------

COLUMNS = (("receiver", 8), ("conc.", 5), ("alerts", 6), ("seconds", 7), ("alerts/s", 8),
           ("vs base", 7), ("ideal/s", 7), ("no-http/s", 9), ("alone/s", 7),
           ("in flight", 9), ("cpu %", 5), ("cpu ms/al", 9), ("claim s", 7), ("finish s", 8),
           ("db tx", 5))
HEADER = "| " + " | ".join(f"{name:>{width}}" for name, width in COLUMNS) + " |"
RULE = "|" + "|".join("-" * (width + 2) for _, width in COLUMNS) + "|"


def row(m: Measured, base: Measured | None) -> str:
    ratio = f"{m.per_s / base.per_s:.2f}x" if base is not None else "(base)"
    cells = (f"{m.latency_ms:g} ms", m.concurrency, m.run.alerts, f"{m.run.seconds:.2f}",
             f"{m.per_s:.1f}", ratio, f"{m.concurrency / (m.latency_ms / 1000):.0f}",
             f"{m.no_http_per_s:.0f}", f"{m.alone_per_s:.0f}", f"{m.run.in_flight:.1f}",
             f"{m.run.cpu_s / m.run.seconds:.0%}", f"{m.run.cpu_s / m.run.alerts * 1000:.2f}",
             f"{m.run.claim_s:.2f}", f"{m.run.finish_s:.2f}", m.run.transactions)
    return "| " + " | ".join(f"{c:>{w}}" for c, (_, w) in zip(cells, COLUMNS, strict=True)) + " |"


async def run(args: argparse.Namespace) -> int:
    latencies = [float(x) for x in args.latencies.split(",")]
    concurrencies = [int(x) for x in args.concurrency.split(",")]
    makers: dict[str, Callable[[float], Receiver]] = {
        "asyncio": AsyncReceiver, "process": ProcessReceiver, "thread": ThreadReceiver}
    make = makers[args.receiver]
    store_name = (f"PostgreSQL ({POSTGRES_URL}, a schema of its own)" if args.postgres
                  else "SQLite file")
    described = {"asyncio": "an asyncio HTTP/1.1 server in a child process",
                "process": "WebhookReceiver (threads) in a child process",
                "thread": "WebhookReceiver (threads) in this process"}[args.receiver]
    print(f"Store: {store_name}; receiver: {described}.\n"
          f"Alerts per run: {args.alerts} ({args.slow_alerts} at >= 100 ms); baseline runs "
          f"(concurrency 1): {args.base_alerts} ({args.slow_base_alerts} at >= 100 ms).\n")
    print(HEADER)
    print(RULE)
    results: list[Measured] = []
    for latency in latencies:
        slow = latency >= 100
        n = args.slow_alerts if slow else args.alerts
        receiver = make(latency / 1000)
        try:
            base = await measure(receiver, latency, 1, args.slow_base_alerts if slow
                                 else args.base_alerts, args.postgres)
            print(row(base, None), flush=True)
            for c in concurrencies:
                m = await measure(receiver, latency, c, n, args.postgres)
                results.append(m)
                print(row(m, base), flush=True)
        except Lost as exc:
            print(f"\nFAILED, no number for this run: {exc}", file=sys.stderr)
            return 1
        finally:
            receiver.close()
    print("""
vs base:   alerts/s relative to the (base) row above it: concurrency 1, same latency.
ideal/s:   concurrency / latency: C requests always in flight, no other cost.
no-http/s: the same drain (half as many alerts) with a notifier that only waits the
           latency: what the dispatcher and the store allow, whatever the HTTP client.
alone/s:   the same sends (half as many) through the webhook notifier with no store and
           no dispatcher (a semaphore of C over all of them): what the HTTP client and
           the receiver allow on this machine.
in flight: sends in flight on average over the drain (the sum of the sends' durations
           over the drain's); the concurrency at best.
cpu %:     this process's CPU time over the drain's time (100%: one core saturated; the
           event loop is one thread, the receiver runs in its own process).
cpu ms/al: this process's CPU time per alert during the drain.
claim s:   time in claim_deliveries (batches of concurrency x 16; nothing is sent meanwhile).
finish s:  time in finish_deliveries (outcomes recorded as sends complete, every 50 ms or
           64 outcomes, while the batch's other sends go on); db tx: claims and finishes.""")
    print(f"\ntarget: ≥ {TARGET_PER_S:g} alerts/s to a {TARGET_LATENCY_MS:g} ms receiver")
    default = next((m for m in results if m.latency_ms == TARGET_LATENCY_MS
                    and m.concurrency == DEFAULT_CONCURRENCY), None)
    if default is None:
        print(f"  not measured: run with {TARGET_LATENCY_MS:g} in --latencies and "
              f"{DEFAULT_CONCURRENCY} in --concurrency")
        return 0
    verdict = "meets it" if default.per_s >= TARGET_PER_S else "does NOT meet it"
    print(f"  default settings (concurrency {DEFAULT_CONCURRENCY}): {default.per_s:.0f} "
          f"alerts/s: {verdict}")
    print(f"  at those settings: no HTTP (dispatcher + store) {default.no_http_per_s:.0f} "
          f"alerts/s; HTTP alone (no dispatcher) {default.alone_per_s:.0f} alerts/s")
    best = max((m for m in results if m.latency_ms == TARGET_LATENCY_MS), key=lambda m: m.per_s)
    if best is not default:
        print(f"  best measured: concurrency {best.concurrency}: {best.per_s:.0f} alerts/s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Alerts/s delivered through the outbox to a local webhook receiver.")
    parser.add_argument("--alerts", type=int, default=2000, help="alerts per run")
    parser.add_argument("--slow-alerts", type=int, default=500,
                        help="alerts per run at latencies of 100 ms and more")
    parser.add_argument("--base-alerts", type=int, default=500,
                        help="alerts per baseline run (concurrency 1)")
    parser.add_argument("--slow-base-alerts", type=int, default=100,
                        help="alerts per baseline run at latencies of 100 ms and more")
    parser.add_argument("--latencies", default="1,10,100", help="receiver latencies, ms")
    parser.add_argument("--concurrency", default="16,32,64",
                        help="channel concurrencies compared with the baseline (1)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 200 alerts per run (50 for the slow and base rows)")
    parser.add_argument("--postgres", action="store_true",
                        help=f"use {POSTGRES_URL} (a schema of its own, dropped after)")
    parser.add_argument("--receiver", choices=("asyncio", "process", "thread"),
                        default="asyncio",
                        help="the receiver: a keep-alive asyncio server in a child process "
                             "(default), ingest.testing.WebhookReceiver in a child process, "
                             "or in a thread of this one")
    args = parser.parse_args(argv)
    if args.quick:
        args.alerts, args.slow_alerts, args.base_alerts, args.slow_base_alerts = 200, 50, 50, 20
    configure_logging("warning", "json")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
