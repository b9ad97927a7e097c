"""The ``webhook`` channel: POSTs the JSON payload, signed when a secret is set."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from ingest.errors import DeliveryError
from ingest.model import Alert
from ingest.notify.base import ChannelContext
from ingest.notify.render import delivery_key, payload_bytes
from ingest.notify.signing import HEADER, signature

# 4xx answers that a retry can cure; any other 4xx is permanent.
_RETRYABLE_4XX = {408, 425, 429}


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["webhook"]
    url: str
    secret: SecretStr | None = None
    headers: dict[str, str] = {}


class WebhookNotifier:
    def __init__(self, name: str, settings: Settings, http: httpx.AsyncClient, timeout_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self._settings = settings
        self._http = http
        self._timeout = timeout_s
        self._clock = clock

    def request_headers(self, alert: Alert, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Idempotency-Key": delivery_key(alert),
                   **self._settings.headers}
        if self._settings.secret is not None:
            secret = self._settings.secret.get_secret_value()
            headers[HEADER] = signature(secret, body, int(self._clock()))
        return headers

    async def send(self, alert: Alert) -> str:
        body = payload_bytes(alert)
        try:
            async with asyncio.timeout(self._timeout):  # the whole request, not each read
                response = await self._http.post(self._settings.url, content=body,
                                                 headers=self.request_headers(alert, body),
                                                 timeout=self._timeout)
        except TimeoutError as exc:
            raise DeliveryError(self.name, f"POST {self._settings.url}: no complete answer "
                                f"within {self._timeout:g}s") from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(self.name, f"POST {self._settings.url} failed: "
                                f"{type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return f"HTTP {response.status_code}"
        permanent = 400 <= response.status_code < 500 and response.status_code not in _RETRYABLE_4XX
        raise DeliveryError(self.name, f"POST {self._settings.url} answered HTTP "
                            f"{response.status_code}: {response.text[:200]}", permanent=permanent)

    async def aclose(self) -> None:
        return None


def build(name: str, settings: Settings, ctx: ChannelContext) -> WebhookNotifier:
    return WebhookNotifier(name, settings, ctx.http, ctx.timeout_s)
