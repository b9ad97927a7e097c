"""The email channel: templates, digests, headers, credentials and TLS, against SmtpSink."""

from __future__ import annotations

import dataclasses
import shutil
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from hostile import self_signed_cert
from pydantic import ValidationError

from ingest.config import load_config
from ingest.errors import ConfigError, DeliveryError
from ingest.model import Alert
from ingest.notify import email as email_channel
from ingest.notify.base import ChannelContext, DigestNotifier, delivery_client
from ingest.notify.mail import digest_groups, digest_subject
from ingest.notify.render import delivery_key
from ingest.parse.dedup import alert_id
from ingest.testing import SmtpSink

# The sinks here accept AUTH without TLS on purpose (loopback); aiosmtpd warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
SECRET = "pw-7f3a-do-not-log"


def make_alert(**changes: Any) -> Alert:
    """A realistic alert, with any field overridden by ``changes``."""
    entry_key = "guid:https://www.example.com/world/2024/05/01/arms-shipment-123"
    alert = Alert(
        id=alert_id("arms-transfer", "reuters-world", entry_key),
        rule_id="arms-transfer", rule_title="Arms transfer to a conflict zone",
        severity="high", tags=("conflict", "arms"), feed_id="reuters-world",
        entry_key=entry_key,
        entry_title="Ukraine receives new air-defence systems from Germany",
        entry_link="https://www.example.com/world/2024/05/01/arms-shipment-123?utm=x&y=1",
        published=datetime(2024, 5, 1, 9, 30, tzinfo=UTC),
        created_at=datetime(2024, 5, 1, 9, 31, 12, tzinfo=UTC),
        entities=({"text": "Ukraine", "name": "Ukraine", "label": "GPE", "country": "UA"},
                  {"text": "Germany", "name": "Germany", "label": "GPE", "country": "DE",
                   "roles": ["supplier"]}),
        terms=("air-defence", "systems"),
        snippet="Ukraine receives new air-defence systems from Germany, officials said.",
        channels=("ops-email",), story_id=7,
        sources=({"feed": "reuters-world", "title": "Ukraine receives air defence",
                  "link": "https://www.example.com/world/2024/05/01/arms-shipment-123"},),
    )
    return dataclasses.replace(alert, **changes)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with delivery_client("ingest-test") as client:
        yield client


def settings(port: int, **extra: Any) -> email_channel.Settings:
    return email_channel.Settings.model_validate({
        "type": "email", "host": "127.0.0.1", "port": port, "security": "none",
        "from": "ingest <ingest@example.org>", "to": ["a@localhost"], **extra})


def notifier(http: aiohttp.ClientSession, port: int, **extra: Any) -> email_channel.EmailNotifier:
    return email_channel.build("ops-email", settings(port, **extra), ChannelContext(http, 5.0),
                               clock=lambda: NOW)


def parts(message: Any) -> dict[str, str]:
    return {part.get_content_type(): part.get_content()
            for part in message.walk() if not part.is_multipart()}


# -- one alert ----------------------------------------------------------------


async def test_alert_is_multipart_with_headers(smtp_sink: SmtpSink,
                                               http: aiohttp.ClientSession) -> None:
    """One alert: text and HTML parts, and Message-ID, Date, List-Id, alert id headers."""
    alert = make_alert()
    receipt = await notifier(http, smtp_sink.port).send(alert)
    assert receipt.startswith("SMTP")
    [message] = smtp_sink.messages
    body = parts(message)
    assert set(body) == {"text/plain", "text/html"}
    for text in body.values():
        assert alert.id in text and "Ukraine (GPE, UA)" in text and "reuters-world" in text
        assert "Germany (GPE, DE, supplier)" in text and "air-defence, systems" in text
    assert message["Message-ID"] == f"<ingest.{delivery_key(alert)}.ops-email@example.org>"
    assert parsedate_to_datetime(str(message["Date"])) == NOW
    assert message["List-Id"] == "ingest alerts <ops-email.ingest.local>"
    assert message["X-Ingest-Alert-Id"] == alert.id
    assert message["Auto-Submitted"] == "auto-generated"
    assert str(message["Subject"]).startswith("[HIGH] Arms transfer to a conflict zone")


