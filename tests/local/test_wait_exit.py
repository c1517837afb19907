"""Waiting for a process without polling (supervise.wait_exit), on real processes: through a
pidfd, and through the thread used where there is none."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest

from bodywork_bootstrap import supervise


def sleeper(seconds: float, code: int = 0) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", f"import time, sys; time.sleep({seconds}); sys.exit({code})"]
    )


@pytest.mark.parametrize("wait", [supervise.wait_exit, supervise._wait_on_thread])
def test_the_exit_status_comes_back_and_a_timeout_says_none(wait):
    """A process still running at the timeout: None, and it is untouched; one that exits:
    its status, and it is reaped."""
    process = sleeper(30)
    try:
        assert wait(process, 0.2) is None
        assert process.poll() is None
    finally:
        process.kill()
    assert wait(process, 10) == -signal.SIGKILL
    done = sleeper(0.1, code=7)
    assert wait(done, 30) == 7
    assert done.returncode == 7


def test_repeated_waits_on_the_thread_path_share_one_waiter():
    """Waiting many times (as a service's readiness loop does) starts one thread, not one
    per wait."""
    process = sleeper(30)
    try:
        before = threading.active_count()
        for _ in range(5):
            assert supervise._wait_on_thread(process, 0.01) is None
        assert threading.active_count() == before + 1
    finally:
        process.kill()
        process.wait()


def test_a_signal_handler_runs_while_waiting():
    """A signal to the waiter runs its handler at once (the bootstrapper forwards it to the
    module this way), and the wait goes on until the process exits."""
    process = sleeper(0.5, code=3)
    seen: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: seen.append(signum))
    try:
        main = threading.main_thread().ident
        assert main is not None
        timer = threading.Timer(0.1, signal.pthread_kill, (main, signal.SIGUSR1))
        timer.start()
        assert supervise.wait_exit(process, 30) == 3
        assert seen == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, previous)
