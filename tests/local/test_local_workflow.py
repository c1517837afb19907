"""The workflow engine with the LocalExecutor, in-process, over real committed projects:
every stage is a real bootstrap subprocess with a real uv venv (offline wheelhouse)."""

from __future__ import annotations

import textwrap
import threading
import urllib.request

import pytest

from bodywork.core.results import (
    FAILED,
    NOT_RUN,
    STOPPED,
    SUCCEEDED,
    TIMED_OUT,
)
from tests.conftest import commit_all, free_port, git, serve_bare, write_files
from tests.local.conftest import EngineRun, Sink
from tests.local.projects import (
    WHEEL_REQUIREMENT,
    batch_stage,
    http_service_code,
    port_free,
    process_gone,
    project_ini,
    service_stage,
)

ARTIFACTS = "pathlib.Path(os.environ['BODYWORK_ARTIFACTS_DIR'])"

RECORD_ORDER = f"""
    import os, pathlib
    with open({ARTIFACTS} / "order.log", "a") as log:
        log.write(os.environ["BODYWORK_STAGE"] + "\\n")
"""

WAIT_FOR_SIBLING = f"""
    import os, pathlib, sys, time
    art = {ARTIFACTS}
    me = os.environ["BODYWORK_STAGE"]
    other = {{"left": "right", "right": "left"}}[me]
    (art / (me + ".started")).touch()
    deadline = time.monotonic() + 10
    while not (art / (other + ".started")).exists():
        if time.monotonic() > deadline:
            print(me, "never saw", other)
            sys.exit(1)
        time.sleep(0.05)
    print(me, "saw", other, "running at the same time")
    with open(art / "order.log", "a") as log:
        log.write(me + "\\n")
"""

WRITE_PID_AND_SLEEP = f"""
    import os, pathlib, time
    ({ARTIFACTS} / (os.environ["BODYWORK_STAGE"] + ".pid")).write_text(str(os.getpid()))
    print("sleeping", flush=True)
    time.sleep(60)
"""


def pid_of(run: EngineRun, stage: str) -> int:
    return int((run.artifacts / f"{stage}.pid").read_text())


def test_three_step_dag_runs_steps_in_order_and_a_steps_stages_concurrently(make_repo, engine):
    """Steps run one after another; the two stages of step 2 run at the same time."""
    prepare = (
        "import bwtest_greeting\nprint('prepare says', bwtest_greeting.greet())\n"
        + textwrap.dedent(RECORD_ORDER)
    )
    repo = make_repo(
        {
            "bodywork.ini": project_ini("prepare >> left, right >> report"),
            **batch_stage("prepare", prepare, requirements=WHEEL_REQUIREMENT + "\n"),
            **batch_stage("left", WAIT_FOR_SIBLING),
            **batch_stage("right", WAIT_FOR_SIBLING),
            **batch_stage("report", RECORD_ORDER),
        }
    )
    run = engine(repo)
    assert [(r.stage, r.status) for r in run.outcome.results] == [
        ("prepare", SUCCEEDED),
        ("left", SUCCEEDED),
        ("right", SUCCEEDED),
        ("report", SUCCEEDED),
    ]
    assert run.outcome.succeeded
    assert run.outcome.commit == git(repo, "rev-parse", "HEAD")
    assert "prepare says hello" in run.sink.of("prepare")
    assert "left saw right running at the same time" in run.sink.of("left")
    assert "right saw left running at the same time" in run.sink.of("right")
    order = (run.artifacts / "order.log").read_text().split()
    assert order[0] == "prepare" and order[-1] == "report"
    assert sorted(order[1:3]) == ["left", "right"]


def test_failing_stage_fails_its_step_stops_sibling_and_skips_later_steps(make_repo, engine):
    """A stage exiting 1 fails step 2, stops its running sibling, and step 3 is not run."""
    bad = f"""
        import os, pathlib, sys, time
        pid_file = {ARTIFACTS} / "slow.pid"
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        print("bad thing happened")
        sys.exit(1)
    """
    repo = make_repo(
        {
            "bodywork.ini": project_ini("first >> bad, slow >> never"),
            **batch_stage("first", "print('first ran')\n"),
            **batch_stage("bad", bad),
            **batch_stage("slow", WRITE_PID_AND_SLEEP),
            **batch_stage("never", "print('never should run')\n"),
        }
    )
    run = engine(repo)
    assert run.result("first").status == SUCCEEDED
    assert run.result("bad").status == FAILED
    assert run.result("bad").reason == "exited with code 1: bad thing happened"
    assert run.result("slow").status == STOPPED
    assert run.result("never").status == NOT_RUN
    assert run.result("never").reason == "step 2 failed"
    assert run.sink.of("never") == []
    assert not run.outcome.succeeded
    assert run.outcome.failed_result is run.result("bad")
    assert run.seconds < 15  # slow's 60 s sleep was cut short
    assert process_gone(pid_of(run, "slow"))


