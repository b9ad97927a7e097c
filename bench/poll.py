"""Polling N feeds: ingest against the ``reader`` library, on the same loopback feed farm.

    .venv/bin/python bench/poll.py [--sizes 100,1000,10000 | --quick] [--full-pipeline]
        [--reader-workers 1,4,8,16,32] [--ports 64] [--profile]

For each N: a feed farm (``bench/feedfarm.py``, a child process) serves N RSS feeds of 20
items on ``--ports`` loopback ports, feeds spread round-robin (a client keying hosts by
host:port sees that many hosts).  Each engine runs in a fresh child process: two cycles
over every feed, the first answered 200, the second 304 (ETags sent back).  The child
checks the farm's answers per status and that N*20 entries were stored; a failed check
is shown in the table.  Memory: the child's and its workers' peaks (``procstats``).

Engines: ``reader`` (``update_feeds(scheduled=False, workers=W)``, W the fastest of
``--reader-workers`` at N=100); ours, ``await app.poll(force=True)`` (fetch, parse, dedup,
store: the work reader does) with the default politeness (``per_host: 2``,
``host_spacing: 1s``: binds once a host has more feeds than it can space out) and with
politeness that cannot bind (reader has none: the like-for-like row); ``--full-pipeline``
adds ``run_cycle(force=True)`` (NLP, stories, rules; no channels) up to ``--full-max``.

The farm shares the machine's cores with the client; its CPU seconds per cycle are shown.
``--profile``: a cProfile of one 200 cycle of ours at ``--profile-size`` (the loop's
thread only), then each stage timed alone.  Ratios matter: these machines are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import procstats as ps  # bench/
from feedfarm import Farm, farm_stats  # bench/

REPO = Path(__file__).resolve().parent.parent
ITEMS = 20
POLITE = {"per_host": 2, "host_spacing": 1.0}  # PollingSettings' defaults
UNBOUND = {"per_host": 100, "host_spacing": 0}
LABELS = {"reader": "reader", "polite": "ours poll, default politeness",
          "unbound": "ours poll, politeness off", "full": "ours run_cycle (full), polit. off"}


# -- measuring, in the child ---------------------------------------------------------

async def timed(step: Callable[[], Awaitable[Any]], stats_url: str) -> dict[str, Any]:
    """One cycle (:func:`procstats.measure`), with the farm's answers and CPU seconds."""
    before = farm_stats(stats_url, reset=True)
    out = await ps.measure(step)
    after = farm_stats(stats_url)
    return {**out, "hits": after["counts"], "farm_cpu_s": after["cpu_s"] - before["cpu_s"]}


# -- the engines, in the child ------------------------------------------------------

def write_config(folder: Path, urls: list[str], mode: str, nlp_workers: int | None) -> Path:
    import yaml

    feeds = [{"id": f"farm-{i}", "url": url} for i, url in enumerate(urls)]
    (folder / "feeds.yaml").write_text(yaml.safe_dump({"feeds": feeds}))
    config: dict[str, Any] = {
        "database_url": f"sqlite:///{folder / 'ingest.db'}", "rules_dir": str(REPO / "rules"),
        "feed_files": [str(folder / "feeds.yaml")], "rules_watch": False,
        "polling": POLITE if mode == "polite" else UNBOUND, "log": {"level": "error"}}
    if nlp_workers is not None:
        config["nlp"] = {"workers": nlp_workers}
    (folder / "ingest.yaml").write_text(yaml.safe_dump(config))
    return folder / "ingest.yaml"


async def run_ours(args: argparse.Namespace, urls: list[str], folder: Path,
                   sampler: ps.TreePeak) -> dict[str, Any]:
    from ingest.config import load_config
    from ingest.logs import configure_logging
    from ingest.service.app import App

    configure_logging("error", "json")  # not "no channels configured" in the table
    settings = load_config(write_config(folder, urls, args.child, args.nlp_workers))
    app = await App.start(settings)
    out: dict[str, Any] = {"rss_start_mb": ps.rss_mb(), "cycles": []}
    try:
        for n in range(2):
            step = app.run_cycle if args.child == "full" else app.poll

            async def cycle(step: Callable[..., Awaitable[Any]] = step) -> dict[str, Any]:
                report = await step(force=True)
                errors = list(report.errors.items())
                return {"errors": len(errors), "first_error": errors[0] if errors else None,
                        "new": report.new_entries, "alerts": len(report.alerts)}

            if args.profile and n == 0:
                profiler = cProfile.Profile()
                profiler.enable()
                out["cycles"].append(await timed(cycle, args.stats_url))
                profiler.disable()
                print_profile(profiler, out["cycles"][0])
                await stages(app, urls, folder)
            else:
                out["cycles"].append(await timed(cycle, args.stats_url))
        out["entries"] = await app.store.count_entries()
        out.update(ps.peaks(sampler))  # before the model is loaded in the other workers
        await load_model_everywhere(app)
        out["loaded_mb"] = [*ps.tree_memory(), [round(ps.memory(p)[0]) for p in ps.descendants()]]
    finally:
        await app.close()
    return out


