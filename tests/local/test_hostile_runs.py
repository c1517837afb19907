"""Hostile conditions for `bodywork run` and the bootstrapper, each with real processes: a Git
server that accepts connections and never answers, stdout closed by its reader, the terminal
hanging up, `bodywork run` itself SIGKILLed, a stage that daemonises a grandchild, and a
stage whose output is 50 MB of carriage-return progress without one newline.

Times are generous behaviour bounds ("finishes within 30 s instead of hanging"), never
performance assertions."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import IO

import pytest

from bodywork.core.errors import GitSourceError
from bodywork.engine.executors.local import LineSplitter
from bodywork_bootstrap import EXIT_FETCH_FAILED, gitfetch
from bodywork_bootstrap.redaction import redact
from tests.conftest import free_port
from tests.local.conftest import RunEngine
from tests.local.projects import (
    batch_stage,
    port_free,
    process_gone,
    project_ini,
    service_stage,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("offline_env")

STALL = "3"  # BODYWORK_GIT_STALL_SECONDS for these tests (the default is 120 s)
SOME_SHA = "0123456789abcdef0123456789abcdef01234567"


# ---------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A real TCP server on 127.0.0.1 that accepts every connection, holds it open and
    never sends a byte; yields its port."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)  # never written to, never closed until the end

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        listener.close()
        for conn in held:
            conn.close()


def processes_mentioning(text: str) -> dict[int, str]:
    """pid → command line of every live process (bar this one) whose command line holds
    `text`; zombies have none, so they never count."""
    found = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        pid = int(cmdline.parent.name)
        if pid == os.getpid():
            continue
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it ended while we looked
            continue
        if text in command and not process_gone(pid):
            found[pid] = command
    return found


def kill_leftovers(text: str) -> None:
    """End what an old, faulty version left behind, so one failure does not leak into
    the next test (each is a process this test started)."""
    for pid in processes_mentioning(text):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def kill_pid_in(path: Path, mentioning: Path) -> None:
    """SIGKILL the process whose pid `path` holds, if it is still the stage process this
    test started (its command line names the test's own `mentioning` directory)."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.read_text())
        if pid in processes_mentioning(str(mentioning)):
            os.kill(pid, signal.SIGKILL)


def lines_of(stream: IO[str]) -> Queue[str]:
    lines: Queue[str] = Queue()

    def pump() -> None:
        with contextlib.suppress(ValueError, OSError):  # the test may close it under us
            for line in iter(stream.readline, ""):
                lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_for_line(lines: Queue[str], wanted: str, timeout: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not any(wanted in line for line in seen):
        try:
            seen.append(lines.get(timeout=max(0.01, deadline - time.monotonic())))
        except Empty:
            raise AssertionError(f"no {wanted!r} within {timeout}s; saw {seen[-20:]}") from None
    return seen


def start_run(repo: Path, stderr: Path) -> subprocess.Popen[str]:
    """`bodywork run REPO`, stdout a pipe to read, stderr into the file `stderr`."""
    with stderr.open("w") as err:  # the child has its own copy
        return subprocess.Popen(
            ["bodywork", "run", str(repo)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            bufsize=1,
            env=os.environ,
        )


def finish(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.close()


def daemonise(pid_file: Path) -> str:
    """Stage code that double-forks a daemon into its own session (setsid, stdio on
    /dev/null, as real daemons do), which writes its pid to `pid_file` and sleeps."""
    return textwrap.dedent(
        f"""
        import os, pathlib, time
        pid_file = pathlib.Path({str(pid_file)!r})
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                pid_file.write_text(str(os.getpid()))
                time.sleep(300)
            os._exit(0)
        os.wait()
        while not pid_file.exists() or not pid_file.read_text():
            time.sleep(0.01)
        print("daemonised", pid_file.read_text(), flush=True)
        """
    )


def serve(port: int, pid_file: Path) -> str:
    return textwrap.dedent(
        f"""
        import http.server, os, pathlib
        pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))
        print("serving", flush=True)
        http.server.HTTPServer(("127.0.0.1", {port}), http.server.BaseHTTPRequestHandler
                               ).serve_forever()
        """
    )


# ------------------------------------------------------ 1. a Git server that never answers
def stalled_message(port: int) -> str:
    return f"the Git server at 127.0.0.1:{port} accepted the connection but sent nothing for 3 s"


def silent_url(scheme: str, port: int) -> str:
    user = "git@" if scheme == "ssh" else ""  # ssh waits for a banner, http for an answer
    return f"{scheme}://{user}127.0.0.1:{port}/project.git"


def git_processes_for(port: int) -> dict[int, str]:
    """git, git-remote-http, ssh: whatever still fetches the silent server's project.git
    (git and git-remote-http name its URL, ssh `-p PORT … '/project.git'`)."""
    found = processes_mentioning(f"127.0.0.1:{port}/project.git")
    ssh = processes_mentioning(f"-p {port} ")
    return {**found, **{pid: cmd for pid, cmd in ssh.items() if "project.git" in cmd}}


def run_bounded(command: list[str], port: int) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run `command` with the 3 s stall bound, held to 30 s; the git processes still
    there when it ended must be none (an old version's are killed, then reported)."""
    env = {**os.environ, gitfetch.STALL_SECONDS_ENV: STALL}
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30,
            env=env,
        )  # fmt: skip
    finally:
        gone = wait_for(lambda: not git_processes_for(port), timeout=5)  # SIGKILL lands
        left = {} if gone else git_processes_for(port)
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    assert left == {}, f"git processes left behind: {left}"
    return done, time.monotonic() - started


@pytest.mark.parametrize("scheme", ["git", "ssh", "http"])
def test_run_on_a_git_server_that_never_answers_fails_naming_it_and_leaves_no_git(scheme):
    """`bodywork run URL` on a server that accepts and never writes: exit 3 with one line
    naming the server and the bound, within 30 s instead of hanging; no git is left."""
    with silent_server() as port:
        url = silent_url(scheme, port)
        done, seconds = run_bounded(["bodywork", "run", url], port)
    assert done.returncode == GitSourceError.exit_code, done.stdout
    assert seconds < 30
    assert "Traceback" not in done.stdout
    errors = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: cannot read {redact(url)}: {stalled_message(port)} (git ls-remote was stopped; "
        f"{gitfetch.STALL_SECONDS_ENV} sets this bound)"
    ]


@pytest.mark.parametrize("scheme", ["git", "ssh", "http"])
def test_bootstrapper_fetching_from_a_git_server_that_never_answers_exits_90_naming_it(
    scheme, tmp_path
):
    """The bootstrapper's fetch from the same server: exit 90 with the named stall, once
    (a stall is not retried), within 30 s; its git processes are gone."""
    with silent_server() as port:
        url = silent_url(scheme, port)
        command = [
            sys.executable, "-m", "bodywork_bootstrap", "--repo", url, "--commit", SOME_SHA,
            "--stage", "stage", "--script", "main.py", "--workdir", str(tmp_path / "work"),
        ]  # fmt: skip
        done, seconds = run_bounded(command, port)
    assert seconds < 30
    assert done.returncode == EXIT_FETCH_FAILED, done.stdout
    assert (
        f"[bodywork] cannot fetch {redact(url)} at {SOME_SHA}: {stalled_message(port)} "
        f"(git fetch was stopped; {gitfetch.STALL_SECONDS_ENV} sets this bound)"
    ) in done.stdout.splitlines()


# ------------------------------------------------------------- 2. stdout closed by its reader
def test_closing_stdout_mid_run_ends_the_run_cleanly_with_141(make_repo, tmp_path):
    """`bodywork run … | head -3` while a stage prints a lot: the run stops its stages and
    exits 141 (128 + SIGPIPE) within 30 s, with no traceback, instead of the stage
    blocking on its full pipe until the deadline."""
    pid_file = tmp_path / "chatty.pid"
    code = f"""
        import os, pathlib, time
        pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))
        end = time.monotonic() + 600
        i = 0
        while time.monotonic() < end:
            print("line", i, "x" * 100, flush=True)
            i += 1
        """
    repo = make_repo({"bodywork.ini": project_ini("chatty"), **batch_stage("chatty", code)})
    stderr = tmp_path / "stderr.txt"
    process = start_run(repo, stderr)
    try:
        assert process.stdout is not None
        lines = lines_of(process.stdout)
        wait_for_line(lines, "line 1000 ", timeout=60)  # the stage is in full flow
        process.stdout.close()  # what `head` does once it has its lines
        assert process.wait(timeout=30) == 141
    finally:
        finish(process)
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        gone = pid is None or wait_for(lambda: process_gone(pid), timeout=10)
        kill_pid_in(pid_file, tmp_path)
    said = stderr.read_text()
    assert "Traceback" not in said, said
    assert "stopping: ending every stage process (standard output was closed)" in said
    assert gone, "the stage still runs"


# ------------------------------------------------------- 3. SIGHUP, SIGKILL, daemonised stages
def test_sighup_stops_the_services_and_exits_129(make_repo, tmp_path):
    """Closing the terminal (SIGHUP) with a live service: a clean stop like Ctrl-C, exit 129
    (128 + SIGHUP), the port free within seconds and the service gone."""
    port = free_port()
    pid_file = tmp_path / "service.pid"
    stage = service_stage("serve", port, serve(port, pid_file))
    repo = make_repo({"bodywork.ini": project_ini("serve"), **stage})
    stderr = tmp_path / "stderr.txt"
    process = start_run(repo, stderr)
    try:
        assert process.stdout is not None
        wait_for_line(lines_of(process.stdout), "service serve is ready at", timeout=60)
        pid = int(pid_file.read_text())
        process.send_signal(signal.SIGHUP)
        assert process.wait(timeout=20) == 129
        assert wait_for(lambda: port_free(port), timeout=5)
        assert wait_for(lambda: process_gone(pid), timeout=5)
    finally:
        finish(process)
        kill_pid_in(pid_file, tmp_path)
    said = stderr.read_text()
    assert "Traceback" not in said, said
    assert "stopping: ending every stage process (the terminal hung up: SIGHUP)" in said


def test_sigkill_of_bodywork_run_takes_its_stages_and_their_daemons_with_it(
    make_repo, tmp_path, offline_env
):
    """`bodywork run` SIGKILLed with a live service that has daemonised a grandchild: within
    10 s the port is free and no bootstrapper, service or daemon remains (each watches its
    parent through a pipe only the parent held)."""
    port = free_port()
    pid_file, daemon_pid_file = tmp_path / "service.pid", tmp_path / "daemon.pid"
    code = daemonise(daemon_pid_file) + serve(port, pid_file)
    repo = make_repo({"bodywork.ini": project_ini("serve"), **service_stage("serve", port, code)})
    process = start_run(repo, tmp_path / "stderr.txt")
    try:
        assert process.stdout is not None
        wait_for_line(lines_of(process.stdout), "service serve is ready at", timeout=60)
        pid, daemon = int(pid_file.read_text()), int(daemon_pid_file.read_text())
        assert processes_mentioning(str(offline_env))  # the bootstrapper and the service
        process.kill()
        process.wait()
        assert wait_for(lambda: port_free(port), timeout=10)
        assert wait_for(lambda: not processes_mentioning(str(offline_env)), timeout=10), (
            processes_mentioning(str(offline_env))
        )
        assert process_gone(pid)
        assert wait_for(lambda: process_gone(daemon), timeout=10)
    finally:
        finish(process)
        kill_leftovers(str(offline_env))
        kill_pid_in(pid_file, tmp_path)
        kill_pid_in(daemon_pid_file, tmp_path)


def test_a_daemon_a_batch_stage_leaves_behind_is_ended_with_the_stage(
    make_repo, engine: RunEngine, tmp_path
):
    """A batch stage that double-forks a daemon into its own session and exits: the stage
    succeeds, and the daemon is gone when the run ends (the bootstrapper is its subreaper
    and ends what the stage's code left running, saying so)."""
    daemon_pid_file = tmp_path / "daemon.pid"
    repo = make_repo(
        {
            "bodywork.ini": project_ini("spawn"),
            **batch_stage("spawn", daemonise(daemon_pid_file)),
        }
    )
    try:
        run = engine(repo)
        assert run.status("spawn") == "succeeded", run.lines
        daemon = int(daemon_pid_file.read_text())
        assert wait_for(lambda: process_gone(daemon), timeout=10)
        assert any("left running" in line for line in run.sink.of("spawn")), run.lines
    finally:
        kill_pid_in(daemon_pid_file, tmp_path)


# ---------------------------------------------------- 4. output without newlines, held bounded
def peak_rss_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def test_50_mb_of_carriage_return_progress_keeps_bodywork_small(make_repo, tmp_path):
    """A stage writing 50 MB of '\\r'-separated progress and no newline: the run succeeds,
    each '\\r' ends a line, and the peak RSS of `bodywork run` stays under 200 MB (each
    line held is capped at 64 KiB; one giant line used to be held whole, several times)."""
    code = """
        import sys
        out = sys.stdout.buffer
        for i in range(50_000):
            out.write(b"\\rprogress %6d " % i + b"#" * 1000)
        out.write(b"\\r" + b"=" * (1024 * 1024) + b"\\rfinished")
        out.flush()
        """
    repo = make_repo({"bodywork.ini": project_ini("progress"), **batch_stage("progress", code)})
    out_file = tmp_path / "stdout.txt"
    with out_file.open("w") as out:
        process = subprocess.Popen(
            ["bodywork", "run", str(repo)], stdout=out, stderr=subprocess.PIPE, text=True,
            env=os.environ,
        )  # fmt: skip
        peak = 0.0
        stderr: list[str] = []
        reader = threading.Thread(target=lambda: stderr.extend(process.stderr or []), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 120
            while process.poll() is None and time.monotonic() < deadline:
                peak = max(peak, peak_rss_mib(process.pid) or 0.0)
                time.sleep(0.02)
            code_ = process.wait(timeout=5)
        finally:
            finish(process)
    reader.join(timeout=5)
    assert code_ == 0, "".join(stderr)
    assert 0 < peak < 200, f"peak RSS {peak:.0f} MiB"
    printed = out_file.read_text()
    assert "progress | progress  49999 " in printed  # the last progress update, as a line
    assert "progress | finished" in printed
    cut = [line for line in printed.splitlines() if "[bodywork: line cut at 64 KiB" in line]
    assert len(cut) == 1 and len(cut[0]) < 70_000  # the 1 MiB line, cut and marked


def test_line_splitting_is_the_same_however_the_output_is_chunked():
    """The executor's reader sees the pipe in arbitrary chunks: `\\r\\n` split across two
    reads is one line end, a lone `\\r` is one, empty redraws are no lines, and a long
    line is cut at the cap once, however the bytes arrive."""
    data = b"one\r\ntwo\rthree\n\n\rfour\r\r" + b"y" * 50 + b"\nfive\rsix"
    expected = [
        (b"one", False), (b"two", False), (b"three", False), (b"", False), (b"four", False),
        (b"y" * 20, True), (b"five", False), (b"six", False),
    ]  # fmt: skip
    for size in (1, 2, 3, 7, len(data)):
        splitter = LineSplitter(limit=20)
        lines = []
        for at in range(0, len(data), size):
            lines += splitter.feed(data[at : at + size])
        lines += splitter.close()
        assert lines == expected, size
