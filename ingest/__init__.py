"""ingest: an event-monitoring news-feed ingester.

Polls RSS/Atom feeds, extracts named entities, matches analysts' YAML rules and
delivers alerts by webhook and email.  See README.md and ARCHITECTURE.md.
"""

from ingest.errors import (
    ConfigError,
    DeliveryError,
    FetchError,
    IngestError,
    NlpError,
    ParseError,
    RuleError,
    StorageError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DeliveryError",
    "FetchError",
    "IngestError",
    "NlpError",
    "ParseError",
    "RuleError",
    "StorageError",
    "__version__",
]
