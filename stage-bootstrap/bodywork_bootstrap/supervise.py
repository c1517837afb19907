"""Run and watch processes: the stage's module (signals forwarded, time limits, readiness of a
service's port) and the bounded uv installs, and stop a process together with what it spawned.

A stopped process takes its descendants with it: the stage may have started workers, and uv
starts build backends. They are found through /proc (Linux, which every stage pod is); where
there is no /proc only the process itself is signalled. The stage's module stays in the
bootstrapper's process group, as before, so whoever started the bootstrapper (the local
executor's process-group kill, Kubernetes) still reaches every process of the stage.

Nothing the stage starts outlives it. While the module runs the bootstrapper is a child
subreaper (Linux prctl), so a daemon the module double-forks into a new session is
re-parented to the bootstrapper instead of to init: it stays among the bootstrapper's
descendants, and whatever the module leaves running when it exits is ended (`run_child`).
Started by the local executor, the bootstrapper also watches a pipe whose other end only its
parent holds (`watch_parent`): when the parent dies, even by SIGKILL, the pipe reads EOF and
the bootstrapper ends everything below it, then itself.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bodywork_bootstrap.recordclass import record

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
STOP_GRACE_SECONDS = 10.0  # SIGTERM first, as Kubernetes does; SIGKILL after this
# What the module left running when it exited gets this long after SIGTERM (a container's
# other processes get none when its main process ends: this is kinder, and still bounded).
LEFTOVER_GRACE_SECONDS = 2.0
# The bootstrapper's parent (`bodywork run`) died: SIGTERM everything, SIGKILL after this.
ORPHANED_GRACE_SECONDS = 5.0
EXIT_ORPHANED = 128 + signal.SIGHUP  # nobody reads it: the parent is gone
_PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
PORT_POLL_SECONDS = 0.1
_CONNECT_TIMEOUT_SECONDS = 0.2

Process = tuple[int, str]  # (pid, start time from /proc): a pid cannot be confused if reused


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process, or None if gone (zombies count as gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces or ')'
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), fields[19]


def descendants(pid: int) -> set[Process]:
    """Every live process below `pid` (children, grandchildren, ...); empty without /proc."""
    parents: dict[int, list[Process]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for entry in entries:
        if entry.isdigit():
            found = _stat(int(entry))
            if found is not None:
                parents.setdefault(found[0], []).append((int(entry), found[1]))
    tree: set[Process] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in tree:
                tree.add(child)
                todo.append(child[0])
    return tree


def _same(process: Process) -> bool:
    """The process still runs, and is the same one (its pid was not reused)."""
    found = _stat(process[0])
    return found is not None and found[1] == process[1]


def signal_all(processes: set[Process], signum: int) -> None:
    """Send `signum` to each of `processes` that still runs (a reused pid is left alone)."""
    for process in processes:
        if _same(process):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(process[0], signum)


def kill_tree(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """SIGKILL `process` and everything it started, at once, and reap it."""
    tree = descendants(process.pid)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    signal_all(tree, signal.SIGKILL)
    process.wait()


def wait_exit(
    process: subprocess.Popen[str] | subprocess.Popen[bytes], timeout: float | None
) -> int | None:
    """Wait up to `timeout` seconds (None: for ever) for `process` to exit, without polling:
    the exit status, or None if it still runs. Popen.wait(timeout=...) sleeps and re-checks
    (up to 50 ms late); this blocks on a pidfd (Linux >= 5.3) that is readable the moment
    the process exits, or else on a thread blocked in wait(). A signal handler still runs
    while it waits (it returns early only when the process exits)."""
    if process.returncode is not None or timeout is None:
        return process.wait()
    if timeout <= 0:
        return process.poll()
    try:
        fd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # no pidfd here: a thread blocks in wait() instead
        return _wait_on_thread(process, timeout)
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            if not selector.select(timeout):  # retried after signals for what is left
                return None
    finally:
        os.close(fd)
    return process.wait()


_exit_events: weakref.WeakKeyDictionary[Any, threading.Event] = weakref.WeakKeyDictionary()
_exit_events_lock = threading.Lock()


def _wait_on_thread(
    process: subprocess.Popen[str] | subprocess.Popen[bytes], timeout: float
) -> int | None:
    """One thread per process blocks in its wait(); callers wait on the event it sets."""
    with _exit_events_lock:
        done = _exit_events.get(process)
        if done is None:
            done = _exit_events[process] = threading.Event()

            def wait() -> None:
                with contextlib.suppress(Exception):
                    process.wait()
                done.set()

            threading.Thread(target=wait, name=f"wait-{process.pid}", daemon=True).start()
    if not done.wait(timeout):
        return None
    return process.wait()


def _alive(processes: set[Process]) -> bool:
    return any(_same(process) for process in processes)


def stop_tree(process: subprocess.Popen[bytes], grace_seconds: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM `process` and its descendants at once, as a process-group signal would; give
    them `grace_seconds` to exit, then SIGKILL whatever is left, and reap `process`."""
    tree = descendants(process.pid)
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    signal_all(tree, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if process.poll() is None:
            tree |= descendants(process.pid)  # started since: they go too
        elif not _alive(tree):
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    signal_all(tree, signal.SIGKILL)
    process.wait()


def become_subreaper() -> bool:
    """Make this process a child subreaper (Linux >= 3.4): orphaned descendants, such as a
    daemon that double-forked and called setsid, are re-parented to it instead of to init,
    so they stay among its descendants. False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes  # here: a Python built without it (a user's image) still bootstraps

        libc = ctypes.CDLL(None, use_errno=True)  # this process, libc included
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (ImportError, OSError, AttributeError):
        return False


def _reap(processes: set[Process]) -> None:
    """Collect those of `processes` that were re-parented to this process and have ended.
    Only these pids: a wait for any child would take the exit status of a Popen's."""
    for pid, _ in processes:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def end_processes(
    find: Callable[[], set[Process]],
    grace_seconds: float,
    exclude: frozenset[Process] = frozenset(),
) -> set[Process]:
    """SIGTERM every process `find()` returns (bar `exclude`), and those it finds later
    while they exit; SIGKILL whatever is left after `grace_seconds`. Returns them all."""
    ended: set[Process] = set()
    deadline = time.monotonic() + grace_seconds
    while True:
        new = find() - exclude - ended
        signal_all(new, signal.SIGTERM)
        ended |= new
        if not _alive(ended) or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    signal_all(ended | (find() - exclude), signal.SIGKILL)
    ended |= find() - exclude
    deadline = time.monotonic() + 1.0
    while _alive(ended) and time.monotonic() < deadline:
        time.sleep(0.02)
    _reap(ended)
    return ended


def watch_parent(fd: int, grace_seconds: float = ORPHANED_GRACE_SECONDS) -> threading.Thread:
    """End this process and everything below it once its parent has died.

    `fd` is the read end of a pipe whose write end only the parent holds (the local executor
    makes one per bootstrapper; it is never written). When the parent ends, however it
    ends, the kernel closes the write end and a read returns EOF: every descendant gets
    SIGTERM, SIGKILL after `grace_seconds`, and this process exits EXIT_ORPHANED."""
    os.set_inheritable(fd, False)  # git, uv and the module never hold it

    def orphaned() -> None:
        end_processes(lambda: descendants(os.getpid()), grace_seconds)
        os._exit(EXIT_ORPHANED)

    def watch() -> None:
        while True:
            try:
                if not os.read(fd, 512):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        # A non-daemon thread: if the main thread is exiting meanwhile, the interpreter
        # waits for the clean-up to finish instead of cutting it short.
        try:
            threading.Thread(target=orphaned, name="bodywork-orphaned").start()
        except RuntimeError:  # the interpreter is already shutting down
            orphaned()

    watcher = threading.Thread(target=watch, name="bodywork-parent-watch", daemon=True)
    watcher.start()
    return watcher


def listening(port: int) -> bool:
    """Something accepts TCP connections on 127.0.0.1:port."""
    import socket  # only a service stage asks: a git fetch imports this module too

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=_CONNECT_TIMEOUT_SECONDS):
            return True
    except OSError:
        return False


