"""systemd's notify protocol (``Type=notify`` / ``Type=notify-reload``), by hand.

The protocol is one datagram of ``KEY=value`` lines sent to the Unix socket named by
``$NOTIFY_SOCKET`` (a path, or an abstract socket when it starts with ``@``); see
sd_notify(3).  It is a dozen lines, so no library: the PyPI ``sdnotify`` package is
unmaintained, and ``systemd-python`` needs libsystemd's headers and a compiler.

Outside systemd ``$NOTIFY_SOCKET`` is unset and every call is a no-op returning False.
A failed send is logged as a warning and never raised: a service must not die because
its supervisor's socket went away.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

__all__ = ["notify", "ready", "reloading", "status", "stopping", "watchdog",
           "watchdog_interval"]

log = structlog.get_logger("ingest.sdnotify")


def notify(message: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send ``message`` to ``$NOTIFY_SOCKET``; True when sent, False when unset or failed."""
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace: a leading NUL byte
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        log.warning("NOTIFY_SOCKET not supported", socket=address)  # e.g. vsock:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
    except OSError as exc:
        log.warning("sd_notify failed", socket=environ["NOTIFY_SOCKET"], error=str(exc))
        return False
    return True


def ready(status: str = "", environ: Mapping[str, str] = os.environ) -> bool:
    """Start-up (or a reload) is complete; ``status`` is shown by ``systemctl status``."""
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""), environ)


def stopping(environ: Mapping[str, str] = os.environ) -> bool:
    """Shutdown has begun."""
    return notify("STOPPING=1", environ)


def status(text: str, environ: Mapping[str, str] = os.environ) -> bool:
    """A one-line status for ``systemctl status``."""
    return notify(f"STATUS={text}", environ)


def reloading(environ: Mapping[str, str] = os.environ) -> bool:
    """A reload has begun; send :func:`ready` when it is done (systemd ≥ 253)."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}", environ)


def watchdog(environ: Mapping[str, str] = os.environ) -> bool:
    """Keep-alive for ``WatchdogSec=``."""
    return notify("WATCHDOG=1", environ)


def watchdog_interval(environ: Mapping[str, str] = os.environ) -> float | None:
    """Seconds between :func:`watchdog` calls (half of ``WatchdogSec=``); None when off."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000