async def load_model_everywhere(app: Any) -> None:
    """Have every NLP worker load the spaCy model (``App.start`` loads it in one): rounds
    of a batch per worker at once, until that many processes hold a model (> 150 MB)."""
    from datetime import date

    workers = app.settings.nlp.workers  # None: one per core, as ingest's default
    workers = len(os.sched_getaffinity(0)) if workers is None else max(workers, 1)
    texts = ["Japan's defence minister met NATO officials in Berlin on Monday. " * 15] * 16
    for _ in range(5):
        await asyncio.gather(*(app.runner.analyze(texts, [date(2026, 1, 5)] * len(texts))
                               for _ in range(workers)))
        if sum(ps.memory(p)[0] > 150 for p in ps.descendants()) >= workers:
            return


def run_reader(args: argparse.Namespace, urls: list[str], folder: Path) -> dict[str, Any]:
    from reader import make_reader

    reader = make_reader(str(folder / "reader.sqlite"))
    for url in urls:
        reader.add_feed(url)
    out: dict[str, Any] = {"rss_start_mb": ps.rss_mb(), "cycles": []}

    async def cycle() -> dict[str, Any]:
        reader.update_feeds(scheduled=False, workers=args.workers)
        broken = [f for f in reader.get_feeds(broken=True)]
        return {"errors": len(broken), "new": None, "alerts": 0,
                "first_error": (broken[0].url, repr(broken[0].last_exception))
                if broken else None}

    for _ in range(2):
        out["cycles"].append(asyncio.run(timed(cycle, args.stats_url)))
    out["entries"] = reader.get_entry_counts().total
    reader.close()
    return out