@record(frozen=True)
class Limits:
    """What the module's run is held to, each counted from the moment its process starts."""

    max_run_seconds: float | None = None  # batch: MAX_COMPLETION_TIME_SECONDS
    port: int | None = None  # service: announce when this port accepts connections
    max_startup_seconds: float | None = None  # service: MAX_STARTUP_TIME_SECONDS
    grace_seconds: float = STOP_GRACE_SECONDS
    leftover_grace_seconds: float = LEFTOVER_GRACE_SECONDS


NO_LIMITS = Limits()  # frozen: one shared default is safe

RAN = "ran"  # the module exited on its own (or on a forwarded signal)
RUN_TIMED_OUT = "run timed out"
NOT_READY = "not ready"


@record(frozen=True)
class Outcome:
    code: int  # the module's exit status; killed by signal N → 128+N, as shells do
    how: str  # RAN, RUN_TIMED_OUT or NOT_READY
    started_at: float = 0.0  # wall-clock times: the module's process started,
    exited_at: float = 0.0  # and was seen to end


def run_child(
    command: list[str],
    cwd: Path,
    env: dict[str, str],
    limits: Limits = NO_LIMITS,
    say: Callable[[str], None] = lambda message: None,
    on_ready: Callable[[float], None] = lambda at: None,
) -> Outcome:
    """Run the stage's module, forwarding termination signals, within `limits`; `on_ready`
    gets the wall-clock time a service was seen listening on its port.

    When the module has exited, whatever it left running (its children, and daemons that
    left its session: this process is their subreaper) is ended too, as in a container
    whose main process exits. Run in the bootstrapper, whose only child is the module."""
    received: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    # Handlers go in before the child starts, so a signal in between is not lost.
    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    become_subreaper()
    others = frozenset(descendants(os.getpid()))  # not the module's: left alone
    try:
        started_at = time.time()
        child = subprocess.Popen(command, cwd=cwd, env=env)
        started = time.monotonic()
        for signum in received:  # arrived while the child was being started
            child.send_signal(signum)
        how = _watch(child, started, limits, received, say, on_ready)
        code = child.wait()
        exited_at = time.time()
    finally:
        if child is not None:
            if child.poll() is None:  # an exception on the way: the module goes too
                kill_tree(child)
            _end_leftovers(others, limits.leftover_grace_seconds, say)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return Outcome(128 - code if code < 0 else code, how, started_at, exited_at)