async def test_resend_keeps_message_id_and_update_threads(smtp_sink: SmtpSink,
                                                          http: aiohttp.ClientSession) -> None:
    """A resend has the same Message-ID; an update has its own, referring to the first."""
    sender = notifier(http, smtp_sink.port, list_id="Desk <desk.example.org>")
    alert = make_alert()
    update = dataclasses.replace(alert, revision=1, sources=({"feed": "bbc", "title": "T",
                                                              "link": "https://b.example/1"},))
    for item in (alert, alert, update):
        await sender.send(item)
    first, again, updated = smtp_sink.messages
    assert first["Message-ID"] == again["Message-ID"]
    assert updated["Message-ID"] != first["Message-ID"]
    assert updated["References"] == updated["In-Reply-To"] == first["Message-ID"]
    assert updated["List-Id"] == "Desk <desk.example.org>"
    assert "(revision 1)" in parts(updated)["text/plain"]


async def test_feed_text_escaped_in_html_raw_in_text(smtp_sink: SmtpSink,
                                                      http: aiohttp.ClientSession) -> None:
    """A <script> and & in title and snippet are escaped in HTML and left as they are in text."""
    title = "Breaking <script>alert(1)</script> Smith & Wesson"
    alert = make_alert(entry_title=title, snippet="Tom & Jerry <img src=x onerror=alert(2)>",
                       entry_link="javascript:alert(3)")
    await notifier(http, smtp_sink.port).send(alert)
    body = parts(smtp_sink.messages[0])
    html, text = body["text/html"], body["text/plain"]
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Smith &amp; Wesson" in html
    assert "Tom &amp; Jerry &lt;img" in html
    assert 'href="javascript' not in html
    assert title in text
    assert "Tom & Jerry <img src=x onerror=alert(2)>" in text


async def test_451_is_retryable_and_next_send_succeeds(http: aiohttp.ClientSession) -> None:
    """A 451 answer to DATA raises a retryable DeliveryError; the retry is delivered."""
    with SmtpSink(defer=1) as sink:
        sender = notifier(http, sink.port)
        with pytest.raises(DeliveryError) as info:
            await sender.send(make_alert())
        assert info.value.permanent is False
        assert "451" in str(info.value)
        assert (sink.deferred, len(sink.messages)) == (1, 0)
        await sender.send(make_alert())
        assert len(sink.messages) == 1


# -- digests ------------------------------------------------------------------


def ten_alerts() -> list[Alert]:
    """Ten alerts of three rules: 2 critical, 5 high (one rule mixes high and low), 3 medium."""
    rules = {"floods": ("Floods", ["medium"] * 3), "coups": ("Coups", ["critical"] * 2),
             "strikes": ("Strikes", ["high"] * 5)}
    alerts = []
    for rule_id, (title, severities) in rules.items():
        for i, severity in enumerate(severities):
            alerts.append(make_alert(
                id=f"{rule_id}-{i}", rule_id=rule_id, rule_title=title, severity=severity,
                entry_title=f"{title} story {i}",
                created_at=datetime(2024, 5, 1, 9, 10 - i, tzinfo=UTC)))
    return alerts


async def test_digest_is_one_message_ordered_and_grouped(smtp_sink: SmtpSink,
                                                         http: aiohttp.ClientSession) -> None:
    """Ten alerts of three rules: one message, criticals first, one section per rule."""
    alerts = ten_alerts()
    sender = notifier(http, smtp_sink.port, digest="0 8 * * 1-5")
    assert isinstance(sender, DigestNotifier)
    await sender.send_digest(alerts)
    [message] = smtp_sink.messages
    assert str(message["Subject"]) == "[ingest] 10 alerts: 2 critical, 5 high, 3 medium"
    assert sorted(message.get_all("X-Ingest-Alert-Id") or []) == sorted(a.id for a in alerts)
    assert message["X-Ingest-Digest"] == "10"
    assert message["List-Id"] and message["Message-ID"] and message["Date"]
    body = parts(message)
    assert set(body) == {"text/plain", "text/html"}
    for text in body.values():
        headings = [text.index(title) for title in ("Coups", "Strikes", "Floods")]
        assert headings == sorted(headings)  # critical rule, then high, then medium
        for alert in alerts:  # each story sits in its rule's section
            section = ("Coups", "Strikes", "Floods").index(alert.rule_title)
            where = text.index(alert.entry_title)
            assert headings[section] < where
            assert section == 2 or where < headings[section + 1]
    assert body["text/plain"].index("[CRITICAL]") < body["text/plain"].index("[HIGH]")


