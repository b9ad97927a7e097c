"""What a configuration reload (SIGHUP) can change in a running service, and what it cannot.

Pure: compares two loaded :class:`~ingest.config.Settings`.  Settings the running parts
were built from (the database, the HTTP clients and channels, the worker pools, the
status endpoint, the fleet timings) keep their old values until a restart, and the
reload says which of them changed; everything else is in force from the next poll or
batch: feeds and feed files, rules and the gazetteer, routes, health, stories,
retention, full text, logging and the shutdown timeout.  Routes, default channels and
the health channel wait for a restart too when they name a channel only a restart
would start.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest.config import Settings

# Top-level settings only a restart applies (the parts built from them at start).
RESTART_ONLY = ("database_url", "polling", "nlp", "delivery", "channels", "http", "fleet",
                "rules_watch")


@dataclass(frozen=True)
class ReloadPlan:
    settings: Settings  # the new settings, with the restart-only ones kept as they were
    changed: tuple[str, ...]  # top-level settings that changed and are now in force
    restart_needed: tuple[str, ...]  # top-level settings that changed but wait for a restart


# Settings that name channels: live only while every channel they name is running.
NAMES_CHANNELS = ("default_channels", "routes", "health")


def plan_reload(old: Settings, new: Settings) -> ReloadPlan:
    """The settings to put in force now, and what changed.  Settings naming a channel
    that only a restart would start wait for the restart too."""
    fields = [name for name in Settings.model_fields if name != "source"]
    differ = [name for name in fields if getattr(old, name) != getattr(new, name)]
    held = set(RESTART_ONLY)
    if not _named_channels(new) <= set(old.channels):
        held.update(NAMES_CHANNELS)
    kept = new.model_copy(update={name: getattr(old, name) for name in held})
    return ReloadPlan(kept, tuple(n for n in differ if n not in held),
                      tuple(n for n in differ if n in held))


def _named_channels(settings: Settings) -> set[str]:
    names = set(settings.default_channels or ())
    names.update(c for r in settings.routes for c in r.channels)
    if settings.health.channel is not None:
        names.add(settings.health.channel)
    return names
