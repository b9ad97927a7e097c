"""Channel tests: send one synthetic alert straight to a channel and report its answer.

Used by ``ingest channels test`` and by the demo.  The notifier is built exactly as the
service builds it (the registry, one shared HTTP client, ``delivery.timeout``), but the
alert bypasses the outbox, ``min_severity``, digests and rate limits: it is sent now,
once, and nothing is recorded.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ingest.config import Settings
from ingest.errors import DeliveryError
from ingest.model import Alert
from ingest.notify.base import ChannelContext, delivery_client
from ingest.notify.registry import ChannelSettings, build_notifier

TEST_RULE_ID = "ingest-channel-test"
TEST_LINK = "https://example.invalid/ingest/channel-test-no-action-needed"


@dataclass(frozen=True)
class ProbeResult:
    """How one channel answered the test alert."""

    channel: str
    type: str
    ok: bool
    answer: str  # the receipt ("HTTP 200", "SMTP 250 …"), or the delivery error
    elapsed_ms: float
    permanent: bool = False  # for failures: retrying would not help

    def line(self) -> str:
        """``ok: hook (webhook) answered "HTTP 200" in 12 ms``, or ``failed: …``."""
        if self.ok:
            return (f'ok: {self.channel} ({self.type}) answered "{self.answer}" '
                    f"in {self.elapsed_ms:.0f} ms")
        kind = "permanent: retrying will not help" if self.permanent else "retryable"
        return f"failed: {self.channel} ({self.type}): {self.answer} ({kind})"


def synthetic_alert(channel: str, now: datetime) -> Alert:
    """A synthetic alert that says what it is, with a fresh ``test-<12 hex>`` id."""
    return Alert(
        id=f"test-{secrets.token_hex(6)}",
        rule_id=TEST_RULE_ID,
        rule_title="Test alert from ingest",
        severity="info",
        tags=("test",),
        feed_id="ingest",
        entry_key=TEST_RULE_ID,
        entry_title=f"Test of channel {channel}: ingest can deliver here (no action needed)",
        entry_link=TEST_LINK,
        published=now,
        created_at=now,
        snippet=(f"This is a test alert sent by `ingest channels test {channel}` to check "
                 "that this channel delivers. It is not about any news item."),
        channels=(channel,),
        revision=0,
    )


async def probe_channel(name: str, channel: ChannelSettings, ctx: ChannelContext,
                        now: datetime | None = None,
                        clock: Callable[[], float] = time.perf_counter) -> ProbeResult:
    """Build ``name``'s notifier, send it a test alert, close it.

    A notifier that cannot be built raises :class:`~ingest.errors.ConfigError`."""
    notifier = build_notifier(name, channel, ctx)
    alert = synthetic_alert(name, now or datetime.now(UTC))
    start = clock()
    try:
        receipt = await notifier.send(alert)
        return ProbeResult(name, channel.type, True, receipt, (clock() - start) * 1000)
    except DeliveryError as exc:
        message = str(exc).removeprefix(f"{exc.channel}: ")
        return ProbeResult(name, channel.type, False, message,
                           (clock() - start) * 1000, exc.permanent)
    finally:
        await notifier.aclose()


async def probe_channels(settings: Settings, names: Sequence[str]) -> list[ProbeResult]:
    """Test each named channel in turn, with one HTTP client as the service uses."""
    async with delivery_client(settings.polling.user_agent) as http:
        ctx = ChannelContext(http, settings.delivery.timeout)
        return [await probe_channel(name, settings.channels[name], ctx) for name in names]
