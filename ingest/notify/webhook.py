"""The ``webhook`` channel: POSTs the alert in its ``format``, signed when a secret is set."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from pydantic import Field, SecretStr, field_validator

from ingest.errors import DeliveryError
from ingest.model import Alert
from ingest.notify.base import ChannelContext, ChannelOptions
from ingest.notify.formats import FORMATS
from ingest.notify.render import delivery_key
from ingest.notify.retry import parse_retry_after
from ingest.notify.signing import HEADER, signature

_TOKENISH = re.compile(r"^(?=.*[0-9])(?=.*[A-Za-z])[A-Za-z0-9_-]{8,}$|^[^/]{16,}$")

# 4xx answers that a retry can cure; any other 4xx is permanent.
_RETRYABLE_4XX = {408, 425, 429}
_ANSWER_BYTES = 2000  # of an answer's body, kept for the error message


class Settings(ChannelOptions):
    type: Literal["webhook"]
    url: str
    format: Literal["json", "cloudevents", "slack"] = "json"
    # One secret, or two while rotating (the new one first): each signs, so receivers
    # holding either accept the delivery.
    secret: SecretStr | list[SecretStr] | None = None
    headers: dict[str, str] = Field(default_factory=dict, repr=False)  # may hold tokens

    @field_validator("secret")
    @classmethod
    def _at_most_two(cls, v: SecretStr | list[SecretStr] | None
                     ) -> SecretStr | list[SecretStr] | None:
        if isinstance(v, list) and not 1 <= len(v) <= 2:
            raise ValueError("give one secret, or two while rotating (new first, then old)")
        return v

    def secrets(self) -> list[str]:
        if self.secret is None:
            return []
        found = self.secret if isinstance(self.secret, list) else [self.secret]
        return [s.get_secret_value() for s in found]


def public_url(url: str) -> str:
    """``url`` without userinfo, query and fragment, and with token-like path segments
    shown as ``***``: where a webhook goes, without what lets anyone post there."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "(unparseable URL)"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    path = "/".join("***" if _TOKENISH.match(seg) else seg for seg in parts.path.split("/"))
    return urlunsplit((parts.scheme, netloc, path, "", ""))


class WebhookNotifier:
    def __init__(self, name: str, settings: Settings, http: aiohttp.ClientSession, timeout_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self._settings = settings
        self._http = http
        self._timeout = timeout_s
        self._clock = clock

    def request_headers(self, alert: Alert, body: bytes,
                        content_type: str = "application/json") -> dict[str, str]:
        headers = {"Content-Type": content_type, "Idempotency-Key": delivery_key(alert),
                   **self._settings.headers}
        secrets = self._settings.secrets()
        if secrets:
            headers[HEADER] = signature(secrets, body, int(self._clock()))
        return headers

    def request(self, alert: Alert) -> tuple[bytes, dict[str, str]]:
        """The body in the channel's ``format`` and the headers that go with it."""
        content_type, body = FORMATS[self._settings.format](alert)
        return body, self.request_headers(alert, body, content_type)

    async def send(self, alert: Alert) -> str:
        body, headers = self.request(alert)
        url = self._settings.url
        shown = public_url(url)  # errors reach logs and rows: never the URL's secrets
        try:
            async with asyncio.timeout(self._timeout), self._http.post(  # the whole request
                    url, data=body, headers=headers, allow_redirects=False) as response:
                status = response.status
                answer = (await response.content.read(_ANSWER_BYTES)).decode("utf-8", "replace")
                retry_after = response.headers.get("Retry-After")
        except TimeoutError as exc:
            raise DeliveryError(self.name, f"POST {shown}: no complete answer "
                                f"within {self._timeout:g}s") from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise DeliveryError(self.name, f"POST {shown} failed: {type(exc).__name__}: "
                                + str(exc).replace(url, shown)) from exc
        if 200 <= status < 300:
            return f"HTTP {status}"
        permanent = 400 <= status < 500 and status not in _RETRYABLE_4XX
        wait = None
        if status in (429, 503):
            wait = parse_retry_after(retry_after, datetime.fromtimestamp(self._clock(), UTC))
        raise DeliveryError(self.name, f"POST {shown} answered HTTP {status}: {answer[:200]}"
                            + (f" (Retry-After: {wait:g}s)" if wait is not None else ""),
                            permanent=permanent, retry_after_s=wait)

    async def aclose(self) -> None:
        return None


def build(name: str, settings: Settings, ctx: ChannelContext) -> WebhookNotifier:
    return WebhookNotifier(name, settings, ctx.http, ctx.timeout_s)
