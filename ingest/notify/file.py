"""The ``file`` channel: appends one JSON line per alert to a file (JSONL)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

from ingest.errors import DeliveryError
from ingest.model import Alert
from ingest.notify.base import ChannelContext, ChannelOptions
from ingest.notify.render import payload_bytes


class Settings(ChannelOptions):
    type: Literal["file"]
    path: Path


class FileNotifier:
    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as fh:
            fh.write(line + b"\n")

    async def send(self, alert: Alert) -> str:
        try:
            await asyncio.to_thread(self._append, payload_bytes(alert))
        except OSError as exc:
            raise DeliveryError(self.name, f"cannot append to {self.path}: {exc}") from exc
        return f"appended to {self.path}"

    async def aclose(self) -> None:
        return None


def build(name: str, settings: Settings, ctx: ChannelContext) -> FileNotifier:
    return FileNotifier(name, settings.path)