def test_digest_groups_order_within_rule() -> None:
    """Inside a rule, the most severe alert comes first, then the oldest."""
    old, new = (make_alert(id=f"s{i}", created_at=datetime(2024, 5, 1, i, tzinfo=UTC))
                for i in (1, 2))
    low = make_alert(id="s0", severity="low")
    [(rule, group)] = digest_groups([low, new, old])
    assert rule == "arms-transfer"
    assert [a.id for a in group] == ["s1", "s2", "s0"]


def test_digest_subject_is_one_short_line() -> None:
    """The digest subject counts by severity on one line of at most 250 characters."""
    assert digest_subject([make_alert()]) == "[ingest] 1 alert: 1 high"
    long = digest_subject([make_alert(severity=f"very\nodd {'x' * 300}")])
    assert len(long) <= 250


async def test_failed_digest_is_retryable(http: aiohttp.ClientSession) -> None:
    """A deferred digest raises a retryable DeliveryError and sends nothing."""
    with SmtpSink(defer=1) as sink:
        with pytest.raises(DeliveryError) as info:
            await notifier(http, sink.port).send_digest(ten_alerts())
        assert not info.value.permanent and sink.messages == []


@pytest.mark.parametrize("spec", ["every tuesday", "10s", "61 8 * * *"])
def test_bad_digest_schedule_is_refused(spec: str) -> None:
    """A digest that is neither a duration of a minute or more nor cron is a validation error."""
    with pytest.raises(ValidationError, match="digest"):
        settings(25, digest=spec)


def test_bad_digest_timezone_is_refused() -> None:
    """An unknown digest_timezone is a validation error."""
    with pytest.raises(ValidationError, match="time zone"):
        settings(25, digest="15m", digest_timezone="Mars/Olympus")


# -- templates ----------------------------------------------------------------


async def test_override_dir_replaces_one_template(tmp_path: Path, smtp_sink: SmtpSink,
                                                  http: aiohttp.ClientSession) -> None:
    """A user's alert.txt.j2 replaces the shipped one; the HTML part stays the shipped one."""
    (tmp_path / "alert.txt.j2").write_text("Custom: {{ alert.rule.title }} on {{ channel }}\n")
    await notifier(http, smtp_sink.port, templates=str(tmp_path)).send(make_alert())
    body = parts(smtp_sink.messages[0])
    assert body["text/plain"].strip() == "Custom: Arms transfer to a conflict zone on ops-email"
    assert "<!doctype html>" in body["text/html"]


@pytest.mark.parametrize(("text", "line"), [("ok\n\n{% if %}\n", 3),
                                            ("ok\n{{ alert.no_such_field }}\n", 2)])
def test_broken_template_is_config_error_at_build(tmp_path: Path, http: aiohttp.ClientSession,
                                                  text: str, line: int) -> None:
    """A syntax error or an undefined variable fails build() naming the file and line."""
    (tmp_path / "digest.html.j2").write_text(text)
    with pytest.raises(ConfigError) as info:
        notifier(http, 25, templates=str(tmp_path))
    [problem] = info.value.problems
    assert problem.file.endswith("digest.html.j2")
    assert problem.line == line


async def test_template_failing_at_send_is_delivery_error(tmp_path: Path, smtp_sink: SmtpSink,
                                                          http: aiohttp.ClientSession) -> None:
    """A template that breaks only for some alerts raises a retryable DeliveryError."""
    (tmp_path / "alert.txt.j2").write_text(
        "x\n{% if alert.revision > 5 %}{{ alert.nope }}{% endif %}\n")
    sender = notifier(http, smtp_sink.port, templates=str(tmp_path))
    with pytest.raises(DeliveryError) as info:
        await sender.send(make_alert(revision=7))
    assert "alert.txt.j2:2" in str(info.value) and not info.value.permanent
    assert smtp_sink.messages == []


