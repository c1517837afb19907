"""The cluster layers are opt-in: a kubeconfig in place is never touched without it.

A developer's ~/.kube/config and KUBECONFIG point at a real HTTP server here that records
every request. The cluster layers and the CLI-error tests then run as a real pytest
subprocess without BODYWORK_TEST_KUBECONFIG: they must skip with the opt-in reason, and
the server must see nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import CLUSTER_OPT_IN, REPO_ROOT


class RecordingApiServer(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.seen.append(f"GET {self.path}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def developer_cluster() -> Iterator[tuple[str, list[str]]]:
    RecordingApiServer.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingApiServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", RecordingApiServer.seen
    finally:
        server.shutdown()


def kubeconfig_for(url: str) -> str:
    return f"""apiVersion: v1
kind: Config
clusters: [{{name: dev, cluster: {{server: "{url}"}}}}]
users: [{{name: dev, user: {{token: developer-token}}}}]
contexts: [{{name: dev, context: {{cluster: dev, user: dev, namespace: default}}}}]
current-context: dev
"""


def test_cluster_layers_skip_and_touch_no_cluster_without_the_opt_in(tmp_path, developer_cluster):
    """With ~/.kube/config and KUBECONFIG set but no opt-in, no request reaches the cluster."""
    url, seen = developer_cluster
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text(kubeconfig_for(url))
    env = {k: v for k, v in os.environ.items() if k != CLUSTER_OPT_IN}
    env.update(HOME=str(home), KUBECONFIG=str(home / ".kube" / "config"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "tests/e2e/test_kubernetes.py",
            "tests/kubeapi/test_rbac_audit.py",
            "tests/local/test_cli_errors.py",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "cluster tests are opt-in" in done.stdout
    assert " passed" in done.stdout and " skipped" in done.stdout
    assert seen == []


def test_the_opt_in_names_the_cluster_the_tests_use(tmp_path, developer_cluster):
    """With the opt-in, KUBECONFIG in the test process is the named file, whatever it was."""
    url, _seen = developer_cluster
    chosen = tmp_path / "chosen-kubeconfig"
    chosen.write_text(kubeconfig_for(url))
    probe = (
        "import os, tests.conftest as c; "
        "print(os.environ['KUBECONFIG']); print(c.opted_in_kubeconfig())"
    )
    env = {**os.environ, CLUSTER_OPT_IN: str(chosen), "KUBECONFIG": "/somewhere/else"}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert done.stdout.split() == [str(chosen), str(chosen)], done.stderr
    env.pop(CLUSTER_OPT_IN)
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert done.stdout.split()[0] != "/somewhere/else"
    assert done.stdout.split()[1] == "None"
    assert not Path(done.stdout.split()[0]).exists()
