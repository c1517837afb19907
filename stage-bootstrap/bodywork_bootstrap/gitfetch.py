"""Fetch one commit of a repository into an empty directory, as shallowly as the server allows.

Uses the `git` executable directly (no GitPython) to keep stage start-up light. Credentials
embedded in URLs are redacted from every message.

Private repositories (see `git_env`): SSH with a key and a known_hosts file, from a directory
(a mounted Kubernetes Secret: BODYWORK_GIT_SSH_DIR) or two files (`bodywork run --ssh-key
--known-hosts`), always with strict host-key checking; or HTTPS with a token in
BODYWORK_GIT_TOKEN, sent as an HTTP header through git's environment config, never in a URL.
Key material and tokens are never written to a message.

Every git call that talks to a server (`run_git` with a `url`) is held to a stall bound: a
server that accepts the connection and then sends nothing is given BODYWORK_GIT_STALL_SECONDS
(default 120 s) without a byte of git's output or progress, then git and everything it
started (git-remote-https, ssh) are killed and GitStalled names the server. Fetches ask for
progress so that a slow but moving transfer never looks stalled; HTTP also gets curl's own
low-speed limit and SSH a ConnectTimeout.

The commit cache (`checkout_commit`): a run's stages, and a service's replicas when they
restart, run one commit, so it is fetched once into a cache folder beside the venvs (keyed by
the full SHA and the repository) and each stage gets its own copy of that tree, verified
first (HEAD is the SHA, `git status` is clean). A file lock per commit makes concurrent
stages fetch it once; a new entry appears by an atomic rename, so a half-fetched one is never
seen. The oldest entries beyond CACHE_KEEP_COMMITS are removed when a new one is added.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import math
import os
import re
import selectors
import shlex
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from bodywork_bootstrap import envnames, supervise
from bodywork_bootstrap.redaction import redact

FETCH_ATTEMPTS = 3  # transient network errors are retried; anything else fails at once
RETRY_DELAY_SECONDS = 1.0
_TRANSIENT = re.compile(
    r"could not resolve host|connection (refused|reset|timed out)|timed out|early eof|"
    r"the remote end hung up unexpectedly|temporary failure|service unavailable|http 5\d\d",
    re.IGNORECASE,
)
# Servers speaking git protocol v0 (and some hosts) refuse to serve a commit by SHA unless it
# is a branch tip; then we fetch the branches and check the commit out from those.
_NO_SHA_FETCH = re.compile(
    r"not our ref|unadvertised object|couldn't find remote ref|does not support shallow",
    re.IGNORECASE,
)
# Where credentials come from. The values of these variables are paths (or, for the token,
# the secret itself, which only ever travels in the environment).
SSH_DIR_ENV = envnames.GIT_SSH_DIR  # holds SSH_KEY_FILE and KNOWN_HOSTS_FILE
SSH_KEY_ENV = envnames.GIT_SSH_KEY  # a key file, overriding the directory's
KNOWN_HOSTS_ENV = envnames.GIT_KNOWN_HOSTS  # a known_hosts file, overriding the directory's
TOKEN_ENV = envnames.GIT_TOKEN
SSH_KEY_FILE = "ssh-privatekey"  # the keys of a kubernetes.io/ssh-auth Secret
KNOWN_HOSTS_FILE = "known_hosts"

_UNKNOWN_HOST = re.compile(r"no \S+ host key is known for (\S+)", re.IGNORECASE)
_CHANGED_HOST = re.compile(r"host key for (\S+) has changed", re.IGNORECASE)
_HOST_KEY_FAILED = re.compile(r"host key verification failed", re.IGNORECASE)
_KEY_REFUSED = re.compile(r"permission denied \(publickey", re.IGNORECASE)
_HTTP_AUTH = re.compile(
    r"authentication failed for|could not read (username|password)|"
    r"requested url returned error: (401|403)",
    re.IGNORECASE,
)


# A server that sends nothing this long (no byte of git's output or progress) is stalled.
STALL_SECONDS_ENV = envnames.GIT_STALL_SECONDS
DEFAULT_STALL_SECONDS = 120.0
_DRAIN_SECONDS = 2.0  # git exited: how long to keep reading what its children still hold
_PROBE_SECONDS = 3.0
_DEFAULT_PORTS = {"git": 9418, "ssh": 22, "git+ssh": 22, "http": 80, "https": 443}
_SCP_LIKE = re.compile(r"^(?:[^@/:]+@)?(\[[^]]+\]|[^/:]+):(?!//)")
# curl's low-speed limit (http.lowSpeedLimit/Time) ended the transfer.
_HTTP_STALLED = re.compile(r"operation too slow", re.IGNORECASE)
# git's progress lines ("Receiving objects:  40% (2/5)", "remote: Total 5 (delta 0) ...").
_PROGRESS = re.compile(
    r"^(remote: )?((Enumerating|Counting|Compressing|Receiving|Resolving|Unpacking|Checking|"
    r"Updating|Finding|Writing|Filtering)\b[\w ]*:|Total \d+ )"
)


class FetchError(Exception):
    pass


class FetchTimedOut(FetchError):
    """The fetch did not finish by its deadline (git was stopped)."""


class GitStalled(FetchError):
    """The Git server sent nothing for the stall bound (git and its children were killed)."""


def stall_seconds(env: Mapping[str, str] | None = None) -> float:
    """The stall bound: BODYWORK_GIT_STALL_SECONDS in `env` (default os.environ), if a
    positive number, else DEFAULT_STALL_SECONDS."""
    text = (os.environ if env is None else env).get(STALL_SECONDS_ENV, "")
    try:
        value = float(text)
    except ValueError:
        return DEFAULT_STALL_SECONDS
    return value if math.isfinite(value) and value > 0 else DEFAULT_STALL_SECONDS


def server_address(url: str) -> tuple[str, int] | None:
    """(host, port) of the server a git URL names; None for a local repository."""
    if "://" not in url:
        scp = _SCP_LIKE.match(url)
        return (scp.group(1).strip("[]"), 22) if scp else None
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname, port or _DEFAULT_PORTS[scheme]


def _where(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _accepts_connections(address: tuple[str, int]) -> bool:
    import socket  # only a stalled fetch probes: `render` and `run` start ~5 ms sooner without it

    try:
        with socket.create_connection(address, timeout=_PROBE_SECONDS):
            return True
    except OSError:
        return False


def _stalled(url: str, seconds: float, heard: bool, command: str) -> GitStalled:
    """The one-line reason for a stall, naming the server (probed once to say which)."""
    address = server_address(url)
    where = f"the Git server at {_where(address)}" if address else f"the Git server of {url}"
    bound = f"{seconds:g} s"
    if heard:
        what = f"{where} stopped sending for {bound}"
    elif address is None or _accepts_connections(address):
        what = f"{where} accepted the connection but sent nothing for {bound}"
    else:
        what = f"{where} did not accept a connection within {bound}"
    return GitStalled(
        redact(f"{what} (git {command} was stopped; {STALL_SECONDS_ENV} sets this bound)")
    )


def _with_connect_timeouts(env: Mapping[str, str], seconds: float) -> dict[str, str]:
    """SSH: a ConnectTimeout on our ssh command (a user's own command is left as it is)."""
    env = dict(env)
    ssh = env.get("GIT_SSH_COMMAND", "")
    if ssh.startswith("ssh ") and "ConnectTimeout" not in ssh:
        # A little over the stall bound: the watchdog's message is the clearer one.
        env["GIT_SSH_COMMAND"] = f"{ssh} -o ConnectTimeout={math.ceil(seconds) + 5}"
    return env


def _subcommand(args: list[str]) -> str:
    """The git command in `args` (`fetch`), past options such as `-c key=value`."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "-c":
            skip = True
        elif not arg.startswith("-"):
            return arg
    return args[0] if args else "git"


def run_git(
    args: list[str],
    cwd: Path | None,
    env: Mapping[str, str],
    deadline: float | None = None,
    url: str | None = None,
    stall: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `git ARGS`, capturing its output, and kill it with everything it started when
    `deadline` (a time.monotonic() value; FetchTimedOut) passes, or when it talks to the
    server of `url` and `stall` seconds go by without a byte of output (GitStalled).

    A network call needs progress output to tell slow from stalled (`--progress`)."""
    what = _subcommand(args)
    timeout = None if deadline is None else deadline - time.monotonic()
    if timeout is not None and timeout <= 0:
        raise FetchTimedOut(f"no time left to run git {what}")
    if url is None or server_address(url) is None:
        stall = None  # a local repository: no server to wait for
    command = ["git"]
    if stall is not None:
        limit = str(math.ceil(stall))
        command += ["-c", "http.lowSpeedLimit=1", "-c", f"http.lowSpeedTime={limit}"]
        env = _with_connect_timeouts(env, stall)
    try:
        process = subprocess.Popen(
            [*command, *args], cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
    except FileNotFoundError:
        raise FetchError("git is not installed (no `git` on PATH)") from None
    try:
        out, err = _collect(process, what, deadline, stall)
    except _Silent as silent:
        supervise.kill_tree(process)  # git and what it started (git-remote-https, ssh)
        assert url is not None and stall is not None
        raise _stalled(url, stall, silent.heard, what) from None
    except BaseException:
        supervise.kill_tree(process)  # timed out, or interrupted: git leaves nothing behind
        raise
    code = process.wait()
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    if code != 0 and stall is not None and url is not None and _HTTP_STALLED.search(stderr):
        moved = bool(out) or any(_PROGRESS.match(line) for line in _lines(stderr))
        raise _stalled(url, stall, moved, what)  # curl's low-speed limit ended it
    return subprocess.CompletedProcess(["git", *args], code, stdout, stderr)


class _Silent(Exception):
    """git produced nothing for the stall bound; `heard`: it had produced something before."""

    def __init__(self, heard: bool):
        super().__init__(heard)
        self.heard = heard


def _collect(
    process: subprocess.Popen[bytes],
    what: str,
    deadline: float | None,
    stall: float | None,
) -> tuple[bytearray, bytearray]:
    """Read git's stdout and stderr to their ends, within the deadline (FetchTimedOut) and
    the stall bound (_Silent)."""
    assert process.stdout is not None and process.stderr is not None
    try:
        return _read_both(process, what, deadline, stall)
    finally:
        process.stdout.close()
        process.stderr.close()


def _read_both(
    process: subprocess.Popen[bytes], what: str, deadline: float | None, stall: float | None
) -> tuple[bytearray, bytearray]:
    assert process.stdout is not None and process.stderr is not None
    out, err = bytearray(), bytearray()
    heard = False
    last = time.monotonic()
    exited: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ, out)
        selector.register(process.stderr, selectors.EVENT_READ, err)
        while selector.get_map():
            now = time.monotonic()
            if exited is None and process.poll() is not None:
                exited = now
            bounds = [] if exited is None else [exited + _DRAIN_SECONDS]
            if deadline is not None:
                bounds.append(deadline)
            if stall is not None:
                bounds.append(last + stall)
            wait = max(0.0, min(bounds) - now) if bounds else None
            if exited is None:  # notice git's exit even while a child holds its pipes
                wait = 0.5 if wait is None else min(wait, 0.5)
            for key, _ in selector.select(wait):
                data = os.read(key.fd, 65536)
                if data:
                    key.data.extend(data)
                    heard, last = True, time.monotonic()
                else:
                    selector.unregister(key.fileobj)
            now = time.monotonic()
            if exited is not None and now >= exited + _DRAIN_SECONDS:
                break  # git is done; a leftover child keeps the pipe open
            if deadline is not None and now >= deadline:
                raise FetchTimedOut(f"git {what} did not finish in time")
            if stall is not None and now >= last + stall:
                raise _Silent(heard)
    return out, err


def _git(
    args: list[str],
    cwd: Path,
    env: dict[str, str],
    deadline: float | None = None,
    url: str | None = None,
) -> subprocess.CompletedProcess[str]:
    stall = stall_seconds(env) if url is not None else None
    return run_git(args, cwd, env, deadline, url, stall)


def _lines(stderr: str) -> list[str]:
    """git's message lines, one per line or carriage-return segment, blank ones dropped."""
    return [ln.strip() for ln in re.split(r"[\r\n]+", stderr) if ln.strip()]


def explain_auth_failure(stderr: str, url: str | None = None) -> str | None:
    """A one-line reason when git failed on a host key or credentials, else None."""
    where = redact(url) if url else "the server"
    unknown = _UNKNOWN_HOST.search(stderr)
    if unknown:
        return (
            f"host key for {unknown.group(1)} is not in known_hosts: refusing to connect "
            "(add the server's key to known_hosts, checked against its published fingerprint)"
        )
    changed = _CHANGED_HOST.search(stderr)
    if changed or _HOST_KEY_FAILED.search(stderr):
        host = f" for {changed.group(1)}" if changed else ""
        return (
            f"host key verification failed{host}: the server's key does not match "
            "known_hosts, refusing to connect (a changed server key, or someone in between)"
        )
    if _KEY_REFUSED.search(stderr):
        return f"SSH authentication to {where} failed: the server refused the key"
    if _HTTP_AUTH.search(stderr):
        return (
            f"authentication to {where} failed: the server refused the token, or none was "
            f"given (set {TOKEN_ENV}, or name the token's Secret)"
        )
    return None


def _reason(stderr: str, url: str | None = None) -> str:
    explained = explain_auth_failure(stderr, url) or explain_dubious_ownership(stderr)
    if explained:
        return explained
    return redact(last_message(stderr) or "git failed without a message")


_DUBIOUS = re.compile(r"dubious ownership in repository at '([^']+)'")


def explain_dubious_ownership(stderr: str, path: Path | None = None) -> str | None:
    """git refused a repository another user owns ("detected dubious ownership", git 2.35.2
    on): one line naming it (else `path`) and the fix; None when git said something else.
    Where the git directory is `.git` inside a working tree, git checks both: both are
    named, so the fix given is the whole fix."""
    match = _DUBIOUS.search(stderr)
    if match is None and ("dubious ownership" not in stderr or path is None):
        return None
    where = Path(match.group(1)) if match else Path(path or ".").resolve()
    trusted = [where]
    if where.name != ".git" and (where / ".git").is_dir():
        trusted.append(where / ".git")
    elif where.name == ".git":
        trusted.insert(0, where.parent)
    fix = " && ".join(f"git config --global --add safe.directory {p}" for p in trusted)
    return (
        f"git refuses to read the repository at {where}: it is owned by another user "
        f"(git: detected dubious ownership). If you trust it, run `{fix}`, or run Bodywork "
        "as the user who owns it"
    )


def last_message(stderr: str) -> str | None:
    """git's last fatal/error line, else its last line that is not progress; None if none."""
    lines = [ln for ln in _lines(stderr) if not _PROGRESS.match(ln)]
    fatal = [ln for ln in lines if ln.lower().startswith(("fatal:", "error:"))]
    chosen = fatal or lines
    return chosen[-1] if chosen else None


_private_keys: dict[tuple[str, int, int], str] = {}
_private_keys_lock = threading.Lock()


def forget_private_keys() -> None:
    """Delete the private copies of SSH keys made by this process (also done at exit)."""
    with _private_keys_lock:
        for path in _private_keys.values():
            with contextlib.suppress(OSError):
                os.unlink(path)
        _private_keys.clear()


atexit.register(forget_private_keys)


def _usable_key(key: Path) -> str:
    """`key`, or a private 0600 copy of it if ssh would refuse it as it is.

    ssh rejects a key file others can read; a Secret volume's files may be group-readable
    (fsGroup) or owned by root, so those are copied once per process to a temp file."""
    try:
        info = key.stat()
    except OSError as exc:
        raise FetchError(f"cannot use SSH key {key}: {exc.strerror or 'not readable'}") from None
    if info.st_uid == os.getuid() and not info.st_mode & 0o077:
        return str(key)
    cache_key = (str(key), info.st_mtime_ns, info.st_size)
    with _private_keys_lock:
        if cache_key in _private_keys and os.path.exists(_private_keys[cache_key]):
            return _private_keys[cache_key]
        try:
            material = key.read_bytes()
        except OSError as exc:
            raise FetchError(
                f"cannot read SSH key {key}: {exc.strerror or 'not readable'}"
            ) from None
        fd, path = tempfile.mkstemp(prefix="bodywork-ssh-key-")  # created with mode 0600
        with os.fdopen(fd, "wb") as handle:
            handle.write(material)
        _private_keys[cache_key] = path
        return path


def _ssh_command(env: Mapping[str, str], ssh_dir: str | Path | None) -> str | None:
    folder = ssh_dir or env.get(SSH_DIR_ENV)
    key = env.get(SSH_KEY_ENV) or (str(Path(folder) / SSH_KEY_FILE) if folder else None)
    known = env.get(KNOWN_HOSTS_ENV) or (str(Path(folder) / KNOWN_HOSTS_FILE) if folder else None)
    if not key and not known:
        return None
    # Fail closed: without a known_hosts file there is no way to tell the server from an
    # impostor, so no connection is attempted.
    if not known or not Path(known).is_file():
        raise FetchError(
            f"no known_hosts file at {known}: SSH needs the server's host key to verify it "
            f"(key '{KNOWN_HOSTS_FILE}' of the SSH Secret, or --known-hosts)"
        )
    parts = ["ssh"]
    if key:
        if not Path(key).is_file():
            raise FetchError(
                f"no SSH private key at {key} (key '{SSH_KEY_FILE}' of the SSH Secret, "
                "or --ssh-key)"
            )
        parts += ["-i", _usable_key(Path(key)), "-o", "IdentitiesOnly=yes"]
    parts += [
        "-o", f"UserKnownHostsFile={known}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
    ]  # fmt: skip
    return " ".join(shlex.quote(part) for part in parts)


def _add_config(env: dict[str, str], key: str, value: str) -> None:
    """One git config entry through the environment (git >= 2.31), after any already set."""
    try:
        count = int(env.get("GIT_CONFIG_COUNT", "0"))
    except ValueError:
        count = 0
    env[f"GIT_CONFIG_KEY_{count}"] = key
    env[f"GIT_CONFIG_VALUE_{count}"] = value
    env["GIT_CONFIG_COUNT"] = str(count + 1)


def git_env(
    base: Mapping[str, str] | None = None,
    ssh_dir: str | Path | None = None,
    url: str | None = None,
) -> dict[str, str]:
    """The environment for one git call: `base` (default: this process's) plus credentials.

    SSH: `ssh_dir`, else BODYWORK_GIT_SSH_DIR (files `ssh-privatekey`, `known_hosts`),
    each file overridable by BODYWORK_GIT_SSH_KEY / BODYWORK_GIT_KNOWN_HOSTS; host keys are
    checked strictly. HTTPS: BODYWORK_GIT_TOKEN becomes an Authorization header, scoped to
    `url`'s server when given. Raises FetchError if the SSH files are unusable."""
    env = dict(os.environ if base is None else base)
    env["GIT_TERMINAL_PROMPT"] = "0"  # never wait for a password nobody will type
    ssh = _ssh_command(env, ssh_dir)
    if ssh:
        env["GIT_SSH_COMMAND"] = ssh
    else:
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    token = env.get(TOKEN_ENV)
    parts = urlsplit(url) if url else None
    if token and (parts is None or parts.scheme in ("http", "https")):
        # Scoped to the repo's server, so a redirect elsewhere never receives the token.
        key = "http.extraHeader"
        if parts is not None:
            key = f"http.{parts.scheme}://{parts.netloc.rpartition('@')[2]}/.extraHeader"
        import base64  # only a token's header needs it

        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        _add_config(env, key, f"Authorization: Basic {basic}")
    return env


# Nothing after the transfer that the checkout does not need: no background maintenance or
# gc (a detached `gc --auto` would also hold git's pipes open), no file-system monitor.
_QUIET_GIT = ["-c", "maintenance.auto=false", "-c", "gc.auto=0", "-c", "core.fsmonitor=false"]
# Keep the fetched pack as it is, however few objects it holds: below fetch.unpackLimit (100)
# git would explode it into one loose file per object, which is what made a small fetch slow.
_FETCH_GIT = [*_QUIET_GIT, "-c", "fetch.unpackLimit=1"]
# Write the files with one worker per core (git's parallel checkout, from 100 files up).
_CHECKOUT_GIT = ["-c", "checkout.workers=0"]


FULL_DISK_BYTES = 1 << 20  # less than this free, a checkout's failure is the disk's


def full_disk_reason(path: Path) -> str | None:
    """Why a write under `path` failed, when it is the disk: git's own words for it vary by
    step ("Out of diskspace", "not a git repository" once `git init` could not write)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = os.statvfs(probe)
    except OSError:
        return None
    free = usage.f_bavail * usage.f_frsize
    if free >= FULL_DISK_BYTES and usage.f_favail != 0:
        return None
    what = "free space" if free < FULL_DISK_BYTES else "free inodes"
    return (
        f"no {what} left on the disk holding {probe} ({free // 1024} KiB free) for the "
        "checkout: free space there, or point TMPDIR (or BODYWORK_HOME) at a larger disk (in "
        "a pod: raise its ephemeral-storage)"
    )


def fetch_commit(
    url: str,
    commit: str,
    dest: Path,
    env: Mapping[str, str] | None = None,
    *,
    deadline: float | None = None,
) -> None:
    """Make `dest` a checkout of exactly `commit` from `url`.

    `deadline` (a `time.monotonic()` value): git is stopped then and FetchTimedOut raised.
    A server that stalls (see `run_git`) is not retried: GitStalled names it."""
    env = fetch_objects(url, commit, dest, env, deadline=deadline)
    checkout_fetched(url, commit, dest, env, deadline=deadline)


def fetch_objects(
    url: str,
    commit: str,
    dest: Path,
    env: Mapping[str, str] | None = None,
    *,
    deadline: float | None = None,
) -> dict[str, str]:
    """Make `dest` a repository holding `commit` from `url`, nothing checked out (see
    `fetch_commit`); return the git environment used, credentials included."""
    env = git_env(env, url=url)
    dest.mkdir(parents=True, exist_ok=True)
    # No template (no sample hooks to copy), and the default branch named so git prints
    # no hint about it: the checkout is detached at the commit anyway.
    _git(["-c", "init.defaultBranch=bodywork", "init", "-q", "--template="], dest, env, deadline)
    try:
        result = _fetch(url, commit, dest, env, deadline)
    except GitStalled as exc:
        raise GitStalled(f"cannot fetch {redact(url)} at {commit}: {exc}") from None
    if result.returncode != 0:
        raise FetchError(
            full_disk_reason(dest)  # git's words for it vary: "not a git repository"
            or f"cannot fetch {redact(url)} at {commit}: {_reason(result.stderr, url)}"
        )
    return env


def checkout_fetched(
    url: str, commit: str, dest: Path, env: dict[str, str], *, deadline: float | None = None
) -> None:
    """Check `commit` out in `dest`, which `fetch_objects` filled."""
    switch = [
        *_QUIET_GIT,
        *_CHECKOUT_GIT,
        "-c",
        "advice.detachedHead=false",
        "checkout",
        "-q",
        commit,
    ]
    checkout = _git(switch, dest, env, deadline)
    if checkout.returncode != 0:
        raise FetchError(
            full_disk_reason(dest)
            or f"commit {commit} is not in {redact(url)}: {_reason(checkout.stderr)}"
        )


def _fetch(
    url: str, commit: str, dest: Path, env: dict[str, str], deadline: float | None
) -> subprocess.CompletedProcess[str]:
    """Fetch `commit` (transient errors retried), else the branches if the server refuses
    a SHA; the last git result. Progress is asked for: it is what tells slow from stalled."""
    result = None
    for attempt in range(1, FETCH_ATTEMPTS + 1):
        fetch = [*_FETCH_GIT, "fetch", "-q", "--progress", "--depth", "1", "--no-tags", url, commit]
        result = _git(fetch, dest, env, deadline, url)
        if result.returncode == 0 or not _TRANSIENT.search(result.stderr):
            break
        delay = RETRY_DELAY_SECONDS * attempt
        if deadline is not None and time.monotonic() + delay >= deadline:
            break  # no time for another attempt: report this one's reason
        if attempt < FETCH_ATTEMPTS:
            time.sleep(delay)
    assert result is not None
    if result.returncode != 0 and _NO_SHA_FETCH.search(result.stderr):
        branches = [*_FETCH_GIT, "fetch", "-q", "--progress", "--no-tags", url]
        result = _git([*branches, "+refs/heads/*:refs/remotes/origin/*"], dest, env, deadline, url)
    return result


def checked_out_commit(dest: Path) -> str | None:
    """The commit `dest` has checked out, read from .git without the git executable (a
    user's image that runs a handed-over checkout may have no git); None if unreadable."""
    git_dir = dest / ".git"
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head  # detached, as fetch_commit leaves it
        ref = head.removeprefix("ref: ")
        if (git_dir / ref).is_file():
            return (git_dir / ref).read_text().strip()
        for line in (git_dir / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    except OSError:
        return None
    return None


# ------------------------------------------------------------------------------ commit cache
CACHE_KEEP_COMMITS = 5  # entries kept; a run needs one, a service being rolled back two
CACHED, FETCHED = "cache", "fetched"  # how `checkout_commit` got the tree
LOCK_POLL_SECONDS = 0.05
_STALE_SECONDS = 24 * 3600.0  # a temporary folder this old belongs to a process long gone
_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")  # SHA-1 or SHA-256 repositories
_OBJECTS = os.path.join(".git", "objects")  # never modified in place: hard-linked when it can


def cache_entry_name(url: str, commit: str) -> str:
    """The cache folder of `commit` fetched from `url`: the SHA, and a short hash of the URL
    (without credentials) so another repository can never answer for this one."""
    import hashlib  # OpenSSL's load: only a fetch into the commit cache names its entry

    where = hashlib.sha256(redact(url).encode()).hexdigest()[:10]
    return f"{commit}-{where}"


def _flock(fd: int, mode: int, deadline: float | None) -> None:
    """Take a file lock (fcntl.LOCK_SH / LOCK_EX), waiting no later than `deadline`."""
    if deadline is None:
        fcntl.flock(fd, mode)
        return
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise FetchTimedOut("the commit cache stayed locked past the deadline") from None
            time.sleep(LOCK_POLL_SECONDS)


def verified_entry(entry: Path, commit: str, deadline: float | None = None) -> bool:
    """`entry` is a checkout of exactly `commit` with nothing changed, added or removed:
    HEAD is the commit and `git status` (ignored files included) reports nothing."""
    if checked_out_commit(entry) != commit:
        return False
    status = [
        "--no-optional-locks",  # readers share the entry: never rewrite its index
        "status", "--porcelain", "--untracked-files=all", "--ignored", "--no-renames",
    ]  # fmt: skip
    try:
        done = _git(status, entry, {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}, deadline)
    except FetchTimedOut:
        raise
    except FetchError:  # no git: nothing can be verified, so nothing is reused
        return False
    return done.returncode == 0 and not done.stdout.strip()


def copy_tree(source: Path, dest: Path) -> None:
    """Copy the checkout at `source` into `dest` (created if missing): files with their
    mode, symlinks as links. Git's object files never change once written, so they are
    hard-linked when both sides share a file system (a local run), else copied. Plain
    os calls, one stat per file (from the directory scan): thousands of files a second."""
    linking = [True]
    umask = os.umask(0)
    os.umask(umask)

    def copy_file(src: str, dst: str, info: os.stat_result) -> None:
        mode = stat.S_IMODE(info.st_mode)
        fin = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
            fout = os.open(dst, flags, mode)
            try:
                offset, size = 0, info.st_size
                while offset < size:
                    sent = os.sendfile(fout, fin, offset, size - offset)
                    if sent == 0:
                        break
                    offset += sent
                if mode & umask:
                    os.fchmod(fout, mode)  # what the umask took off the created file
            finally:
                os.close(fout)
        finally:
            os.close(fin)

    def place(item: os.DirEntry[str], dst: str, in_objects: bool) -> None:
        if in_objects and linking[0]:
            try:
                os.link(item.path, dst)
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                linking[0] = False  # another file system: copy from now on
        copy_file(item.path, dst, item.stat(follow_symlinks=False))

    def walk(src: str, dst: str, in_objects: bool) -> None:
        with contextlib.suppress(FileExistsError):
            os.mkdir(dst)
        with os.scandir(src) as entries:
            for item in entries:
                target = os.path.join(dst, item.name)
                if item.is_symlink():
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(target)
                    os.symlink(os.readlink(item.path), target)
                elif item.is_dir(follow_symlinks=False):
                    inside = in_objects or os.path.relpath(item.path, source) == _OBJECTS
                    walk(item.path, target, inside)
                else:
                    place(item, target, in_objects)
        os.chmod(dst, stat.S_IMODE(os.stat(src).st_mode))

    dest.parent.mkdir(parents=True, exist_ok=True)
    walk(str(source), str(dest), False)


def checkout_commit(
    url: str,
    commit: str,
    dest: Path,
    cache_root: Path | None,
    env: Mapping[str, str] | None = None,
    *,
    deadline: float | None = None,
    announce: Callable[[], None] = lambda: None,
    confirm_access: bool = False,
) -> str:
    """Make `dest` a checkout of exactly `commit`, from the commit cache in `cache_root` when
    it holds a verified tree of it, else fetched from `url` once into the cache (under the
    commit's lock, so concurrent stages fetch it once) and copied from there. `announce` is
    called just before a fetch from the server. Returns CACHED or FETCHED.

    `confirm_access` (the stage holds Git credentials): before a cached tree is used, the
    server is asked whether they still open the repository (`git ls-remote`, no transfer),
    so a revoked or wrong token or key fails the stage as a fetch would.

    Without a cache (`cache_root` None, a folder that cannot be written, a commit that is not
    a full SHA) it is fetch_commit into `dest`."""
    if cache_root is None or not _FULL_SHA.match(commit):
        announce()
        fetch_commit(url, commit, dest, env, deadline=deadline)
        return FETCHED
    name = cache_entry_name(url, commit)
    entry = cache_root / name
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
        lock = os.open(cache_root / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # a read-only or missing volume (an init container): no cache
        announce()
        fetch_commit(url, commit, dest, env, deadline=deadline)
        return FETCHED
    try:
        _flock(lock, fcntl.LOCK_SH, deadline)
        how = CACHED
        if not verified_entry(entry, commit, deadline):
            fcntl.flock(lock, fcntl.LOCK_UN)
            _flock(lock, fcntl.LOCK_EX, deadline)  # one stage fetches; the others wait
            if not verified_entry(entry, commit, deadline):
                announce()
                _fill(url, commit, entry, env, deadline)
                how = FETCHED
            fcntl.flock(lock, fcntl.LOCK_SH)  # copying needs only that nobody replaces it
        if how == CACHED and confirm_access:
            _confirm_access(url, commit, env, deadline)
        with contextlib.suppress(OSError):
            os.utime(entry)  # recently used: evicted last
        try:
            copy_tree(entry, dest)
        except OSError:  # the cache's volume failed us (full, or the entry went): fetch
            shutil.rmtree(dest, ignore_errors=True)
            announce()
            fetch_commit(url, commit, dest, env, deadline=deadline)
            how = FETCHED
    finally:
        os.close(lock)
    if how == FETCHED:
        _evict(cache_root, keep={name})
    return how


def _confirm_access(
    url: str, commit: str, env: Mapping[str, str] | None, deadline: float | None
) -> None:
    """The server still lets these credentials read `url` (FetchError, as a fetch, if not)."""
    git = git_env(env, url=url)
    try:
        done = run_git(["ls-remote", url, "HEAD"], None, git, deadline, url, stall_seconds(git))
    except GitStalled as exc:
        raise GitStalled(f"cannot fetch {redact(url)} at {commit}: {exc}") from None
    if done.returncode != 0:
        raise FetchError(f"cannot fetch {redact(url)} at {commit}: {_reason(done.stderr, url)}")


def _fill(
    url: str, commit: str, entry: Path, env: Mapping[str, str] | None, deadline: float | None
) -> None:
    """Fetch `commit` into a temporary folder beside `entry`, then rename it into place."""
    tmp = entry.with_name(f".tmp-{entry.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        fetch_commit(url, commit, tmp, env, deadline=deadline)
        _settle_index(tmp, deadline)
        if entry.exists():
            if verified_entry(entry, commit, deadline):
                return  # another process filled it meanwhile (it held a removed lock file)
            _discard(entry)  # there, but not verified: changed by someone, or half removed
        os.rename(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _settle_index(checkout: Path, deadline: float | None) -> None:
    """Make `git status` of a fresh checkout a matter of stat() calls. Files written in the
    same second as git's index are "racily clean": git re-reads and hashes every one of them
    on each status, and a reader that may not rewrite the index never stops doing so. Their
    times are set two seconds back and the index refreshed once (it hashes them this once)."""
    past = time.time_ns() - 2_000_000_000
    for folder, dirs, files in os.walk(checkout):
        if folder == str(checkout):
            dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            with contextlib.suppress(OSError):
                os.utime(os.path.join(folder, name), ns=(past, past), follow_symlinks=False)
    _git(["update-index", "-q", "--refresh"], checkout, dict(os.environ), deadline)


def _discard(path: Path) -> None:
    """Remove a folder others may be reading: renamed away first, so it is gone at once."""
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(path, trash)
    except OSError:
        trash = path
    shutil.rmtree(trash, ignore_errors=True)


def _evict(cache_root: Path, keep: set[str]) -> None:
    """Remove the least recently used entries beyond CACHE_KEEP_COMMITS (never one another
    stage is copying: its lock must be free), and leftovers of processes long gone."""
    try:
        items = list(os.scandir(cache_root))
    except OSError:
        return
    now = time.time()
    entries = []
    names = {item.name for item in items}
    for item in items:
        with contextlib.suppress(OSError):
            info = item.stat(follow_symlinks=False)
            if not stat.S_ISDIR(info.st_mode):
                orphan = item.name.removesuffix(".lock") not in names
                if item.name.endswith(".lock") and orphan and now - info.st_mtime > _STALE_SECONDS:
                    os.unlink(item.path)  # the lock of a commit that was never fetched
                continue
            if item.name.startswith(".trash-") or (
                item.name.startswith(".tmp-") and now - info.st_mtime > _STALE_SECONDS
            ):
                shutil.rmtree(item.path, ignore_errors=True)
            elif not item.name.startswith("."):
                entries.append((info.st_mtime, item.name))
    entries.sort(reverse=True)
    for _, name in entries[CACHE_KEEP_COMMITS:]:
        if name in keep:
            continue
        lock_path = cache_root / f"{name}.lock"
        try:
            lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock)
            continue  # in use: next time
        try:
            _discard(cache_root / name)
            with contextlib.suppress(OSError):
                os.unlink(lock_path)
        finally:
            os.close(lock)