def test_retry_after_a_failed_attempt_succeeds(make_repo, engine):
    """With RETRIES=1 a stage failing once and then succeeding succeeds on attempt 2."""
    flaky = f"""
        import os, pathlib, sys
        marker = {ARTIFACTS} / "tried-once"
        if not marker.exists():
            marker.touch()
            print("attempt one fails")
            sys.exit(1)
        print("attempt two succeeds")
    """
    repo = make_repo(
        {"bodywork.ini": project_ini("flaky"), **batch_stage("flaky", flaky, retries=1)}
    )
    run = engine(repo)
    result = run.result("flaky")
    assert result.status == SUCCEEDED
    assert result.attempts == 2
    lines = run.sink.of("flaky")
    assert "attempt one fails" in lines and "attempt two succeeds" in lines
    assert any(ln.startswith("[bodywork] attempt 1 failed (exited with code 1") for ln in lines)


def test_retries_exhausted_fails_after_every_attempt(make_repo, engine):
    """A stage that always fails with RETRIES=1 fails after exactly 2 attempts."""
    repo = make_repo(
        {
            "bodywork.ini": project_ini("broken"),
            **batch_stage("broken", "import sys\nprint('still broken')\nsys.exit(4)\n", retries=1),
        }
    )
    result = engine(repo).result("broken")
    assert result.status == FAILED
    assert result.attempts == 2
    assert result.reason == "exited with code 4: still broken"


def test_stage_exceeding_max_completion_time_times_out_and_is_ended(make_repo, engine):
    """MAX_COMPLETION_TIME_SECONDS=2 ends a 60 s stage: 'timed out' and its process is gone."""
    repo = make_repo(
        {
            "bodywork.ini": project_ini("stuck"),
            **batch_stage("stuck", WRITE_PID_AND_SLEEP, max_seconds=2),
        }
    )
    run = engine(repo)
    result = run.result("stuck")
    assert result.status == TIMED_OUT
    assert "MAX_COMPLETION_TIME_SECONDS" in result.reason
    assert 2 <= run.seconds < 10
    assert process_gone(pid_of(run, "stuck"))


def test_service_is_ready_answers_http_and_close_frees_port(make_repo, engine):
    """A service succeeds with its URL, serves a later step, and close() ends it."""
    port = free_port()
    client = f"""
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:{port}/", timeout=5) as response:
            print("client got:", response.read().decode())
    """
    repo = make_repo(
        {
            "bodywork.ini": project_ini("serve >> client"),
            **service_stage("serve", port, http_service_code(port)),
            **batch_stage("client", client),
        }
    )
    run = engine(repo)
    serve = run.result("serve")
    assert serve.status == SUCCEEDED
    assert serve.url == f"http://localhost:{port}"
    assert run.result("client").status == SUCCEEDED
    assert "client got: ok from serve" in run.sink.of("client")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        assert response.read() == b"ok from serve"
    assert [h.stage.name for h in run.executor.running_services()] == ["serve"]
    pid = int((run.artifacts / "service.pid").read_text())
    bootstrap_pids = [h.process.pid for h in run.executor.handles if h.process is not None]
    assert not process_gone(pid)

    run.executor.close()
    assert run.executor.running_services() == []
    assert process_gone(pid)
    assert all(process_gone(p) for p in bootstrap_pids)
    assert port_free(port)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


def test_service_exiting_before_listening_fails_with_reason(make_repo, engine):
    """A service that exits before its port accepts connections fails, saying why."""
    port = free_port()
    code = "import sys\nprint('cannot load model')\nsys.exit(1)\n"
    repo = make_repo({"bodywork.ini": project_ini("serve"), **service_stage("serve", port, code)})
    result = engine(repo).result("serve")
    assert result.status == FAILED
    assert result.reason == (
        f"exited with code 1: cannot load model (before listening on port {port})"
    )
    assert result.url is None


def test_service_never_listening_times_out_at_max_startup_time(make_repo, engine):
    """A service not listening within MAX_STARTUP_TIME_SECONDS=2 times out and is ended."""
    port = free_port()
    repo = make_repo(
        {
            "bodywork.ini": project_ini("serve"),
            **service_stage("serve", port, WRITE_PID_AND_SLEEP, startup_seconds=2),
        }
    )
    run = engine(repo)
    result = run.result("serve")
    assert result.status == TIMED_OUT
    assert f"did not listen on port {port} within 2 s" in result.reason
    assert "MAX_STARTUP_TIME_SECONDS" in result.reason
    assert "MAX_STARTUP_TIME_SECONDS" in result.reason
    assert 2 <= run.seconds < 10
    assert process_gone(pid_of(run, "serve"))
    assert run.executor.running_services() == []


