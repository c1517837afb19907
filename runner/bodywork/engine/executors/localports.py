"""Whose is the listener on a port? Readiness of a local service, attributed to its stage.

A local service is ready when its PORT accepts connections, but anything on this machine
may be listening there: a server left over from yesterday, or one that bound the port while
the stage was installing. So once the port answers, the listening socket is looked up
(Linux: /proc/net/tcp and tcp6 give the socket's inode, /proc/<pid>/fd the processes that
hold it) and must belong to the stage: its bootstrapper or a process below it (the
bootstrapper is the subreaper of what its module starts, so daemons stay below it too).
Another process holding it is named (pid and command line) so the failure says what to
stop. Where /proc cannot tell (no /proc/net/tcp, another network namespace), the port
answering is taken as the stage's, as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from bodywork_bootstrap import supervise
from bodywork_bootstrap.recordclass import record

_TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
_LISTEN = "0A"  # TCP_LISTEN in the tables' `st` column
MAX_COMMAND_CHARS = 200  # of another process's command line in a message


@record(frozen=True)
class Listener:
    """A process holding a listening socket on the port: pid and command line ("" if
    hidden, as another user's are)."""

    pid: int
    command: str

    def describe(self) -> str:
        return f"pid {self.pid} ({self.command or 'its command line is hidden'})"


def parse_listening_inodes(table: str, port: int) -> set[int]:
    """The inodes of the sockets listening on `port` in one /proc/net/tcp{,6} table."""
    found: set[int] = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != _LISTEN:
            continue
        _, _, local_port = fields[1].rpartition(":")
        try:
            if int(local_port, 16) == port and int(fields[9]) != 0:
                found.add(int(fields[9]))
        except ValueError:
            continue
    return found


def listening_inodes(port: int) -> set[int] | None:
    """Inodes of the sockets listening on `port` here; None when /proc cannot say."""
    found: set[int] = set()
    readable = False
    for table in _TCP_TABLES:
        try:
            text = Path(table).read_text()
        except OSError:
            continue
        readable = True
        found |= parse_listening_inodes(text, port)
    return found if readable else None


def _socket_inodes(pid: int) -> set[int]:
    """The socket inodes among `pid`'s open descriptors (none if it may not be read)."""
    inodes: set[int] = set()
    folder = f"/proc/{pid}/fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"{folder}/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    words = raw.rstrip(b"\0").decode(errors="replace").split("\0")
    command = " ".join(" ".join(word.split()) for word in words)  # no newline reaches a message
    if len(command) > MAX_COMMAND_CHARS:
        command = command[:MAX_COMMAND_CHARS] + "…"
    return command


def holders(inodes: set[int], pids: Iterable[int]) -> list[Listener]:
    """Those of `pids` that hold one of `inodes`."""
    return [
        Listener(pid, _command(pid)) for pid in sorted(set(pids)) if _socket_inodes(pid) & inodes
    ]


def _all_pids() -> list[int]:
    try:
        return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return []


HIDDEN = "a process this user may not inspect (another user's, or another container's)"


def foreign_listener(port: int, stage_pid: int) -> str | None:
    """Who listens on `port` instead of the stage whose bootstrapper is `stage_pid`, for a
    message; None when the stage holds the socket (or /proc cannot tell: then the port
    answering is taken to be the stage's)."""
    inodes = listening_inodes(port)
    if not inodes:
        return None  # no /proc tables; or the listener went away between the two looks
    stage = {stage_pid, *(pid for pid, _ in supervise.descendants(stage_pid))}
    if holders(inodes, stage):
        return None
    others = holders(inodes, (pid for pid in _all_pids() if pid not in stage))
    return others[0].describe() if others else HIDDEN


def describe_owner(port: int) -> str:
    """Who listens on `port` right now, for a message ("" when /proc cannot say)."""
    inodes = listening_inodes(port)
    if not inodes:
        return ""
    found = holders(inodes, _all_pids())
    return f" (by {found[0].describe()})" if found else ""


def taken(port: int, other: str) -> str:
    """The reason a service fails when another process answers on its port."""
    return (
        f"port {port} accepts connections, but the listener is {other}, not a process of "
        f"this stage: stop it, or change the stage's PORT"
    )
