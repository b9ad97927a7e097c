"""The Store protocol: everything the service remembers, behind one small interface."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ingest.model import Alert, Entry, Feed, FeedState
from ingest.rules.policy import MatchEvent, Silence
from ingest.rules.spec import RuleSpec
from ingest.stories.cluster import StoryCandidate
from ingest.stories.minhash import Fingerprint

if TYPE_CHECKING:
    from ingest.store.migrate import Migration


@dataclass(frozen=True)
class StoredEntry:
    """An entry as stored: its row id plus the entry."""

    id: int
    entry: Entry
    fetched_at: datetime | None = None


@dataclass(frozen=True)
class ProposedMatch:
    """A rule's match on an entry, with the alert it raises if the policy lets it."""

    rule: RuleSpec
    event: MatchEvent
    alert: Alert


@dataclass(frozen=True)
class EntryOutcome:
    """Everything processing learned about one entry, recorded in one transaction."""

    entry_id: int
    entry: Entry
    story_id: int
    fingerprint: Fingerprint | None = None
    canonical_link: str = ""
    language: str | None = None
    analysis: bytes | None = None  # compressed Analysis (nlp/serial.py), kept for backtests
    matches: tuple[ProposedMatch, ...] = ()


@dataclass(frozen=True)
class AlertChange:
    """What recording a match did: the alert it created or touched, and the decision."""

    alert: Alert | None  # None when the match raised nothing (below threshold)
    state: str  # new | update | below-threshold | deduped | silenced
    notify: bool
    rule_id: str
    entry_id: int


@dataclass(frozen=True)
class MatchRow:
    """A recorded match, as operators list them."""

    id: int
    rule_id: str
    entry_id: int
    story_id: int
    feed_id: str
    at: datetime
    state: str
    alert_id: str | None
    entry_title: str
    entry_link: str


@dataclass(frozen=True)
class BacktestEntry:
    """A stored entry with what a backtest needs to replay rules on it."""

    id: int
    entry: Entry
    story_id: int
    at: datetime
    language: str | None
    analysis: bytes | None


@dataclass(frozen=True)
class PendingDelivery:
    """A delivery claimed for sending: ``attempts`` already counts this attempt."""

    id: int
    channel: str
    attempts: int
    alert: Alert  # its revision is the one this delivery sends
    created_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one attempt, as the outbox records it."""

    delivery_id: int
    attempt: int
    state: str  # delivered | failed | dead
    detail: str  # the receipt, or the error
    started_at: datetime
    finished_at: datetime
    retry_at: datetime | None = None  # for failed: when it is due again


@dataclass(frozen=True)
class DeliveryRow:
    """A delivery's state, for operators and tests."""

    id: int
    alert_id: str
    channel: str
    state: str
    attempts: int
    last_error: str | None
    receipt: str | None
    revision: int = 0
    next_attempt_at: datetime | None = None
    created_at: datetime | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True)
class AttemptRow:
    """One attempt of a delivery."""

    delivery_id: int
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str  # delivered | failed | dead | interrupted
    detail: str


@dataclass(frozen=True)
class AlertSummary:
    """An alert with the state of each of its deliveries, for ``ingest alerts list``."""

    alert: Alert
    deliveries: tuple[DeliveryRow, ...]


@dataclass(frozen=True)
class FeedRow:
    """A feed's state as the operator sees it (``ingest feeds status``)."""

    feed: Feed
    state: FeedState
    last_success_at: datetime | None
    last_polled_at: datetime | None
    entries_seen: int
    last_error_at: datetime | None = None
    warning: str | None = None
    entries_per_day: float = 0.0  # new entries per day over the last 7 days
    config_url: str | None = None  # differs from state.url after a permanent redirect


@dataclass(frozen=True)
class PollRecord:
    """What one poll makes of a feed's row: its new state, computed purely beforehand
    (service/feedstate.py) and written as is.  ``warning`` is a success's caveat about
    the document; ``document`` False (a 304) keeps the caveat already stored, since
    the document it describes has not changed."""

    state: FeedState
    polled_at: datetime
    ok: bool
    warning: str | None = None
    document: bool = True
    # The configured URL the poll was for: a record whose feed was reconfigured meanwhile
    # (a SIGHUP changed its URL) is not written over the reset row.
    config_url: str | None = None


@dataclass(frozen=True)
class Notice:
    """An operator notice about a feed (failing, silent, disabled, recovered)."""

    feed_id: str
    kind: str
    message: str
    created_at: datetime
    channel: str | None = None
    id: int | None = None
    state: str = "pending"
    attempts: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class InstanceRow:
    """A service instance as the ``instances`` table knows it."""

    id: str  # host:pid:random
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    state: str  # running | stopping | stopped | dead
    leases: dict[str, int]  # kind -> count at the last heartbeat
    stopped_at: datetime | None = None

    @classmethod
    def joining(cls, instance: str, version: str, now: datetime) -> InstanceRow:
        """The row of instance ``host:pid:random`` joining the fleet at ``now``."""
        host, pid, _ = instance.rsplit(":", 2)
        return cls(instance, host, int(pid), version, now, now, "running", {})


