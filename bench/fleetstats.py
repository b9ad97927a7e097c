"""CPU and memory of a ``bench/fleet.py`` measurement, read from ``/proc``: each instance's
process tree, the PostgreSQL server's processes, the feed farm, this process and the
machine as a whole (other users' work included).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import procstats as ps  # bench/
from feedfarm import farm_stats  # bench/
from fleetprocs import Instance  # bench/

PG_HELPERS = (": checkpointer", ": background writer", ": walwriter", ": autovacuum")


def postgres_cpu(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL process on this machine serving ``database`` (its
    backends) or the whole server (checkpointer, writers, autovacuum); other databases'
    backends (other users' tests) are left out."""
    found = {}
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() != "postgres":
                continue
            title = (comm.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if f" {database} " in title or any(h in title for h in PG_HELPERS):
                found[int(comm.parent.name)] = ps.proc_cpu_s(int(comm.parent.name))
    return found


def machine_busy() -> tuple[float, float]:
    """Busy and total jiffies of all cores since boot (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


class MemoryPeaks(threading.Thread):
    """Samples each instance's process tree RSS once a second; keeps each one's peak."""

    def __init__(self, instances: list[Instance]) -> None:
        super().__init__(name="fleet-memory", daemon=True)
        self.instances = instances
        self._stop_at = threading.Event()

    def run(self) -> None:
        while not self._stop_at.wait(1.0):
            for inst in self.instances:
                rss = sum(ps.memory(pid)[0] for pid in inst.tree())
                inst.peak_mb = max(inst.peak_mb, rss)

    def stop(self) -> None:
        self._stop_at.set()
        self.join()


def cpu_snapshot(instances: list[Instance], stats_url: str, database: str) -> dict[str, Any]:
    """CPU seconds so far: each instance's tree, each PostgreSQL process's (``database``'s
    backends and the server's helpers), the farm's, this process's, and the machine's busy
    and total jiffies."""
    busy, total = machine_busy()
    return {"instances": [i.cpu_s() for i in instances], "postgres": postgres_cpu(database),
            "farm": farm_stats(stats_url)["cpu_s"], "bench": ps.cpu_s(), "busy": busy,
            "total": total}


def cpu_use(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """CPU seconds over the measurement; ``others_s``: the machine's busy time that none of
    ours (instances, PostgreSQL, farm, this process) accounts for: other users' work."""
    d = {k: after[k] - before[k] for k in ("farm", "bench", "busy", "total")}
    d["postgres"] = sum(cpu - before["postgres"].get(pid, 0.0)  # new backends: all of theirs
                        for pid, cpu in after["postgres"].items())
    instances = [b - a for a, b in zip(before["instances"], after["instances"], strict=True)]
    busy_s = d["busy"] / os.sysconf("SC_CLK_TCK")
    ours = sum(instances) + d["postgres"] + d["farm"] + d["bench"]
    return {"instances_s": instances, "postgres_s": d["postgres"], "farm_s": d["farm"],
            "machine_busy": d["busy"] / max(1, d["total"]), "others_s": max(0.0, busy_s - ours)}
