"""Fetch one commit of a repository into an empty directory, as shallowly as the server allows.

Uses the `git` executable directly (no GitPython) to keep stage start-up light. Credentials
embedded in URLs are redacted from every message.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

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
_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")


class FetchError(Exception):
    pass


def redact(text: str) -> str:
    """Hide user:token@ in any URL within `text`."""
    return _CREDENTIALS.sub(r"\1***@", text)


def _git(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def _reason(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.lower().startswith(("fatal:", "error:"))]
    return redact((fatal or lines or ["git failed without a message"])[-1])


def git_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["GIT_TERMINAL_PROMPT"] = "0"  # never wait for a password nobody will type
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return env


def fetch_commit(url: str, commit: str, dest: Path, env: dict[str, str] | None = None) -> None:
    """Make `dest` a checkout of exactly `commit` from `url`."""
    env = git_env(env)
    dest.mkdir(parents=True, exist_ok=True)
    _git(["init", "-q"], dest, env)
    result = None
    for attempt in range(1, FETCH_ATTEMPTS + 1):
        result = _git(["fetch", "-q", "--depth", "1", "--no-tags", url, commit], dest, env)
        if result.returncode == 0 or not _TRANSIENT.search(result.stderr):
            break
        if attempt < FETCH_ATTEMPTS:
            time.sleep(RETRY_DELAY_SECONDS * attempt)
    assert result is not None
    if result.returncode != 0 and _NO_SHA_FETCH.search(result.stderr):
        result = _git(
            ["fetch", "-q", "--no-tags", url, "+refs/heads/*:refs/remotes/origin/*"], dest, env
        )
    if result.returncode != 0:
        raise FetchError(f"cannot fetch {redact(url)} at {commit}: {_reason(result.stderr)}")
    checkout = _git(["-c", "advice.detachedHead=false", "checkout", "-q", commit], dest, env)
    if checkout.returncode != 0:
        raise FetchError(f"commit {commit} is not in {redact(url)}: {_reason(checkout.stderr)}")
