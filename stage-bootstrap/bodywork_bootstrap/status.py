"""The status-dir protocol: how a stage's bootstrapper tells `artifacts push`, in another
container of the same pod, that it is alive and how it ended.

    DIR/heartbeat   touched every HEARTBEAT_SECONDS from the bootstrapper's start to its end
    DIR/exit        the bootstrapper's exit code as decimal text ("0\\n"), written once, at
                    the end, atomically (a temporary file renamed into place): whoever
                    sees the file sees the whole code

The bootstrapper (`bodywork stage --status-dir DIR`) writes `exit` on every way it ends
that leaves it a moment: a return, an exception, argparse's exit, SIGTERM, SIGINT or
SIGHUP. Only SIGKILL (and the OOM killer) leave no `exit`: then the heartbeat goes stale,
and `artifacts push` says the stage container ended without a result. Stdlib only, and
small: every stage imports it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType

HEARTBEAT = "heartbeat"
EXIT = "exit"
HEARTBEAT_SECONDS = 2.0
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # SIGINT: KeyboardInterrupt, then `exit`


def write_exit(directory: Path, code: int) -> None:
    """DIR/exit := code, atomically (write a temporary file, rename it over)."""
    temporary = directory / f".{EXIT}.{os.getpid()}.tmp"
    temporary.write_text(f"{code}\n")
    os.replace(temporary, directory / EXIT)


def read_exit(directory: Path) -> int | None:
    """The code in DIR/exit; None while there is none. ValueError if it is not a number."""
    try:
        text = (directory / EXIT).read_text()
    except FileNotFoundError:
        return None
    return int(text.strip())


def heartbeat_age(directory: Path, now: float | None = None) -> float | None:
    """Seconds since DIR/heartbeat was last touched; None if it never was."""
    try:
        touched = (directory / HEARTBEAT).stat().st_mtime
    except FileNotFoundError:
        return None
    return max(0.0, (time.time() if now is None else now) - touched)


class Reporter:
    """The bootstrapper's side: a daemon thread touching DIR/heartbeat, and `finish(code)`
    writing DIR/exit exactly once (also from a signal handler)."""

    def __init__(self, directory: Path, interval: float = HEARTBEAT_SECONDS):
        self.directory = directory
        self.interval = interval
        self._done = threading.Event()
        self._finished = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with contextlib.suppress(OSError):  # unusable: push then says the stage never reported
            self.directory.mkdir(parents=True, exist_ok=True)
        self._touch()
        threading.Thread(target=self._beat, name="bodywork-heartbeat", daemon=True).start()
        for signum in HANDLED_SIGNALS:
            if signal.getsignal(signum) in (signal.SIG_DFL, None):
                signal.signal(signum, self._on_signal)

    def finish(self, code: int) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
        self._done.set()
        with contextlib.suppress(OSError):  # a full or vanished dir: the heartbeat says it
            write_exit(self.directory, code)

    def _touch(self) -> None:
        path = self.directory / HEARTBEAT
        with contextlib.suppress(OSError):
            path.touch()  # creates it, or sets its mtime to now

    def _beat(self) -> None:
        while not self._done.wait(self.interval):
            self._touch()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Record 128+N, then end by the signal itself, as without this handler."""
        self.finish(128 + signum)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
