"""Process meters for ``bench/poll.py`` (Linux ``/proc``): RSS and PSS, CPU per thread,
and the CPU and memory of a process's descendants (e.g. ingest's worker processes)."""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any


def rss_mb() -> float:
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process, grouped by role."""
    names: dict[int | None, str | None] = {}
    for t in threading.enumerate():
        if isinstance(t, TreePeak):
            names[t.native_id] = None  # the meter's own thread
        elif t is threading.main_thread():
            names[t.native_id] = "main"
        elif "_connection_worker_thread" in t.name or type(t).__module__.startswith("aiosqlite"):
            names[t.native_id] = "aiosqlite (SQLite)"
        else:
            names[t.native_id] = t.name.rstrip("0123456789_-") or "other"
    tick = os.sysconf("SC_CLK_TCK")
    groups: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), "other")
        if name is None:
            continue
        groups[name] = groups.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return groups


def cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def descendants() -> list[int]:
    """This process's children, theirs, and so on (e.g. ingest's worker processes)."""
    found: list[int] = []
    todo = [os.getpid()]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                kids = [int(k) for k in task.read_text().split()]
                found += kids
                todo += kids
    return found


def proc_cpu_s(pid: int) -> float:
    """CPU seconds of a live process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    """CPU seconds of live descendants plus those of children already waited for."""
    return sum(proc_cpu_s(pid) for pid in descendants()) + cpu_s(resource.RUSAGE_CHILDREN)


def memory(pid: int) -> tuple[float, float]:
    """RSS and PSS (MB) of a live process (0, 0 once it is gone).  RSS counts pages shared
    with other processes (libraries) in full; PSS splits them, so PSS adds up."""
    rss = pss = 0.0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) / 1024
    return rss, pss


def peaks(sampler: TreePeak) -> dict[str, float]:
    """Peaks so far: this process's and its largest live descendant's (VmHWM: live
    processes, unlike ``ru_maxrss`` for children), and the sampled tree's RSS and PSS."""
    hwm = [_hwm_mb(pid) for pid in descendants()]
    return {"peak_mb": _hwm_mb(os.getpid()), "children_peak_mb": max(hwm, default=0.0),
            "tree_peak_mb": sampler.rss_mb, "tree_pss_mb": sampler.pss_mb}


def _hwm_mb(pid: int) -> float:
    with contextlib.suppress(OSError, IndexError):
        return int(Path(f"/proc/{pid}/status").read_text().split("VmHWM:")[1].split()[0]) / 1024
    return 0.0


def tree_memory() -> tuple[float, float]:
    """RSS and PSS (MB) of this process plus its descendants."""
    each = [memory(pid) for pid in [os.getpid(), *descendants()]]
    return sum(r for r, _ in each), sum(p for _, p in each)


class TreePeak(threading.Thread):
    """Samples :func:`tree_memory` 5 times a second and keeps the peaks (MB)."""

    def __init__(self) -> None:
        super().__init__(name="tree-peak", daemon=True)
        self.rss_mb = self.pss_mb = 0.0
        self._stop_at = threading.Event()

    def run(self) -> None:
        while not self._stop_at.wait(0.2):
            rss, pss = tree_memory()
            self.rss_mb, self.pss_mb = max(self.rss_mb, rss), max(self.pss_mb, pss)

    def stop(self) -> tuple[float, float]:
        self._stop_at.set()
        self.join()
        return self.rss_mb, self.pss_mb


async def measure(step: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """Await ``step``: its wall and CPU seconds (this process; its descendants apart), CPU
    seconds per thread (``ended threads``: those gone meanwhile), and its result."""
    threads0, kids0 = thread_cpu(), children_cpu_s()
    cpu0, start = cpu_s(), time.perf_counter()
    result = await step()
    seconds, cpu = time.perf_counter() - start, cpu_s() - cpu0
    threads = {k: round(v - threads0.get(k, 0.0), 2) for k, v in thread_cpu().items()}
    threads["ended threads"] = round(cpu - sum(threads.values()), 2)
    kids = children_cpu_s() - kids0
    threads["worker processes"] = round(kids, 2)
    return {"s": seconds, "cpu_s": cpu, "children_cpu_s": kids, "threads": threads,
            "result": result}
