"""Day-2 operations on the real cluster: the bootstrap script (twice), a CronJob-triggered
run, logs after the pods are gone, render equal to what is submitted, resume at the same
commit, the on-failure stage, and a completion webhook received by a real HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import json
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import yaml

from tests.conftest import REPO_ROOT, free_port
from tests.e2e.conftest import IMAGE, LAB_HOST_IP, kubectl, run_workflow
from tests.e2e.test_kubernetes import batch_config, project_files, service_config


def bodywork(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bodywork", *args], capture_output=True, text=True, timeout=timeout)


def status_json(namespace: str, *args: str) -> object:
    done = bodywork("status", "-n", namespace, *args, "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def deploy_watch(namespace: str, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return bodywork("deploy", "-n", namespace, "--image", IMAGE, "--watch", url, *extra)


SERVICE = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
    "http.server.HTTPServer(('0.0.0.0', 8080), H).serve_forever()\n"
)


def small_project() -> dict[str, str]:
    return project_files("prepare >> web", {
        "prepare": (batch_config(), "print('prepared the model')\n"),
        "web": (service_config(8080, 60), SERVICE),
    })  # fmt: skip


@pytest.fixture
def fresh_namespace() -> Iterator[str]:
    """A namespace name nothing has created yet (bootstrap creates it)."""
    name = f"bw-boot-{secrets.token_hex(3)}"
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_bootstrap_script_sets_up_runs_and_is_a_no_op_the_second_time(
    fresh_namespace: str, publish
) -> None:
    """manifests/bootstrap.sh installs, creates the secret, runs; again: nothing changes."""
    url, sha = publish("boot", small_project())
    secret_value = f"planted-{secrets.token_hex(8)}"
    command = [
        "bash",
        str(REPO_ROOT / "manifests" / "bootstrap.sh"),
        fresh_namespace,
        url,
        "main",
        "--image",
        IMAGE,
        "--secret",
        f"model-creds=API_KEY={secret_value}",
    ]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"namespace/{fresh_namespace} created" in first.stdout
    assert "role/bodywork-controller created" in first.stdout
    assert "secret/model-creds created (keys: API_KEY)" in first.stdout
    assert f"at {sha[:12]} succeeded" in first.stdout
    assert "prepare | prepared the model" in first.stdout

    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "created" not in second.stdout and "updated" not in second.stdout
    assert "nothing changed" in second.stdout and "no new run started" in second.stdout
    assert len(status_json(fresh_namespace)) == 1  # still exactly one run
    for output in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert secret_value not in output


def test_bootstrap_refuses_clearly_without_permission(namespace: str, publish, tmp_path) -> None:
    """A user who cannot create Roles is told exactly which permission is missing."""
    import base64
    import os

    url, _ = publish("noperm", small_project())
    kubectl("create", "serviceaccount", "limited", "-n", namespace)
    kubectl(
        "create",
        "rolebinding",
        "limited-edit",
        "--clusterrole=edit",
        f"--serviceaccount={namespace}:limited",
        "-n",
        namespace,
    )
    token = ""
    for _ in range(50):  # Kubernetes 1.20 creates the token Secret asynchronously
        secret = kubectl(
            "get",
            "sa",
            "limited",
            "-n",
            namespace,
            "-o",
            "jsonpath={.secrets[0].name}",
            check=False,
        ).strip()
        if secret:
            token = base64.b64decode(
                kubectl("get", "secret", secret, "-n", namespace, "-o", "jsonpath={.data.token}")
            ).decode()
            break
        time.sleep(0.2)
    assert token, "no service account token"
    config = yaml.safe_load(kubectl("config", "view", "--raw", "--minify"))
    config["users"][0]["user"] = {"token": token}
    path = tmp_path / "limited-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    refused = subprocess.run(
        ["bodywork", "bootstrap", "-n", namespace, "--image", IMAGE, url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KUBECONFIG": str(path)},
    )
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "create roles.rbac.authorization.k8s.io" in refused.stderr
    assert "kubectl auth can-i create roles.rbac.authorization.k8s.io" in refused.stderr
    assert "Traceback" not in refused.stderr
    accounts = kubectl("get", "sa", "-n", namespace, "-o", "name")
    assert "limited" in accounts and "bodywork-controller" in accounts  # from the fixture
    assert status_json(namespace) == []  # nothing was started


def test_cronjob_triggers_a_run_recorded_as_cron(namespace: str, publish) -> None:
    """A CronJob every minute starts a controller Job; status and history show the run."""
    url, sha = publish("cron", project_files("nightly", {
        "nightly": (batch_config(), "print('retrained')\n"),
    }))  # fmt: skip
    created = bodywork(
        "cronjob",
        "create",
        "-n",
        namespace,
        "--image",
        IMAGE,
        "--branch",
        "main",
        "--schedule",
        "* * * * *",
        "--name",
        "retrain",
        url,
    )
    assert created.returncode == 0, created.stderr
    assert "cronjob/retrain created" in created.stdout
    listed = bodywork("cronjob", "list", "-n", namespace)
    assert "retrain" in listed.stdout and "* * * * *" in listed.stdout

    deadline = time.monotonic() + 150  # the next minute boundary, plus the run itself
    runs: list = []
    while time.monotonic() < deadline:
        runs = [r for r in status_json(namespace) if r["status"] == "succeeded"]
        if runs:
            break
        time.sleep(3)
    assert runs, "no CronJob-triggered run succeeded within 150 s"
    assert runs[0]["trigger"] == "cron" and runs[0]["commit"] == sha[:12]
    history = bodywork("cronjob", "history", "-n", namespace, "retrain")
    assert runs[0]["run"] in history.stdout
    assert bodywork("cronjob", "delete", "-n", namespace, "retrain").returncode == 0


def test_logs_are_kept_after_jobs_and_pods_are_deleted(namespace: str, publish) -> None:
    """`bodywork logs RUN STAGE` reads the run record once the cluster forgot the pods."""
    url, _ = publish("logs", project_files("talk", {
        "talk": (batch_config(), "for i in range(3):\n    print(f'line {i} of the stage')\n"),
    }))  # fmt: skip
    done = deploy_watch(namespace, url)
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = status_json(namespace)[0]["run"]
    kubectl("delete", "jobs", "--all", "-n", namespace, "--wait=true")
    kubectl("delete", "pods", "--all", "-n", namespace, "--wait=true")
    assert kubectl("get", "pods", "-n", namespace, "-o", "name").strip() == ""
    logs = bodywork("logs", "-n", namespace, run_id, "talk")
    assert logs.returncode == 0, logs.stderr
    assert [ln for ln in logs.stdout.splitlines() if ln.startswith("line ")] == [
        "line 0 of the stage",
        "line 1 of the stage",
        "line 2 of the stage",
    ]
    described = status_json(namespace, run_id)
    assert described["stages"][0]["status"] == "succeeded"


def _subset(rendered: object, live: object, path: str = "") -> list[str]:
    """Every field of `rendered` must equal the live object's (which adds defaults)."""
    if isinstance(rendered, dict):
        if not isinstance(live, dict):
            return [f"{path}: not a mapping in the cluster"]
        return [d for k, v in rendered.items() for d in _subset(v, live.get(k), f"{path}.{k}")]
    if isinstance(rendered, list):
        if not isinstance(live, list) or len(live) != len(rendered):
            return [f"{path}: {rendered!r} != {live!r}"]
        return [
            d
            for i, (a, b) in enumerate(zip(rendered, live, strict=True))
            for d in _subset(a, b, f"{path}[{i}]")
        ]
    return (
        []
        if rendered == live or str(rendered) == str(live)
        else [f"{path}: {rendered!r} != {live!r}"]
    )


