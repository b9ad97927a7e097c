"""The database schema (SQLAlchemy Core), the same for SQLite and PostgreSQL.

Uniqueness is enforced by the database, not trusted to the scheduler: one entry per
(feed, key), one alert per (rule, story), one match per (rule, entry), one delivery per
(alert, channel, revision).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
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
    Column("url", Text, nullable=False),  # polled now: config_url, or where a 301/308 led
    Column("config_url", Text, nullable=True),  # as configured (a change resets the feed)
    Column("title", Text, nullable=False, default=""),
    Column("tags", JSON, nullable=False, default=list),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("interval_s", Float, nullable=True),
    Column("min_interval_s", Float, nullable=True),
    Column("max_interval_s", Float, nullable=True),
    Column("fulltext", Boolean, nullable=True),
    Column("headers", JSON, nullable=True),
    Column("etag", Text, nullable=True),
    Column("last_modified", Text, nullable=True),
    Column("next_poll_at", DateTime, nullable=True, index=True),
    Column("last_polled_at", DateTime, nullable=True),
    Column("last_success_at", DateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_error_at", DateTime, nullable=True),
    Column("error_count", Integer, nullable=False, default=0),
    Column("entries_seen", Integer, nullable=False, default=0),
    # Schema 4: the history the adaptive schedule and feed health read.
    Column("warning", Text, nullable=True),  # the last success's caveat (malformed, moved)
    Column("failing_since", DateTime, nullable=True),
    Column("not_found_since", DateTime, nullable=True),
    Column("disabled_reason", Text, nullable=True),  # set by 410 Gone or a lasting 404
    Column("last_new_entry_at", DateTime, nullable=True),
    Column("update_interval_s", Float, nullable=True),  # learned time between new entries
    Column("fetch_count", Integer, nullable=True),
    Column("fetch_time_avg_s", Float, nullable=True),
    Column("health", String(16), nullable=True),  # ok | failing | silent | disabled
    Column("health_since", DateTime, nullable=True),
    # Schema 5 (fleet): the instance polling this feed now, and until when at most.
    Column("leased_by", String(100), nullable=True, index=True),
    Column("lease_until", DateTime, nullable=True),
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
    Column("story_id", Integer, nullable=True, index=True),  # the story it reports (stories/)
    Column("canonical_link", Text, nullable=True),
    Column("signature", LargeBinary, nullable=True),  # MinHash signature (stories/minhash.py)
    Column("language", String(8), nullable=True),
    Column("analysis", LargeBinary, nullable=True),  # compressed Analysis, for backtests
    # Schema 4: the document's length when NLP read only its first nlp.max_chars.
    Column("truncated_from", Integer, nullable=True),
    # Schema 5 (fleet): the instance processing this entry now, and until when at most.
    Column("leased_by", String(100), nullable=True, index=True),
    Column("lease_until", DateTime, nullable=True),
    UniqueConstraint("feed_id", "key", name="uq_entries_feed_key"),
    Index("ix_entries_fetched_at", "fetched_at"),
    Index("ix_entries_canonical_link", "canonical_link"),
)

# LSH bands of entry signatures: near-duplicate candidates by indexed lookup.
story_bands = Table(
    "story_bands", metadata,
    Column("entry_id", Integer, ForeignKey("entries.id"), nullable=False),
    Column("band_key", BigInteger, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_story_bands_key", "band_key"),
    Index("ix_story_bands_entry", "entry_id"),
)

alerts = Table(
    "alerts", metadata,
    Column("id", String(64), primary_key=True),
    Column("rule_id", String(200), nullable=False, index=True),
    Column("entry_id", Integer, ForeignKey("entries.id"), nullable=False),  # the first entry
    Column("story_id", Integer, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("state", String(16), nullable=False),  # fired | silenced
    Column("at", DateTime, nullable=False),  # the first match's time (dedupe windows)
    Column("dedupe_key", Text, nullable=False, default=""),
    Column("revision", Integer, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False, index=True),
    Column("updated_at", DateTime, nullable=False),
    Column("payload", JSON, nullable=False),
    UniqueConstraint("rule_id", "story_id", name="uq_alerts_rule_story"),
    Index("ix_alerts_rule_dedupe", "rule_id", "dedupe_key", "at"),
)

# Every rule match, including those that raised no alert (and why not).
matches = Table(
    "matches", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", String(200), nullable=False),
    Column("entry_id", Integer, ForeignKey("entries.id"), nullable=False),
    Column("story_id", Integer, nullable=False),
    Column("feed_id", String(200), nullable=False),
    Column("at", DateTime, nullable=False),
    # new | update | below-threshold | deduped | silenced
    Column("state", String(20), nullable=False),
    Column("alert_id", String(64), nullable=True),
    Column("silence_id", Integer, nullable=True),
    Column("dedupe_key", Text, nullable=False, default=""),
    Column("created_at", DateTime, nullable=False),
    Column("evidence", JSON, nullable=False),
    UniqueConstraint("rule_id", "entry_id", name="uq_matches_rule_entry"),
    Index("ix_matches_rule_at", "rule_id", "at"),
)

silences = Table(
    "silences", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", String(200), nullable=True),
    Column("tag", String(200), nullable=True),
    Column("entity", String(300), nullable=True),
    Column("reason", Text, nullable=False),
    Column("created_by", String(200), nullable=False, default=""),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False, index=True),
)

# One row: the schema version this database was created with.
schema_info = Table(
    "schema_info", metadata,
    Column("version", Integer, primary_key=True),
)
# 3: deliveries.claimed_by and delivery_attempts; 4: feed history and feed_notices;
# 5: leases and instances (Alembic revision 0002).  Alembic tracks the schema from 4 on;
# this number stays so that an older ingest refuses a newer database instead of using it.
SCHEMA_VERSION = 5

deliveries = Table(
    "deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", String(64), ForeignKey("alerts.id"), nullable=False),
    Column("channel", String(200), nullable=False),
    Column("revision", Integer, nullable=False, default=0),  # which revision of the alert
    # pending | sending | delivered | failed | dead (see store/outbox.py)
    Column("state", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),  # counted when claimed
    # When a pending or failed row is due; for a row being sent, when its claim expires.
    Column("next_attempt_at", DateTime, nullable=True, index=True),
    Column("claimed_by", String(100), nullable=True),  # the claim token of its sender
    Column("last_error", Text, nullable=True),
    Column("receipt", Text, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("delivered_at", DateTime, nullable=True),
    UniqueConstraint("alert_id", "channel", "revision", name="uq_deliveries_alert_channel"),
)

# Every attempt of every delivery, for ``ingest alerts show``.
delivery_attempts = Table(
    "delivery_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", Integer, ForeignKey("deliveries.id"), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime, nullable=False),
    # delivered | failed | dead | interrupted (the claim ran out: a crash or stop mid-send)
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=False, default=""),
)

# Operator notices about feeds (failing, silent, disabled, recovered), each sent once to
# the ``health.channel`` with retries (service/health.py).
feed_notices = Table(
    "feed_notices", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("feed_id", String(200), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # failing | silent | disabled | recovered
    Column("message", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("channel", String(200), nullable=True),  # None: recorded and logged only
    Column("state", String(16), nullable=False),  # pending | sent | dead | logged
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=True, index=True),
    Column("last_error", Text, nullable=True),
    Column("sent_at", DateTime, nullable=True),
)

# Every running service instance (``ingest run``), renewed every ``fleet.heartbeat``.
# An instance whose heartbeat is older than ``fleet.lease`` is dead: any other frees the
# feeds, entries and deliveries it held (service/fleet.py).
instances = Table(
    "instances", metadata,
    Column("id", String(100), primary_key=True),  # host:pid:random
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(40), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("heartbeat_at", DateTime, nullable=False, index=True),
    Column("stopped_at", DateTime, nullable=True),
    Column("state", String(16), nullable=False),  # running | stopping | stopped | dead
    Column("leases", JSON, nullable=False, default=dict),  # kind -> count at last heartbeat
)

# In-place upgrades from older schema versions: version -> statements.  Alembic takes
# over from version 4 on (ingest/store/migrations); these steps bring a pre-Alembic
# database to version 4, which is then stamped as Alembic's baseline revision.
UPGRADES: dict[int, tuple[str, ...]] = {
    2: ("ALTER TABLE deliveries ADD COLUMN claimed_by VARCHAR(100)",),
    3: (*(f"ALTER TABLE feeds ADD COLUMN {column}" for column in (
        "config_url TEXT", "min_interval_s FLOAT", "max_interval_s FLOAT", "fulltext BOOLEAN",
        "headers JSON", "warning TEXT", "failing_since TIMESTAMP", "not_found_since TIMESTAMP",
        "disabled_reason TEXT", "last_new_entry_at TIMESTAMP", "update_interval_s FLOAT",
        "fetch_count INTEGER", "fetch_time_avg_s FLOAT", "health VARCHAR(16)",
        "health_since TIMESTAMP")),
        "ALTER TABLE entries ADD COLUMN truncated_from INTEGER",
        "UPDATE feeds SET config_url = url WHERE config_url IS NULL"),
}
