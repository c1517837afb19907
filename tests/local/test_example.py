"""End to end: `bodywork run examples/<each>` trains, serves, scores and stops cleanly.

A real `bodywork` process installs scikit-learn from PyPI (hence `network`), trains the
model, serves it (port 5000 or 5001), answers a scoring request, and on Ctrl-C (SIGINT) exits with
130 leaving neither the port nor any process behind. The run uses the committed HEAD of
this repository, so the answer must name that commit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from bodywork.engine.executors.local import port_in_use
from tests.conftest import REPO_ROOT, git

PORT = 5000
YAML_PORT = 5001  # examples/yaml-pipeline serves here
READY_TIMEOUT_SECONDS = 300
STOP_TIMEOUT_SECONDS = 20
# Persistent across test runs so only the first run downloads scikit-learn and friends.
UV_CACHE = Path.home() / ".cache" / "bodywork-test-uv"
IRIS_SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def processes_mentioning(text: str) -> dict[int, str]:
    """pid → command line of every process whose command line contains `text`."""
    found = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            raw = cmdline.read_bytes()
        except OSError:  # the process ended while we looked
            continue
        command = raw.replace(b"\0", b" ").decode(errors="replace")
        if text in command:
            found[int(cmdline.parent.name)] = command
    return found


def wait_for_line(path: Path, wanted: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if wanted in path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(
        f"no '{wanted}' on stdout (exit code {process.poll()}):\n{path.read_text()}"
        f"\n--- stderr ---\n{path.with_name('stderr.txt').read_text()}"
    )


def score(payload: dict[str, float], port: int = PORT) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://localhost:{port}/iris/v1/score",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.network
@pytest.mark.parametrize(
    ("example", "port"), [("train-and-deploy", PORT), ("yaml-pipeline", YAML_PORT)]
)
def test_example_runs_serves_and_stops(tmp_path: Path, example: str, port: int) -> None:
    """Both examples: bodywork.ini (train-and-deploy) and bodywork.yaml (yaml-pipeline, whose
    modules share a folder and take `args`)."""
    if port_in_use(port):
        pytest.skip(f"port {port} is already in use on this machine; the example serves there")
    home = tmp_path / "bodywork-home"
    env = {**os.environ, "BODYWORK_HOME": str(home), "UV_CACHE_DIR": str(UV_CACHE)}
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    head = git(REPO_ROOT, "rev-parse", "HEAD")  # read first: others may commit meanwhile
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            ["bodywork", "run", f"examples/{example}"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    try:
        wait_for_line(stdout, f"ready at http://localhost:{port}", process, READY_TIMEOUT_SECONDS)

        answer = score(IRIS_SETOSA, port)
        assert answer["species_prediction"] == "setosa", answer
        assert answer["model_commit"] == head, answer

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=STOP_TIMEOUT_SECONDS) == 130, stdout.read_text()
        assert not port_in_use(port), f"port {port} still answers after the run stopped"
        assert processes_mentioning(str(home)) == {}, "stage processes outlived the run"
    finally:
        # Only on failure is anything left: end the run and whatever it started, by pid.
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in processes_mentioning(str(home)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