def test_render_prints_exactly_what_the_executor_submits(namespace: str, publish) -> None:
    """render --run-id X equals the Job, Deployment and Service a run with id X created."""
    url, _ = publish("render", small_project())
    run_id = "20260101-000000-beef"
    done = run_workflow(namespace, url, "--run-id", run_id)
    assert done.returncode == 0, done.stdout + done.stderr
    rendered = bodywork(
        "render",
        "-n",
        namespace,
        "--image",
        IMAGE,
        "--branch",
        "main",
        "--run-id",
        run_id,
        "--dry-run",
        "server",
        url,
    )
    assert rendered.returncode == 0, rendered.stderr
    docs = list(yaml.safe_load_all(rendered.stdout))
    stage_docs = [
        d for d in docs if d["metadata"].get("labels", {}).get("bodywork.dev/role") == "stage"
    ]
    assert [d["kind"] for d in stage_docs] == ["Job", "Deployment", "Service"]
    for doc in stage_docs:
        live = json.loads(
            kubectl(
                "get", doc["kind"].lower(), doc["metadata"]["name"], "-n", namespace, "-o", "json"
            )
        )
        assert _subset(doc["spec"], live["spec"]) == [], doc["kind"]
        assert _subset(doc["metadata"]["labels"], live["metadata"]["labels"]) == []


