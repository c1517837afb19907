"""`--log-format auto` (the default): JSON lines when stderr is not a terminal (a pod's log,
a pipe, a file), the console format when it is. Real `bodywork run` subprocesses, their
stderr a real pipe or the slave side of a real pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import threading
from pathlib import Path

import pytest

from bodywork.cli import logsetup
from tests.local.projects import batch_stage, project_ini

pytestmark = pytest.mark.usefixtures("offline_env")

# What a one-stage run logs at info, in order (engine.controller, engine.workflow).
RUN_EVENTS = ["source_pinned", "run_started", "stage_started", "stage_finished", "run_finished"]
ANSI_ESCAPE = "\x1b["


@pytest.fixture
def project(make_repo) -> Path:
    return make_repo(
        {"bodywork.ini": project_ini("hello"), **batch_stage("hello", "print('hi')\n")}
    )


def run_with_pipe(project: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bodywork", "run", str(project), *flags], capture_output=True, text=True, timeout=120
    )


def run_with_terminal(project: Path, *flags: str) -> tuple[int, str, str]:
    """(exit code, stdout, what reached the terminal) with stderr on a pseudo-terminal."""
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:  # read as it comes: a full pty buffer would block the child
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed the slave side
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        process = subprocess.Popen(
            ["bodywork", "run", str(project), *flags],
            stdout=subprocess.PIPE,
            stderr=slave,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        os.close(slave)
        stdout, _ = process.communicate(timeout=120)
        reader.join(timeout=10)
    finally:
        os.close(master)
    terminal = b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
    return process.returncode, stdout, terminal


def json_lines(stderr: str) -> list[dict[str, object]]:
    """Every line of stderr as JSON (each must parse: nothing else is logged on success)."""
    records = []
    for line in stderr.splitlines():
        if line.strip():
            record = json.loads(line)
            assert isinstance(record, dict), line
            records.append(record)
    return records


def test_auto_writes_one_json_object_per_line_into_a_pipe(project: Path) -> None:
    done = run_with_pipe(project)
    assert done.returncode == 0, done.stderr
    records = json_lines(done.stderr)
    for record in records:
        assert {"event", "level", "timestamp"} <= record.keys(), record
        assert isinstance(record["timestamp"], str) and record["timestamp"].endswith("Z")
    events = [r["event"] for r in records]
    assert [e for e in events if e in RUN_EVENTS] == RUN_EVENTS
    finished = next(r for r in records if r["event"] == "stage_finished")
    assert finished["stage"] == "hello" and finished["result"] == "succeeded"
    assert finished["level"] == "info"
    assert "hello | hi" in done.stdout, "stdout is the run's output, never log records"


def test_auto_writes_the_console_format_on_a_terminal(project: Path) -> None:
    code, stdout, terminal = run_with_terminal(project)
    assert code == 0, terminal
    logged = [ln for ln in terminal.splitlines() if ln.strip()]
    assert any("stage_finished" in ln for ln in logged), terminal
    for line in logged:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    assert ANSI_ESCAPE in terminal, "a terminal gets colours"
    assert "hello | hi" in stdout


def test_json_and_console_force_the_format_whatever_stderr_is(project: Path) -> None:
    code, _, terminal = run_with_terminal(project, "--log-format", "json")
    assert code == 0, terminal
    assert "stage_finished" in [r["event"] for r in json_lines(terminal)]

    done = run_with_pipe(project, "--log-format", "console")
    assert done.returncode == 0, done.stderr
    assert "stage_finished" in done.stderr
    assert not done.stderr.lstrip().startswith("{")
    assert ANSI_ESCAPE not in done.stderr, "no colours into a pipe"


def test_wants_json_looks_at_the_stream_it_is_given(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    try:
        with open(slave, "w", closefd=False) as terminal, open(tmp_path / "log", "w") as file:
            assert logsetup.wants_json("auto", file) is True
            assert logsetup.wants_json("auto", terminal) is False
            assert logsetup.wants_json("json", terminal) is True
            assert logsetup.wants_json("console", file) is False
        closed = open(tmp_path / "closed", "w")  # noqa: SIM115
        closed.close()
        assert logsetup.wants_json("auto", closed) is True  # isatty raises: not a terminal
        with pytest.raises(ValueError, match="not one of auto, console, json"):
            logsetup.wants_json("yaml")
    finally:
        os.close(slave)
        os.close(master)
