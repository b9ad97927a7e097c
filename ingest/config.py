"""The configuration object: read once from ``ingest.yaml``, validated, passed in.

Nothing reads configuration from a global.  ``load_config`` raises
:class:`~ingest.errors.ConfigError` with every problem located (file, line, field).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ingest.durations import Duration
from ingest.errors import ConfigError, Problem
from ingest.feedlist import feed_url_problem, load_feed_file
from ingest.model import Feed
from ingest.notify.registry import ChannelSettings
from ingest.routing import Route, route
from ingest.yamlfile import YamlProblem, load_yaml

CONFIG_ENV = "INGEST_CONFIG"
DATABASE_ENV = "INGEST_DATABASE_URL"
DEFAULT_DATABASE_URL = "sqlite:///./data/ingest.db"
DEFAULT_MODEL = "en_core_web_sm"
DEFAULTS_SOURCE = "<defaults>"  # Settings.source when no config file was read
USER_AGENT = "ingest/0.1 (news-feed monitor; +https://github.com/ingest-news/ingest)"

_FEED_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeedSettings(_Strict):
    """One feed in ``feeds:`` or in a feed list file."""

    id: str
    url: str
    title: str = ""
    tags: list[str] = []
    interval: Duration | None = None  # first interval; then learned from the feed's history
    min_interval: Duration | None = None  # default: polling.min_interval
    max_interval: Duration | None = None  # default: polling.max_interval
    fulltext: bool = False  # fetch each item's page and extract the article's main text
    headers: dict[str, str] = {}  # extra request headers, e.g. {Authorization: "Bearer …"}
    enabled: bool = True

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _FEED_ID.match(v):
            raise ValueError("use lowercase letters, digits, '.', '_' or '-' (e.g. bbc-world)")
        return v

    @field_validator("url")
    @classmethod
    def _pollable(cls, v: str) -> str:
        """http(s), file: or a plain path, with no password (see ``feed_url_problem``)."""
        problem = feed_url_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v

    def to_feed(self) -> Feed:
        return Feed(self.id, self.url, self.title, tuple(self.tags), self.interval,
                    self.enabled, self.min_interval, self.max_interval, self.fulltext,
                    tuple(sorted(self.headers.items())))


class PollingSettings(_Strict):
    """How feeds are polled (see README, "Polling and the schedule")."""

    interval: Duration = 900.0  # a new feed's first interval, before its history is known
    min_interval: Duration = 120.0  # never poll one feed more often than this
    max_interval: Duration = 6 * 3600.0  # nor less often (errors back off up to this)
    tick: Duration = 30.0  # how often the scheduler looks for due feeds
    concurrency: int = Field(64, ge=1, le=2000)  # requests in flight, over all hosts
    per_host: int = Field(2, ge=1, le=100)  # requests in flight to one host
    host_spacing: Duration = 1.0  # minimum time between two requests to one host
    http2: bool = True  # use HTTP/2 where the server offers it
    connect_timeout: Duration = 10.0
    read_timeout: Duration = 20.0  # longest silence while reading
    timeout: Duration = 30.0  # whole request, however the server trickles
    max_redirects: int = Field(5, ge=0, le=20)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)  # as received (compressed)
    max_decoded_bytes: int = Field(32 * 1024 * 1024, ge=1024)  # after decompression
    not_found_disable_after: Duration = 7 * 86400.0  # a feed answering 404 this long is disabled
    user_agent: str = USER_AGENT


class HealthSettings(_Strict):
    """Operator notices about feeds (see README, "Feed health")."""

    channel: str | None = None  # the channel notices go to; None: logged and shown only
    failing_after: Duration = 86400.0  # a feed failing this long raises a notice
    silent_factor: float = Field(4.0, ge=1.0)  # silent past this many expected intervals
    silent_min: Duration = 86400.0  # ... and at least this long


class FulltextSettings(_Strict):
    """``fulltext: true`` feeds: how linked articles are fetched and extracted."""

    max_per_poll: int = Field(50, ge=1)  # article pages fetched per poll of one feed
    max_chars: int = Field(50_000, ge=1000)  # extracted text kept per article


class NlpSettings(_Strict):
    model: str = DEFAULT_MODEL
    # Longer documents are cut before NLP (spaCy refuses more than 1,000,000 characters).
    max_chars: int = Field(20_000, ge=100, le=1_000_000)
    batch_size: int = Field(32, ge=1)
    # Worker processes for parsing and NLP: None = one per core; 0 = a thread in the
    # service's own process (small machines, tests).
    workers: int | None = Field(None, ge=0, le=64)


class DeliverySettings(_Strict):
    """Defaults for every channel's outbox (a channel may set its own max_attempts, max_age)."""

    max_attempts: int = Field(30, ge=1)  # about a day of retries with the default backoff
    max_age: Duration = 2 * 86400.0  # a delivery is given up once it would be older
    timeout: Duration = 15.0
    tick: Duration = 10.0  # how often due retries are looked for (new alerts go at once)


