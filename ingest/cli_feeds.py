"""``ingest feeds list|status|reset|import|export``: the configured feeds, what the service
made of them, and subscription lists in and out.

Header values hold tokens: no command prints them (``list`` shows header names only, and
``export`` leaves headers out).  Imports check every feed before writing anything.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml

from ingest.cli_common import ConfigOpt, handles_errors, require_database, settings_from
from ingest.config import Settings
from ingest.errors import ConfigError, Problem
from ingest.feedlist import (
    OPML_SUFFIXES,
    append_feeds,
    duration_text,
    is_opml,
    load_feed_file,
    plan_import,
    read_for_import,
    yaml_feed_list,
)
from ingest.model import Feed
from ingest.opml import unrepresentable, write_opml
from ingest.store.base import FeedRow, Notice
from ingest.store.sql import SqlStore, open_store

feeds_app = typer.Typer(help="The configured feeds: list, status, reset, import, export.",
                        no_args_is_help=True)
T = TypeVar("T")
PROGRESS_FROM = 100  # imports of at least this many feeds show a progress bar on a terminal
SHOWN = 10  # skipped feeds listed one by one, at most
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document.")]


class ExportFormat(StrEnum):
    opml = "opml"
    yaml = "yaml"


def configured(settings: Settings, missing_ok: Path | None = None) -> list[tuple[Feed, str]]:
    """Every configured feed with the file it is defined in, read as the service reads
    them (a duplicate id is an error).  ``missing_ok`` may be a feed file not created yet."""
    found = [(f.to_feed(), settings.source) for f in settings.feeds]
    for path in settings.feed_files:
        feeds = _feeds_in(path) if path == missing_ok else load_feed_file(path)
        found += [(feed, str(path)) for feed in feeds]
    seen: dict[str, str] = {}
    for feed, source in found:
        if feed.id in seen:
            raise ConfigError([Problem(source, None, f"feed id {feed.id!r} is defined twice "
                                       f"(also in {seen[feed.id]}); give one another id")])
        seen[feed.id] = source
    return found


def _feeds_in(path: Path) -> list[Feed]:
    """The feeds of a YAML list about to be added to: none when it is missing or lists
    none yet (empty, comments only, or an empty `feeds:`)."""
    if not path.exists():
        return []
    try:
        return load_feed_file(path)
    except ConfigError:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            raise  # the ConfigError, which names the file and the line
        if data is None or (isinstance(data, dict) and not data.get("feeds")):
            return []  # nothing listed yet: importing adds the `feeds:` list
        raise


def _run(settings: Settings, work: Callable[[SqlStore], Awaitable[T]]) -> T:
    """Run ``work`` on the configured database, which must exist (the service made it)."""
    require_database(settings, " (the feeds' status is recorded there)")

    async def main() -> T:
        store = open_store(settings.database_url)
        try:
            await store.init()
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())


def _shown_path(path: str | Path) -> str:
    """A path relative to the working directory when it is below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *rows]]


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


# -- list -----------------------------------------------------------------------------------

def describe(feed: Feed, source: str, settings: Settings) -> dict[str, Any]:
    """What ``feeds list`` shows of a feed: its options in seconds (the polling defaults
    filled in and named in ``defaults``), and its header names, never their values."""
    polling = settings.polling
    values = {"interval_s": (feed.interval_s, polling.interval),
              "min_interval_s": (feed.min_interval_s, polling.min_interval),
              "max_interval_s": (feed.max_interval_s, polling.max_interval)}
    return {"id": feed.id, "url": feed.url, "title": feed.title, "tags": list(feed.tags),
            **{k: own if own is not None else default for k, (own, default) in values.items()},
            "defaults": [k.removesuffix("_s") for k, (own, _) in values.items() if own is None],
            "fulltext": feed.fulltext, "enabled": feed.enabled,
            "headers": [name for name, _ in feed.headers], "source": source}


