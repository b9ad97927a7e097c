"""Email messages from Jinja2 templates: one alert, or a digest of several.

Pure: the functions take alerts (and the time) and return strings or an
``EmailMessage``.  The only I/O is the template loader, which looks in a user's
override folder first and in the shipped ``templates/`` second.  HTML templates are
autoescaped (feed text is untrusted), text templates are not; an undefined variable
is an error, never an empty string.

What templates see (documented in README, "Email"):

* alert templates: ``alert`` (the JSON payload of the alert), ``subject``, ``channel``;
* digest templates: ``alerts`` (payloads, most severe first), ``groups`` (one per rule:
  ``rule`` with ``id``/``title``/``severity``, and its ``alerts``), ``counts``
  (severity -> number, most severe first), ``total``, ``subject``, ``channel``;
* filters ``entity`` (``"Ukraine (GPE, UA)"``) and ``http_url`` (the URL when it is
  http(s), else ``""``: a feed cannot plant a ``javascript:`` link).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

import jinja2

from ingest.errors import Problem
from ingest.model import Alert
from ingest.notify.render import alert_payload, delivery_key, subject
from ingest.rules.spec import SEVERITIES

SHIPPED = Path(__file__).with_name("templates")
TEMPLATE_NAMES = ("alert.txt.j2", "alert.html.j2", "digest.txt.j2", "digest.html.j2")
_MOST_SEVERE_FIRST = tuple(reversed(SEVERITIES))
MAX_SUBJECT = 250


@dataclass(frozen=True)
class Addressing:
    """What every message of one channel carries besides its content."""

    channel: str
    sender: str
    to: tuple[str, ...]
    list_id: str

    @property
    def label(self) -> str:
        """The channel name as a dot-atom piece (for Message-ID and List-Id)."""
        return re.sub(r"[^A-Za-z0-9-]+", "-", self.channel).strip("-") or "channel"

    @property
    def domain(self) -> str:
        """The sender's domain, for Message-IDs (``ingest.local`` when it has none)."""
        domain = parseaddr(self.sender)[1].rpartition("@")[2]
        return domain if re.fullmatch(r"[A-Za-z0-9.-]+", domain) else "ingest.local"


def default_list_id(channel: str) -> str:
    label = Addressing(channel, "", (), "").label
    return f"ingest alerts <{label}.ingest.local>"


def entity_text(entity: Mapping[str, Any]) -> str:
    """``Ukraine (GPE, UA)``: the name, then label, country and roles when known."""
    extras = [str(entity[k]) for k in ("label", "country") if entity.get(k)]
    extras.extend(str(r) for r in entity.get("roles") or [])
    name = entity.get("name") or entity.get("text")
    return f"{name} ({', '.join(extras)})" if extras else str(name)


def http_url(url: object) -> str:
    """``url`` when it is an http(s) URL, else ``""``."""
    text = str(url or "").strip()
    return text if re.match(r"(?i)https?://", text) else ""


def environment(override: Path | None = None) -> jinja2.Environment:
    """The template environment: ``override`` (when set) before the shipped templates."""
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(SHIPPED)]
    if override is not None:
        loaders.insert(0, jinja2.FileSystemLoader(override))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2", "html"),
                                            default_for_string=False, default=False),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)
    env.filters["entity"] = entity_text
    env.filters["http_url"] = http_url
    return env


class TemplateFailure(ValueError):
    """A template did not compile or render; ``problem`` says where."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


def template_problem(exc: Exception, name: str) -> Problem:
    """Where a template failed: the file and line, taken from Jinja's error or traceback."""
    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.lineno:
        return Problem(exc.filename or exc.name or name, exc.lineno, exc.message or str(exc))
    file, line = name, None
    tb = exc.__traceback__
    while tb is not None:  # Jinja rewrites frames to point into the template files
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            file, line = filename, tb.tb_lineno
        tb = tb.tb_next
    return Problem(file, line, f"{type(exc).__name__}: {exc}")