class StorySettings(_Strict):
    """How entries are grouped into stories across outlets (see README, "Stories")."""

    # Estimated Jaccard similarity of word 3-grams from which two texts are one story.
    similarity: float = Field(0.5, ge=0.1, le=1.0)
    window: Duration = 72 * 3600.0  # an entry joins only stories seen this recently


LogLevel = Literal["debug", "info", "warning", "error"]


class LogSettings(_Strict):
    level: LogLevel = "info"
    format: Literal["auto", "json", "console"] = "auto"
    # Per-module levels by logger name prefix, e.g. {ingest.fetch: debug, apscheduler: info}.
    modules: dict[str, LogLevel] = {}


class FleetSettings(_Strict):
    """Several instances on one PostgreSQL database (see README, "Running a fleet")."""

    heartbeat: Duration = 10.0  # how often an instance renews its row and its leases
    # An instance silent this long is dead: its feeds, entries and deliveries are freed.
    lease: Duration = 60.0

    @model_validator(mode="after")
    def _lease_outlasts_heartbeats(self) -> FleetSettings:
        if self.heartbeat <= 0 or self.lease < 3 * self.heartbeat:
            raise ValueError(f"fleet.lease ({self.lease:g}s) must be at least three times "
                             f"fleet.heartbeat ({self.heartbeat:g}s), or one late heartbeat "
                             "gets a live instance's work taken over")
        return self


class HttpSettings(_Strict):
    """The health and metrics endpoint (/healthz, /readyz, /metrics)."""

    enabled: bool = True  # `ingest run --no-http` turns it off too
    listen: str = "127.0.0.1:9464"  # host:port; 0.0.0.0:9464 in a container

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError("write host:port, e.g. 127.0.0.1:9464")
        return v


