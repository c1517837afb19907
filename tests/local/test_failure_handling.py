"""What happens around a failure, with real local runs: the on-failure stage, resuming from
a later step (skip_steps), and the completion webhook of `bodywork run`."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bodywork.core.results import FAILED, NOT_RUN, SKIPPED, SUCCEEDED
from bodywork.engine import notify
from tests.conftest import free_port
from tests.local.projects import batch_stage, project_ini

ARTIFACTS = "pathlib.Path(os.environ['BODYWORK_ARTIFACTS_DIR'])"

# The on-failure stage records the environment it was given, for the test to read.
DUMP_ENV = f"""
    import json, os, pathlib
    wanted = lambda k: k.startswith("BODYWORK_") or k == "EXCEPTION_MESSAGE"
    env = {{k: v for k, v in os.environ.items() if wanted(k)}}
    ({ARTIFACTS} / "on-failure-env.json").write_text(json.dumps(env))
    print("on-failure ran for", env.get("BODYWORK_FAILED_STAGE"))
"""

TOUCH_MARKER = f"""
    import os, pathlib
    ({ARTIFACTS} / (os.environ["BODYWORK_STAGE"] + ".ran")).write_text("ran")
    print(os.environ["BODYWORK_STAGE"], "ran")
"""

FAIL = "import sys\nprint('the data is corrupt')\nsys.exit(1)\n"


def with_on_failure(dag: str, stage: str = "notify-failure") -> str:
    return project_ini(dag) + f"ON_FAILURE = {stage}\n"


def test_on_failure_stage_runs_after_a_failure_told_which_stage_failed_and_why(make_repo, engine):
    """ON_FAILURE runs once a step fails, with BODYWORK_FAILED_STAGE and the reason."""
    repo = make_repo(
        {
            "bodywork.ini": with_on_failure("prepare >> train >> report"),
            **batch_stage("prepare", TOUCH_MARKER),
            **batch_stage("train", FAIL),
            **batch_stage("report", TOUCH_MARKER),
            **batch_stage("notify-failure", DUMP_ENV),
        }
    )
    run = engine(repo)
    assert [(r.stage, r.status) for r in run.outcome.results] == [
        ("prepare", SUCCEEDED),
        ("train", FAILED),
        ("report", NOT_RUN),
    ]
    assert not run.outcome.succeeded  # the on-failure stage never turns a failure green
    assert run.outcome.failed_result is not None
    assert run.outcome.failed_result.stage == "train"
    on_failure = run.outcome.on_failure
    assert on_failure is not None
    assert on_failure.stage == "notify-failure"
    assert on_failure.status == SUCCEEDED
    assert on_failure.stage_type == "on-failure"
    env = json.loads((run.artifacts / "on-failure-env.json").read_text())
    assert env["BODYWORK_FAILED_STAGE"] == "train"
    assert "exited with code 1: the data is corrupt" in env["BODYWORK_FAILURE_REASON"]
    assert env["BODYWORK_FAILURE_REASON"].startswith("failed")
    # the original's name for it, which its users' failure stages read
    assert "the data is corrupt" in env["EXCEPTION_MESSAGE"]
    assert env["BODYWORK_STAGE"] == "notify-failure"
    assert env["BODYWORK_RUN_ID"] == run.outcome.run_id
    assert ("notify-failure", "on-failure ran for train") in run.lines
    assert not (run.artifacts / "report.ran").exists()


def test_on_failure_stage_does_not_run_when_every_step_succeeds(make_repo, engine):
    """A green run never starts the on-failure stage."""
    repo = make_repo(
        {
            "bodywork.ini": with_on_failure("prepare >> train"),
            **batch_stage("prepare", TOUCH_MARKER),
            **batch_stage("train", TOUCH_MARKER),
            **batch_stage("notify-failure", DUMP_ENV),
        }
    )
    run = engine(repo)
    assert run.outcome.succeeded
    assert run.outcome.on_failure is None
    assert (run.artifacts / "train.ran").exists()
    assert not (run.artifacts / "on-failure-env.json").exists()
    assert [s for s, _ in run.lines if s == "notify-failure"] == []


def test_a_failing_on_failure_stage_is_reported_and_the_original_failure_kept(make_repo, engine):
    """If the on-failure stage itself fails, its failure is recorded beside the real one."""
    repo = make_repo(
        {
            "bodywork.ini": with_on_failure("train"),
            **batch_stage("train", FAIL),
            **batch_stage("notify-failure", "import sys\nprint('pager down')\nsys.exit(3)\n"),
        }
    )
    run = engine(repo)
    assert run.outcome.failed_result is not None
    assert run.outcome.failed_result.stage == "train"
    assert run.outcome.on_failure is not None
    assert run.outcome.on_failure.status == FAILED
    assert run.outcome.on_failure.reason == "exited with code 3: pager down"
    assert not run.outcome.succeeded


def test_skip_steps_marks_earlier_steps_skipped_without_running_them(make_repo, engine):
    """run_workflow(skip_steps=1) runs step 2 only; step 1's stages are 'skipped'."""
    repo = make_repo(
        {
            "bodywork.ini": project_ini("first, also-first >> second"),
            **batch_stage("first", TOUCH_MARKER),
            **batch_stage("also-first", TOUCH_MARKER),
            **batch_stage("second", TOUCH_MARKER),
        }
    )
    run = engine(repo, skip_steps=1)
    assert [(r.stage, r.status) for r in run.outcome.results] == [
        ("first", SKIPPED),
        ("also-first", SKIPPED),
        ("second", SUCCEEDED),
    ]
    assert all(r.reason == "succeeded before" for r in run.outcome.results[:2])
    assert run.outcome.succeeded
    assert not (run.artifacts / "first.ran").exists()
    assert not (run.artifacts / "also-first.ran").exists()
    assert (run.artifacts / "second.ran").read_text() == "ran"
    assert {stage for stage, _ in run.lines} == {"second"}


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict]]]:
    """A real local webhook receiver: (URL with a token in it, POSTed JSON bodies)."""
    posts: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/T0KEN-xyz", posts
    finally:
        server.shutdown()
        server.server_close()


def test_engine_posts_the_summary_to_the_webhook(make_repo, offline_env, hook):
    """`bodywork run` with BODYWORK_WEBHOOK_URL POSTs the run's summary, token kept quiet."""
    url, posts = hook
    repo = make_repo(
        {
            "bodywork.ini": with_on_failure("prepare >> train"),
            **batch_stage("prepare", TOUCH_MARKER),
            **batch_stage("train", FAIL),
            **batch_stage("notify-failure", DUMP_ENV),
        }
    )
    done = subprocess.run(
        ["bodywork", "run", str(repo)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, notify.WEBHOOK_ENV: url},
    )
    assert done.returncode == 5, done.stdout + done.stderr
    assert len(posts) == 1, done.stderr
    posted = posts[0]
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert posted["project"] == "demo"
    assert posted["commit"] == commit
    assert posted["result"] == "failed"
    assert posted["failed_stage"] == "train"
    assert posted["reason"] == "exited with code 1: the data is corrupt"
    assert posted["stages"] == {"prepare": "succeeded", "train": "failed"}
    assert posted["duration_seconds"] > 0
    assert posted["run_id"] in done.stdout  # the summary table names the same run
    assert "T0KEN-xyz" not in done.stdout + done.stderr
    assert "notify-failure" in done.stdout  # the on-failure stage ran and is in the table
