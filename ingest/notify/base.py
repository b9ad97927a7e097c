"""The Notifier protocol every channel implements, and what channels share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx

from ingest.model import Alert


class Notifier(Protocol):
    """Delivers alerts to one configured channel.

    ``send`` returns a short receipt for the delivery row (``"HTTP 200"``) and
    raises :class:`~ingest.errors.DeliveryError` on failure, never anything else.
    """

    name: str

    async def send(self, alert: Alert) -> str: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class ChannelContext:
    """Shared resources a channel may use; owned and closed by the service."""

    http: httpx.AsyncClient
    timeout_s: float