def test_resume_reruns_from_the_failed_step_at_the_same_commit(namespace: str, publish) -> None:
    """deploy --resume skips the steps that succeeded and runs the original commit."""
    flaky = (
        "import os, pathlib, sys\n"
        "d = pathlib.Path(os.environ['BODYWORK_ARTIFACTS_DIR'])\n"
        "marker = d / 'second-attempt'\n"
        "print('commit', os.environ['BODYWORK_GIT_COMMIT'])\n"
        "if not marker.exists():\n"
        "    marker.write_text('x'); sys.exit('transient failure')\n"
    )
    count = (
        "import os, pathlib\n"
        "f = pathlib.Path(os.environ['BODYWORK_ARTIFACTS_DIR'], 'first-step-runs')\n"
        "f.write_text(f.read_text() + 'x' if f.exists() else 'x')\n"
    )
    url, sha = publish("resume", project_files("first >> second", {
        "first": (batch_config(), count), "second": (batch_config(), flaky),
    }))  # fmt: skip
    failed = deploy_watch(namespace, url)
    assert failed.returncode == 5, failed.stdout + failed.stderr
    failed_run = status_json(namespace)[0]["run"]
    publish("resume", {"second/main.py": "raise SystemExit('newer commit must not run')\n"})

    resumed = deploy_watch(namespace, url, "--resume", failed_run)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    newest = status_json(namespace)[0]
    assert newest["resumed_from"] == failed_run
    record = status_json(namespace, newest["run"])
    assert record["commit"] == sha
    assert [s["status"] for s in record["stages"]] == ["skipped", "succeeded"]
    assert f"commit {sha}" in resumed.stdout
    assert "first |" not in resumed.stdout  # step 1 did not run again


