"""The `bodywork` console script as a real subprocess: exit codes, messages, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from queue import Empty, Queue
from typing import IO

import pytest

from tests.conftest import free_port
from tests.local.projects import (
    batch_stage,
    http_service_code,
    port_free,
    process_gone,
    project_ini,
    service_stage,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("offline_env")


def bodywork(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bodywork", *args], capture_output=True, text=True, timeout=timeout, env=os.environ
    )


GOOD_PROJECT = {
    "bodywork.ini": project_ini("train >> report"),
    **batch_stage("train", "print('training')\n"),
    **batch_stage("report", "print('reporting')\n"),
}


def test_validate_good_project_exits_0(make_repo):
    """`validate` on a correct project exits 0 and summarises it."""
    repo = make_repo(GOOD_PROJECT)
    done = bodywork("validate", str(repo))
    assert done.returncode == 0, done.stderr
    assert "bodywork.ini OK: project 'demo', 2 stage(s) in 2 step(s)" in done.stdout


def test_validate_bad_project_exits_2_listing_every_problem(make_repo):
    """`validate` reports each problem of a broken project at once, exit 2, no traceback."""
    repo = make_repo(
        {
            "bodywork.ini": project_ini("train >> serve >> missing"),
            "train/config.ini": "[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = train.py\n"
            "RETIRES = 2\n",
            "train/requirements.txt": "",
            "train/train_model.py": "",
            "serve/config.ini": "[default]\nSTAGE_TYPE = service\nEXECUTABLE_SCRIPT = s.py\n",
            "serve/s.py": "",
            "serve/requirements.txt": "",
        }
    )
    done = bodywork("validate", str(repo))
    assert done.returncode == 2, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    # An unknown key is a warning, as the original ignored it; --strict makes it an error.
    assert "the project has 3 problems:" in done.stderr
    assert (
        "warning: train/config.ini: RETIRES: unknown key in [default] "
        "(did you mean RETRIES, in [batch]?)" in done.stderr
    )
    for problem in (
        "train/config.ini: EXECUTABLE_SCRIPT: 'train.py' does not exist in train/ "
        "(did you mean train_model.py?)",
        "serve/config.ini: PORT: missing: add PORT = ... under [service]",
        "bodywork.ini: DAG: stage 'missing' has no directory 'missing/' in the project",
    ):
        assert problem in done.stderr
    strict = bodywork("validate", "--strict", str(repo))
    assert strict.returncode == 2
    assert "the project has 4 problems:" in strict.stderr
    assert "  train/config.ini: RETIRES: unknown key in [default]" in strict.stderr


def test_run_with_failing_stage_exits_5_with_summary_and_reason(make_repo):
    """`run` of a failing project exits 5, prints the summary table and why it failed."""
    repo = make_repo(
        {
            "bodywork.ini": project_ini("ok >> bad >> after"),
            **batch_stage("ok", "print('ok ran')\n"),
            **batch_stage("bad", "import sys\nprint('the data is corrupt')\nsys.exit(1)\n"),
            **batch_stage("after", "print('after ran')\n"),
        }
    )
    done = bodywork("run", str(repo))
    assert done.returncode == 5, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "ok    | ok ran" in done.stdout
    assert "after ran" not in done.stdout
    table = done.stdout[done.stdout.index("STAGE") :].splitlines()
    assert table[0].split() == [
        "STAGE", "TYPE", "RESULT", "ATTEMPTS", "DURATION", "INSTALL", "RUN", "DETAIL"
    ]  # fmt: skip
    assert table[1].split()[:3] == ["ok", "batch", "succeeded"]
    assert table[2].split()[:3] == ["bad", "batch", "failed"]
    assert table[2].endswith("exited with code 1: the data is corrupt")
    assert table[3].split()[:4] == ["after", "batch", "not", "run"]
    assert " FAILED" in done.stdout
    assert "error: stage 'bad' failed: exited with code 1: the data is corrupt" in done.stderr


def test_run_on_a_path_outside_git_exits_3_with_one_line(tmp_path):
    """`run` on a directory that is no git repo exits 3 with one clear error line."""
    plain = tmp_path / "plain"
    plain.mkdir()
    done = bodywork("run", str(plain))
    assert done.returncode == 3
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {plain} is not inside a git repository")


def _lines(stream: IO[str]) -> Queue[str]:
    lines: Queue[str] = Queue()

    def pump() -> None:
        for line in iter(stream.readline, ""):
            lines.put(line.rstrip("\n"))
        stream.close()

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_run_with_service_stays_up_until_ctrl_c_then_cleans_up(make_repo, tmp_path: Path):
    """`run` reports the service URL, serves it, and SIGINT exits 130 leaving nothing behind."""
    port = free_port()
    pid_file = tmp_path / "service.pid"
    repo = make_repo(
        {
            "bodywork.ini": project_ini("train >> serve"),
            **batch_stage("train", "print('trained')\n"),
            **service_stage("serve", port, http_service_code(port, str(pid_file))),
        }
    )
    process = subprocess.Popen(
        ["bodywork", "run", str(repo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        env=os.environ,
    )
    stderr: list[str] = []
    err_reader = threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True)
    err_reader.start()
    try:
        lines = _lines(process.stdout)
        seen: list[str] = []
        wanted = f"service serve is ready at http://localhost:{port}"
        deadline = time.monotonic() + 30
        while wanted not in seen:
            try:
                seen.append(lines.get(timeout=max(0.01, deadline - time.monotonic())))
            except Empty:
                raise AssertionError(f"no {wanted!r}; stdout {seen}; stderr {stderr}") from None
        with urllib.request.urlopen(f"http://localhost:{port}/", timeout=5) as response:
            assert response.read() == b"ok from serve"
        pid = int(pid_file.read_text())
        assert not process_gone(pid)
        assert process.poll() is None  # services keep running until Ctrl-C

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    err_reader.join(timeout=5)
    assert "Traceback" not in "".join(stderr)
    assert "stopping: ending every stage process" in "".join(stderr)
    assert wait_for(lambda: port_free(port), timeout=2)
    assert process_gone(pid)