async def test_user_templates_escape_by_extension(tmp_path: Path, smtp_sink: SmtpSink,
                                                   http: aiohttp.ClientSession) -> None:
    """An override .html.j2 is autoescaped too; an override .txt.j2 is not."""
    for name in ("alert.txt.j2", "alert.html.j2"):
        (tmp_path / name).write_text("{{ alert.entry.title }}\n")
    await notifier(http, smtp_sink.port, templates=str(tmp_path)).send(
        make_alert(entry_title="<b>A & B</b>"))
    body = parts(smtp_sink.messages[0])
    assert body["text/plain"].strip() == "<b>A & B</b>"
    assert body["text/html"].strip() == "&lt;b&gt;A &amp; B&lt;/b&gt;"


# -- credentials --------------------------------------------------------------


async def test_password_env_is_used_for_auth_and_never_shown(
        http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """AUTH uses the variable named by password_env; repr and logs never hold its value."""
    monkeypatch.setenv("INGEST_TEST_SMTP_PASSWORD", SECRET)
    with SmtpSink(credentials=("ingest", SECRET)) as sink, \
            structlog.testing.capture_logs() as logs:
        options = {"username": "ingest", "password_env": "INGEST_TEST_SMTP_PASSWORD"}
        sender = notifier(http, sink.port, **options)
        await sender.send(make_alert())
        assert sink.logins == ["ingest"] and len(sink.messages) == 1
    assert SECRET not in repr(settings(sink.port, **options)) + repr(sender) + repr(logs)


async def test_password_file_is_used_for_auth(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """AUTH uses the password_file's content without its trailing newline."""
    (tmp_path / "pw").write_text(SECRET + "\n")
    with SmtpSink(credentials=("ingest", SECRET)) as sink:
        await notifier(http, sink.port, username="ingest",
                       password_file=str(tmp_path / "pw")).send(make_alert())
        assert sink.logins == ["ingest"]


async def test_missing_password_env_names_the_variable(http: aiohttp.ClientSession,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset password_env variable fails the send, naming the variable."""
    monkeypatch.delenv("INGEST_TEST_UNSET_PW", raising=False)
    sender = notifier(http, 25, username="u", password_env="INGEST_TEST_UNSET_PW")
    with pytest.raises(DeliveryError, match="INGEST_TEST_UNSET_PW"):
        await sender.send(make_alert())


def test_inline_password_is_refused_with_help(tmp_path: Path) -> None:
    """A `password:` key fails validation pointing to password_env and password_file."""
    with pytest.raises(ValidationError) as info:
        settings(25, username="u", password=SECRET)
    assert "password_env" in str(info.value) and "password_file" in str(info.value)
    assert SECRET not in str(info.value)
    config = tmp_path / "ingest.yaml"
    config.write_text("channels:\n  mail:\n    type: email\n    host: h\n    from: a@b\n"
                      f"    to: [c@d]\n    username: u\n    password: {SECRET}\n")
    with pytest.raises(ConfigError) as cfg:
        load_config(config)
    assert "password_env" in str(cfg.value) and SECRET not in str(cfg.value)


def test_password_env_must_be_a_name() -> None:
    """A password pasted into password_env is refused without being echoed."""
    with pytest.raises(ValidationError) as info:
        settings(25, username="u", password_env="hunter2 with spaces!")
    assert "NAME" in str(info.value) and "hunter2" not in str(info.value)


# -- TLS ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made with the openssl CLI (skipped without it)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_starttls_with_private_ca(self_signed: tuple[Path, Path],
                                        http: aiohttp.ClientSession,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """STARTTLS to a server with a self-signed certificate works when ca_file trusts it."""
    cert, key = self_signed
    monkeypatch.setenv("INGEST_TEST_SMTP_PASSWORD", SECRET)
    with SmtpSink(tls_context=tls_context(cert, key), credentials=("ingest", SECRET)) as sink:
        await notifier(http, sink.port, security="starttls", ca_file=str(cert),
                       username="ingest", password_env="INGEST_TEST_SMTP_PASSWORD",
                       ).send(make_alert())
        assert sink.logins == ["ingest"] and len(sink.messages) == 1


async def test_starttls_untrusted_certificate_fails(self_signed: tuple[Path, Path],
                                                    http: aiohttp.ClientSession) -> None:
    """Without ca_file the self-signed certificate is refused and nothing is sent."""
    with SmtpSink(tls_context=tls_context(*self_signed)) as sink:
        with pytest.raises(DeliveryError, match=r"(?i)certificate"):
            await notifier(http, sink.port, security="starttls").send(make_alert())
        assert sink.messages == []