@feeds_app.command("list")
@handles_errors
def feeds_list(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """The configured feeds, from the config and its feed files (no database needed).

    Header values are never shown, only their names.
    """
    settings = settings_from(config)
    rows = [describe(feed, source, settings) for feed, source in configured(settings)]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        typer.echo(f"no feeds configured in {settings.source}: list them under feeds: or "
                   "feed_files:, or run `ingest feeds import FILE.opml`")
        return
    table = []
    for r in rows:
        options = (["fulltext"] if r["fulltext"] else []) + (
            [f"headers: {', '.join(r['headers'])}"] if r["headers"] else [])
        table.append([r["id"], "yes" if r["enabled"] else "no",
                      f"{duration_text(r['interval_s'])} ({duration_text(r['min_interval_s'])}"
                      f"–{duration_text(r['max_interval_s'])})",
                      ",".join(r["tags"]) or "-", "; ".join(options) or "-",
                      _shown_path(r["source"]), _cut(r["title"], 32) or "-", r["url"]])
    for line in _table(["ID", "ENABLED", "INTERVAL (MIN–MAX)", "TAGS", "OPTIONS", "SOURCE",
                        "TITLE", "URL"], table):
        typer.echo(line)


# -- status ---------------------------------------------------------------------------------

def _span(seconds: float) -> str:
    """A short, rounded duration: 45s, 3m, 1.5h, 20h, 3d."""
    if round(seconds) < 60:
        return f"{round(seconds)}s"
    if round(seconds / 60) < 60:
        return f"{round(seconds / 60)}m"
    hours = seconds / 3600
    if round(hours) < 48:
        return f"{hours:.1f}".removesuffix(".0") + "h" if hours < 10 else f"{hours:.0f}h"
    return f"{round(seconds / 86400)}d"


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    seconds = (now - when).total_seconds()
    return "just now" if seconds < 1 else f"{_span(seconds)} ago"


def _until(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "-"
    seconds = (when - now).total_seconds()
    return "due now" if seconds <= 0 else f"in {_span(seconds)}"


def _disabled(row: FeedRow, conf: tuple[Feed, str] | None, known: bool) -> str | None:
    """Why the feed is not polled, or None."""
    if row.state.disabled_reason:
        return row.state.disabled_reason
    if row.feed.enabled:
        return None
    if conf is not None:
        return (f"enabled: false in {conf[1]}" if not conf[0].enabled else
                f"enabled in {conf[1]}, which the service reads when it next starts")
    return "not in the config any more" if known else "not enabled"


_NOT_POLLED = dict.fromkeys((
    "polled_url", "moved_to", "health_since", "disabled_reason", "disabled_by",
    "last_polled_at", "last_success_at", "last_error", "last_error_at", "failing_since",
    "next_poll_at", "fetch_time_avg_ms", "warning", "note"))


def feed_status(row: FeedRow | None, conf: tuple[Feed, str] | None,
                known: bool) -> dict[str, Any]:
    """One feed's status: from its database row, and the config when it lists the feed.
    ``known`` says whether the config's feed lists could be read."""
    if row is None:
        assert conf is not None
        feed, source = conf
        return {**_NOT_POLLED, "id": feed.id, "title": feed.title, "url": feed.url,
                "source": source, "in_config": True, "in_database": False,
                "enabled": feed.enabled, "health": "new", "error_count": 0,
                "entries_per_day": 0.0, "entries_seen": 0,
                "note": "not in the database yet: the service adds it when it next starts"}
    s = row.state
    config_url = row.config_url or row.feed.url
    reason = _disabled(row, conf, known)
    return {"id": row.feed.id, "title": conf[0].title if conf else row.feed.title,
            "url": config_url, "polled_url": s.url,
            "moved_to": s.url if s.url != config_url else None,
            "source": conf[1] if conf else None, "in_config": conf is not None,
            "in_database": True, "enabled": row.feed.enabled,
            "health": "disabled" if reason else (s.health or "ok"),
            "health_since": s.health_since, "disabled_reason": reason,
            "disabled_by": None if reason is None else
            "server" if s.disabled_reason else "config",
            "last_polled_at": row.last_polled_at, "last_success_at": row.last_success_at,
            "last_error": s.last_error, "last_error_at": row.last_error_at,
            "error_count": s.error_count, "failing_since": s.failing_since,
            "next_poll_at": None if reason else s.next_poll_at,
            "entries_per_day": row.entries_per_day, "entries_seen": row.entries_seen,
            "fetch_time_avg_ms": None if s.fetch_time_avg_s is None
            else round(s.fetch_time_avg_s * 1000, 1),
            "warning": row.warning, "note": None}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2,
                      default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


def _notes(st: dict[str, Any]) -> list[str]:
    """The advice lines under the table for one feed."""
    notes = []
    if st["moved_to"]:
        where = f" ({_shown_path(st['source'])})" if st["source"] else ""
        notes.append(f"moved to {st['moved_to']}: update the config{where}")
    if st["disabled_reason"]:
        notes.append(f"disabled: {st['disabled_reason']}" + (
            f" (`ingest feeds reset {st['id']}` polls it again)"
            if st["disabled_by"] == "server" else ""))
    if st["note"]:
        notes.append(st["note"])
    if st["warning"]:
        notes.append(f"warning: {st['warning']}")
    return notes


def _status_table(statuses: list[dict[str, Any]], now: datetime) -> list[str]:
    rows = []
    for st in statuses:
        error = (f"{_ago(st['last_error_at'], now)}: {_cut(st['last_error'], 60)}"
                 if st["last_error"] else "-")
        next_poll = "at start" if not st["in_database"] else (
            "not polled" if st["disabled_reason"] else _until(st["next_poll_at"], now))
        fetch = "-" if st["fetch_time_avg_ms"] is None else f"{st['fetch_time_avg_ms']:.0f} ms"
        rows.append([st["id"], st["health"], _ago(st["last_success_at"], now),
                     str(st["error_count"]), next_poll, f"{st['entries_per_day']:.1f}", fetch,
                     error])
    lines = _table(["ID", "HEALTH", "LAST SUCCESS", "ERRORS", "NEXT POLL", "PER DAY",
                    "AVG FETCH", "LAST ERROR"], rows)
    notes = [f"{st['id']}: {n}" for st in statuses for n in _notes(st)]
    counts: dict[str, int] = {}
    for st in statuses:
        counts[st["health"]] = counts.get(st["health"], 0) + 1
    summary = ", ".join(f"{n} {h}" for h, n in sorted(counts.items()))
    return [*lines, *(["", *notes] if notes else []), "", f"{len(statuses)} feeds: {summary}"]


def _detail(st: dict[str, Any], notices: list[Notice], now: datetime) -> list[str]:
    def at(key: str) -> str:
        when = st[key]
        return _ago(when, now) + (f" ({when:%Y-%m-%d %H:%M:%S} UTC)" if when else "")

    fields = [
        ("title", st["title"] or "-"), ("url", st["url"]),
        ("source", _shown_path(st["source"]) if st["source"] else "not in the config"),
        ("health", st["health"] + (f" since {_ago(st['health_since'], now)}"
                                   if st["health_since"] else "")),
        ("last poll", at("last_polled_at")), ("last success", at("last_success_at")),
        ("last error", f"{at('last_error_at')}: {st['last_error']}" if st["last_error"]
         else "none"),
        ("errors", f"{st['error_count']} in a row"
         + (f", failing since {_ago(st['failing_since'], now)}" if st["failing_since"] else "")),
        ("next poll", _until(st["next_poll_at"], now)),
        ("entries/day", f"{st['entries_per_day']:.1f} ({st['entries_seen']} seen in all)"),
        ("avg fetch", "-" if st["fetch_time_avg_ms"] is None
         else f"{st['fetch_time_avg_ms']:.0f} ms")]
    lines = [st["id"], *(f"  {k:13}{v}" for k, v in fields), *(f"  {n}" for n in _notes(st))]
    lines.append("notices:" if notices else "notices: none")
    lines += [f"  {n.created_at:%Y-%m-%d %H:%M} UTC  {n.kind:9} {n.message}  [{n.state}"
              f"{' to ' + n.channel if n.channel else ''}]" for n in notices]
    return lines


def _notice_json(n: Notice) -> dict[str, Any]:
    return {"kind": n.kind, "message": n.message, "created_at": n.created_at,
            "channel": n.channel, "state": n.state, "attempts": n.attempts,
            "last_error": n.last_error}


@feeds_app.command("status")
@handles_errors
def feeds_status(
        feed_id: Annotated[str | None, typer.Argument(
            help="One feed in detail, with its recent notices.")] = None,
        as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Each feed's health, last success and error, next poll and rates, from the database.

    The table shows health (ok, failing, silent, disabled; new when not polled yet),
    last success, consecutive errors, next poll, entries per day, average fetch time
    and the last error. Under it: feeds moved by a permanent redirect, and why
    disabled feeds are not polled. With FEED_ID: that feed in detail, with its notices.
    """
    settings = settings_from(config)
    require_database(settings, " (the feeds' status is recorded there)")
    try:
        conf: dict[str, tuple[Feed, str]] | None = {
            f.id: (f, src) for f, src in configured(settings)}
    except ConfigError as exc:
        typer.echo(f"warning: the feed lists could not be read, so only the database is "
                   f"shown:\n{exc}", err=True)
        conf = None
    now = datetime.now(UTC)

    async def work(store: SqlStore) -> tuple[list[FeedRow], list[Notice]]:
        notices = await store.notices(feed_id, 20) if feed_id else []
        return await store.feeds(now), notices

    rows, notices = _run(settings, work)
    by_id = {r.feed.id: r for r in rows}
    ids = sorted(set(by_id) | set(conf or {}))
    if feed_id is not None:
        if feed_id not in ids:
            typer.echo(f"error: no feed {feed_id!r} in {settings.source} or the database; "
                       "`ingest feeds status` lists them", err=True)
            raise typer.Exit(2)
        ids = [feed_id]
    statuses = [feed_status(by_id.get(i), (conf or {}).get(i), conf is not None)
                for i in ids]
    if as_json:
        typer.echo(_json({**statuses[0], "notices": [_notice_json(n) for n in notices]}
                         if feed_id else statuses))
    elif feed_id:
        typer.echo("\n".join(_detail(statuses[0], notices, now)))
    elif statuses:
        typer.echo("\n".join(_status_table(statuses, now)))
    else:
        typer.echo(f"no feeds in {settings.source} or the database")


# -- reset ----------------------------------------------------------------------------------

@feeds_app.command("reset")
@handles_errors
def feeds_reset(feed_id: Annotated[str, typer.Argument(help="The feed's id.")],
                config: ConfigOpt = None) -> None:
    """Clear a feed's errors and disabling (410 Gone, a long 404): polled at the next tick."""
    settings = settings_from(config)

    async def work(store: SqlStore) -> FeedRow | None:
        if not await store.reset_feed(feed_id, datetime.now(UTC)):
            return None
        return next((r for r in await store.feeds() if r.feed.id == feed_id), None)

    row = _run(settings, work)
    if row is None:
        try:
            known = any(f.id == feed_id for f, _ in configured(settings))
        except ConfigError:
            known = False
        typer.echo(f"error: feed {feed_id!r} is configured but not in the database yet: the "
                   "service adds it, and polls it, when it next starts" if known else
                   f"error: no feed {feed_id!r} in the database; `ingest feeds status` lists "
                   "them", err=True)
        raise typer.Exit(2)
    typer.echo(f"{feed_id}: errors and disabling cleared; the service polls it at its next "
               "tick")
    if not row.feed.enabled:
        typer.echo(f"note: {feed_id} is not enabled in the config (enabled: false, or no "
                   "longer listed), so it stays unpolled until it is", err=True)


# -- import ---------------------------------------------------------------------------------

def _import_target(settings: Settings, into: Path | None) -> tuple[Path, str | None]:
    """The YAML list to add feeds to, and advice when the config does not read it yet."""
    config_path = None if settings.source == "<defaults>" else Path(settings.source).resolve()
    base = config_path.parent if config_path else Path.cwd()
    files = [p.resolve() for p in settings.feed_files]
    if into is not None:
        path = into.resolve()
        if path.suffix.lower() in OPML_SUFFIXES:
            typer.echo(f"error: --into {into}: feeds are imported into a YAML list (.yaml); "
                       "OPML cannot hold their options", err=True)
            raise typer.Exit(2)
    else:
        path = next((p for p in files if p.suffix.lower() not in OPML_SUFFIXES),
                    base / "feeds.yaml")
    if path in files or path == config_path:
        return path, None

    def rel(p: Path) -> str:
        return str(p.relative_to(base)) if p.is_relative_to(base) else str(p)

    if config_path is None:
        return path, ("no config file was found: create ingest.yaml holding the line\n"
                      f"  feed_files: [{rel(path)}]\n(or pass --config FILE)")
    listed = ", ".join([*(rel(p) for p in files), rel(path)])
    return path, (f"{config_path} does not read {rel(path)} yet: "
                  + ("add this line to it" if not files else "make its feed_files line")
                  + f"\n  feed_files: [{listed}]")


def on_terminal() -> bool:
    """Whether stderr is a terminal (progress bars are drawn only there)."""
    return sys.stderr.isatty()


def _some(lines: list[str]) -> list[str]:
    more = [f"… and {len(lines) - SHOWN} more"] if len(lines) > SHOWN else []
    return lines[:SHOWN] + more


@feeds_app.command("import")
@handles_errors
def feeds_import(
        file: Annotated[Path, typer.Argument(help="An OPML file, or a YAML feed list.")],
        into: Annotated[Path | None, typer.Option(
            help="The YAML feed list to add them to (default: the config's first YAML feed "
                 "file, else feeds.yaml beside the config).")] = None,
        tag: Annotated[list[str] | None, typer.Option(
            help="Add this tag to every imported feed (repeatable).")] = None,
        dry_run: Annotated[bool, typer.Option(help="Check and report; write nothing.")]
        = False,
        skip_invalid: Annotated[bool, typer.Option(
            help="Import the valid feeds even when some are invalid.")] = False,
        config: ConfigOpt = None) -> None:
    """Add the feeds of an OPML (or YAML) list to a YAML feed list.

    Every feed is checked first: an http(s) URL with a host, no spaces, no password.
    When one is invalid, all problems are listed and nothing is written (exit 2),
    unless --skip-invalid. Feeds already configured (same URL; http and https alike)
    are skipped; a new feed whose id is taken gets a suffix. The list keeps its comments.
    """
    settings = settings_from(config)
    target, advice = _import_target(settings, into)
    listed, problems = read_for_import(file)
    existing = [f for f, _ in configured(settings, missing_ok=target)]
    if advice is not None:  # a list the config does not read (yet)
        existing += _feeds_in(target)
    show = on_terminal() and len(listed) >= PROGRESS_FROM
    with typer.progressbar(length=len(listed), label=f"checking {len(listed)} feeds",
                           file=sys.stderr, hidden=not show) as bar:
        plan = plan_import(listed, existing, str(file), tag or (), step=lambda: bar.update(1))
    invalid = sorted([*problems, *plan.invalid], key=lambda p: p.line or 0)
    for problem in invalid:
        typer.echo(str(problem), err=True)
    if invalid and not skip_invalid:
        typer.echo(f"error: {len(invalid)} of {len(listed) + len(problems)} feeds in {file} "
                   f"are invalid (listed above); nothing was imported. Fix them, or pass "
                   f"--skip-invalid to import the {len(plan.new)} new valid ones.", err=True)
        raise typer.Exit(2)
    for line in _some(plan.present) + _some(plan.repeated):
        typer.echo(f"skipped: {line}")
    for old, new in plan.renamed:
        typer.echo(f"id {old!r} is taken by another feed: imported as {new!r}")
    if plan.new and not dry_run:
        comment = (f"{len(plan.new)} feeds imported from {file.name} on "
                   f"{datetime.now(UTC):%Y-%m-%d} (ingest feeds import)")
        append_feeds(target, plan.new, comment, keep_refs=not is_opml(file))
    verb = "would be imported" if dry_run else "imported"
    repeated = f", {len(plan.repeated)} listed twice" if plan.repeated else ""
    typer.echo(f"{len(plan.new)} {verb} into {_shown_path(target)}, {len(plan.present)} "
               f"already present{repeated}, {len(invalid)} invalid")
    if advice and plan.new:
        typer.echo(f"note: {advice}")
    if plan.new and not dry_run:
        typer.echo("The service reads feed lists when it starts: restart it to poll them.")


# -- export ---------------------------------------------------------------------------------

def _write_atomically(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


@feeds_app.command("export")
@handles_errors
def feeds_export(
        output: Annotated[Path | None, typer.Option(
            "--output", "-o", help="Write to this file (default: standard output).")] = None,
        fmt: Annotated[ExportFormat, typer.Option("--format", help="opml or yaml.")]
        = ExportFormat.opml,
        config: ConfigOpt = None) -> None:
    """The configured feeds as OPML 2.0 or as a YAML feed list, on stdout or in a file.

    OPML keeps title, URL, id and tags (as category); YAML keeps every option.
    Header values are never exported: they hold tokens.
    """
    settings = settings_from(config)
    feeds = [f for f, _ in configured(settings)]
    now = datetime.now(UTC)
    if fmt is ExportFormat.opml:
        text = write_opml(feeds, now).decode("utf-8")
        lost = {f.id: unrepresentable(f) for f in feeds if unrepresentable(f)}
        if lost:
            options = sorted({o for names in lost.values() for o in names})
            typer.echo(f"note: OPML has no place for {', '.join(options)}: left out for "
                       f"{len(lost)} feed(s) ({_cut(', '.join(lost), 80)}); "
                       "--format yaml keeps them", err=True)
    else:
        text = yaml_feed_list([replace(f, headers=()) for f in feeds],
                              f"{len(feeds)} feeds exported from {settings.source} on "
                              f"{now:%Y-%m-%d} (ingest feeds export)")
        with_headers = [f.id for f in feeds if f.headers]
        if with_headers:
            typer.echo(f"note: the headers of {len(with_headers)} feed(s) are left out, as "
                       f"they hold tokens ({_cut(', '.join(with_headers), 80)}): copy them "
                       "from the config by hand", err=True)
    if output is None:
        typer.echo(text, nl=False)
        return
    _write_atomically(output, text)
    typer.echo(f"{len(feeds)} feeds written to {output}", err=True)
