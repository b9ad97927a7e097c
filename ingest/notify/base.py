"""The Notifier protocol every channel implements, and what channels share."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Protocol, runtime_checkable

import aiohttp
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ingest.durations import Duration
from ingest.model import Alert
from ingest.rules.spec import Severity

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
        "h": 3600.0, "hour": 3600.0}


def parse_rate(value: object) -> tuple[float, float]:
    """``"10/s"``, ``"30/min"``, ``"100/h"`` -> (count, period in seconds)."""
    if isinstance(value, tuple | list) and len(value) == 2:
        try:
            count, period = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            count = period = 0.0
        if count > 0 and period > 0:
            return count, period
        raise ValueError(f"{value!r} is not a rate; write e.g. 10/s, 30/min or 100/h")
    match = _RATE.match(str(value)) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{value!r} is not a rate; write e.g. 10/s, 30/min or 100/h")
    return float(match.group(1)), _PER[match.group(2)]


Rate = Annotated[tuple[float, float], BeforeValidator(parse_rate)]


class ChannelOptions(BaseModel):
    """Keys every channel type accepts, beside its own (see README, "channels")."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    # Alerts below this severity are not sent here (info < low < medium < high < critical).
    min_severity: Severity | None = None
    # Deliveries in flight at once on this channel; other channels never wait for it.
    concurrency: int = Field(16, ge=1, le=256)
    # At most this many sends per period ("10/s", "30/min"); unset: no limit.
    rate_limit: Rate | None = None
    # Give a delivery up (state dead) after this many attempts or this age; unset: the
    # ``delivery:`` defaults.
    max_attempts: int | None = Field(None, ge=1)
    max_age: Duration | None = None


class Notifier(Protocol):
    """Delivers alerts to one configured channel.

    ``send`` returns a short receipt for the delivery row (``"HTTP 200"``) and
    raises :class:`~ingest.errors.DeliveryError` on failure, never anything else.
    """

    name: str

    async def send(self, alert: Alert) -> str: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class DigestNotifier(Protocol):
    """A channel that can also send several alerts as one message (email digests)."""

    name: str

    async def send_digest(self, alerts: Sequence[Alert]) -> str: ...


def delivery_client(user_agent: str) -> aiohttp.ClientSession:
    """The HTTP client every channel shares (create it inside the event loop), keeping
    connections alive between sends.  aiohttp rather than httpx here: a webhook send costs
    about a fifth of the CPU (``bench/delivery.py``), and deliveries are many small POSTs."""
    return aiohttp.ClientSession(headers={"User-Agent": user_agent},
                                 connector=aiohttp.TCPConnector(limit=512))


@dataclass(frozen=True)
class ChannelContext:
    """Shared resources a channel may use; owned and closed by the service."""

    http: aiohttp.ClientSession
    timeout_s: float
