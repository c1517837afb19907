"""Local runs held to bounds and told apart from their neighbours (issue 12), with real
processes, sockets and venvs: a service is ready only when its own process listens (another
process on its port is named instead); a step starts at most --max-parallel stages at once;
`bodywork cleanup --local` removes old checkouts and unused venvs but nothing a live run
uses; a stage that printed nothing, an install that failed, a bootstrapper that could not
start (E2BIG) and a huge reason each end in a summary and a bounded, telling reason."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bodywork.core.errors import StageFailed, UsageError
from tests.conftest import free_port
from tests.local.conftest import RunEngine, Sink
from tests.local.projects import (
    WHEEL_REQUIREMENT,
    batch_stage,
    http_service_code,
    port_free,
    project_ini,
    run_bodywork,
    service_stage,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("offline_env")


def bodywork(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_bodywork(*args, env=env, timeout=240)


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def summary_row(stdout: str, stage: str) -> str:
    """The stage's row of the run summary (not its output lines, `stage | ...`)."""
    (row,) = [ln for ln in stdout.splitlines() if ln.split()[:2] == [stage, "batch"]]
    return row


@contextlib.contextmanager
def listener(port: int) -> Iterator[subprocess.Popen[str]]:
    """Another process (not a stage's) listening on 127.0.0.1:port."""
    code = textwrap.dedent(
        f"""
        import socket, sys, time
        s = socket.socket()
        s.bind(("127.0.0.1", {port}))
        s.listen(8)
        print("listening", flush=True)
        time.sleep(120)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, "other-listener"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "listening"
        yield process
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


# ------------------------------------------------------- 4. readiness is the stage's own port
def test_another_process_taking_the_port_during_startup_is_named_not_taken_for_ready(
    make_repo, engine: RunEngine
):
    """A process that binds the service's port while the stage is still starting: the
    stage fails naming that process (pid and command line), instead of counting as ready."""
    port = free_port()
    code = "print('starting slowly', flush=True)\nimport time\ntime.sleep(60)\n"
    repo = make_repo({"bodywork.ini": project_ini("serve"), **service_stage("serve", port, code)})
    sink = Sink()
    finished: list[object] = []
    thread = threading.Thread(target=lambda: finished.append(engine(repo, sink=sink)))
    thread.start()
    try:
        assert sink.wait_for("serve", "starting slowly", timeout=60), sink.lines
        with listener(port) as other:
            thread.join(timeout=60)
            assert not thread.is_alive()
            (run,) = finished
            result = run.result("serve")  # type: ignore[attr-defined]
            assert result.status == "failed", result.reason
            assert result.reason.startswith(
                f"port {port} accepts connections, but the listener is pid {other.pid} ("
            ), result.reason
            assert "other-listener" in result.reason
            assert result.reason.endswith(
                "not a process of this stage: stop it, or change the stage's PORT"
            )
            assert result.url is None
    finally:
        thread.join(timeout=60)


def test_a_port_already_taken_before_the_run_names_its_process(make_repo):
    """A port in use before the run starts: one error line naming who listens there."""
    port = free_port()
    code = http_service_code(port)
    repo = make_repo({"bodywork.ini": project_ini("serve"), **service_stage("serve", port, code)})
    with listener(port) as other:
        done = bodywork("run", str(repo))
    line = error_line(done)
    assert f"port {port} for service 'serve' is already in use on this machine (by pid " in line
    assert f"pid {other.pid} (" in line and "other-listener" in line, line


def test_a_service_whose_listener_is_a_child_of_its_code_is_ready(make_repo, engine: RunEngine):
    """The listening socket held by a process the stage's code started (a worker) is the
    stage's: ready, and it answers."""
    port = free_port()
    server = http_service_code(port, pid_file=None)
    code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {server!r}])
        child.wait()
        """
    )
    repo = make_repo({"bodywork.ini": project_ini("serve"), **service_stage("serve", port, code)})
    run = engine(repo)
    assert run.status("serve") == "succeeded", run.result("serve").reason
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
        assert answer.read() == b"ok from serve"


# --------------------------------------------------------------- 5. the concurrency cap
def counting_stage(name: str, folder: Path) -> dict[str, str]:
    """A batch stage that notes how many of its kind run while it does (files in `folder`)."""
    code = f"""
        import os, pathlib, time
        folder = pathlib.Path({str(folder)!r})
        folder.mkdir(exist_ok=True)
        mine = folder / {name!r}
        mine.write_text("running")
        peak = 0
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            peak = max(peak, len(list(folder.iterdir())))
            time.sleep(0.02)
        mine.unlink()
        print("peak", peak, flush=True)
        """
    return batch_stage(name, code)


def peaks(output: str) -> list[int]:
    return [int(line.rsplit(" ", 1)[1]) for line in output.splitlines() if "| peak " in line]


def test_max_parallel_starts_at_most_n_stages_of_a_step_at_once(make_repo, tmp_path):
    """A step of four stages with --max-parallel 2 (and with BODYWORK_MAX_PARALLEL=1): never
    more than that many run at once, the queued ones run as slots free, all succeed."""
    folder = tmp_path / "running"
    stages = ["s1", "s2", "s3", "s4"]
    files = {"bodywork.ini": project_ini(", ".join(stages))}
    for name in stages:
        files |= counting_stage(name, folder)
    repo = make_repo(files)
    done = bodywork("run", str(repo), "--max-parallel", "2", "--log-format", "console")
    assert done.returncode == 0, done.stderr
    found = peaks(done.stdout)
    assert len(found) == 4 and max(found) <= 2, done.stdout
    assert "stages_queued" in done.stderr and "max_parallel=2" in done.stderr
    done = bodywork("run", str(repo), env={"BODYWORK_MAX_PARALLEL": "1"})
    assert done.returncode == 0, done.stderr
    assert peaks(done.stdout) == [1, 1, 1, 1], done.stdout


def test_with_a_cap_the_first_failure_still_stops_the_step_and_queued_stages_do_not_start(
    make_repo, tmp_path
):
    """--max-parallel 1, a step `bad, later`: bad fails, later is not started (named so),
    the run exits 5 with its summary."""
    marker = tmp_path / "later-ran"
    repo = make_repo(
        {
            "bodywork.ini": project_ini("bad, later"),
            **batch_stage("bad", "import sys\nprint('broken')\nsys.exit(1)\n"),
            **batch_stage("later", f"open({str(marker)!r}, 'w').write('x')\n"),
        }
    )
    done = bodywork("run", str(repo), "--max-parallel", "1")
    assert done.returncode == StageFailed.exit_code, done.stderr
    assert not marker.exists()
    row = summary_row(done.stdout, "later")
    assert "not run" in row and "not started: bad failed first" in row, done.stdout


@pytest.mark.parametrize("value", ["0", "-3", "many", "100000"])
def test_an_unusable_max_parallel_is_one_error_line(make_repo, value):
    repo = make_repo({"bodywork.ini": project_ini("a"), **batch_stage("a", "print(1)\n")})
    done = bodywork("run", str(repo), env={"BODYWORK_MAX_PARALLEL": value})
    assert done.returncode == UsageError.exit_code
    line = error_line(done)
    assert line.startswith(f"error: BODYWORK_MAX_PARALLEL '{value}': give how many stages"), line


# ----------------------------------------------------------------------- 6. cleanup --local
def age(path: Path, days: float) -> None:
    """Set the times of `path` and everything under it `days` into the past."""
    import time

    moment = time.time() - days * 86400
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        with contextlib.suppress(OSError):
            os.utime(item, (moment, moment), follow_symlinks=False)


def venvs_of(home: Path) -> dict[str, Path]:
    """Stage name → its venv folder."""
    return {p.name.rsplit("-", 1)[0]: p for p in (home / "venvs").iterdir() if p.is_dir()}


def test_cleanup_local_removes_old_checkouts_and_venvs_but_nothing_a_live_run_uses(
    make_repo, tmp_path, offline_env
):
    """Old venvs and the folder a SIGKILLed run left go (listed first with --dry-run); the
    venv and run folder of a live service stay, even aged, and it keeps answering; the
    artifacts are never touched; --max-size then removes what is left unused."""
    wheel = WHEEL_REQUIREMENT + "\n"
    old = make_repo(
        {"bodywork.ini": project_ini("old", name="old"), **batch_stage("old", "x = 1\n", wheel)}
    )
    assert bodywork("run", str(old)).returncode == 0
    # A run SIGKILLed with a live service leaves its run folder (its checkout) behind.
    killed_port, live_port = free_port(), free_port()
    killed = make_repo(
        {
            "bodywork.ini": project_ini("gone", name="killed"),
            **service_stage("gone", killed_port, http_service_code(killed_port)),
        }
    )
    process = subprocess.Popen(["bodywork", "run", str(killed)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert any("is ready at" in line for line in iter(process.stdout.readline, ""))
        process.kill()
    finally:
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
    assert wait_for(lambda: port_free(killed_port), timeout=20)
    (left_behind,) = (offline_env / "runs").iterdir()
    # A live service with its own venv.
    live = make_repo(
        {
            "bodywork.ini": project_ini("live", name="live"),
            **service_stage("live", live_port, http_service_code(live_port)),
            "live/requirements.txt": wheel,
        }
    )
    serving = subprocess.Popen(["bodywork", "run", str(live)], stdout=subprocess.PIPE, text=True)
    try:
        assert serving.stdout is not None
        assert any("is ready at" in line for line in iter(serving.stdout.readline, ""))
        live_runs = {p for p in (offline_env / "runs").iterdir() if p != left_behind}
        (live_run,) = live_runs
        venvs = venvs_of(offline_env)
        for path in [*venvs.values(), left_behind, live_run]:
            age(path, 30)
        for lock in (offline_env / "venvs").glob("*.lock"):
            age(lock, 30)

        dry = bodywork("cleanup", "--local", "--older-than", "7d", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert f"would remove venv {venvs['old']} (" in dry.stdout
        assert f"would remove run folder {left_behind} (" in dry.stdout
        assert f"kept venv {venvs['live']}: pid " in dry.stdout and "runs from it" in dry.stdout
        assert f"kept run folder {live_run}: run " in dry.stdout, dry.stdout
        assert venvs["old"].is_dir() and left_behind.is_dir()

        done = bodywork("cleanup", "--local", "--older-than", "7d")
        assert done.returncode == 0, done.stderr
        assert f"removed venv {venvs['old']} (" in done.stdout
        assert not venvs["old"].exists() and not left_behind.exists()
        assert not (offline_env / "venvs" / f"{venvs['old'].name}.lock").exists()
        assert venvs["live"].is_dir() and live_run.is_dir()
        with urllib.request.urlopen(f"http://127.0.0.1:{live_port}/", timeout=5) as answer:
            assert answer.read() == b"ok from live"
    finally:
        serving.send_signal(signal.SIGINT)
        serving.wait(timeout=30)
        if serving.stdout is not None:
            serving.stdout.close()
    age(venvs["live"], 30)
    for lock in [*(offline_env / "venvs").glob("*.lock"), *(offline_env / "commits").iterdir()]:
        age(lock, 30)
    cached = [p for p in (offline_env / "commits").iterdir() if p.is_dir()]
    assert cached  # the bootstrappers' commit cache
    done = bodywork("cleanup", "--local", "--older-than", "1000d", "--max-size", "0")
    assert done.returncode == 0, done.stderr
    assert f"removed venv {venvs['live']} (" in done.stdout, done.stdout
    assert f"removed cached commit {cached[0]} (" in done.stdout, done.stdout
    assert not list(venvs_of(offline_env))
    assert not [p for p in (offline_env / "commits").iterdir() if not p.name.startswith(".")]
    artifacts = sorted(p.name.split("-")[0] for p in (offline_env / "projects").iterdir())
    assert artifacts == ["killed", "live", "old"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--older-than", "soon"], "--older-than 'soon': give a number with a unit"),
        (["--max-size", "lots"], "--max-size 'lots': give a size such as 5G"),
        (["--services"], "--services is for a namespace"),
    ],
)
def test_cleanup_local_refuses_unusable_bounds_in_one_line(args, says):
    done = bodywork("cleanup", "--local", *args)
    assert done.returncode == UsageError.exit_code
    assert error_line(done).startswith(f"error: {says}"), done.stderr


# -------------------------------------------------------- 7. reasons: silent, install, E2BIG
def test_a_stage_that_printed_nothing_is_said_to_have_printed_nothing(make_repo, engine):
    """Not the bootstrapper's "prepared …; running main.py" line, which is no reason."""
    repo = make_repo({"bodywork.ini": project_ini("quiet"), **batch_stage("quiet", "exit(3)\n")})
    result = engine(repo).result("quiet")
    assert result.status == "failed"
    assert result.reason == "exited with code 3 and printed nothing"


