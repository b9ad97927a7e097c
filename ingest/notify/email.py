"""The ``email`` channel: one message per alert, or a digest of several, over SMTP.

Messages are rendered from Jinja2 templates (see :mod:`ingest.notify.mail`) and sent
with aiosmtplib.  The SMTP password never sits in the config: it is read at each send
from the environment variable named by ``password_env`` or from ``password_file``,
and nothing here logs or reports it.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import aiosmtplib
import jinja2
import structlog
from pydantic import ConfigDict, Field, model_validator

from ingest.errors import ConfigError, DeliveryError, Problem
from ingest.model import Alert
from ingest.notify.base import ChannelContext, ChannelOptions
from ingest.notify.digest import digest_trigger
from ingest.notify.mail import (
    Addressing,
    TemplateFailure,
    alert_message,
    check_templates,
    default_list_id,
    digest_message,
    environment,
)

log = structlog.get_logger(__name__)

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NO_INLINE_PASSWORD = (
    "password: a password is not accepted in the config; put it in an environment "
    "variable and give that variable's NAME as password_env (e.g. password_env: "
    "SMTP_PASSWORD), or put it in a file and give its path as password_file")


class Settings(ChannelOptions):
    # Validation errors never echo the input: it may hold a password by mistake.
    model_config = ConfigDict(hide_input_in_errors=True)
    type: Literal["email"]
    host: str
    port: int | None = Field(None, ge=1, le=65535)  # default: by security (465, 587, 25)
    security: Literal["starttls", "tls", "none"] = "starttls"
    ca_file: Path | None = None  # a CA bundle to trust besides the system's (private CAs)
    username: str | None = None
    password_env: str | None = None  # the NAME of an environment variable, read at each send
    password_file: Path | None = None  # read at each send, surrounding whitespace removed
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    list_id: str | None = None  # default: "ingest alerts <CHANNEL.ingest.local>"
    templates: Path | None = None  # a folder whose templates replace the shipped ones
    digest: str | None = None  # "15m" or a cron expression: batch alerts into digests
    digest_timezone: str = "UTC"

    @model_validator(mode="before")
    @classmethod
    def _no_inline_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError(_NO_INLINE_PASSWORD)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("set password_env or password_file, not both")
        if self.password_env is not None and not _ENV_NAME.fullmatch(self.password_env):
            # Not echoed: it may be the password itself, interpolated by ${...}.
            raise ValueError("password_env must be the NAME of an environment variable "
                             "(letters, digits and _, e.g. SMTP_PASSWORD), not its value")
        if (self.password_env or self.password_file) and not self.username:
            raise ValueError("a password (password_env or password_file) needs a username")
        if self.list_id is not None and ("\n" in self.list_id or "\r" in self.list_id):
            raise ValueError("list_id must be one line")
        if self.digest is not None:
            digest_trigger(self.digest, self.digest_timezone)
        elif self.digest_timezone != "UTC":
            digest_trigger("1h", self.digest_timezone)  # checks the zone
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"tls": 465, "starttls": 587, "none": 25}[self.security]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EmailNotifier:
    """Sends alerts (``send``) and digests (``send_digest``) to one channel's recipients."""

    def __init__(self, name: str, settings: Settings, timeout_s: float,
                 templates: jinja2.Environment,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.name = name
        self._settings = settings
        self._timeout = timeout_s
        self._templates = templates
        self._clock = clock
        self._addressing = Addressing(name, settings.sender, tuple(settings.to),
                                      settings.list_id or default_list_id(name))

    def __repr__(self) -> str:
        s = self._settings
        return f"EmailNotifier({self.name!r}, {s.host}:{s.effective_port}, to={s.to!r})"

    async def send(self, alert: Alert) -> str:
        """Send one alert (or update); a resend carries the same Message-ID."""
        try:
            message = alert_message(self._templates, alert, self._addressing, self._clock())
        except TemplateFailure as exc:
            raise self._template_error(exc) from exc
        return await self._deliver(message)

    async def send_digest(self, alerts: Sequence[Alert]) -> str:
        """Send ``alerts`` as one message, most severe first, grouped by rule."""
        if not alerts:
            return "no alerts: nothing sent"
        try:
            message = digest_message(self._templates, alerts, self._addressing, self._clock())
        except TemplateFailure as exc:
            raise self._template_error(exc) from exc
        return await self._deliver(message)

    async def aclose(self) -> None:
        return None

    def _template_error(self, exc: TemplateFailure) -> DeliveryError:
        # Retryable: a template edited while running is reloaded, so a fix cures it.
        return DeliveryError(self.name, f"template {exc.problem}")

    def _password(self) -> str | None:
        s = self._settings
        if s.password_env is not None:
            value = os.environ.get(s.password_env)
            if not value:
                raise DeliveryError(self.name, f"the environment variable {s.password_env} "
                                    "(password_env) is not set or empty")
            return value
        if s.password_file is not None:
            try:
                return s.password_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise DeliveryError(self.name, f"cannot read password_file "
                                    f"{s.password_file}: {exc}") from exc
        return None

    async def _deliver(self, message: EmailMessage) -> str:
        s = self._settings
        where = f"SMTP {s.host}:{s.effective_port}"
        password = self._password()
        try:
            async with asyncio.timeout(self._timeout * 2):  # the whole session, not one step
                errors, reply = await aiosmtplib.send(
                    message, hostname=s.host, port=s.effective_port,
                    use_tls=s.security == "tls", start_tls=s.security == "starttls",
                    cert_bundle=str(s.ca_file) if s.ca_file else None,
                    username=s.username, password=password, timeout=self._timeout)
        except TimeoutError as exc:
            raise DeliveryError(self.name, f"{where}: no answer within "
                                f"{self._timeout * 2:g}s") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            permanent = isinstance(exc, aiosmtplib.SMTPResponseException) and 500 <= exc.code < 600
            raise DeliveryError(self.name, f"{where}: {exc}", permanent=permanent) from exc
        refused = sorted(errors)
        if refused and len(refused) >= len(s.to):
            permanent = all(500 <= code < 600 for code, _ in errors.values())
            raise DeliveryError(self.name, f"every recipient refused: {refused}",
                                permanent=permanent)
        if refused:  # the others have it: sending again would duplicate it for them
            return f"SMTP {reply}; refused: {', '.join(refused)}"
        return f"SMTP {reply}"


def build(name: str, settings: Settings, ctx: ChannelContext,
          clock: Callable[[], datetime] = _utcnow) -> EmailNotifier:
    """The notifier; ``ConfigError`` naming file and line when a template is broken."""
    folder = settings.templates
    if folder is not None and not folder.is_dir():
        raise ConfigError([Problem("config", None,
                                   f"channel {name!r}: templates: {folder} is not a folder")])
    templates = environment(folder)
    problems = check_templates(templates)
    if problems:
        raise ConfigError([Problem(p.file, p.line, f"channel {name!r}: {p.message}")
                           for p in problems])
    if folder is not None:
        log.info("email.templates", channel=name, folder=str(folder),
                 overrides=sorted(p.name for p in folder.glob("*.j2")))
    if settings.password_env and not os.environ.get(settings.password_env):
        log.warning("email.password_env_unset", channel=name, variable=settings.password_env,
                    hint="sends will fail until it is set")
    if settings.security == "none" and (settings.password_env or settings.password_file):
        log.warning("email.password_in_clear", channel=name,
                    hint="security: none sends the SMTP password unencrypted")
    return EmailNotifier(name, settings, ctx.timeout_s, templates, clock)
