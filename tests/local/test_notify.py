"""Completion webhooks against a real HTTP server on 127.0.0.1: payload, failures, secrecy."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import structlog

from bodywork.core import config, plan
from bodywork.core.results import FAILED, NOT_RUN, SUCCEEDED, RunOutcome, StageResult
from bodywork.engine import notify
from tests.conftest import free_port

TOKEN = "T0KEN-5ecret-9f8e7d"
COMMIT = "b" * 40
RUN_ID = "20261125-120000-abcd"


@dataclass
class Hook:
    """A webhook receiver: records every POST; answers `status`."""

    port: int
    status: int = 200
    posts: list[dict] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def url(self, path: str = f"/hooks/{TOKEN}") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def serve_hook(hook: Hook) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            length = int(self.headers.get("Content-Length", "0"))
            hook.posts.append(json.loads(self.rfile.read(length)))
            hook.headers.append(dict(self.headers))
            self.send_response(hook.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", hook.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def hook() -> Iterator[Hook]:
    """A real ThreadingHTTPServer on a free local port, recording POSTed JSON."""
    found = Hook(free_port())
    server = serve_hook(found)
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


def make_plan() -> plan.Plan:
    stages = {
        n: config.StageConfig(name=n, stage_type="batch", module_path=f"{n}/main.py")
        for n in ("prepare", "train", "report")
    }
    project = config.ProjectConfig(
        project_name="demo", dag=(("prepare",), ("train",), ("report",)), stages=stages
    )
    return plan.build_plan(project, plan.Source("git://h/r.git", COMMIT), RUN_ID)


FAILED_OUTCOME = RunOutcome(
    RUN_ID,
    COMMIT,
    [
        StageResult("prepare", "batch", SUCCEEDED, attempts=1, seconds=1.0),
        StageResult("train", "batch", FAILED, attempts=2, reason="exited with code 1: no data"),
        StageResult("report", "batch", NOT_RUN, reason="step 2 failed"),
    ],
    failed_step=2,
    seconds=42.4242,
)


def test_summary_of_a_failed_run_is_posted_as_json(hook: Hook) -> None:
    """The server receives project, run id, commit, result, failed stage, reason, duration."""
    assert notify.send(hook.url(), notify.summary(make_plan(), FAILED_OUTCOME)) is True
    assert len(hook.posts) == 1
    assert hook.posts[0] == {
        "project": "demo",
        "run_id": RUN_ID,
        "commit": COMMIT,
        "result": "failed",
        "failed_stage": "train",
        "reason": "exited with code 1: no data",
        "duration_seconds": 42.42,
        "stages": {"prepare": "succeeded", "train": "failed", "report": "not run"},
    }
    assert hook.headers[0]["Content-Type"] == "application/json"


def test_summary_of_a_successful_run_has_no_failed_stage(hook: Hook) -> None:
    """result=succeeded, failed_stage and reason null."""
    outcome = RunOutcome(RUN_ID, COMMIT, [StageResult("train", "batch", SUCCEEDED)], seconds=3)
    assert notify.send(hook.url(), notify.summary(make_plan(), outcome)) is True
    posted = hook.posts[0]
    assert posted["result"] == "succeeded"
    assert posted["failed_stage"] is None and posted["reason"] is None


def test_server_answering_500_returns_false_without_raising(hook: Hook) -> None:
    """A receiver error is reported as False; the run is never failed by its webhook."""
    hook.status = 500
    with structlog.testing.capture_logs() as logs:
        assert notify.send(hook.url(), {"result": "failed"}) is False
    assert len(hook.posts) == 1  # it did reach the server
    assert {"event": "webhook_failed", "status": 500, "log_level": "warning"} in logs


def test_unreachable_receiver_returns_false_quickly_without_raising() -> None:
    """Nothing listening on the port → False within the timeout, no exception."""
    url = f"http://127.0.0.1:{free_port()}/hooks/{TOKEN}"
    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        assert notify.send(url, {"result": "failed"}) is False
    assert time.monotonic() - started < notify.TIMEOUT_SECONDS
    assert [entry["event"] for entry in logs] == ["webhook_failed"]


@pytest.mark.parametrize(
    "url",
    [
        f"hooks.example.com/{TOKEN}",  # no scheme
        f"htp://hooks.example.com/{TOKEN}",  # unknown scheme
        f"http://[hooks.example.com/{TOKEN}",  # unparsable host
    ],
    ids=["no-scheme", "bad-scheme", "bad-host"],
)
def test_malformed_url_returns_false_and_never_raises(url: str) -> None:
    """A mistyped URL in the Secret is reported (without the URL) and never raises."""
    with structlog.testing.capture_logs() as logs:
        assert notify.send(url, {"result": "failed"}) is False
    assert [entry["event"] for entry in logs] == ["webhook_failed"]
    assert TOKEN not in repr(logs)


@pytest.mark.parametrize("status", [200, 500, None], ids=["ok", "server-error", "unreachable"])
def test_the_url_and_its_token_are_never_logged(hook: Hook, status: int | None) -> None:
    """Whatever happens, no log event carries the URL or the token in it."""
    url = hook.url()
    if status is None:
        url = f"http://127.0.0.1:{free_port()}/hooks/{TOKEN}"
    else:
        hook.status = status
    with structlog.testing.capture_logs() as logs:
        notify.send(url, notify.summary(make_plan(), FAILED_OUTCOME))
    assert logs, "send logged nothing"
    captured = repr(logs)
    assert TOKEN not in captured
    assert "/hooks/" not in captured