def test_a_failed_install_is_reported_with_uvs_explanation_and_a_one_line_summary(make_repo):
    """The reason holds the requirement and uv's own lines; the summary row stays one line."""
    repo = make_repo(
        {
            "bodywork.ini": project_ini("train"),
            **batch_stage("train", "print(1)\n", "no-such-package-bw==1.0\n"),
        }
    )
    done = bodywork("run", str(repo))
    assert done.returncode == StageFailed.exit_code, done.stderr
    row = summary_row(done.stdout, "train")
    assert "requirement 'no-such-package-bw==1.0' (requirements.txt line 1)" in row
    assert row.endswith(" line(s)]"), row
    error = done.stderr[done.stderr.index("error: stage 'train' failed: bootstrap failed:") :]
    assert "could not be installed:" in error and "no-such-package-bw" in error.split("\n", 1)[1]


def test_a_bootstrapper_that_cannot_start_fails_its_stage_and_the_run_prints_its_summary(
    make_repo, tmp_path
):
    """A stage secret of 200 KiB (one env value over the kernel's 128 KiB: E2BIG): the stage
    fails naming the cause and the fix, its on-failure stage runs, the summary is printed
    and the run exits 5, instead of one bare OSError line."""
    repo = make_repo(
        {
            "bodywork.ini": project_ini("train") + "ON_FAILURE = alert\n",
            **batch_stage("train", "print('never')\n"),
            "train/config.ini": "[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = main.py\n"
            "[secrets]\nBW_BIG_VALUE = big\n",
            **batch_stage(
                "alert", "import os\nprint('alerted:', os.environ['BODYWORK_FAILED_STAGE'])\n"
            ),
        }
    )
    secrets = tmp_path / "secrets.ini"
    secrets.write_text("[big]\nBW_BIG_VALUE = " + "x" * 200_000 + "\n")
    done = bodywork("run", str(repo), "--secrets-file", str(secrets))
    assert done.returncode == StageFailed.exit_code, done.stderr
    row = summary_row(done.stdout, "train")
    assert (
        "failed" in row and "cannot start its bootstrapper: Argument list too long (E2BIG)" in row
    )
    assert "alerted: train" in done.stdout + done.stderr
    line = error_line(done)
    assert "pass big values in a file instead" in line
    assert "x" * 1000 not in done.stdout + done.stderr  # the secret is never printed


def test_a_huge_reason_is_cut_in_the_summary_and_the_error_line(make_repo):
    """A stage whose last line is 60,000 characters: the summary row and the error line
    keep its start and end and say how much was cut."""
    code = "import sys\nprint('start-' + 'y' * 60000 + '-end')\nsys.exit(1)\n"
    repo = make_repo({"bodywork.ini": project_ini("loud"), **batch_stage("loud", code)})
    done = bodywork("run", str(repo))
    assert done.returncode == StageFailed.exit_code
    line = error_line(done)
    assert line.startswith("error: stage 'loud' failed: exited with code 1: start-yyy"), line[:80]
    assert line.endswith("y-end") and "characters cut …]" in line and len(line) < 700
    row = summary_row(done.stdout, "loud")
    assert "characters cut …]" in row and len(row) < 400
