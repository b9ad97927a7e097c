"""The ``ingest`` command line.  Exit codes: 0 ok, 1 checks failed, 2 user error."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer

from ingest.cli_alerts import alerts_app
from ingest.cli_channels import channels_app
from ingest.cli_common import ConfigOpt, handles_errors, settings_from
from ingest.cli_db import db_app, instances_command
from ingest.cli_feeds import feeds_app
from ingest.cli_ops import matches_command, silence_app
from ingest.cli_rules import register_rule_commands
from ingest.config import Settings
from ingest.logs import configure_logging

app = typer.Typer(help="Event-monitoring news-feed ingester.", no_args_is_help=True,
                  add_completion=False)
rules_app = typer.Typer(help="Check and test alert rules.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
app.add_typer(silence_app, name="silence")
app.add_typer(channels_app, name="channels")
app.add_typer(alerts_app, name="alerts")
app.add_typer(feeds_app, name="feeds")
app.add_typer(db_app, name="db")
app.command("instances")(handles_errors(instances_command))
app.command("matches")(matches_command)
register_rule_commands(rules_app)



def _settings(config: Path | None) -> Settings:
    return settings_from(config)


@app.command()
@handles_errors
def run(config: ConfigOpt = None,
        once: Annotated[bool, typer.Option(
            help="Poll every feed once, deliver, exit (1 if a delivery or every feed failed).")]
        = False,
        grace: Annotated[float | None, typer.Option(
            help="Seconds to finish work on SIGTERM (default: shutdown_timeout, 20).")] = None,
        no_http: Annotated[bool, typer.Option(
            "--no-http", help="Serve no /healthz, /readyz and /metrics.")] = False,
        ) -> None:
    """Run the service: poll feeds, match rules, deliver alerts (until SIGTERM/SIGINT)."""
    from ingest.service.run import run_service

    settings = _settings(config)
    # Until the daemon installs its reload handler, SIGHUP must not end the process.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    raise typer.Exit(asyncio.run(run_service(settings, once=once, grace_s=grace,
                                             http=not (no_http or once))))


@app.command()
@handles_errors
def demo(seeds: Annotated[Path | None, typer.Option(help="Folder with feeds/ samples.")] = None,
         rules: Annotated[Path | None, typer.Option(help="Rules folder.")] = None) -> None:
    """Run the whole path once on loopback with the embedded sample feeds."""
    from ingest.demo import find_dir, report_lines, run_demo

    configure_logging("warning", "console")
    result = asyncio.run(run_demo(find_dir("seeds", seeds), find_dir("rules", rules), typer.echo))
    for line in report_lines(result):
        typer.echo(line)
    ok = result.alerts and result.webhook_signed and len(result.emails) == len(result.webhook)
    ok = ok and all(p.ok for p in result.probes)
    raise typer.Exit(0 if ok else 1)


def _rule_paths(settings: Settings, paths: list[Path] | None) -> list[Path]:
    return list(paths) if paths else [settings.rules_dir]


@rules_app.command("check")
@handles_errors
def rules_check(paths: Annotated[list[Path] | None, typer.Argument(
        help="Rule files or folders (default: the configured rules folder).")] = None,
        config: ConfigOpt = None) -> None:
    """Validate rule files: every problem is printed as file:line: message."""
    from ingest.errors import RuleError
    from ingest.nlp.gazetteer import load_gazetteer
    from ingest.rules.load import channel_problems, load_rules

    settings = _settings(config)
    gaz = load_gazetteer(settings.gazetteer_path)
    ruleset = load_rules(_rule_paths(settings, paths), gaz, list_dirs=[settings.rules_dir])
    problems = channel_problems(ruleset, settings.channels, settings.source)
    if problems:
        raise RuleError(problems)
    typer.echo(f"ok: {len(ruleset)} rules valid")


@rules_app.command("test")
@handles_errors
def rules_test(paths: Annotated[list[Path] | None, typer.Argument(
        help="Rule files or folders (default: the configured rules folder).")] = None,
        config: ConfigOpt = None) -> None:
    """Run every rule's `examples`: match ones must fire, no_match ones must not."""
    from ingest.inspect import run_examples
    from ingest.nlp.gazetteer import load_gazetteer
    from ingest.nlp.pipeline import Analyzer, load_model
    from ingest.rules.load import load_rules

    settings = _settings(config)
    gaz = load_gazetteer(settings.gazetteer_path)
    ruleset = load_rules(_rule_paths(settings, paths), gaz, list_dirs=[settings.rules_dir])
    analyzer = Analyzer(load_model(settings.nlp.model), gaz)
    results = run_examples(ruleset, analyzer, datetime.now(UTC).date())
    for r in results:
        mark = "✓" if r.ok else "✗"
        want = "match" if r.expect_match else "no match"
        typer.echo(f"{mark} {r.rule_id} [{want}] {r.text}")
    failed = sum(not r.ok for r in results)
    typer.echo(f"{len(results) - failed} passed, {failed} failed")
    raise typer.Exit(1 if failed else 0)


