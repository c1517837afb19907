"""Loggers that import structlog only when an event is actually written.

Importing structlog costs a command 30-80 ms (its stdlib module pulls in asyncio and ssl),
more than the whole of `bodywork render` on a small project. Modules take a logger at import
time (`log = get_logger("bodywork.engine.workflow")`), so that import would be paid by every
command, including those that write no event at the level they run at.

The CLI announces its level and set-up with `configure_on_first_use`: an event below the
level is dropped here, with no import; the first one at or above it imports structlog, runs
the set-up, then writes. With nothing announced (tests, library use), every event goes
straight to structlog as it is configured, so `structlog.testing.capture_logs` sees them.

`bound(**fields)` adds fields to every event of the current context (a run's step number),
like `structlog.contextvars`, without needing structlog to be loaded.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from typing import Any

# The stdlib's numbers for them (logging.DEBUG...), without importing logging (3 ms) for four ints.
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("bodywork_log")


class _FirstUse:
    """What the CLI announced: events below `threshold` are dropped; `setup` runs once,
    before the first event written."""

    threshold: int | None = None
    setup: Callable[[], None] | None = None
    # Cleared only once the set-up has run: a thread that sees None may write at once.
    lock = threading.RLock()


def configure_on_first_use(level: str, setup: Callable[[], None]) -> None:
    """Drop events below `level` (debug, info, warning, error) without importing structlog;
    run `setup` (which configures structlog) before the first event at or above it."""
    _FirstUse.threshold = LEVELS[level.lower()]
    _FirstUse.setup = setup


def forget_configuration() -> None:
    """Undo `configure_on_first_use` (the CLI's `main()` returning, in-process): events go
    straight to structlog again, and a set-up not yet run never runs."""
    _FirstUse.threshold = None
    _FirstUse.setup = None


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add `fields` to every event written in this context (and the contexts it starts)."""
    token = _context.set({**_context.get({}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class Logger:
    """A named logger; each call is forwarded to `structlog.get_logger(name)` as configured
    at that moment, fields bound with `bound` first."""

    def __init__(self, name: str) -> None:
        self.name = name

    def debug(self, event: str, **fields: Any) -> None:
        self._write(DEBUG, "debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._write(INFO, "info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._write(WARNING, "warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._write(ERROR, "error", event, fields)

    def _write(self, level: int, method: str, event: str, fields: dict[str, Any]) -> None:
        threshold = _FirstUse.threshold
        if threshold is not None and level < threshold:
            return
        import structlog

        if _FirstUse.setup is not None:
            with _FirstUse.lock:
                if _FirstUse.setup is not None:
                    _FirstUse.setup()
                    _FirstUse.setup = None
        context = _context.get({})
        getattr(structlog.get_logger(self.name), method)(event, **{**context, **fields})


def get_logger(name: str) -> Logger:
    return Logger(name)