@dataclass(frozen=True)
class FleetStats:
    """Fleet-wide figures for metrics, read at each heartbeat."""

    waiting_entries: int  # stored, not yet processed
    deliveries: dict[str, int]  # state -> rows
    live_instances: int


class Store(Protocol):
    """Durable state.  Every method is idempotent where the data has a natural key."""

    single_instance: bool  # True when no other process can share this database (SQLite)
    sqlite_path: Path | None  # the database file, for SQLite

    async def init(self) -> Migration: ...

    async def ping(self) -> None: ...

    # -- fleet (store/leases.py) --

    async def claim_feeds(self, *, now: datetime, due_by: datetime, limit: int, instance: str,
                          lease_until: datetime) -> list[tuple[Feed, FeedState]]: ...

    async def claim_entries(self, *, now: datetime, limit: int, instance: str,
                            lease_until: datetime) -> list[StoredEntry]: ...

    async def release_leases(self, instance: str, *, feeds: bool = False,
                             entries: bool = False) -> int: ...

    def story_lock(self) -> AbstractAsyncContextManager[None]:
        """Held while a batch's stories are assigned and recorded: two instances must not
        both start a story for copies of the same news."""
        ...

    async def register_instance(self, row: InstanceRow) -> None: ...

    async def heartbeat(self, instance: str, *, now: datetime, lease_until: datetime,
                        state: str = "running") -> dict[str, int]: ...

    async def reap_instances(self, *, now: datetime, dead_before: datetime) -> list[str]: ...

    async def retire_instance(self, instance: str, now: datetime) -> dict[str, int]: ...

    async def instances(self, *, include_stopped: bool = False) -> list[InstanceRow]: ...

    async def fleet_stats(self, live_after: datetime) -> FleetStats: ...

    async def close(self) -> None: ...

    async def sync_feeds(self, feeds: Sequence[Feed], now: datetime) -> None: ...

    async def due_feeds(self, now: datetime, limit: int) -> list[tuple[Feed, FeedState]]: ...

    async def feeds(self, now: datetime | None = None) -> list[FeedRow]: ...

    async def record_polls(self, records: Sequence[PollRecord], notices: Sequence[Notice] = (),
                           holder: str | None = None) -> set[str]: ...

    async def known_keys(self, feed_id: str, keys: Sequence[str]) -> set[str]: ...

    async def reset_feed(self, feed_id: str, now: datetime) -> bool: ...

    async def due_notices(self, now: datetime, limit: int) -> list[Notice]:
        """Claims them: not due for others until settled or ten minutes have passed."""
        ...

    async def finish_notice(self, notice_id: int, *, state: str, now: datetime,
                            error: str | None = None,
                            next_attempt_at: datetime | None = None) -> None: ...

    async def notices(self, feed_id: str | None = None, limit: int = 100) -> list[Notice]: ...

    async def add_entries(self, entries: Sequence[Entry], now: datetime) -> list[StoredEntry]: ...

    async def unprocessed_entries(self, limit: int) -> list[StoredEntry]: ...

    async def record_entry_error(self, entry_id: int, error: str, now: datetime) -> None: ...

    async def record_truncation(self, lengths: dict[int, int]) -> None: ...

    async def story_candidates(self, band_keys: Sequence[int], links: Sequence[str],
                               since: datetime) -> list[StoryCandidate]: ...

    async def record_outcomes(self, outcomes: Sequence[EntryOutcome],
                              now: datetime) -> list[AlertChange]: ...

    async def add_silence(self, silence: Silence, created_by: str = "") -> Silence: ...

    async def silences(self, now: datetime, include_expired: bool = False) -> list[Silence]: ...

    async def expire_silence(self, silence_id: int, now: datetime) -> bool: ...

    async def matches(self, *, rule_id: str | None = None, since: datetime | None = None,
                      state: str | None = None, limit: int = 100) -> list[MatchRow]: ...

    async def backtest_entries(self, since: datetime,
                               limit: int | None = None) -> list[BacktestEntry]: ...

    async def prune(self, before: datetime) -> int: ...

    async def claim_deliveries(self, channel: str, *, now: datetime, lease_until: datetime,
                               token: str, limit: int, max_attempts: int,
                               held_after: datetime | None = None) -> list[PendingDelivery]: ...

    async def finish_deliveries(self, token: str, results: Sequence[DeliveryResult],
                                now: datetime) -> int: ...

    async def release_deliveries(self, token: str, now: datetime) -> int: ...

    async def recover_interrupted(self, now: datetime) -> int: ...

    async def abandon_channels(self, configured: Sequence[str], now: datetime) -> int: ...

    async def retry_deliveries(self, now: datetime, alert_id: str | None = None) -> int: ...

    async def alert_summaries(self, *, state: str | None = None, rule_id: str | None = None,
                              since: datetime | None = None,
                              limit: int = 100) -> list[AlertSummary]: ...

    async def find_alert(self, id_prefix: str) -> list[Alert]: ...

    async def delivery_attempts(self, alert_id: str) -> list[AttemptRow]: ...

    async def alerts(self, limit: int = 100) -> list[Alert]: ...

    async def deliveries(self, alert_id: str | None = None) -> list[DeliveryRow]: ...
