"""Projects written for the original Bodywork, unmodified, on the lab cluster.

A bodywork.yaml (schema 1.1) project with two modules in one shared folder, `args`, inline
requirements whose install takes longer than the stages' own limits, the original's image
named as DOCKER_IMAGE, and `batch_stages_first`, trained and served at the pinned commit.
"""

from __future__ import annotations

import textwrap

from tests.e2e.conftest import kubectl, run_workflow
from tests.e2e.test_kubernetes import cluster_ip, http_get, summary_row
from tests.local.test_original_semantics import SLOW_BUILD_SECONDS, slow_package

PORT = 8080

TRAIN = textwrap.dedent(
    """
    import os, pathlib, sys
    import slowpkg
    from pipeline import common
    out = pathlib.Path(os.environ["BODYWORK_ARTIFACTS_DIR"], "model.txt")
    out.write_text(f"{common.GREETING} {' '.join(sys.argv[1:])} {slowpkg.VALUE}")
    print("trained with", sys.argv[1:], "in", os.getcwd())
    """
)
SERVE = textwrap.dedent(
    f"""
    import http.server, os, pathlib
    from pipeline import common
    model = pathlib.Path(os.environ["BODYWORK_ARTIFACTS_DIR"], "model.txt").read_text()
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"{{model}} at {{os.environ['GIT_COMMIT_HASH']}}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    http.server.HTTPServer(("0.0.0.0", {PORT}), Handler).serve_forever()
    """
)
BODYWORK_YAML = f"""\
version: "1.1"
pipeline:
  name: original-yaml
  docker_image: bodyworkml/bodywork-core:latest
  DAG: train-model,scoring-service
  batch_stages_first: true
  usage_stats: false
stages:
  train-model:
    executable_module_path: pipeline/train.py
    args: ["--epochs", "3"]
    requirements: ["./slowpkg"]
    cpu_request: 0.1
    memory_request_mb: 100
    batch:
      max_completion_time_seconds: 2
      retries: 0
  scoring-service:
    executable_module_path: pipeline/serve.py
    requirements: ["./slowpkg"]
    cpu_request: 0.1
    memory_request_mb: 100
    service:
      max_startup_time_seconds: 2
      replicas: 1
      port: {PORT}
      ingress: false
logging:
  log_level: INFO
"""


def test_yaml_project_with_shared_folder_args_and_slow_install_trains_and_serves(
    namespace: str, publish
) -> None:
    """Both stages install for longer than their 2 s limits and still succeed; the service
    starts only after training (batch_stages_first) and serves what it trained, at the SHA."""
    files = {
        "bodywork.yaml": BODYWORK_YAML,
        "pipeline/common.py": "GREETING = 'model'\n",
        "pipeline/train.py": TRAIN,
        "pipeline/serve.py": SERVE,
        **slow_package("pipeline"),
    }
    url, sha = publish("original-yaml", files)
    done = run_workflow(namespace, url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trained with ['--epochs', '3'] in " in done.stdout
    # The one-line note says the original's image means Bodywork's own.
    assert "bodyworkml/bodywork-core" in done.stderr
    images = kubectl("get", "deploy", "-n", namespace, "-o", "jsonpath={..containers[0].image}")
    assert "bodyworkml" not in images
    service = kubectl("get", "svc", "-n", namespace, "-o", "jsonpath={.items[0].metadata.name}")
    answer = http_get(f"http://{cluster_ip(namespace, service)}:{PORT}/").decode()
    assert answer == f"model --epochs 3 42 at {sha}"
    # The summary shows install time apart from run time; install took the slow build.
    row = summary_row(done.stdout, "train-model")
    header = next(ln.split() for ln in done.stdout.splitlines() if ln.startswith("STAGE"))
    install = float(row[header.index("INSTALL")].rstrip("s"))
    assert install >= SLOW_BUILD_SECONDS, row
