"""Entries/s through the whole pipeline with 1, 2 and 3 ``ingest run`` instances on one
PostgreSQL database, and one instance on SQLite beside them.

    .venv/bin/python bench/fleet.py [--quick] [--feeds 120] [--entries 20]
        [--instances 1,2,3] [--no-sqlite] [--nlp-workers 1] [--rounds 2] [--together]
        [--postgres postgresql://postgres@127.0.0.1:5432] [--keep-logs DIR]

This module is the command, one measurement and the table; the instances' processes are in
``fleetprocs``, the database in ``fleetdb``, CPU and memory in ``fleetstats``, the gated farm
in ``fleetfarm`` (all in bench/).

Each measurement: a gated feed farm (``bench/fleetfarm.py``, a child process) serving
``--feeds`` RSS feeds on 64 loopback ports, empty until opened; a fresh database (PostgreSQL:
``CREATE DATABASE ingest_bench_<pid>_<n>``, dropped afterwards, also on failure; SQLite: a
file in a temp dir); N daemons, each ``python -m ingest run --config`` in its own process
with its own config (the same database, feeds and shipped rules; ``nlp.workers``; a ``file``
channel of its own; ``http.listen`` on a port of its own; polling every 2 s, 1 s ticks, no
host spacing).  The first instance starts alone until it logs ``app.started`` (database
made, feeds stored), then the others start together (``--together``: all at once).  Once
every instance is ready (``/readyz`` answers 200, or, without the endpoint,
``daemon.running`` is in its log), the farm opens: each feed's next poll brings
``--entries`` items, a quarter of them events the shipped rules watch.  The measurement ends
when the database holds feeds × entries entries, none unprocessed, and no delivery is due;
then every instance gets SIGTERM and must exit 0.  ``--rounds`` repeats every setup,
interleaved, and the table shows each setup's best round.

entries/s = entries / (last ``processed_at`` - first ``fetched_at``), read from the database.
Ratios are against one instance on PostgreSQL measured in the same run; nothing is asserted
about times (these machines are shared and noisy).  Double work shows in "stored / processed
per instance": every instance's ``feed.fetched`` ``new`` and ``cycle.done`` ``processed``
counts from its log, whose sums exceed the entries when two instances stored or processed
one entry; alerts and matches are under unique constraints.  Any error logged, a failed
entry, an undelivered alert or an exit code other than 0 is listed under "checks".
CPU: the machine's busy share over the measurement (all processes, other users' included),
each instance's process tree and the PostgreSQL server's processes (those alive at the end).
Memory: each instance's process tree (the daemon, its parse and NLP workers), peak RSS
sampled once a second.  "story lock held / waited for": the share of samples (10 a second,
``pg_locks``) in which an instance held the fleet-wide lock under which stories are
assigned, rules matched and outcomes recorded (``store.story_lock``), and in which another
instance was waiting for it.

``nlp.workers: 1`` per instance by default: an instance analyses one batch at a time
(``process_entries`` awaits each batch), so a second NLP worker in one instance would sit
idle during processing while holding another copy of the model.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from fleetdb import Progress, database  # bench/
from fleetfarm import GatedFarm  # bench/
from fleetprocs import (  # bench/
    STOP_TIMEOUT_S,
    Instance,
    start_instances,
    stop_instances,
    wait_ready,
)
from fleetstats import MemoryPeaks, cpu_snapshot, cpu_use  # bench/

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
WATCHED = ("process.batch_failed", "entry.failed", "process.failed", "process.crashed",
           "cycle.crashed", "poll.record_failed", "feed.error", "delivery.failed")


@dataclass(frozen=True)
class Setup:
    backend: str  # postgresql | sqlite
    instances: int

    @property
    def label(self) -> str:
        db = "PostgreSQL" if self.backend == "postgresql" else "SQLite"
        return f"{db}, {self.instances} instance{'s' if self.instances > 1 else ''}"


# -- one measurement -------------------------------------------------------------------

@dataclass
class Result:
    setup: Setup
    rate: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    processed_by: list[int] = field(default_factory=list)  # per instance, from its log
    fetched_by: list[int] = field(default_factory=list)  # new entries stored, per instance
    events: Counter[str] = field(default_factory=Counter)
    cpu: dict[str, Any] = field(default_factory=dict)
    peaks_mb: list[float] = field(default_factory=list)
    exits: list[int | None] = field(default_factory=list)
    stop_s: float = 0.0
    ready_s: float = 0.0
    wall_s: float = 0.0
    story_lock: tuple[int, int, int] = (0, 0, 0)  # samples, held, a waiter
    problems: list[str] = field(default_factory=list)
    failed: str = ""


async def measure(setup: Setup, args: argparse.Namespace, round_no: int) -> Result:
    result = Result(setup)
    total = args.feeds * args.entries
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp, \
            GatedFarm(args.feeds, args.entries, args.ports) as farm:
        folder = Path(tmp)
        feeds_file = folder / "feeds.yaml"
        feeds_file.write_text(yaml.safe_dump({"feeds": [
            {"id": f"farm-{i}", "url": u} for i, u in enumerate(farm.urls())]}))
        async with database(setup.backend, folder, args.postgres) as url:
            instances: list[Instance] = []
            meter = MemoryPeaks(instances)
            progress = Progress(url)
            try:
                start = time.perf_counter()
                await start_instances(instances, setup.instances, folder, url, feeds_file,
                                      args.nlp_workers, args.together)
                meter.start()
                await wait_ready(instances)
                result.ready_s = time.perf_counter() - start
                await run_open(result, farm, instances, progress, total, args.timeout)
            except Exception as exc:
                result.failed = f"{type(exc).__name__}: {exc}"
            finally:
                await progress.close()
                result.stop_s = stop_instances(instances)
                if meter.is_alive():
                    meter.stop()
                read_logs(result, instances)
                if args.keep_logs:
                    keep(args.keep_logs / f"round-{round_no}", setup, instances)
    if not result.failed:
        result.rate = total / result.summary["span_s"]
        result.problems = check(result, total)
    return result


async def run_open(result: Result, farm: GatedFarm, instances: list[Instance],
                   progress: Progress, total: int, timeout: float) -> None:
    """Open the farm and wait until everything is processed and delivered; CPU use, the
    story lock's samples (PostgreSQL) and the database's summary into ``result``."""
    database = progress.engine.url.database or ""
    before = cpu_snapshot(instances, farm.stats_url, database)
    opened = time.perf_counter()
    farm.open()
    sampled = asyncio.Event()
    sampler = asyncio.create_task(progress.sample_story_lock(sampled)) \
        if result.setup.backend == "postgresql" else None
    try:
        await progress.wait_done(total, timeout)
    finally:
        sampled.set()
        if sampler is not None:
            result.story_lock = await sampler
    result.wall_s = time.perf_counter() - opened
    result.cpu = cpu_use(before, cpu_snapshot(instances, farm.stats_url, database))
    result.summary = await progress.summary()


def read_logs(result: Result, instances: list[Instance]) -> None:
    for inst in instances:
        processed = fetched = 0
        for event in inst.events():
            name = event.get("event", "")
            if name == "cycle.done":
                processed += int(event.get("processed") or 0)
            elif name == "feed.fetched":
                fetched += int(event.get("new") or 0)
            if name in WATCHED or event.get("level") in ("error", "critical"):
                result.events[name] += 1
        result.processed_by.append(processed)
        result.fetched_by.append(fetched)
        result.peaks_mb.append(inst.peak_mb)
        result.exits.append(inst.exit_code)


def keep(where: Path, setup: Setup, instances: list[Instance]) -> None:
    where.mkdir(parents=True, exist_ok=True)
    for n, inst in enumerate(instances, 1):
        name = f"{setup.backend}-{setup.instances}-instance-{n}.log"
        (where / name).write_bytes(inst.log.read_bytes())


def check(result: Result, total: int) -> list[str]:
    s, problems = result.summary, []
    if s["entries"] != total:
        problems.append(f"{s['entries']} entries stored, not {total}")
    if sum(result.processed_by) != total:
        problems.append(f"instances processed {sum(result.processed_by)} entries (logs), "
                        f"not {total}")
    if s["failed"]:
        problems.append(f"{s['failed']} entries failed")
    if set(s["deliveries"]) - {"delivered"}:
        problems.append(f"deliveries {s['deliveries']}")
    if any(code != 0 for code in result.exits):
        problems.append(f"exit codes {result.exits} (None: killed after "
                        f"{STOP_TIMEOUT_S:.0f} s)")
    if result.events:
        problems.append(", ".join(f"{n} {k}" for k, n in sorted(result.events.items())))
    return problems


# -- the table ---------------------------------------------------------------------------

def row(result: Result, base: Result | None, rounds: list[Result]) -> str:
    s = result.setup
    if result.failed:
        return f"| {s.label} | failed: {result.failed.splitlines()[0][:150]} |" + " |" * 12
    each = ", ".join(f"{r.rate:.1f}" if not r.failed else "failed" for r in rounds)
    ratio = f"{result.rate / base.rate:.2f}x" if base and base.rate else ""
    summ, cpu = result.summary, result.cpu
    inst_cpu = " / ".join(f"{c:.0f}" for c in cpu["instances_s"])
    samples, held, waited = result.story_lock
    lock = f"{held / samples:.0%} / {waited / samples:.0%}" if samples else "–"
    pg = f"{cpu['postgres_s']:.1f}" if s.backend == "postgresql" else "–"
    shares = " + ".join(f"{f}/{p}" for f, p in zip(result.fetched_by, result.processed_by,
                                                    strict=True))
    return (f"| {s.label} | {summ['entries']:,} | {summ['span_s']:.1f} | {result.rate:.1f} | "
            f"{each} | {ratio} | {summ['alerts']} / {summ['matches']} / {summ['stories']} | "
            f"{shares} | "
            f"{lock} | {cpu['machine_busy'] * 100:.0f}% | {cpu['others_s']:.0f} | {inst_cpu} | "
            f"{pg} | "
            f"{' / '.join(f'{m:.0f}' for m in result.peaks_mb)} | "
            f"{'ok' if not result.problems else '; '.join(result.problems)} |")


HEADER = ("| setup | entries | seconds | entries/s | each round | × (PostgreSQL, 1) | "
          "alerts / matches / stories | stored / processed per instance (logs) | "
          "story lock held / waited for | machine busy | others' CPU s | "
          "CPU s per instance tree | PostgreSQL CPU s | peak RSS MB per instance | checks |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def setups(args: argparse.Namespace) -> list[Setup]:
    counts = [int(n) for n in args.instances.split(",")]
    out = [Setup("postgresql", n) for n in counts]
    if not args.no_sqlite:
        out.insert(1 if counts and counts[0] == 1 else 0, Setup("sqlite", 1))
    return out


async def run(args: argparse.Namespace) -> int:
    plan = setups(args)
    cores = len(os.sched_getaffinity(0))
    print(f"{args.feeds} feeds × {args.entries} entries = {args.feeds * args.entries:,} "
          f"entries a measurement; nlp.workers: {args.nlp_workers} per instance; {cores} "
          f"cores shared by the instances, PostgreSQL and the feed farm; {args.rounds} "
          f"round(s) of: {', '.join(s.label for s in plan)}.", flush=True)
    results: list[list[Result]] = []
    for n in range(args.rounds):
        done: list[Result] = []
        for setup in plan:
            result = await measure(setup, args, n + 1)
            done.append(result)
            print(f"  round {n + 1}, {setup.label}: "
                  + (f"failed: {result.failed}" if result.failed else
                     f"{result.rate:.1f} entries/s (ready after {result.ready_s:.0f} s, "
                     f"{result.wall_s:.0f} s from opening to done, others used "
                     f"{result.cpu['others_s']:.0f} CPU s, stopped in {result.stop_s:.1f} s)"
                     + (f"; {'; '.join(result.problems)}" if result.problems else "")),
                  flush=True)
        results.append(done)
    by_setup = [[r[i] for r in results] for i in range(len(plan))]
    best = [max(rounds, key=lambda r: r.rate) for rounds in by_setup]
    base = next((r for r in best if r.setup == Setup("postgresql", 1)), None)
    print(f"\n{'Best of ' + str(args.rounds) + ' rounds' if args.rounds > 1 else 'Results'} "
          f"(entries/s: entries / (last processed_at - first fetched_at)):\n")
    print(HEADER)
    for result, rounds in zip(best, by_setup, strict=True):
        print(row(result, base, rounds))
    print("\nmachine busy: all cores over the measurement; others' CPU s: busy time none of "
          "this benchmark's processes accounts for (other users: a large number means a "
          "contended round); CPU s per instance tree: the daemon and its workers; story lock: "
          "share of samples in which it was held / someone waited for it.")
    failed = any(r.failed or r.problems for rs in results for r in rs)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 40 feeds × 10 entries, 1 and 2 instances + SQLite, "
                           "one round")
    parser.add_argument("--feeds", type=int, default=None, help="default 120 (quick: 40)")
    parser.add_argument("--entries", type=int, default=None,
                        help="entries per feed, default 20 (quick: 10)")
    parser.add_argument("--instances", default=None, help="default 1,2,3 (quick: 1,2)")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite row")
    parser.add_argument("--nlp-workers", type=int, default=1, help="nlp.workers per instance")
    parser.add_argument("--rounds", type=int, default=None,
                        help="measure every setup this many times, interleaved; the table "
                             "shows the best (default 2; quick: 1)")
    parser.add_argument("--together", action="store_true",
                        help="start every instance at once (by default the first has made "
                             "the database and stored the feeds before the others start)")
    parser.add_argument("--ports", type=int, default=64, help="hosts (ports) of the farm")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds from opening the farm to giving up")
    parser.add_argument("--postgres", default=POSTGRES, help="server URL, without a database")
    parser.add_argument("--keep-logs", type=Path, default=None,
                        help="copy each instance's log into this folder")
    args = parser.parse_args(argv)
    args.feeds = args.feeds or (40 if args.quick else 120)
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.entries = args.entries or (10 if args.quick else 20)
    args.instances = args.instances or ("1,2" if args.quick else "1,2,3")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
