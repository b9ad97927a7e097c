"""``ingest feeds list|status|reset|import|export``: the configured feeds, what the service
made of them, and subscription lists in and out.

Header values hold tokens: no command prints them (``list`` shows header names only, and
``export`` leaves headers out).  Imports check every feed before writing anything.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from ingest.atomic import write_atomically
from ingest.cli_common import (
    ConfigOpt,
    handles_errors,
    require_database,
    run_with_store,
    settings_from,
)
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
from ingest.feedstatus import (
    cut,
    detail,
    feed_status,
    notice_json,
    shown_path,
    status_table,
    text_table,
    to_json,
)
from ingest.model import Feed
from ingest.opml import unrepresentable, write_opml
from ingest.store.base import FeedRow, Notice
from ingest.store.sql import SqlStore

feeds_app = typer.Typer(help="The configured feeds: list, status, reset, import, export.",
                        no_args_is_help=True)
PROGRESS_FROM = 100  # imports of at least this many feeds show a progress bar on a terminal
SHOWN = 10  # skipped feeds listed one by one, at most
IN_DATABASE = " (the feeds' status is recorded there)"  # ends "no database at …"
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
    cells = []
    for r in rows:
        options = (["fulltext"] if r["fulltext"] else []) + (
            [f"headers: {', '.join(r['headers'])}"] if r["headers"] else [])
        cells.append([r["id"], "yes" if r["enabled"] else "no",
                      f"{duration_text(r['interval_s'])} ({duration_text(r['min_interval_s'])}"
                      f"–{duration_text(r['max_interval_s'])})",
                      ",".join(r["tags"]) or "-", "; ".join(options) or "-",
                      shown_path(r["source"]), cut(r["title"], 32) or "-", r["url"]])
    for line in text_table(["ID", "ENABLED", "INTERVAL (MIN–MAX)", "TAGS", "OPTIONS",
                            "SOURCE", "TITLE", "URL"], cells):
        typer.echo(line)


# -- status ---------------------------------------------------------------------------------

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
    require_database(settings, IN_DATABASE)
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

    rows, notices = run_with_store(settings, work, IN_DATABASE)
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
        typer.echo(to_json({**statuses[0], "notices": [notice_json(n) for n in notices]}
                           if feed_id else statuses))
    elif feed_id:
        typer.echo("\n".join(detail(statuses[0], notices, now)))
    elif statuses:
        typer.echo("\n".join(status_table(statuses, now)))
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

    row = run_with_store(settings, work, IN_DATABASE)
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
    typer.echo(f"{len(plan.new)} {verb} into {shown_path(target)}, {len(plan.present)} "
               f"already present{repeated}, {len(invalid)} invalid")
    if advice and plan.new:
        typer.echo(f"note: {advice}")
    if plan.new and not dry_run:
        typer.echo("The service reads feed lists when it starts: restart it to poll them.")


# -- export ---------------------------------------------------------------------------------

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
                       f"{len(lost)} feed(s) ({cut(', '.join(lost), 80)}); "
                       "--format yaml keeps them", err=True)
    else:
        text = yaml_feed_list([replace(f, headers=()) for f in feeds],
                              f"{len(feeds)} feeds exported from {settings.source} on "
                              f"{now:%Y-%m-%d} (ingest feeds export)")
        with_headers = [f.id for f in feeds if f.headers]
        if with_headers:
            typer.echo(f"note: the headers of {len(with_headers)} feed(s) are left out, as "
                       f"they hold tokens ({cut(', '.join(with_headers), 80)}): copy them "
                       "from the config by hand", err=True)
    if output is None:
        typer.echo(text, nl=False)
        return
    write_atomically(output, text)
    typer.echo(f"{len(feeds)} feeds written to {output}", err=True)
