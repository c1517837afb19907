"""Import a slow third-party package on a thread while the command waits on git.

`render` needs PyYAML (~15 ms to import) and `run` structlog (~20 ms) only once the commit
is pinned, and pinning it is mostly waiting on git processes, when this interpreter is idle.
Importing them on a thread during that wait takes them off the command's critical path.

Only leaf packages that never import Bodywork are preloaded, so the two threads can never
wait on each other's module locks. A failing import is ignored here: the command's own
import raises it again, where its error is reported.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable

_started: list[threading.Thread] = []


def yaml() -> None:
    """Start importing PyYAML, for `render`'s manifests."""
    _in_background("yaml", _import_yaml)


def structlog() -> None:
    """Start importing structlog, for `run`'s log lines."""
    _in_background("structlog", _import_structlog)


def _import_yaml() -> None:
    import yaml  # noqa: F401


def _import_structlog() -> None:
    import structlog  # noqa: F401


def _in_background(module: str, load: Callable[[], None]) -> None:
    if module in sys.modules:
        return
    thread = threading.Thread(target=_quietly, args=(load,), name="bodywork-preload", daemon=True)
    thread.start()
    _started.append(thread)


def _quietly(load: Callable[[], None]) -> None:
    with contextlib.suppress(Exception):
        load()


def finish() -> None:
    """Wait for the imports started: a command that ends early (an error before the commit
    is pinned) must not leave the interpreter to shut down with an import half-done."""
    while _started:
        _started.pop().join()