@app.command()
@handles_errors
def match(source: Annotated[str, typer.Argument(
        help="A file holding plain text or a saved feed document, or - for stdin.")],
          config: ConfigOpt = None,
          as_json: Annotated[bool, typer.Option("--json", help="One JSON object per item.")]
          = False,
          on: Annotated[str | None, typer.Option(
              "--date", help="Publication date for plain text (YYYY-MM-DD; default today).")]
          = None,
          explain: Annotated[bool, typer.Option(
              "--explain", help="Show each rule's tree with ✓/✗ per condition.")] = False,
          only: Annotated[list[str] | None, typer.Option(
              "--rule", help="Only these rules: ids, or rule files not yet live (repeatable).")]
          = None) -> None:
    """Run a text or a saved feed through extraction and every rule; show what matches."""
    from ingest.inspect import describe_match, items_from_input, match_items, match_json
    from ingest.nlp.language import detect
    from ingest.nlp.pipeline import Analyzer, load_model
    from ingest.rules.explain import explain as explain_rule
    from ingest.rules.explain import render
    from ingest.rules.load import RuleSet, load_rules
    from ingest.service.app import load_rule_files

    settings = _settings(config)
    now = datetime.now(UTC)
    if on:
        try:
            now = datetime.combine(date.fromisoformat(on), now.timetz())
        except ValueError:
            typer.echo(f"error: --date {on!r} is not a date like 2024-07-12", err=True)
            raise typer.Exit(2) from None
    if source == "-":
        data, name = sys.stdin.buffer.read(), "<stdin>"
    else:
        try:
            data, name = Path(source).read_bytes(), source
        except OSError as exc:
            typer.echo(f"error: cannot read {source}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
    gaz, ruleset = load_rule_files(settings)
    if only:
        drafts = [Path(r) for r in only if Path(r).is_file()]
        ids = [r for r in only if not Path(r).is_file()]
        unknown = [r for r in ids if ruleset.get(r) is None]
        if unknown:
            typer.echo(f"error: no rule {unknown[0]!r} (and no such file); rules: "
                       f"{', '.join(r.id for r in ruleset.rules)}", err=True)
            raise typer.Exit(2)
        extra = load_rules(drafts, gaz, list_dirs=[settings.rules_dir]).rules if drafts else ()
        ruleset = RuleSet((*(r for r in ruleset.rules if r.id in ids), *extra))
    analyzer = Analyzer(load_model(settings.nlp.model), gaz)
    items = items_from_input(data, name, now, settings.nlp.max_chars)
    for item, analysis, matches in match_items(items, analyzer, ruleset):
        if explain:
            typer.echo(f"{item.label}:")
            for rule in ruleset.rules:
                for line in render(explain_rule(rule, analysis, item.feed_id,
                                                detect(analysis.text))):
                    typer.echo(line)
            continue
        if as_json:
            typer.echo(match_json(item, matches))
            continue
        typer.echo(f"{item.label}: {len(matches)} rule(s) match")
        for m in matches:
            for line in describe_match(m):
                typer.echo(line)


def main() -> None:
    app()
