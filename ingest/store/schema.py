"""The database schema (SQLAlchemy Core), the same for SQLite and PostgreSQL.

Uniqueness is enforced by the database, not trusted to the scheduler: one entry per
(feed, key), one alert per (rule, entry), one delivery per (alert, channel).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

feeds = Table(
    "feeds", metadata,
    Column("id", String(200), primary_key=True),
    Column("url", Text, nullable=False),
    Column("title", Text, nullable=False, default=""),
    Column("tags", JSON, nullable=False, default=list),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("interval_s", Float, nullable=True),
    Column("etag", Text, nullable=True),
    Column("last_modified", Text, nullable=True),
    Column("next_poll_at", DateTime, nullable=True, index=True),
    Column("last_polled_at", DateTime, nullable=True),
    Column("last_success_at", DateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_error_at", DateTime, nullable=True),
    Column("error_count", Integer, nullable=False, default=0),
    Column("entries_seen", Integer, nullable=False, default=0),
)

entries = Table(
    "entries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("feed_id", String(200), ForeignKey("feeds.id"), nullable=False),
    Column("key", String(600), nullable=False),
    Column("title", Text, nullable=False),
    Column("link", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("published", DateTime, nullable=True),
    Column("guid", Text, nullable=True),
    Column("fetched_at", DateTime, nullable=False),
    Column("processed_at", DateTime, nullable=True, index=True),
    Column("error", Text, nullable=True),  # why processing this entry failed, if it did
    UniqueConstraint("feed_id", "key", name="uq_entries_feed_key"),
)

alerts = Table(
    "alerts", metadata,
    Column("id", String(64), primary_key=True),
    Column("rule_id", String(200), nullable=False, index=True),
    Column("entry_id", Integer, ForeignKey("entries.id"), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("created_at", DateTime, nullable=False, index=True),
    Column("payload", JSON, nullable=False),
    UniqueConstraint("rule_id", "entry_id", name="uq_alerts_rule_entry"),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", String(64), ForeignKey("alerts.id"), nullable=False),
    Column("channel", String(200), nullable=False),
    Column("state", String(16), nullable=False, index=True),  # pending | delivered | failed | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=True, index=True),
    Column("last_error", Text, nullable=True),
    Column("receipt", Text, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("delivered_at", DateTime, nullable=True),
    UniqueConstraint("alert_id", "channel", name="uq_deliveries_alert_channel"),
)
