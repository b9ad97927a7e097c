"""The ``email`` channel: one message per alert over SMTP (aiosmtplib)."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Literal

import aiosmtplib
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from ingest.errors import DeliveryError
from ingest.model import Alert
from ingest.notify.base import ChannelContext
from ingest.notify.render import delivery_key, html_body, subject, text_body


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    type: Literal["email"]
    # Alerts below this severity are not sent here (info < low < medium < high < critical).
    min_severity: Literal["info", "low", "medium", "high", "critical"] | None = None
    host: str
    port: int | None = None  # default: 465 for tls, 587 for starttls, 25 for none
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_password(self) -> Settings:
        if self.password is not None and self.password_file is not None:
            raise ValueError("set password or password_file, not both")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"tls": 465, "starttls": 587, "none": 25}[self.security]

    def secret(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return self.password.get_secret_value() if self.password else None


def build_message(alert: Alert, sender: str, to: list[str]) -> EmailMessage:
    """The alert as a multipart/alternative message (plain text and HTML)."""
    msg = EmailMessage()
    msg["Subject"] = subject(alert)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(idstring=delivery_key(alert)[:24], domain="ingest.local")
    msg["X-Ingest-Alert-Id"] = alert.id
    msg.set_content(text_body(alert))
    msg.add_alternative(html_body(alert), subtype="html")
    return msg


class EmailNotifier:
    def __init__(self, name: str, settings: Settings, timeout_s: float) -> None:
        self.name = name
        self._settings = settings
        self._timeout = timeout_s

    async def send(self, alert: Alert) -> str:
        s = self._settings
        message = build_message(alert, s.sender, s.to)
        try:
            async with asyncio.timeout(self._timeout * 2):  # the whole session, not one step
                errors, reply = await aiosmtplib.send(
                    message, hostname=s.host, port=s.effective_port,
                    use_tls=s.security == "tls", start_tls=s.security == "starttls",
                    username=s.username, password=s.secret(), timeout=self._timeout)
        except TimeoutError as exc:
            raise DeliveryError(self.name, f"SMTP {s.host}:{s.effective_port}: no answer "
                                f"within {self._timeout * 2:g}s") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            permanent = isinstance(exc, aiosmtplib.SMTPResponseException) and 500 <= exc.code < 600
            raise DeliveryError(self.name, f"SMTP {s.host}:{s.effective_port}: {exc}",
                                permanent=permanent) from exc
        refused = sorted(errors)
        if refused and len(refused) >= len(s.to):
            permanent = all(500 <= code < 600 for code, _ in errors.values())
            raise DeliveryError(self.name, f"every recipient refused: {refused}",
                                permanent=permanent)
        if refused:  # the others have it: sending again would duplicate it for them
            return f"SMTP {reply}; refused: {', '.join(refused)}"
        return f"SMTP {reply}"

    async def aclose(self) -> None:
        return None


def build(name: str, settings: Settings, ctx: ChannelContext) -> EmailNotifier:
    return EmailNotifier(name, settings, ctx.timeout_s)
