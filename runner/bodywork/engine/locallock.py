"""One local run of a project at a time: an flock on `BODYWORK_HOME/locks/<key>.lock`.

`bodywork run` takes its project's lock (the key of `localproject.ProjectIdentity`) before
any stage starts and holds it until the last of its stages has ended, services included.
A second run of the same project is refused (RunInProgress, exit 6, as the cluster's Lease
refuses a second controller) naming the holder, or waits its turn when asked to.

The lock is the kernel's (`flock`): it is released when every descriptor of it is closed,
however the holder ends, so a SIGKILLed run leaves no stale lock behind. The holder passes
the descriptor to its bootstrappers, so the lock is held until the last stage process of
the run has gone, not merely the `bodywork run` that started them. What the file holds is
advisory: the holder's pid, host, run id, start time, command line and run folder, written
once it holds the lock and read by the refused run (to name it) and by `bodywork cleanup`
(which leaves a live run's folders alone).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bodywork.core.errors import RunInProgress
from bodywork.engine.localproject import ProjectIdentity
from bodywork_bootstrap.recordclass import record

LOCKS = "locks"
SUFFIX = ".lock"
# A lock held by someone whose details are missing or name a dead process is asked again
# this often, this far apart, before the run is refused: the holder is writing them.
UNNAMED_HOLDER_ATTEMPTS = 10
UNNAMED_HOLDER_PAUSE_SECONDS = 0.1


@record(frozen=True)
class Holder:
    """Who holds a project's lock, as its lock file says (each field may be missing)."""

    pid: int | None = None
    host: str = ""
    run_id: str = ""
    started_at: str = ""
    command: str = ""
    project: str = ""
    run_dir: str = ""

    def describe(self) -> str:
        if self.pid is None:
            return "a run that has not written its details yet"
        return (
            f"run {self.run_id or '?'} (pid {self.pid} on {self.host or '?'}, started "
            f"{self.started_at or '?'}, command: {self.command or '?'})"
        )


def _alive(holder: Holder) -> bool:
    """The holder's process still runs (on another host: taken to)."""
    if holder.pid is None:
        return False
    if holder.host and holder.host != socket.gethostname():
        return True
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_path(home: Path, identity: ProjectIdentity) -> Path:
    return home / LOCKS / f"{identity.key}{SUFFIX}"


def read_holder(path: Path) -> Holder:
    try:
        data: Any = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return Holder()
    if not isinstance(data, dict):
        return Holder()
    pid = data.get("pid")
    return Holder(
        pid=pid if isinstance(pid, int) else None,
        **{k: str(data.get(k) or "") for k in
           ("host", "run_id", "started_at", "command", "project", "run_dir")},
    )  # fmt: skip


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _still_there(fd: int, path: Path) -> bool:
    """`fd` is still the file at `path` (not one removed since it was opened)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except OSError:
        return False


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def is_held(path: Path) -> bool:
    """Does a live process hold the lock at `path`? (Takes and drops it when free.)"""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False
    finally:
        os.close(fd)  # closing drops the shared lock taken to look


def live_holders(home: Path) -> list[Holder]:
    """The holders of every project lock under `home` that a live run holds now."""
    try:
        paths = sorted((home / LOCKS).glob(f"*{SUFFIX}"))
    except OSError:
        return []
    return [read_holder(path) for path in paths if is_held(path)]


class ProjectLock:
    """The run lock of one project. `acquire` once, `release` when every stage has ended."""

    def __init__(self, home: Path, identity: ProjectIdentity, run_id: str, run_dir: Path):
        self.path = lock_path(home, identity)
        self.identity = identity
        self.run_id = run_id
        self.run_dir = run_dir
        self.fd: int | None = None

    def acquire(self, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> None:
        """Take the lock; if another run holds it, RunInProgress naming the holder, or with
        `wait`, tell `on_wait` whom it waits for and block until it is free (a signal
        handler that raises, such as Ctrl-C's, ends the wait)."""
        told = False
        while True:
            fd = _open(self.path)
            try:
                if not self._try_briefly(fd):
                    holder = read_holder(self.path)
                    if not wait:
                        raise RunInProgress(self._refusal(holder))
                    if on_wait is not None and not told:
                        on_wait(f"waiting for {holder.describe()} to end: it holds {self._what()}")
                        told = True
                    fcntl.flock(fd, fcntl.LOCK_EX)
                current = _still_there(fd, self.path)
                if current:
                    self._write_holder(fd)
            except BaseException:
                os.close(fd)
                raise
            if current:
                self.fd = fd
                return
            os.close(fd)  # `bodywork cleanup` removed the file meanwhile: lock the new one

    def _try_briefly(self, fd: int) -> bool:
        """Take the lock if it is free. While the lock is held by someone who has written no
        details (a run that is just starting, or `bodywork cleanup` looking for a moment),
        try again for up to a second before calling it taken."""
        for _attempt in range(UNNAMED_HOLDER_ATTEMPTS):
            if _try_lock(fd):
                return True
            holder = read_holder(self.path)
            if holder.pid is not None and _alive(holder):
                return False
            time.sleep(UNNAMED_HOLDER_PAUSE_SECONDS)
        return _try_lock(fd)

    def inheritable_fds(self) -> tuple[int, ...]:
        """The descriptor to hand to each stage's bootstrapper (Popen pass_fds), so the lock
        outlives this process until the run's last stage process has gone."""
        return () if self.fd is None else (self.fd,)

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no stale details for the next reader
        os.close(fd)  # the lock goes with the last descriptor (a stage may still hold one)

    def _what(self) -> str:
        return f"{self.identity.describe()} ({self.path})"

    def _refusal(self, holder: Holder) -> str:
        stop = f"stop it (Ctrl-C where it runs, or kill {holder.pid}), " if holder.pid else ""
        return (
            f"another `bodywork run` holds {self._what()}: {holder.describe()}; wait for it "
            f"to end, {stop}or pass --wait-for-lock to start when it ends"
        )

    def _write_holder(self, fd: int) -> None:
        details = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "run_id": self.run_id,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join(_shown_argv()),
            "project": self.identity.describe(),
            "run_dir": str(self.run_dir),
        }
        data = (json.dumps(details) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)


def _shown_argv() -> Iterator[str]:
    """This process's command line as a user typed it (`bodywork run .`), bounded."""
    words = ["bodywork", *sys.argv[1:]] if sys.argv else []
    for word in words[:20]:
        yield word if len(word) <= 200 else word[:200] + "…"