class Settings(_Strict):
    """The whole configuration.  Paths are absolute once loaded."""

    database_url: str = DEFAULT_DATABASE_URL
    rules_dir: Path = Path("rules")
    gazetteer: Path | None = None  # default: <rules_dir>/entities.yaml
    feeds: list[FeedSettings] = []
    feed_files: list[Path] = []
    polling: PollingSettings = PollingSettings()
    nlp: NlpSettings = NlpSettings()
    delivery: DeliverySettings = DeliverySettings()
    stories: StorySettings = StorySettings()
    health: HealthSettings = HealthSettings()
    fulltext: FulltextSettings = FulltextSettings()
    retention: Duration = 30 * 86400.0  # entries' text and analysis kept this long (backtests)
    rules_watch: bool = True  # reload rule and gazetteer files when they change
    channels: dict[str, Annotated[ChannelSettings, Field(discriminator="type")]] = {}
    default_channels: list[str] | None = None  # None: every channel
    routes: list[Route] = []  # more channels by severity, tag or rule (see routing.py)
    log: LogSettings = LogSettings()
    fleet: FleetSettings = FleetSettings()
    http: HttpSettings = HttpSettings()
    shutdown_timeout: Duration = 20.0  # on SIGTERM: finish or release work within this
    source: str = DEFAULTS_SOURCE  # the file this came from, for messages

    @property
    def gazetteer_path(self) -> Path:
        return self.gazetteer or self.rules_dir / "entities.yaml"

    def all_feeds(self) -> list[Feed]:
        """Inline feeds, then feeds from each feed file; later duplicates of an id are errors."""
        feeds = [f.to_feed() for f in self.feeds]
        for path in self.feed_files:
            feeds.extend(load_feed_file(path))
        seen: dict[str, Feed] = {}
        for feed in feeds:
            if feed.id in seen:
                raise ConfigError([Problem(self.source, None,
                                           f"feed id {feed.id!r} is defined twice")])
            seen[feed.id] = feed
        return feeds

    def route(self, rule_id: str, severity: str, tags: tuple[str, ...],
              notify: tuple[str, ...]) -> tuple[str, ...]:
        """The channels an alert of this rule goes to: its ``notify`` (or the defaults),
        then the matching ``routes``, minus channels whose ``min_severity`` it misses."""
        floors = {name: ch.min_severity for name, ch in self.channels.items()}
        return route(rule_id, severity, tags, self.channels_for(notify), self.routes, floors)

    def channels_for(self, wanted: tuple[str, ...]) -> tuple[str, ...]:
        """The configured channels a rule's ``notify`` resolves to."""
        known = tuple(c for c in wanted if c in self.channels)
        if known:
            return known
        if self.default_channels is not None:
            return tuple(c for c in self.default_channels if c in self.channels)
        return tuple(self.channels)


def resolve_config_path(explicit: Path | None) -> Path | None:
    """``--config``, else ``$INGEST_CONFIG``, else ``./ingest.yaml`` if present, else None."""
    if explicit is not None:
        return explicit
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    default = Path("ingest.yaml")
    return default if default.exists() else None


def load_config(path: Path | None) -> Settings:
    """Read and validate a config file (or the defaults when ``path`` is None)."""
    if path is None:
        return _finish(Settings(), Path.cwd())
    try:
        data, locator = load_yaml(path, interpolate_env=True)
    except YamlProblem as exc:
        raise ConfigError(exc.problems) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(path), 1, "the config must be a mapping of settings")])
    try:
        settings = Settings.model_validate({**data, "source": str(path)})
    except ValidationError as exc:
        raise ConfigError(locator.problems(exc)) from exc
    return _finish(settings, path.resolve().parent)


def _finish(settings: Settings, base: Path) -> Settings:
    """Make paths absolute against the config's folder and apply environment overrides."""
    updates: dict[str, Any] = {
        "rules_dir": _absolute(settings.rules_dir, base),
        "feed_files": [_absolute(p, base) for p in settings.feed_files],
    }
    if settings.gazetteer is not None:
        updates["gazetteer"] = _absolute(settings.gazetteer, base)
    # Paths inside channels (a file channel's path, an email password_file) too.
    updates["channels"] = {
        name: ch.model_copy(update={k: _absolute(v, base) for k, v in ch if isinstance(v, Path)})
        for name, ch in settings.channels.items()}
    env_db = os.environ.get(DATABASE_ENV)
    if env_db:
        updates["database_url"] = env_db
    problems = [
        Problem(settings.source, None,
                f"default_channels: {name!r} is not a configured channel")
        for name in settings.default_channels or [] if name not in settings.channels
    ]
    problems += [
        Problem(settings.source, None,
                f"routes[{i}].channels: {name!r} is not a configured channel; configured: "
                f"{', '.join(settings.channels) or 'none'}")
        for i, r in enumerate(settings.routes) for name in r.channels
        if name not in settings.channels
    ]
    if settings.health.channel is not None and settings.health.channel not in settings.channels:
        problems.append(Problem(settings.source, None,
                                f"health.channel: {settings.health.channel!r} is not a "
                                f"configured channel; configured: "
                                f"{', '.join(settings.channels) or 'none'}"))
    if problems:
        raise ConfigError(problems)
    return settings.model_copy(update=updates)


def _absolute(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (base / path).resolve()
