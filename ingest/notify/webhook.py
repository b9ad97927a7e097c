"""The ``webhook`` channel: POSTs the alert in its ``format``, signed when a secret is set."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import httpx
from pydantic import Field, SecretStr, field_validator

from ingest.errors import DeliveryError
from ingest.model import Alert
from ingest.notify.base import ChannelContext, ChannelOptions
from ingest.notify.formats import FORMATS
from ingest.notify.render import delivery_key
from ingest.notify.retry import parse_retry_after
from ingest.notify.signing import HEADER, signature

# 4xx answers that a retry can cure; any other 4xx is permanent.
_RETRYABLE_4XX = {408, 425, 429}


class Settings(ChannelOptions):
    type: Literal["webhook"]
    url: str
    format: Literal["json", "cloudevents", "slack"] = "json"
    # One secret, or two while rotating (the new one first): each signs, so receivers
    # holding either accept the delivery.
    secret: SecretStr | list[SecretStr] | None = None
    headers: dict[str, str] = Field(default_factory=dict)

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


class WebhookNotifier:
    def __init__(self, name: str, settings: Settings, http: httpx.AsyncClient, timeout_s: float,
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
        try:
            async with asyncio.timeout(self._timeout):  # the whole request, not each read
                response = await self._http.post(self._settings.url, content=body,
                                                 headers=headers, timeout=self._timeout)
        except TimeoutError as exc:
            raise DeliveryError(self.name, f"POST {self._settings.url}: no complete answer "
                                f"within {self._timeout:g}s") from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(self.name, f"POST {self._settings.url} failed: "
                                f"{type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return f"HTTP {response.status_code}"
        permanent = 400 <= response.status_code < 500 and response.status_code not in _RETRYABLE_4XX
        wait = None
        if response.status_code in (429, 503):
            wait = parse_retry_after(response.headers.get("Retry-After"),
                                     datetime.fromtimestamp(self._clock(), UTC))
        raise DeliveryError(self.name, f"POST {self._settings.url} answered HTTP "
                            f"{response.status_code}: {response.text[:200]}"
                            + (f" (Retry-After: {wait:g}s)" if wait is not None else ""),
                            permanent=permanent, retry_after_s=wait)

    async def aclose(self) -> None:
        return None


def build(name: str, settings: Settings, ctx: ChannelContext) -> WebhookNotifier:
    return WebhookNotifier(name, settings, ctx.http, ctx.timeout_s)
