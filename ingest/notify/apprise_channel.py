"""The ``apprise`` channel: a short Markdown message through Apprise (Slack, Telegram,
Teams, Matrix, ntfy, Discord, … any Apprise URL).  An optional extra:
``pip install 'ingest[apprise]'``.

Apprise URLs carry tokens and passwords, so they are secrets: nothing here logs or
reports more of one than its scheme (``tgram``, ``slack``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import structlog
from pydantic import ConfigDict, SecretStr, field_validator

from ingest.errors import ConfigError, DeliveryError, Problem
from ingest.model import Alert
from ingest.notify.base import ChannelContext, ChannelOptions
from ingest.notify.render import delivery_key, subject

if TYPE_CHECKING:
    import apprise

log = structlog.get_logger(__name__)

# Apprise's four message types, by alert severity (they colour Slack, Teams, Discord…).
_NOTIFY_TYPE = {"info": "info", "low": "info", "medium": "warning", "high": "warning",
                "critical": "failure"}
_SNIPPET_CHARS = 500


class Settings(ChannelOptions):
    # Validation errors never echo the input: an Apprise URL holds tokens.
    model_config = ConfigDict(hide_input_in_errors=True)
    type: Literal["apprise"]
    # One Apprise URL, or several (each gets every alert).  Secrets: they hold tokens.
    url: SecretStr | list[SecretStr]
    title_prefix: str = ""  # put before each message's title, e.g. "[ingest] "

    @field_validator("url")
    @classmethod
    def _looks_like_urls(cls, v: SecretStr | list[SecretStr]) -> SecretStr | list[SecretStr]:
        found = v if isinstance(v, list) else [v]
        if not found:
            raise ValueError("give at least one Apprise URL, e.g. tgram://TOKEN/CHAT_ID")
        for i, one in enumerate(found):
            if "://" not in one.get_secret_value():
                raise ValueError(f"URL #{i + 1} is not an Apprise URL: write scheme://…, "
                                 "e.g. tgram://TOKEN/CHAT_ID or ntfy://TOPIC")
        return v

    def urls(self) -> list[str]:
        found = self.url if isinstance(self.url, list) else [self.url]
        return [u.get_secret_value() for u in found]

    def schemes(self) -> list[str]:
        """What may be shown of the URLs: their schemes."""
        return [url_scheme(u) for u in self.urls()]


def url_scheme(url: str) -> str:
    """``tgram`` for ``tgram://TOKEN/CHAT``: the only part of an Apprise URL safe to show."""
    scheme = url.split("://", 1)[0].strip().lower() if "://" in url else ""
    return scheme if scheme.isascii() and scheme.replace("+", "").isalnum() else "?"


def _md_text(text: str) -> str:
    """Feed text on one line, with the characters that would make Markdown links escaped."""
    line = " ".join(text.split())
    return line.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def message_body(alert: Alert) -> str:
    """The alert as a few lines of Markdown: rule, severity, linked entry, snippet, sources."""
    link = alert.entry_link.replace(" ", "%20").replace(")", "%29")
    lines = [f"**{_md_text(alert.rule_title)}** · severity {alert.severity}",
             f"[{_md_text(alert.entry_title) or alert.entry_link}]({link})"]
    snippet = _md_text(alert.snippet)
    if snippet:
        cut = snippet[:_SNIPPET_CHARS] + ("…" if len(snippet) > _SNIPPET_CHARS else "")
        lines += ["", f"> {cut}"]
    sources = len(alert.sources) or 1
    lines += ["", f"{sources} source{'s' if sources != 1 else ''} · feed {alert.feed_id} · "
              f"alert {delivery_key(alert)}"]
    return "\n".join(lines)


class AppriseNotifier:
    def __init__(self, name: str, settings: Settings, apobj: apprise.Apprise,
                 timeout_s: float) -> None:
        self.name = name
        self._settings = settings
        self._apprise = apobj
        self._timeout = timeout_s
        self._schemes = ", ".join(f"{s}://" for s in settings.schemes())

    async def send(self, alert: Alert) -> str:
        import apprise

        title = f"{self._settings.title_prefix}{subject(alert)}"
        wait = self._timeout * 2  # several services, each with its own connect and read
        try:
            async with asyncio.timeout(wait):
                result: Any = await self._apprise.async_notify(
                    body=message_body(alert), title=title,
                    notify_type=_NOTIFY_TYPE.get(alert.severity, "info"),
                    body_format=apprise.NotifyFormat.MARKDOWN)
        except TimeoutError as exc:
            raise DeliveryError(self.name, f"apprise ({self._schemes}): no answer within "
                                f"{wait:g}s") from exc
        except Exception as exc:  # a plugin's own failure; its message may hold the URL
            raise DeliveryError(self.name, f"apprise ({self._schemes}) failed: "
                                f"{type(exc).__name__}") from exc
        if not result:
            log.warning("apprise.failed", channel=self.name, schemes=self._schemes)
            raise DeliveryError(self.name, f"apprise ({self._schemes}) reported a failure; "
                                "its warning in the log says which service and why")
        return f"apprise {self._schemes} ok"

    async def aclose(self) -> None:
        return None


def build(name: str, settings: Settings, ctx: ChannelContext) -> AppriseNotifier:
    try:
        import apprise
    except ImportError as exc:
        raise ConfigError([Problem("config", None, (
            f"channel {name!r} is of type apprise, which needs the Apprise library: "
            "pip install 'ingest[apprise]'"))]) from exc
    apobj = apprise.Apprise()
    for i, url in enumerate(settings.urls()):
        if not _quietly(apobj.add, url):  # Apprise logs a URL it refuses, token and all
            raise ConfigError([Problem("config", None, (
                f"channel {name!r}: url #{i + 1} ({url_scheme(url)}://…) is not a URL "
                "Apprise can use; check its scheme and fields against Apprise's docs for "
                "that service"))])
    return AppriseNotifier(name, settings, apobj, ctx.timeout_s)


def _quietly(add: Callable[[str], bool], url: str) -> bool:
    """``add(url)`` with Apprise's own logger muted, so the secret URL is never logged."""
    logger = logging.getLogger("apprise")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        return bool(add(url))
    finally:
        logger.setLevel(level)
