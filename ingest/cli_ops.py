"""Operator commands on recorded state: ``ingest silence …`` and ``ingest matches``."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ingest.cli_common import (
    ConfigOpt,
    handles_errors,
    parse_since,
    settings_from,
    with_store,
)
from ingest.rules.policy import Silence

silence_app = typer.Typer(help="Silence alerts for a while (recorded, never sent).",
                          no_args_is_help=True)


class MatchState(StrEnum):
    new = "new"
    update = "update"
    below_threshold = "below-threshold"
    deduped = "deduped"
    silenced = "silenced"


def _silence_line(s: Silence, now: datetime) -> str:
    what = ", ".join(f"{k}={v}" for k, v in (("rule", s.rule_id), ("tag", s.tag),
                                              ("entity", s.entity)) if v)
    state = "active" if s.active(now) else "expired"
    return (f"#{s.id}  {state:7}  {what}  until {s.expires_at:%Y-%m-%d %H:%M} UTC  "
            f"— {s.reason}")


@silence_app.command("add")
@handles_errors
def silence_add(
        duration: Annotated[str, typer.Option("--for", help="How long, e.g. 8h, 2d.")],
        reason: Annotated[str, typer.Option(help="Why (shown in listings).")],
        rule: Annotated[str | None, typer.Option(help="Rule id to silence.")] = None,
        tag: Annotated[str | None, typer.Option(help="Silence every rule with this tag.")]
        = None,
        entity: Annotated[str | None, typer.Option(
            help="Silence alerts naming this entity (gazetteer id or name).")] = None,
        by: Annotated[str | None, typer.Option(help="Who (default: the login name).")] = None,
        config: ConfigOpt = None) -> None:
    """Silence alerts by rule, tag or entity (all given must match) for a while."""
    if not (rule or tag or entity):
        typer.echo("error: say what to silence: --rule ID, --tag TAG and/or --entity NAME",
                   err=True)
        raise typer.Exit(2)
    seconds = parse_since(duration, "--for")
    if rule is not None:
        _known_rule(rule, config)
    now = datetime.now(UTC)
    wanted = Silence(0, rule, tag, entity, reason, now, now + timedelta(seconds=seconds))
    made = with_store(config, lambda s: s.add_silence(wanted, by or _login()))
    typer.echo(f"silenced: {_silence_line(made, now)}")


def _known_rule(rule_id: str, config: Path | None) -> None:
    """Exit 2 unless a rule file in the configured rules folder defines ``rule_id``."""
    from ingest.nlp.gazetteer import load_gazetteer
    from ingest.rules.load import load_rules

    settings = settings_from(config)
    rules = load_rules([settings.rules_dir], load_gazetteer(settings.gazetteer_path))
    if rules.get(rule_id) is None:
        typer.echo(f"error: no rule {rule_id!r} in {settings.rules_dir} (ids are the `id:` "
                   "of each rule file)", err=True)
        raise typer.Exit(2)


def _login() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return ""


@silence_app.command("list")
@handles_errors
def silence_list(show_all: Annotated[bool, typer.Option("--all", help="Include expired.")]
                 = False,
                 as_json: Annotated[bool, typer.Option("--json")] = False,
                 config: ConfigOpt = None) -> None:
    """The silences in force (with --all, expired ones too)."""
    now = datetime.now(UTC)
    found = with_store(config, lambda s: s.silences(now, include_expired=show_all))
    if as_json:
        typer.echo(json.dumps([{
            "id": s.id, "rule": s.rule_id, "tag": s.tag, "entity": s.entity,
            "reason": s.reason, "created_at": s.created_at.isoformat(),
            "expires_at": s.expires_at.isoformat(), "active": s.active(now)} for s in found]))
        return
    for s in found:
        typer.echo(_silence_line(s, now))
    if not found:
        typer.echo("no silences" + ("" if show_all else " in force"))


@silence_app.command("remove")
@handles_errors
def silence_remove(silence_id: Annotated[int, typer.Argument(help="The silence's #id.")],
                   config: ConfigOpt = None) -> None:
    """End a silence now."""
    ok = with_store(config, lambda s: s.expire_silence(silence_id, datetime.now(UTC)))
    if not ok:
        typer.echo(f"error: no silence #{silence_id} in force (see `ingest silence list`)",
                   err=True)
        raise typer.Exit(2)
    typer.echo(f"silence #{silence_id} ended")


@handles_errors
def matches_command(
        rule: Annotated[str | None, typer.Option(help="Only this rule.")] = None,
        since: Annotated[str, typer.Option(help="How far back, e.g. 24h, 7d.")] = "24h",
        state: Annotated[MatchState | None, typer.Option(
            help="Only matches in this state.")] = None,
        limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
        as_json: Annotated[bool, typer.Option("--json")] = False,
        config: ConfigOpt = None) -> None:
    """Every recorded rule match, including those a threshold, dedupe or silence held back."""
    start = datetime.now(UTC) - timedelta(seconds=parse_since(since, "--since"))
    wanted = state.value if state is not None else None
    rows = with_store(config, lambda s: s.matches(rule_id=rule, since=start, state=wanted,
                                                  limit=limit))
    if as_json:
        typer.echo(json.dumps([{
            "rule": r.rule_id, "state": r.state, "at": r.at.isoformat(), "entry_id": r.entry_id,
            "story_id": r.story_id, "feed": r.feed_id, "alert_id": r.alert_id,
            "title": r.entry_title, "link": r.entry_link} for r in rows], ensure_ascii=False))
        return
    for r in rows:
        typer.echo(f"{r.at:%Y-%m-%d %H:%M}  {r.state:15}  {r.rule_id:28}  story {r.story_id:<6} "
                   f"{r.feed_id}: {r.entry_title[:70]}")
    if not rows:
        typer.echo("no matches recorded in that period")
