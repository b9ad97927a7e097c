"""The ``stdout`` channel: one JSON line per alert on standard output."""

from __future__ import annotations

import sys
from typing import Literal, TextIO

from pydantic import BaseModel, ConfigDict

from ingest.model import Alert
from ingest.notify.base import ChannelContext
from ingest.notify.render import payload_bytes


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["stdout"]
    # Alerts below this severity are not sent here (info < low < medium < high < critical).
    min_severity: Literal["info", "low", "medium", "high", "critical"] | None = None


class StdoutNotifier:
    def __init__(self, name: str, stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream

    async def send(self, alert: Alert) -> str:
        stream = self._stream or sys.stdout
        stream.write(payload_bytes(alert).decode("utf-8") + "\n")
        stream.flush()
        return "written"

    async def aclose(self) -> None:
        return None


def build(name: str, settings: Settings, ctx: ChannelContext) -> StdoutNotifier:
    return StdoutNotifier(name)
