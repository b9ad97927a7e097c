"""The ``stdout`` channel: one JSON line per alert on standard output."""

from __future__ import annotations

import sys
from typing import Literal, TextIO

from ingest.model import Alert
from ingest.notify.base import ChannelContext, ChannelOptions
from ingest.notify.render import payload_bytes


class Settings(ChannelOptions):
    type: Literal["stdout"]


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
