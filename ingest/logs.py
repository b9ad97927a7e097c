"""structlog set-up: JSON lines in service mode, readable lines on a terminal.

Logs go to standard error; standard output belongs to CLI output and the
``stdout`` channel.

Levels can differ per module (``log.modules``): a logger name prefix such as
``ingest.fetch`` or ``apscheduler`` maps to a level, the longest matching prefix wins
(``ingest.fetch`` matches ``ingest.fetch`` and ``ingest.fetch.client``, not
``ingest.fetcher``), and other loggers use ``log.level``.  This holds for structlog
loggers (``structlog.get_logger("ingest.xxx")``) and for standard-library ones
(APScheduler, aiosqlite, asyncio), whose own default stays ``warning``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from ingest.errors import ConfigError

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}
# structlog method names → levels, for per-module filtering.
_METHOD_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "msg": logging.INFO,
                  "warning": logging.WARNING, "warn": logging.WARNING,
                  "error": logging.ERROR, "exception": logging.ERROR,
                  "critical": logging.CRITICAL, "fatal": logging.CRITICAL}


class _NamedPrintLogger(structlog.PrintLogger):
    """A PrintLogger to the current ``sys.stderr`` that knows its logger's name."""

    def __init__(self, name: str = "") -> None:
        super().__init__(sys.stderr)
        self.name = name


def _stderr_logger(*args: Any) -> _NamedPrintLogger:
    # structlog.get_logger("ingest.fetch") passes the name as the first positional argument.
    return _NamedPrintLogger(args[0] if args and isinstance(args[0], str) else "")


def _add_logger_name(logger: Any, _method: str, event: MutableMapping[str, Any]
                     ) -> MutableMapping[str, Any]:
    name = getattr(logger, "name", "")
    if name:
        event.setdefault("logger", name)
    return event


class _ModuleLevels:
    """A processor dropping events below their logger's level (longest prefix wins)."""

    def __init__(self, default: int, modules: Mapping[str, int]) -> None:
        self._default = default
        self._modules = dict(modules)
        self._cache: dict[str, int] = {}

    def level_of(self, name: str) -> int:
        level = self._cache.get(name)
        if level is None:
            matches = [p for p in self._modules if name == p or name.startswith(p + ".")]
            level = self._modules[max(matches, key=len)] if matches else self._default
            self._cache[name] = level
        return level

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]
                 ) -> MutableMapping[str, Any]:
        if _METHOD_LEVELS.get(method, logging.CRITICAL) < self.level_of(
                getattr(logger, "name", "")):
            raise structlog.DropEvent
        return event


def _level(name: str, where: str) -> int:
    try:
        return _LEVELS[name.lower()]
    except KeyError:
        raise ConfigError(f"{where}: unknown level {name!r}; use one of "
                          f"{', '.join(_LEVELS)}") from None


def configure_logging(level: str = "info", fmt: str = "auto",
                      modules: Mapping[str, str] | None = None) -> None:
    """Configure structlog once per process; ``fmt`` is auto, json or console.

    ``modules`` maps logger name prefixes to levels (see the module docstring).
    """
    default = _level(level, "log.level")
    module_levels = {prefix: _level(name, f"log.modules.{prefix}")
                     for prefix, name in (modules or {}).items()}
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (structlog.processors.JSONRenderer() if use_json
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    # Without per-module levels the bound logger's level does all the filtering.
    by_module: list[Any] = [_ModuleLevels(default, module_levels)] if module_levels else []
    structlog.configure(
        processors=[
            *by_module,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            min([default, *module_levels.values()])),
        # Resolve sys.stderr at each call, so a replaced stream (tests, daemons) is honoured.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    # Libraries that log through the standard library (APScheduler, Apprise, asyncio) are
    # rendered like ingest's own lines, and stay quiet below warnings unless configured.
    handler = _StderrHandler(tuple(module_levels))
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                           structlog.processors.TimeStamper(fmt="iso", utc=True)],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer]))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
        for prefix in old.modules:  # undo the previous configuration's per-module levels
            logging.getLogger(prefix).setLevel(logging.NOTSET)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for prefix, module_level in module_levels.items():
        logging.getLogger(prefix).setLevel(module_level)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to whatever ``sys.stderr`` is at the time of each record.

    ``modules`` names the loggers whose levels this configuration set, to be reset by
    the next one.
    """

    def __init__(self, modules: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.modules = modules

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        return None