def test_artifacts_written_by_a_stage_reach_a_later_stage(make_repo, engine):
    """A file a batch stage writes to BODYWORK_ARTIFACTS_DIR is read by the next step."""
    train = f"""
        import os, pathlib
        ({ARTIFACTS} / "model.txt").write_text("weights=42 run=" + os.environ["BODYWORK_RUN_ID"])
    """
    use = f"""
        import os, pathlib
        print("loaded", ({ARTIFACTS} / "model.txt").read_text())
    """
    repo = make_repo(
        {
            "bodywork.ini": project_ini("train >> use"),
            **batch_stage("train", train),
            **batch_stage("use", use),
        }
    )
    run = engine(repo)
    assert run.outcome.succeeded
    loaded = [ln for ln in run.sink.of("use") if ln.startswith("loaded ")]
    assert loaded == [f"loaded weights=42 run={run.outcome.run_id}"]
    assert (run.artifacts / "model.txt").is_file()


def test_local_run_uses_committed_code_not_uncommitted_edits(make_repo, engine):
    """An edit not yet committed is not what the stage runs."""
    repo = make_repo(
        {"bodywork.ini": project_ini("s"), **batch_stage("s", "print('committed code')\n")}
    )
    write_files(repo, {"s/main.py": "print('uncommitted edit')\n"})
    run = engine(repo)
    assert run.outcome.succeeded
    assert "committed code" in run.sink.of("s")
    assert "uncommitted edit" not in run.sink.of("s")


def test_commit_stays_pinned_when_branch_is_pushed_mid_run(make_repo, git_daemon, engine, tmp_path):
    """A push to the served branch during a run does not change what later stages run."""
    base, daemon_url = git_daemon
    go = tmp_path / "go"
    hold = f"""
        import pathlib, time
        print("holding", flush=True)
        go = pathlib.Path({str(go)!r})
        deadline = time.monotonic() + 30
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    """
    report = """
        import os, pathlib
        root = pathlib.Path(__file__).resolve().parent.parent
        print("commit", os.environ["BODYWORK_GIT_COMMIT"])
        print("data", (root / "data.txt").read_text().strip())
    """
    repo = make_repo(
        {
            "bodywork.ini": project_ini("hold >> report"),
            "data.txt": "original\n",
            **batch_stage("hold", hold),
            **batch_stage("report", report),
        }
    )
    original = git(repo, "rev-parse", "HEAD")
    bare = serve_bare(repo, base)
    sink = Sink()
    runs: list[EngineRun] = []
    thread = threading.Thread(
        target=lambda: runs.append(engine(repo, f"{daemon_url}/project.git", sink)), daemon=True
    )
    thread.start()
    try:
        assert sink.wait_for("hold", "holding", timeout=30), sink.lines
        write_files(repo, {"data.txt": "pushed mid-run\n"})
        pushed = commit_all(repo, "pushed mid-run")
        git(repo, "push", "-q", str(bare), "main")
        assert git(bare, "rev-parse", "main") == pushed
    finally:
        go.touch()
        thread.join(timeout=60)
    assert runs, "the run did not finish"
    run = runs[0]
    assert run.outcome.succeeded, [(r.stage, r.status, r.reason) for r in run.outcome.results]
    assert run.outcome.commit == original
    assert f"commit {original}" in run.sink.of("report")
    assert "data original" in run.sink.of("report")


def test_service_that_crashes_after_becoming_ready_fails_the_run(make_repo, engine):
    """A service that dies while a later step runs fails the run with its exit reason."""
    port = free_port()
    crashing = f"""
        import socket, sys, time
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", {port}))
        server.listen()
        time.sleep(1)
        print("model server lost its model")
        sys.exit(3)
    """
    repo = make_repo(
        {
            "bodywork.ini": project_ini("serve >> wait >> after"),
            **service_stage("serve", port, crashing),
            **batch_stage("wait", "import time\ntime.sleep(3)\n"),
            **batch_stage("after", "print('must not run')\n"),
        }
    )
    run = engine(repo)
    serve = run.result("serve")
    assert serve.status == FAILED
    assert serve.reason == (
        "crashed after becoming ready: exited with code 3: model server lost its model; rolled back"
    )
    assert run.result("wait").status == SUCCEEDED
    assert run.result("after").status == "not run"
    assert run.outcome.failed_step == 1  # resume reruns from the service's own step
