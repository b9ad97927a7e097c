"""Prometheus metrics of one service instance, on a registry of their own.

:class:`Metrics` never touches prometheus_client's global default registry: each
object owns a :class:`~prometheus_client.CollectorRegistry`, so several can live in
one process (tests, the demo) without "duplicated timeseries" errors.  The service
makes one, passes it to the parts that count things, and ``/metrics`` renders it.

Label values known up front (outcomes, states, lease kinds) are created at 0, so a
series exists before its first event and ``rate()``/``absent()`` behave.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

__all__ = [
    "ALERT_STATES",
    "DELIVERY_OUTCOMES",
    "DELIVERY_STATES",
    "FEED_OUTCOMES",
    "LEASE_KINDS",
    "MATCH_STATES",
    "Metrics",
]

FEED_OUTCOMES = ("ok", "not_modified", "error")
MATCH_STATES = ("new", "update", "below-threshold", "deduped", "silenced")
ALERT_STATES = ("new", "update", "silenced")
DELIVERY_STATES = ("pending", "sending", "failed", "dead")  # delivered rows are not counted
DELIVERY_OUTCOMES = ("delivered", "failed", "dead")
LEASE_KINDS = ("feeds", "entries", "deliveries")

# 10 ms … 60 s: a cached 304 from a near server up to a whole-request timeout.
_NETWORK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
# One NLP batch: a few ms for a short batch up to minutes on a loaded small machine.
_BATCH_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def package_version() -> str:
    try:
        return version("ingest")
    except PackageNotFoundError:
        return "unknown"


class Metrics:
    """Every metric the service exports; ``instance`` names this process in ``ingest_build``."""

    def __init__(self, instance: str = "") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.feeds_polled = Counter("ingest_feeds_polled_total", "Feed polls by outcome.",
                                    ["outcome"], registry=r)
        self.fetch_duration = Histogram("ingest_fetch_duration_seconds",
                                        "Time to fetch one feed.", buckets=_NETWORK_BUCKETS,
                                        registry=r)
        self.entries_ingested = Counter("ingest_entries_ingested_total",
                                        "New entries stored.", registry=r)
        self.entries_processed = Counter("ingest_entries_processed_total",
                                         "Entries through NLP and rule matching.", registry=r)
        self.nlp_batch_duration = Histogram("ingest_nlp_batch_duration_seconds",
                                            "Time for one batch through NLP and matching.",
                                            buckets=_BATCH_BUCKETS, registry=r)
        self.nlp_queue_depth = Gauge("ingest_nlp_queue_depth",
                                     "Entries stored but not yet processed (fleet-wide).",
                                     registry=r)
        self.rule_matches = Counter("ingest_rule_matches_total", "Rule matches by state.",
                                    ["rule", "state"], registry=r)
        self.alerts = Counter("ingest_alerts_total", "Alerts by state.", ["state"], registry=r)
        self.deliveries = Gauge("ingest_deliveries",
                                "Deliveries not yet delivered, by state (fleet-wide).",
                                ["state"], registry=r)
        self.delivery_attempts = Counter("ingest_delivery_attempts_total",
                                         "Delivery attempts by channel and outcome.",
                                         ["channel", "outcome"], registry=r)
        self.delivery_duration = Histogram("ingest_delivery_duration_seconds",
                                           "Time for one delivery attempt.", ["channel"],
                                           buckets=_NETWORK_BUCKETS, registry=r)
        self.leases_held = Gauge("ingest_leases_held", "Leases held by this instance.",
                                 ["kind"], registry=r)
        self.instances_live = Gauge("ingest_instances_live", "Live instances in the fleet.",
                                    registry=r)
        self.ready = Gauge("ingest_ready", "1 when this instance is ready, else 0.",
                           registry=r)
        self.build = Info("ingest_build", "Version and instance of this process.", registry=r)
        self.build.info({"version": package_version(), "instance": instance})

        for outcome in FEED_OUTCOMES:
            self.feeds_polled.labels(outcome)
        for state in ALERT_STATES:
            self.alerts.labels(state)
        self.set_states(self.deliveries, {}, DELIVERY_STATES)
        self.set_states(self.leases_held, {}, LEASE_KINDS)

    def add_channels(self, channels: Iterable[str]) -> None:
        """Create each channel's delivery series at 0 (channels are known once config loads)."""
        for channel in channels:
            self.delivery_duration.labels(channel)
            for outcome in DELIVERY_OUTCOMES:
                self.delivery_attempts.labels(channel, outcome)

    def set_states(self, gauge: Gauge, counts: Mapping[str, int],
                   states: Sequence[str]) -> None:
        """Set a one-label gauge for every state: absent ones read 0 instead of vanishing."""
        for state in states:
            gauge.labels(state).set(counts.get(state, 0))
        for state, count in counts.items():
            if state not in states:
                gauge.labels(state).set(count)

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type, for ``GET /metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