def print_profile(profiler: cProfile.Profile, cycle: dict[str, Any]) -> None:
    """Top 15 cumulative and own time.  Coroutines' and SQLAlchemy's greenlets' cumulative
    times count time spent suspended while other tasks ran: read them with care."""
    for order in ("cumulative", "tottime"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(15)
        print(text.getvalue().split("\n\n", 1)[-1].strip() + "\n")
    print(f"CPU by thread in this cycle: {cycle['threads']}  (wall {cycle['s']:.2f} s)\n")


async def stages(app: Any, urls: list[str], folder: Path) -> None:
    """Each stage of a 200 cycle on its own, without the profiler: wall and CPU seconds."""
    from datetime import UTC, datetime

    import feedparser

    from ingest.parse.normalize import parse_document
    from ingest.parse.text import html_to_text
    from ingest.store.sql import open_store

    gate, now = asyncio.Semaphore(app.settings.polling.concurrency), datetime.now(UTC)
    marks = [(time.perf_counter(), ps.cpu_s())]

    def lap(what: str) -> None:
        marks.append((time.perf_counter(), ps.cpu_s()))
        (w0, c0), (w1, c1) = marks[-2:]
        print(f"  {what:<68} {w1 - w0:7.2f} s wall {c1 - c0:7.2f} s CPU", flush=True)

    async def get(url: str) -> Any:
        async with gate:
            return await app.fetcher.fetch(url)

    print(f"Stages of a 200 cycle alone, {len(urls):,} feeds:")
    results = await asyncio.gather(*(get(u) for u in urls))
    lap(f"fetch: Fetcher.fetch, {app.settings.polling.concurrency} at a time (httpx)")
    raw = [feedparser.parse(io.BytesIO(r.body), sanitize_html=False,
                            resolve_relative_uris=False) for r in results]
    lap("feedparser.parse alone (sanitize_html, resolve_relative_uris off)")
    parsed = [parse_document(r.body, feed_id=f"farm-{i}", url=u, now=now,
                             content_type=r.content_type)
              for i, (u, r) in enumerate(zip(urls, results, strict=True))]
    lap("parse_document, in this process (feedparser, html_to_text, keys, dates)")
    _ = [html_to_text(e.get(k, "")) for d in raw for e in d.entries for k in ("title", "summary")]
    lap("html_to_text alone (titles and summaries)")
    store = open_store(f"sqlite:///{folder / 'stages.db'}")
    try:
        await store.init()
        await store.sync_feeds(app.settings.all_feeds(), now)
        marks.append((time.perf_counter(), ps.cpu_s()))
        for p in parsed:
            await store.add_entries(p.entries, now)
        lap("store.add_entries, feed after feed, fresh SQLite (not record_fetch)")
    finally:
        await store.close()


def child(args: argparse.Namespace) -> int:
    urls = json.loads(Path(args.urls).read_text())
    sampler = ps.TreePeak()
    sampler.start()
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp:
        if args.child == "reader":
            out = run_reader(args, urls, Path(tmp))
        else:
            out = asyncio.run(run_ours(args, urls, Path(tmp), sampler))
    out = {**ps.peaks(sampler), **out}  # ours has taken them before loading more models
    sampler.stop()
    Path(args.result).write_text(json.dumps(out, default=str))
    return 0


# -- the parent: farms, children, the table -------------------------------------------

def spawn(engine: str, farm: Farm, args: argparse.Namespace, *, workers: int = 1,
          profile: bool = False) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        cmd = [sys.executable, __file__, "--child", engine, "--urls", farm.urls_file,
               "--result", result.name, "--workers", str(workers), "--stats-url", farm.stats_url]
        if args.nlp_workers is not None:
            cmd += ["--nlp-workers", str(args.nlp_workers)]
        done = subprocess.run(cmd + (["--profile"] if profile else []), check=False)
        if done.returncode != 0:
            return {"failed": f"child exited with {done.returncode}"}
        out: dict[str, Any] = json.loads(Path(result.name).read_text())
    out["problems"] = check(out, farm.feeds)
    return out


def check(out: dict[str, Any], n: int) -> list[str]:
    problems = []
    for cycle, status in zip(out["cycles"], ("200", "304"), strict=True):
        if cycle["hits"] != {status: n}:
            problems.append(f"cycle {status}: farm answered {cycle['hits']}")
        if cycle["result"]["errors"]:
            problems.append(f"cycle {status}: {cycle['result']['errors']} feed errors, e.g. "
                            f"{str(cycle['result']['first_error'])[:160]}")
    if out["entries"] != n * ITEMS:
        problems.append(f"{out['entries']} entries stored, not {n * ITEMS}")
    return problems


def calibrate(args: argparse.Namespace) -> int:
    """reader's fastest worker count at N=100 (best of two runs each: N=100 is noisy)."""
    candidates = [int(w) for w in args.reader_workers.split(",")]
    if len(candidates) == 1:
        return candidates[0]
    times: dict[int, float] = {}
    with Farm(100, ITEMS, args.ports) as farm:
        for w in candidates:
            runs = [spawn("reader", farm, args, workers=w) for _ in range(2)]
            times[w] = min(sum(c["s"] for c in out["cycles"]) if "cycles" in out
                           else float("inf") for out in runs)
            print(f"  reader workers={w:<3} N=100: 200 cycle + 304 cycle = {times[w]:.2f} s",
                  flush=True)
    best = min(times, key=times.__getitem__)
    print(f"  reader's fastest: workers={best}\n", flush=True)
    return best


def row(n: int, engine: str, out: dict[str, Any], base: dict[str, Any] | None) -> str:
    if "failed" in out:
        return f"| {n:,} | {LABELS[engine]} | {out['failed']} | | | | | | |"
    c1, c2 = out["cycles"]
    ratio = ""
    if base is not None and "cycles" in base and engine != "reader":
        ratio = " / ".join(f"{a['s'] / b['s']:.2f}" for a, b in zip(out["cycles"],
                                                                     base["cycles"], strict=True))
    rss = f"{max(out['tree_peak_mb'], out['peak_mb']):.0f}"
    cpu = " / ".join(f"{c['cpu_s']:.1f}" + (f"+{c['children_cpu_s']:.1f}"
                                            if c["children_cpu_s"] >= 0.05 else "")
                     for c in (c1, c2))
    ok = "ok" if not out["problems"] else "; ".join(out["problems"])
    return (f"| {n:,} | {LABELS[engine]} | {c1['s']:.2f} | {c2['s']:.2f} | {cpu} | "
            f"{c1['farm_cpu_s']:.2f} / {c2['farm_cpu_s']:.2f} | {rss} | {out['entries']:,} | "
            f"{ratio} | {ok} |")


def memory_row(n: int, engine: str, out: dict[str, Any]) -> str:
    if "failed" in out:
        return f"| {n:,} | {LABELS[engine]} | | | | | |"
    loaded = ""
    if "loaded_mb" in out:
        rss, pss, each = out["loaded_mb"]
        loaded = f"{rss:.0f} / {pss:.0f} (workers {', '.join(map(str, each)) or 'none'})"
    return (f"| {n:,} | {LABELS[engine]} | {out['rss_start_mb']:.0f} | {out['peak_mb']:.0f} | "
            f"{out['children_peak_mb']:.0f} | {out['tree_peak_mb']:.0f} / "
            f"{out['tree_pss_mb']:.0f} | {loaded} |")


def parent(args: argparse.Namespace) -> int:
    sizes = [100, 1000] if args.quick else [int(s) for s in args.sizes.split(",")]
    print(f"Feed farm: {ITEMS} items a feed, {args.ports} loopback ports; "
          f"{os.cpu_count()} cores shared by the farm and the client.", flush=True)
    print(f"Calibrating reader's workers ({args.reader_workers}):", flush=True)
    workers = calibrate(args)
    lines = ["| N | engine | cycle 200s (s) | cycle 304s (s) | CPU s 200 / 304 (+workers) | "
             "farm CPU s 200 / 304 | peak RSS MB (with workers) | "
             "entries | ours/reader 200 / 304 | checks |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    threads: list[str] = []
    memory_lines = ["| N | engine | RSS at start | own peak | largest worker's peak | "
                    "tree peak RSS / PSS | model in every worker: tree RSS / PSS |",
                    "|---|---|---|---|---|---|---|"]
    results: dict[tuple[int, str], dict[str, Any]] = {}
    failed = False
    for n in sizes:
        engines = ["reader", "polite", "unbound"]
        if args.full_pipeline and n <= args.full_max:
            engines.append("full")
        with Farm(n, ITEMS, args.ports) as farm:
            print(f"N={n:,}: farm up ({farm.bytes / 1e6:.0f} MB of feeds)", flush=True)
            base = None
            for engine in engines:
                out = results[n, engine] = spawn(engine, farm, args, workers=workers)
                base = out if engine == "reader" else base
                lines.append(row(n, engine, out, base))
                memory_lines.append(memory_row(n, engine, out))
                print("  " + lines[-1], flush=True)
                failed |= "failed" in out or bool(out.get("problems"))
                if "cycles" in out:
                    threads.append(f"  N={n:,} {LABELS[engine]}: " + " | ".join(
                        str(c["threads"]) for c in out["cycles"]))
            if args.profile and n == args.profile_size:
                print(f"\nProfile of one 200 cycle of ours (politeness off), N={n:,}:")
                spawn("unbound", farm, args, profile=True)
    print(f"\nreader: update_feeds(scheduled=False, workers={workers}); ours: "
          f"App.poll(force=True) unless marked full; politeness: default {POLITE}, "
          f"off {UNBOUND}; nlp.workers: "
          f"{'default' if args.nlp_workers is None else args.nlp_workers}.\n")
    print("\n".join(lines))
    print("\nMemory, MB, over both cycles (peaks: VmHWM; tree: this process and its workers, "
          "sampled 5 times a second); then after loading the model in every NLP worker:\n"
          + "\n".join(memory_lines))
    print("\nCPU seconds by thread (200 cycle | 304 cycle):\n" + "\n".join(threads))
    print("\nTargets:\n" + "\n".join(targets(results)))
    return 1 if failed else 0


def targets(results: dict[tuple[int, str], dict[str, Any]]) -> list[str]:
    """The issue's targets, for the sizes that ran."""
    def get(n: int, engine: str) -> dict[str, Any] | None:
        out = results.get((n, engine))
        return out if out is not None and "cycles" in out else None

    said = []
    ours, reader = get(1000, "unbound"), get(1000, "reader")
    if ours and reader:
        ratio = ours["cycles"][0]["s"] / reader["cycles"][0]["s"]
        said.append(f"  N=1,000 200 cycle, ours (politeness off) / reader = {ratio:.2f} "
                    f"(target <= 0.33): {'met' if ratio <= 1 / 3 else 'MISSED'}")
    for engine in ("polite", "unbound", "full"):
        if (out := get(10_000, engine)) is None:
            continue
        s304 = out["cycles"][1]["s"]
        mb = max(out["tree_peak_mb"], out["loaded_mb"][0] if "loaded_mb" in out else 0)
        said.append(f"  N=10,000 {LABELS[engine]}: 304 cycle {s304:.1f} s (target < 60): "
                    f"{'met' if s304 < 60 else 'MISSED'}; peak RSS {mb:.0f} MB with workers "
                    f"and the model in each (target < 600): {'met' if mb < 600 else 'MISSED'}")
    return said or ["  (none of the target sizes ran)"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--quick", action="store_true", help="N = 100 and 1,000 only")
    parser.add_argument("--full-pipeline", action="store_true",
                        help="also time run_cycle (NLP, rules), for N <= --full-max")
    parser.add_argument("--full-max", type=int, default=1000)
    parser.add_argument("--reader-workers", default="1,4,8,16,32",
                        help="reader's worker counts to try at N=100 (one value: no trial)")
    parser.add_argument("--ports", type=int, default=64, help="hosts (ports) of the farm")
    parser.add_argument("--nlp-workers", type=int, default=None, help="ingest's nlp.workers")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile one 200 cycle of ours at --profile-size")
    parser.add_argument("--profile-size", type=int, default=1000)
    for hidden in ("--child", "--urls", "--result", "--stats-url"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return child(args) if args.child else parent(args)


if __name__ == "__main__":
    sys.exit(main())
