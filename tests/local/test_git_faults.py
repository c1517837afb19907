"""Git faults against a real `git daemon`: a server that refuses commits by SHA, a server
that comes up late (transient, retried), and a missing repo (permanent, not retried)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from bodywork_bootstrap import gitfetch
from tests.conftest import commit_all, free_port, git, write_files


def _daemon(base: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """A real git daemon; --verbose logs each client's request and its errors."""
    return subprocess.Popen(
        ["git", "daemon", "--verbose", "--reuseaddr", "--export-all", f"--base-path={base}",
         "--listen=127.0.0.1", f"--port={port}", str(base)],
        stdout=subprocess.DEVNULL, stderr=log.open("w"),
    )  # fmt: skip


def _wait_listening(port: int) -> None:
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("git daemon did not start")


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, str, str]:
    """A bare repo with two commits; returns (base dir, first sha, second sha)."""
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    write_files(work, {"a.txt": "one\n"})
    first = commit_all(work, "one")
    write_files(work, {"a.txt": "two\n"})
    second = commit_all(work, "two")
    base = tmp_path / "served"
    base.mkdir()
    git(base, "clone", "-q", "--bare", str(work), "repo.git")
    return base, first, second


def test_server_refusing_a_commit_by_sha_falls_back_to_fetching_branches(
    served: tuple[Path, str, str], tmp_path: Path
) -> None:
    """Protocol v0 will not serve a non-tip SHA shallowly: the fetch falls back and works."""
    base, first, _ = served
    port = free_port()
    daemon = _daemon(base, port, tmp_path / "daemon.log")
    try:
        _wait_listening(port)
        # Force the old protocol, as some servers still speak it.
        env = {**os.environ, "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "protocol.version",
               "GIT_CONFIG_VALUE_0": "0"}  # fmt: skip
        refused = subprocess.run(
            ["git", "fetch", "--depth", "1", f"git://127.0.0.1:{port}/repo.git", first],
            cwd=_empty_repo(tmp_path / "probe"),
            env=env,
            capture_output=True,
            text=True,
        )
        assert refused.returncode != 0 and "unadvertised object" in refused.stderr
        dest = tmp_path / "checkout"
        gitfetch.fetch_commit(f"git://127.0.0.1:{port}/repo.git", first, dest, env)
        assert git(dest, "rev-parse", "HEAD") == first
        assert (dest / "a.txt").read_text() == "one\n"
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def _empty_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q")
    return path


def test_server_that_comes_up_late_is_retried_until_it_answers(
    served: tuple[Path, str, str], tmp_path: Path
) -> None:
    """Connection refused is transient: the fetch is retried and succeeds once the server is up."""
    base, _, second = served
    port = free_port()
    log = tmp_path / "daemon.log"
    started: list[subprocess.Popen[bytes]] = []
    # The first attempt is refused; the retry comes RETRY_DELAY_SECONDS later.
    timer = threading.Timer(
        gitfetch.RETRY_DELAY_SECONDS / 2, lambda: started.append(_daemon(base, port, log))
    )
    timer.start()
    try:
        dest = tmp_path / "checkout"
        gitfetch.fetch_commit(f"git://127.0.0.1:{port}/repo.git", second, dest)
        assert git(dest, "rev-parse", "HEAD") == second
    finally:
        timer.join()
        for daemon in started:
            daemon.terminate()
            daemon.wait(timeout=10)


def test_a_permanent_error_is_not_retried_and_says_why(
    served: tuple[Path, str, str], tmp_path: Path
) -> None:
    """A repository that does not exist fails after one attempt with git's reason."""
    base, first, _ = served
    port = free_port()
    log = tmp_path / "daemon.log"
    daemon = _daemon(base, port, log)
    try:
        _wait_listening(port)
        with pytest.raises(gitfetch.FetchError) as caught:
            gitfetch.fetch_commit(
                f"git://127.0.0.1:{port}/missing.git", first, tmp_path / "checkout"
            )
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
    message = str(caught.value)
    assert message.startswith(f"cannot fetch git://127.0.0.1:{port}/missing.git at {first}:")
    assert "\n" not in message
    # One fetch attempt reached the daemon (the readiness probe's bare connect asks nothing).
    assert log.read_text().count("does not appear to be a git repository") == 1
