"""`bodywork cleanup --local`: what local runs leave under BODYWORK_HOME, oldest first.

What may go, each with its size and when it was last used (and what keeps it):

- `runs/<run id>/`, the checkouts and work folders of a run that ended without closing
  (SIGKILL, a power cut); last used: its newest file. Kept while its run holds the
  project's lock (`locallock`), or a process's command line names it.
- `venvs/<stage>-<key>/` and its `.lock`; last used: the newer of the venv and its lock file
  (every stage opens the lock, building or reusing). Kept while a process runs from it
  (command line or VIRTUAL_ENV), or its lock is held (being built).
- `commits/<sha>-<hash>/` and its `.lock`, the bootstrappers' commit cache (which also keeps
  only its newest entries itself); last used: its newest file. Kept while its lock is held.
- `uv-cache/` (BODYWORK_HOME's own, not a UV_CACHE_DIR): kept while any local run is live.
- `locks/<project>.lock` (and a venv's lock whose venv is gone): kept while held.

Nothing used in the last RECENT_SECONDS goes either: that covers a stage between finding its
venv ready and starting its module. The rule: every item not in use and last used before
`older_than` goes; then, while what is left totals more than `max_size`, the oldest of it
goes too. `projects/` (the artifacts: models and data) is never touched nor counted.
Sizes are the files' apparent sizes (a venv's files hard-linked from the uv cache count in
both). A venv is removed while this process holds its lock, so a stage that wants it waits
and then rebuilds it; a lock file goes only when nothing opened it for RECENT_SECONDS.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from bodywork.engine import locallock
from bodywork.engine.executors.local import COMMITS_DIR
from bodywork_bootstrap.recordclass import field, record

RECENT_SECONDS = 600.0  # used this recently: kept, whatever the bounds say
RUNS, VENVS, UV_CACHE = "runs", "venvs", "uv-cache"

Printer = Callable[[str], None]


@record
class Item:
    kind: str  # "run folder", "venv", "venv lock", "cached commit", "uv cache", "lock file"
    path: Path
    size: int
    last_used: float  # seconds since the epoch
    in_use: str = ""  # why it must stay ("" = it may go)
    companions: tuple[Path, ...] = field(default=())  # removed with it (a venv's .lock)


@record(frozen=True)
class Process:
    pid: int
    argv: tuple[str, ...]
    virtual_env: str


def live_processes() -> list[Process]:
    """This user's processes, with their command lines and VIRTUAL_ENV (others' are hidden)."""
    found = []
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        argv = tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)
        venv = ""
        with contextlib.suppress(OSError):
            for pair in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                if pair.startswith(b"VIRTUAL_ENV="):
                    venv = pair.split(b"=", 1)[1].decode(errors="replace")
        if argv:
            found.append(Process(int(entry), argv, venv))
    return found


def _using(path: Path, processes: Iterable[Process]) -> Process | None:
    """A process whose command line names `path` (or a file under it), or whose
    VIRTUAL_ENV is it."""
    text = str(path)
    below = text.rstrip("/") + "/"
    for process in processes:
        if process.virtual_env.rstrip("/") == text:
            return process
        for arg in process.argv:
            if arg == text or below in arg:
                return process
    return None


def _measure(path: Path) -> tuple[int, float]:
    """(apparent size in bytes, newest modification time) of everything under `path`."""
    try:
        top = path.lstat()
    except OSError:
        return 0, 0.0
    size, newest = top.st_size, top.st_mtime
    if not path.is_dir() or path.is_symlink():
        return size, newest
    for directory, subdirs, files in os.walk(path):
        for name in [*subdirs, *files]:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(directory, name))
                size += info.st_size
                newest = max(newest, info.st_mtime)
    return size, newest


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _lock_busy(path: Path) -> bool:
    return path.exists() and locallock.is_held(path)


def find_items(home: Path, own_uv_cache: bool, processes: list[Process]) -> list[Item]:
    """Everything under `home` cleanup could remove, each marked if it is in use."""
    holders = locallock.live_holders(home)
    live_dirs = {h.run_dir: h for h in holders if h.run_dir}
    items: list[Item] = []
    for folder in _children(home / RUNS):
        size, used = _measure(folder)
        item = Item("run folder", folder, size, used)
        holder = live_dirs.get(str(folder))
        user = _using(folder, processes)
        if holder is not None:
            item.in_use = f"run {holder.run_id} (pid {holder.pid}) is live"
        elif user is not None:
            item.in_use = f"pid {user.pid} works in it"
        items.append(item)
    venvs = home / VENVS
    for folder in _children(venvs):
        if not folder.is_dir():
            continue
        lock = venvs / f"{folder.name}.lock"
        size, used = _measure(folder)
        item = Item("venv", folder, size, max(used, _mtime(lock)), companions=(lock,))
        user = _using(folder, processes)
        if user is not None:
            item.in_use = f"pid {user.pid} runs from it"
        elif _lock_busy(lock):
            item.in_use = "a stage is building it"
        items.append(item)
    for lock in _children(venvs):  # a lock whose venv is gone (never built, or removed)
        if lock.suffix == ".lock" and not (venvs / lock.stem).exists():
            item = Item("venv lock", lock, 0, _mtime(lock))
            item.in_use = "a stage is building its venv" if _lock_busy(lock) else ""
            items.append(item)
    commits = home / COMMITS_DIR  # the bootstrappers' shared commit cache (gitfetch)
    for folder in _children(commits):
        if not folder.is_dir() or folder.name.startswith("."):
            continue  # its own temporary folders: gitfetch's eviction removes those
        lock = commits / f"{folder.name}.lock"
        size, used = _measure(folder)  # a stage touches its entry when it copies it
        item = Item("cached commit", folder, size, used, companions=(lock,))
        item.in_use = "a stage is fetching or copying it" if _lock_busy(lock) else ""
        items.append(item)
    cache = home / UV_CACHE
    if own_uv_cache and cache.is_dir():
        size, used = _measure(cache)
        item = Item("uv cache", cache, size, used)
        if holders:
            item.in_use = f"{len(holders)} local run(s) are live"
        items.append(item)
    for lock in _children(home / locallock.LOCKS):
        if lock.suffix == locallock.SUFFIX:
            item = Item("lock file", lock, 0, _mtime(lock))
            item.in_use = "its run is live" if _lock_busy(lock) else ""
            items.append(item)
    return items


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def choose(
    items: list[Item], older_than: float, max_size: int | None, now: float
) -> tuple[list[Item], list[Item]]:
    """(what goes, oldest first; what stays although the bounds would remove it, in use)."""
    recent = now - RECENT_SECONDS
    candidates = sorted(items, key=lambda i: i.last_used)
    free = [i for i in candidates if not i.in_use and i.last_used < recent]
    going = [i for i in free if i.last_used < now - older_than]
    if max_size is not None:
        left = sum(i.size for i in items) - sum(i.size for i in going)
        for item in free:
            if left <= max_size:
                break
            if item not in going:
                going.append(item)
                left -= item.size
    over_age = [i for i in candidates if i.in_use and i.last_used < now - older_than]
    return sorted(going, key=lambda i: i.last_used), over_age


@contextlib.contextmanager
def _held_if_free(lock: Path, create: bool) -> Iterator[bool]:
    """Whether `lock` could be flocked at once (exclusively), held for the block: False when
    a stage holds it (building or copying) or it cannot be opened."""
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        fd = os.open(lock, flags, 0o644)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _remove(item: Item) -> bool:
    """Remove `item` (False when it turned out to be in use meanwhile)."""
    if item.companions:  # a venv or a cached commit, removed holding its lock
        lock = item.companions[0]
        with _held_if_free(lock, create=True) as free:
            if not free:
                return False
            shutil.rmtree(item.path, ignore_errors=True)
            if item.kind == "venv":
                _unlink_if_untouched(lock, item.last_used)
            else:  # gitfetch's own rule: an entry's lock goes with it, under the lock
                with contextlib.suppress(OSError):
                    lock.unlink()
        return True
    if item.kind in ("venv lock", "lock file"):
        with _held_if_free(item.path, create=False) as free:
            if not free:
                return False
            _unlink_if_untouched(item.path, item.last_used)
        return True
    shutil.rmtree(item.path, ignore_errors=True)
    return True


def _unlink_if_untouched(path: Path, seen: float) -> None:
    """Unlink a lock file nobody opened since it was looked at (opening truncates it)."""
    if _mtime(path) <= max(seen, 0.0):
        with contextlib.suppress(OSError):
            path.unlink()


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds)) if seconds else "never"


def cleanup(
    home: Path,
    older_than_seconds: float,
    max_size: int | None,
    dry_run: bool,
    printer: Printer,
    own_uv_cache: bool = True,
    now: float | None = None,
) -> int:
    """Remove (or with `dry_run` list) what local runs left under `home`; returns how many
    items went (or would go)."""
    moment = time.time() if now is None else now
    items = find_items(home, own_uv_cache, live_processes())
    going, kept = choose(items, older_than_seconds, max_size, moment)
    verb = "would remove" if dry_run else "removed"
    gone = 0
    freed = 0
    for item in going:
        if not dry_run and not _remove(item):
            printer(f"kept {item.kind} {item.path}: it came into use meanwhile")
            continue
        gone += 1
        freed += item.size
        used = _when(item.last_used)
        printer(f"{verb} {item.kind} {item.path} ({_size(item.size)}, last used {used})")
    for item in kept:
        printer(f"kept {item.kind} {item.path}: {item.in_use}")
    if not going:
        printer(f"nothing to clean up in {home}")
    else:
        left = sum(i.size for i in items) - freed
        printer(
            f"{'would free' if dry_run else 'freed'} {_size(freed)} in {gone} item(s); "
            f"{_size(left)} left in runs, venvs and caches ({home}/projects is never touched)"
        )
    return gone