def _end_leftovers(others: frozenset[Process], grace: float, say: Callable[[str], None]) -> None:
    """End what the module left running when it exited (its descendants and the daemons
    re-parented to this subreaper), SIGKILL after `grace`, and collect them."""
    if not (descendants(os.getpid()) - others):
        return
    ended = end_processes(lambda: descendants(os.getpid()), grace, others)
    pids = ", ".join(str(pid) for pid, _ in sorted(ended))
    say(f"ended {len(ended)} process(es) the stage's code left running (pid {pids})")


def _watch(
    child: subprocess.Popen[bytes],
    started: float,
    limits: Limits,
    received: list[int],
    say: Callable[[str], None],
    on_ready: Callable[[float], None] = lambda at: None,
) -> str:
    """Wait for the module, stopping it when a limit is passed; return how it ended."""
    waiting_for_port = limits.port is not None
    while True:
        # Once a stop signal was passed on, the module is ending at someone's request: its
        # own exit status is the answer, not a limit it may pass while shutting down.
        if received or (not waiting_for_port and limits.max_run_seconds is None):
            child.wait()
            return RAN
        elapsed = time.monotonic() - started
        timeout = PORT_POLL_SECONDS if waiting_for_port else None
        if limits.max_run_seconds is not None:
            left = max(0.0, limits.max_run_seconds - elapsed)
            timeout = left if timeout is None else min(timeout, left)
        if wait_exit(child, timeout) is not None:
            return RAN
        if received:
            continue
        elapsed = time.monotonic() - started
        if waiting_for_port:
            assert limits.port is not None
            if listening(limits.port):
                waiting_for_port = False
                say(f"listening on port {limits.port} after {elapsed:.2f}s")
                on_ready(time.time())
            elif limits.max_startup_seconds is not None and elapsed >= limits.max_startup_seconds:
                stop_tree(child, limits.grace_seconds)
                return NOT_READY
        if limits.max_run_seconds is not None and elapsed >= limits.max_run_seconds:
            stop_tree(child, limits.grace_seconds)
            return RUN_TIMED_OUT