def test_on_failure_stage_runs_with_the_failure_in_its_env(namespace: str, publish) -> None:
    """[workflow] ON_FAILURE runs in the cluster and sees which stage failed and why."""
    report = (
        "import os\nprint('failed:', os.environ['BODYWORK_FAILED_STAGE'], '|', "
        "os.environ['BODYWORK_FAILURE_REASON'])\n"
    )
    files = project_files("train", {
        "train": (batch_config(), "raise SystemExit('data missing')\n"),
        "alert": (batch_config(), report),
    })  # fmt: skip
    files["bodywork.ini"] += "ON_FAILURE = alert\n"
    url, _ = publish("onfail", files)
    done = deploy_watch(namespace, url)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "alert | failed: train | failed: exited with code 1: data missing" in done.stdout
    record = status_json(namespace, status_json(namespace)[0]["run"])
    assert record["on_failure"]["status"] == "succeeded"


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, dict]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["content-length"]))
        _Hook.received.append((self.path, json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_completion_webhook_reaches_a_real_server_and_its_token_stays_secret(
    namespace: str, publish
) -> None:
    """[notify] WEBHOOK_URL_SECRET: the controller POSTs the summary; the URL is never shown."""
    port = free_port()
    server = http.server.ThreadingHTTPServer((LAB_HOST_IP, port), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = secrets.token_hex(8)
    try:
        created = bodywork(
            "secret",
            "create",
            "-n",
            namespace,
            "hooks",
            f"WEBHOOK_URL=http://{LAB_HOST_IP}:{port}/hook?token={token}",
        )
        assert created.returncode == 0 and token not in created.stdout + created.stderr
        files = project_files("job", {"job": (batch_config(), "print('done')\n")})
        files["bodywork.ini"] += "\n[notify]\nWEBHOOK_URL_SECRET = hooks\n"
        url, sha = publish("hook", files)
        done = deploy_watch(namespace, url)
        assert done.returncode == 0, done.stdout + done.stderr
        assert token not in done.stdout + done.stderr
        path, payload = _Hook.received[-1]
        assert path == f"/hook?token={token}"
        assert payload["result"] == "succeeded" and payload["commit"] == sha
        assert payload["stages"] == {"job": "succeeded"}
    finally:
        server.shutdown()


def test_cleanup_dry_run_lists_then_cleanup_removes_runs_and_services(
    namespace: str, publish
) -> None:
    """cleanup --dry-run changes nothing; cleanup --services removes records, Jobs, services."""
    url, _ = publish("tidy", small_project())
    done = deploy_watch(namespace, url)
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = status_json(namespace)[0]["run"]

    dry = bodywork("cleanup", "-n", namespace, "--older-than-days", "0", "--services", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete run record e2e--run--" in dry.stdout
    assert "would delete deployment e2e--web" in dry.stdout
    assert status_json(namespace)[0]["run"] == run_id  # still there

    real = bodywork("cleanup", "-n", namespace, "--older-than-days", "0", "--services")
    assert real.returncode == 0, real.stderr
    assert "deleted service e2e--web" in real.stdout
    assert status_json(namespace) == []
    assert (
        kubectl(
            "get",
            "deploy,svc,jobs",
            "-n",
            namespace,
            "-l",
            "app.kubernetes.io/managed-by=bodywork",
            "-o",
            "name",
        ).strip()
        == ""
    )


def test_logs_follow_streams_a_run_started_without_watch(namespace: str, publish) -> None:
    """deploy (no --watch) then logs RUN STAGE -f: the stage's lines arrive as they happen."""
    talk = (
        "import time\nfor i in range(3):\n    print(f'tick {i}', flush=True)\n    time.sleep(2)\n"
    )
    url, _ = publish("follow", project_files("talk", {"talk": (batch_config(), talk)}))
    started = bodywork("deploy", "-n", namespace, "--image", IMAGE, url)
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.split()[1]  # "run <id> of <project> at <sha> started: ..."
    followed = bodywork("logs", "-n", namespace, run_id, "talk", "--follow", timeout=300)
    assert followed.returncode == 0, followed.stderr
    ticks = [ln.split("| ", 1)[-1] for ln in followed.stdout.splitlines() if "tick" in ln]
    assert ticks == ["tick 0", "tick 1", "tick 2"]


def test_interrupting_deploy_watch_leaves_the_run_going(namespace: str, publish) -> None:
    """Ctrl-C stops following only: the controller Job finishes the run in the cluster."""
    import signal

    slow = "import time\nprint('working', flush=True)\ntime.sleep(8)\nprint('finished')\n"
    url, _ = publish("ctrlc", project_files("work", {"work": (batch_config(), slow)}))
    process = subprocess.Popen(
        ["bodywork", "deploy", "-n", namespace, "--image", IMAGE, "--watch", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "work | working" in line:
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "continues in the cluster" in stderr and "Traceback" not in stderr
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and status_json(namespace)[0]["status"] == "running":
        time.sleep(2)
    assert status_json(namespace)[0]["status"] == "succeeded"


def test_a_planted_secret_value_appears_in_no_output_channel(namespace: str, publish) -> None:
    """The value reaches the stage's env only: not output, record, status, logs, render, events."""
    value = f"planted-{secrets.token_hex(12)}"
    created = bodywork("secret", "create", "-n", namespace, "model-creds", f"API_KEY={value}")
    assert created.returncode == 0, created.stderr
    # The stage proves it received the value by its hash; the value itself is never printed.
    digest = hashlib.sha256(value.encode()).hexdigest()
    check = (
        "import hashlib, os\n"
        "seen = hashlib.sha256(os.environ['API_KEY'].encode()).hexdigest()\n"
        f"print('secret present:', seen == {digest!r})\n"
    )
    files = project_files(
        "use", {"use": (batch_config("[secrets]\nAPI_KEY = model-creds\n"), check)}
    )
    url, _ = publish("planted", files)
    done = deploy_watch(namespace, url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "secret present: True" in done.stdout  # the stage really had it
    run_id = status_json(namespace)[0]["run"]
    channels = {
        "deploy output": done.stdout + done.stderr,
        "status": bodywork("status", "-n", namespace, run_id, "-o", "yaml").stdout,
        "logs": bodywork("logs", "-n", namespace, run_id).stdout,
        "render": bodywork("render", "-n", namespace, "--image", IMAGE, url).stdout,
        "secret list": bodywork("secret", "list", "-n", namespace, "-o", "json").stdout,
        "records": kubectl("get", "configmaps", "-n", namespace, "-o", "yaml"),
        "events": kubectl("get", "events", "-n", namespace, "-o", "yaml"),
        "objects": kubectl("get", "jobs,pods,deployments", "-n", namespace, "-o", "yaml"),
    }
    leaks = [name for name, text in channels.items() if value in text]
    assert leaks == []