def render(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    """One template rendered; :class:`TemplateFailure` saying where if it is broken."""
    try:
        return env.get_template(name).render(context)
    except Exception as exc:  # a template is user code: whatever it raises is its failure
        raise TemplateFailure(template_problem(exc, name)) from exc


def _rank(severity: str) -> int:
    order = _MOST_SEVERE_FIRST
    return order.index(severity) if severity in order else len(order)


def digest_groups(alerts: Sequence[Alert]) -> list[tuple[str, list[Alert]]]:
    """The alerts grouped by rule: rules with the most severe alert first, then by title;
    within a rule, most severe first, then oldest first."""
    by_rule: dict[str, list[Alert]] = {}
    for alert in alerts:
        by_rule.setdefault(alert.rule_id, []).append(alert)
    for group in by_rule.values():
        group.sort(key=lambda a: (_rank(a.severity), a.created_at, a.id))
    return sorted(by_rule.items(),
                  key=lambda item: (_rank(item[1][0].severity), item[1][0].rule_title, item[0]))


def severity_counts(alerts: Sequence[Alert]) -> dict[str, int]:
    """Severity -> number of alerts, most severe first, only severities present."""
    counts: dict[str, int] = {}
    for alert in sorted(alerts, key=lambda a: _rank(a.severity)):
        counts[alert.severity] = counts.get(alert.severity, 0) + 1
    return counts


def digest_subject(alerts: Sequence[Alert]) -> str:
    """``[ingest] 10 alerts: 2 critical, 5 high, 3 medium``, on one line."""
    noun = "alert" if len(alerts) == 1 else "alerts"
    counts = ", ".join(f"{n} {sev}" for sev, n in severity_counts(alerts).items())
    return f"[ingest] {len(alerts)} {noun}: {counts}"[:MAX_SUBJECT]


def alert_context(alert: Alert, channel: str) -> dict[str, Any]:
    return {"alert": alert_payload(alert), "subject": subject(alert), "channel": channel}


def digest_context(alerts: Sequence[Alert], channel: str) -> dict[str, Any]:
    groups = [{"rule": {"id": rule_id, "title": group[0].rule_title,
                        "severity": group[0].severity},
               "alerts": [alert_payload(a) for a in group]}
              for rule_id, group in digest_groups(alerts)]
    return {"alerts": [a for g in groups for a in g["alerts"]], "groups": groups,
            "counts": severity_counts(alerts), "total": len(alerts),
            "subject": digest_subject(alerts), "channel": channel}


def _message(addr: Addressing, subject_line: str, message_id: str, now: datetime,
             text: str, html: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = " ".join(subject_line.split())[:MAX_SUBJECT]
    msg["From"] = addr.sender
    msg["To"] = ", ".join(addr.to)
    msg["Date"] = format_datetime(now.astimezone(UTC))
    msg["Message-ID"] = message_id
    msg["List-Id"] = addr.list_id
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def _msgid(addr: Addressing, key: str) -> str:
    return f"<ingest.{key}.{addr.label}@{addr.domain}>"


def alert_message(env: jinja2.Environment, alert: Alert, addr: Addressing,
                  now: datetime) -> EmailMessage:
    """One alert (or update) as a multipart/alternative message.

    Its Message-ID derives from :func:`delivery_key`, so a resent delivery carries the
    same one; an update refers to the first message so mail clients thread them.
    """
    context = alert_context(alert, addr.channel)
    msg = _message(addr, context["subject"], _msgid(addr, delivery_key(alert)), now,
                   render(env, "alert.txt.j2", context), render(env, "alert.html.j2", context))
    if alert.revision:
        msg["In-Reply-To"] = msg["References"] = _msgid(addr, alert.id)
    msg["X-Ingest-Alert-Id"] = alert.id
    return msg


def digest_message(env: jinja2.Environment, alerts: Sequence[Alert], addr: Addressing,
                   now: datetime) -> EmailMessage:
    """Several alerts as one multipart/alternative message, grouped by rule.

    Its Message-ID derives from the alerts' delivery keys: the same digest sent again
    carries the same one.
    """
    context = digest_context(alerts, addr.channel)
    keys = "\n".join(sorted(delivery_key(a) for a in alerts))
    digest_id = hashlib.sha256(keys.encode()).hexdigest()[:32]
    msg = _message(addr, context["subject"], _msgid(addr, f"digest.{digest_id}"), now,
                   render(env, "digest.txt.j2", context), render(env, "digest.html.j2", context))
    for _, group in digest_groups(alerts):
        for alert in group:
            msg["X-Ingest-Alert-Id"] = alert.id
    msg["X-Ingest-Digest"] = str(len(alerts))
    return msg


def _sample(rule: str, severity: str, revision: int) -> Alert:
    when = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    return Alert(
        id=f"sample-{rule}-{severity}", rule_id=rule, rule_title=f"Sample rule {rule}",
        severity=severity, tags=("sample",), feed_id="sample-feed", entry_key="sample",
        entry_title="Sample story", entry_link="https://example.org/story", published=when,
        created_at=when, entities=({"text": "Berlin", "name": "Berlin", "label": "GPE",
                                    "country": "DE", "roles": ["capital"]},),
        terms=("sample",), snippet="A sample snippet.", story_id=1, revision=revision,
        sources=({"feed": "sample-feed", "title": "Sample story",
                  "link": "https://example.org/story", "published": when.isoformat()},),
        first_seen=when, last_seen=when)


def check_templates(env: jinja2.Environment) -> list[Problem]:
    """Compile every template and render it with sample alerts: what would fail later."""
    samples = [_sample("a", "critical", 0), _sample("b", "info", 2)]
    addr = Addressing("check", "ingest@example.org", ("to@example.org",), "check")
    problems: list[Problem] = []
    for name in TEMPLATE_NAMES:
        try:
            env.get_template(name)
        except jinja2.TemplateError as exc:
            problems.append(template_problem(exc, name))
    if problems:
        return problems
    try:
        for sample in samples:
            alert_message(env, sample, addr, sample.created_at)
        digest_message(env, samples, addr, samples[0].created_at)
    except TemplateFailure as exc:
        problems.append(exc.problem)
    return problems
