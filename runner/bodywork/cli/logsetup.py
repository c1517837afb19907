"""structlog set-up, done once per process by `bodywork.cli.main`, never at import time.

Events are snake_case names with fields (`stage_finished stage=train result=succeeded`),
never f-strings, and never carry secret values. `--log-format auto` (the default) writes
JSON, one object per line with `event`, `level` and an ISO `timestamp`, when stderr is not
a terminal (a pod's log, a pipe, a file), and the console format, coloured, when it is.
`console` and `json` force one or the other.

structlog is imported by `configure_logging`, not by this module: importing it costs a command
40-80 ms (it pulls in asyncio). `bodywork.cli.settings` hands it to `logs.logger`, which runs
it before the first event written at the command's level: a command that writes no event
(validate, render at the default level) never loads structlog.
"""

from __future__ import annotations

import sys
from typing import TextIO

LOG_FORMATS = ("auto", "console", "json")


def is_terminal(stream: TextIO) -> bool:
    """Is `stream` a terminal? A closed or fake stream (no usable isatty) is not."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def wants_json(log_format: str, stream: TextIO | None = None) -> bool:
    """Whether `log_format` means JSON on `stream` (default stderr): `auto` is JSON unless
    the stream is a terminal."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    if log_format == "auto":
        return not is_terminal(stream or sys.stderr)
    return log_format == "json"


def configure_logging(
    level: str = "info", json: bool = False, stream: TextIO | None = None
) -> None:
    import logging

    import structlog

    out = stream or sys.stderr
    processors: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso" if json else "%H:%M:%S", utc=json),
    ]
    if json:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=is_terminal(out)))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
