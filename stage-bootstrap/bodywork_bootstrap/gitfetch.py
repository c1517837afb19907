"""Fetch one commit of a repository into an empty directory, as shallowly as the server allows.

Uses the `git` executable directly (no GitPython) to keep stage start-up light. Credentials
embedded in URLs are redacted from every message.

Private repositories (see `git_env`): SSH with a key and a known_hosts file, from a directory
(a mounted Kubernetes Secret: BODYWORK_GIT_SSH_DIR) or two files (`bodywork run --ssh-key
--known-hosts`), always with strict host-key checking; or HTTPS with a token in
BODYWORK_GIT_TOKEN, sent as an HTTP header through git's environment config, never in a URL.
Key material and tokens are never written to a message.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import re
import shlex
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from bodywork_bootstrap import envnames
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


class FetchError(Exception):
    pass


class FetchTimedOut(FetchError):
    """The fetch did not finish by its deadline (git was stopped)."""


def _git(
    args: list[str], cwd: Path, env: dict[str, str], deadline: float | None = None
) -> subprocess.CompletedProcess[str]:
    timeout = None if deadline is None else deadline - time.monotonic()
    if timeout is not None and timeout <= 0:
        raise FetchTimedOut(f"no time left to run git {args[0]}")
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False,
            timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise FetchTimedOut(f"git {args[0]} did not finish in time") from None


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
    explained = explain_auth_failure(stderr, url)
    if explained:
        return explained
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.lower().startswith(("fatal:", "error:"))]
    return redact((fatal or lines or ["git failed without a message"])[-1])


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
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        _add_config(env, key, f"Authorization: Basic {basic}")
    return env


def fetch_commit(
    url: str,
    commit: str,
    dest: Path,
    env: Mapping[str, str] | None = None,
    *,
    deadline: float | None = None,
) -> None:
    """Make `dest` a checkout of exactly `commit` from `url`.

    `deadline` (a `time.monotonic()` value): git is stopped then and FetchTimedOut raised."""
    env = git_env(env, url=url)
    dest.mkdir(parents=True, exist_ok=True)
    _git(["init", "-q"], dest, env, deadline)
    result = None
    for attempt in range(1, FETCH_ATTEMPTS + 1):
        fetch = ["fetch", "-q", "--depth", "1", "--no-tags", url, commit]
        result = _git(fetch, dest, env, deadline)
        if result.returncode == 0 or not _TRANSIENT.search(result.stderr):
            break
        delay = RETRY_DELAY_SECONDS * attempt
        if deadline is not None and time.monotonic() + delay >= deadline:
            break  # no time for another attempt: report this one's reason
        if attempt < FETCH_ATTEMPTS:
            time.sleep(delay)
    assert result is not None
    if result.returncode != 0 and _NO_SHA_FETCH.search(result.stderr):
        branches = ["fetch", "-q", "--no-tags", url, "+refs/heads/*:refs/remotes/origin/*"]
        result = _git(branches, dest, env, deadline)
    if result.returncode != 0:
        raise FetchError(f"cannot fetch {redact(url)} at {commit}: {_reason(result.stderr, url)}")
    switch = ["-c", "advice.detachedHead=false", "checkout", "-q", commit]
    checkout = _git(switch, dest, env, deadline)
    if checkout.returncode != 0:
        raise FetchError(f"commit {commit} is not in {redact(url)}: {_reason(checkout.stderr)}")


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
