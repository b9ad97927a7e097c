"""The one exception tree of ingest.

    IngestError                 anything ingest raises on purpose
     +-- ConfigError            a config file is missing, malformed or invalid (user error)
     +-- FetchError             a feed could not be fetched (network, HTTP status, size)
     +-- ParseError             a fetched document is not a usable feed
     +-- NlpError               the spaCy pipeline could not be loaded or run
     +-- RuleError              a rule or gazetteer file is malformed or invalid (user error)
     +-- StorageError           the database could not be reached or written
     +-- DeliveryError          a notification channel refused or failed a delivery

Third-party exceptions (httpx, SQLAlchemy, aiosmtplib, YAML, pydantic) are translated
into these at the edge that calls the library, with ``raise ... from exc``.  Errors
that are the user's to fix carry ``user_error = True``; the CLI exits with code 2 for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ConfigError",
    "DeliveryError",
    "FetchError",
    "IngestError",
    "NlpError",
    "ParseError",
    "Problem",
    "RuleError",
    "StorageError",
]


@dataclass(frozen=True)
class Problem:
    """One located problem in a user's file: where it is and what is wrong."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class IngestError(Exception):
    """Base of every error ingest raises on purpose.

    Picklable whatever a subclass's ``__init__`` takes, so that an error raised in a
    worker process (parsing, NLP) reaches the service as itself.
    """

    user_error = False

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))


def _rebuild(cls: type[IngestError], message: str, state: dict[str, Any]) -> IngestError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ConfigError(IngestError):
    """A configuration file is missing or invalid; ``problems`` locates each fault."""

    user_error = True

    def __init__(self, problems: list[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("config", None, problems)]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class RuleError(IngestError):
    """A rule, list or gazetteer file is invalid; ``problems`` locates each fault."""

    user_error = True

    def __init__(self, problems: list[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("rules", None, problems)]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class FetchError(IngestError):
    """A feed could not be fetched.

    ``status`` is the HTTP status when there was one; ``retry_after`` the raw
    ``Retry-After`` header of a 429 or 503 (read by fetch/schedule.py).
    """

    def __init__(self, url: str, message: str, status: int | None = None,
                 retry_after: str | None = None) -> None:
        self.url = url
        self.status = status
        self.retry_after = retry_after
        super().__init__(f"{url}: {message}")


class ParseError(IngestError):
    """A fetched document is not a feed feedparser can use."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        super().__init__(f"{url}: {message}")


class NlpError(IngestError):
    """The NLP pipeline could not be loaded or failed on a batch."""

    user_error = True


class StorageError(IngestError):
    """The database could not be reached, migrated or written."""

    user_error = True  # almost always a URL, a path or a server the operator must fix


class DeliveryError(IngestError):
    """A channel failed to deliver an alert.  ``permanent`` means retrying cannot help."""

    def __init__(self, channel: str, message: str, *, permanent: bool = False,
                 retry_after_s: float | None = None) -> None:
        self.channel = channel
        self.permanent = permanent
        self.retry_after_s = retry_after_s  # the receiver's Retry-After, when it sent one
        super().__init__(f"{channel}: {message}")
