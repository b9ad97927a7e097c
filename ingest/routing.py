"""Which channels an alert goes to (pure): the rule's ``notify``, then the ``routes``.

Like Alertmanager's routing tree, flattened: routes are tried in order; each one
whose conditions all hold adds its channels, and ``continue: false`` stops the walk
after a route that matched.  A channel's ``min_severity`` then drops alerts below it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from ingest.rules.spec import SEVERITIES, Severity

SEVERITY_ORDER: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}


class Route(BaseModel):
    """``routes:`` entry: every given condition must hold for its channels to be added."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    severity: list[Severity] = []  # one of these severities
    min_severity: Severity | None = None  # this severity or higher
    tags: list[str] = []  # the rule has one of these tags
    rules: list[str] = []  # one of these rule ids
    channels: list[str] = Field(min_length=1)
    continue_: bool = Field(True, alias="continue")

    def matches(self, rule_id: str, severity: str, tags: Sequence[str]) -> bool:
        return ((not self.severity or severity in self.severity)
                and (self.min_severity is None
                     or SEVERITY_ORDER.get(severity, 0) >= SEVERITY_ORDER[self.min_severity])
                and (not self.tags or any(t in tags for t in self.tags))
                and (not self.rules or rule_id in self.rules))


def route(rule_id: str, severity: str, tags: Sequence[str], base: Sequence[str],
          routes: Sequence[Route], min_severity: Mapping[str, str | None]) -> tuple[str, ...]:
    """``base`` (the rule's own channels) plus every matching route's, minus the channels
    whose ``min_severity`` the alert does not reach; in order, without repeats."""
    chosen = list(base)
    for r in routes:
        if r.matches(rule_id, severity, tags):
            chosen.extend(r.channels)
            if not r.continue_:
                break
    rank = SEVERITY_ORDER.get(severity, 0)
    kept = [c for c in dict.fromkeys(chosen)
            if (floor := min_severity.get(c)) is None or rank >= SEVERITY_ORDER[floor]]
    return tuple(kept)
