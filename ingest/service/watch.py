"""Watching the rule files and the gazetteer, so that an edit is taken up without a restart.

What is watched: ``rules_dir``, recursively (rule files, the ``lists/`` folder, and the
gazetteer when it lives there), and, when the gazetteer lives elsewhere, its folder
for that one file.  Only YAML files count, and folders (a folder moved in or out
raises one event, for itself, none for its files); editor swap, backup and lock
files (``.swp``, ``~``, ``.#name``, ``flycheck_``) and ``.git`` and the like are ignored.

Changes are debounced by :func:`watchfiles.awatch`: a burst (an editor's save, a
``git pull``) ends after ``quiet_ms`` without events, or ``debounce_ms`` at most, and
calls ``on_change`` once.  The caller coalesces and serialises the reloads that follow
(see :mod:`ingest.service.scheduler`, which also says why a reload is safe while
entries are being processed).

A missing folder is not an error: it is looked for every ``recheck_s`` and watched
once it exists.  A folder deleted or replaced while watched (``rm -r`` and a fresh
copy, a symlink switched by a deploy) is noticed within ``recheck_s`` and watched
anew.  Each time watching (re)starts, ``on_change`` is called once, so that an edit
made while nothing was watching is not lost.  Watching stops when ``stop`` is set,
within ``quiet_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from watchfiles import Change, DefaultFilter, awatch

from ingest.rules.load import RULE_SUFFIXES

log = structlog.get_logger("ingest.watch")

IGNORED_DIRS = frozenset((*DefaultFilter.ignore_dirs, ".vscode"))
IGNORED_NAMES = tuple(re.compile(p) for p in (*DefaultFilter.ignore_entity_patterns, r"^#.*#$"))


@dataclass(frozen=True)
class Target:
    """A folder to watch, and which of its changes count."""

    folder: Path
    recursive: bool = True
    name: str | None = None  # only this file counts (a gazetteer outside the rules folder)


def targets_for(rules_dir: Path, gazetteer: Path) -> list[Target]:
    """The folders to watch for these rules and this gazetteer."""
    targets = [Target(rules_dir)]
    if not gazetteer.is_relative_to(rules_dir):
        targets.append(Target(gazetteer.parent, recursive=False, name=gazetteer.name))
    return targets


class ChangeFilter:
    """Keeps the changes of a :class:`Target` that can alter the rules; drops editor droppings."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def __call__(self, change: Change, path: str) -> bool:
        changed = Path(path)
        try:
            parts = changed.relative_to(self.target.folder).parts
        except ValueError:
            parts = changed.parts
        if not parts:  # the folder itself: its disappearance is noticed by its identity
            return False
        if any(p in IGNORED_DIRS for p in parts) or any(r.search(parts[-1]) for r in IGNORED_NAMES):
            return False
        if self.target.name is not None:
            return changed.name == self.target.name
        if changed.suffix in RULE_SUFFIXES:
            return True
        # A deleted folder cannot be told from a deleted file: guess by the missing suffix.
        return changed.is_dir() if change != Change.deleted else not changed.suffix


async def watch(targets: Sequence[Target], on_change: Callable[[], None], stop: asyncio.Event,
                *, quiet_ms: int = 200, debounce_ms: int = 1_600, recheck_s: float = 2.0) -> None:
    """Call ``on_change()`` after each burst of changes to ``targets``, until ``stop`` is set."""
    async with asyncio.TaskGroup() as group:
        for target in targets:
            group.create_task(_watch_one(target, on_change, stop, quiet_ms, debounce_ms,
                                         recheck_s))


async def _watch_one(target: Target, on_change: Callable[[], None], stop: asyncio.Event,
                     quiet_ms: int, debounce_ms: int, recheck_s: float) -> None:
    folder = str(target.folder)
    missing = False
    while not stop.is_set():
        watched = _identity(target.folder)
        if watched is None:
            if not missing:
                log.warning("rules.watch_missing", folder=folder,
                            hint=f"watched once it exists (checked every {recheck_s:g}s)")
                missing = True
            await _pause(stop, recheck_s)
            continue
        missing = False
        log.info("rules.watching", folder=folder, recursive=target.recursive,
                 file=target.name)
        # Catch up on edits made while nothing watched.  awatch starts watching before
        # its first await, so the reload this asks for reads the files after that.
        on_change()
        changes = awatch(folder, watch_filter=ChangeFilter(target), stop_event=stop,
                         debounce=debounce_ms, step=quiet_ms, recursive=target.recursive,
                         rust_timeout=round(recheck_s * 1000), yield_on_timeout=True)
        try:
            async with contextlib.aclosing(changes):
                async for batch in changes:
                    if batch:
                        log.info("rules.changed", files=sorted(p for _, p in batch))
                        on_change()
                    if _identity(target.folder) != watched:  # deleted or replaced
                        log.info("rules.watch_restart", folder=folder)
                        on_change()
                        break
        except FileNotFoundError:  # gone between the check and the watch: look again
            continue
        except OSError as exc:  # e.g. the system's limit on watches is reached
            log.error("rules.watch_failed", folder=folder, error=str(exc),
                      hint="edits here are taken up on SIGHUP only")
            return


def _identity(folder: Path) -> tuple[int, int] | None:
    """The folder's device and inode (through symlinks), or None when it is not a folder."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
