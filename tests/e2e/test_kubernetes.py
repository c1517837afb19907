"""Workflows on a real Kubernetes cluster: the in-cluster controller Job under the shipped
Role, retries, rollback that keeps the old version serving, and named fast failures."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import yaml

from tests.conftest import REPO_ROOT
from tests.e2e.conftest import IMAGE, MANIFESTS, kubectl, run_workflow

EXAMPLE = REPO_ROOT / "examples" / "train-and-deploy"


def project_files(dag: str, stages: dict[str, tuple[str, str]]) -> dict[str, str]:
    """bodywork.ini + one dir per stage: name → (config.ini text, script text)."""
    files = {"bodywork.ini": f"[default]\nPROJECT_NAME = e2e\n\n[workflow]\nDAG = {dag}\n"}
    for name, (config_ini, script) in stages.items():
        files[f"{name}/config.ini"] = config_ini
        files[f"{name}/requirements.txt"] = ""
        files[f"{name}/main.py"] = script
    return files


def batch_config(extra: str = "") -> str:
    return f"[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = main.py\nCPU_REQUEST = 0.1\n{extra}"


def service_config(port: int, startup: int, extra: str = "") -> str:
    return (
        "[default]\nSTAGE_TYPE = service\nEXECUTABLE_SCRIPT = main.py\nCPU_REQUEST = 0.1\n"
        f"[service]\nPORT = {port}\nMAX_STARTUP_TIME_SECONDS = {startup}\n{extra}"
    )


def http_server_script(text: str, port: int) -> str:
    return (
        "import http.server\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        f"        self.wfile.write(b'{text}')\n"
        f"http.server.HTTPServer(('0.0.0.0', {port}), H).serve_forever()\n"
    )


def summary_row(stdout: str, stage: str) -> list[str]:
    """The run summary's row for `stage`: [stage, type, result words..., attempts, ...]."""
    for line in stdout.splitlines():
        cells = line.split()
        if cells[:1] == [stage] and cells[1:2] in (["batch"], ["service"]):
            return cells
    raise AssertionError(f"no summary row for {stage} in:\n{stdout}")


def cluster_ip(namespace: str, service: str) -> str:
    return kubectl("get", "svc", "-n", namespace, service, "-o", "jsonpath={.spec.clusterIP}")


KUBE_PROXY_LAG_SECONDS = 10  # from Endpoints listing a pod to kube-proxy's rules routing to it


def http_get(url: str, data: bytes | None = None) -> bytes:
    """One request to a Service. A run ends once the Service's Endpoints list the new pod
    (tests: routed_pods), but kube-proxy writes its iptables rules a moment later, and until
    then the ClusterIP refuses: a refused connection is retried for that moment only."""
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    deadline = time.monotonic() + KUBE_PROXY_LAG_SECONDS
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.read()
        except urllib.error.URLError as exc:
            refused = isinstance(exc.reason, ConnectionRefusedError)
            if not refused or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def routed_pods(namespace: str, service: str) -> set[str]:
    """The pods a Service's Endpoints list as ready addresses, read once."""
    endpoints = json.loads(kubectl("get", "endpoints", "-n", namespace, service, "-o", "json"))
    return {
        address["targetRef"]["name"]
        for subset in endpoints.get("subsets") or []
        for address in subset.get("addresses") or []
        if address.get("targetRef", {}).get("kind") == "Pod"
    }


def stage_pods(namespace: str, stage: str) -> set[str]:
    names = kubectl(
        "get", "pods", "-n", namespace, "-l", f"bodywork.dev/stage={stage}",
        "-o", "jsonpath={.items[*].metadata.name}",
    )  # fmt: skip
    return set(names.split())


def test_example_is_trained_and_served_by_the_in_cluster_controller_job(
    namespace: str, publish
) -> None:
    """manifests/workflow-job.yaml, under the shipped Role only, trains and serves the example."""
    files = {
        str(p.relative_to(EXAMPLE)): p.read_text()
        for p in EXAMPLE.rglob("*")
        if p.is_file() and p.name != "README.md"
    }
    url, sha = publish("example", files)
    job = yaml.safe_load((MANIFESTS / "workflow-job.yaml").read_text())
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["image"] = IMAGE
    container["args"][-1] = url  # the repo URL is the last argument
    name = kubectl("create", "-n", namespace, "-f", "-", "-o", "name", stdin=yaml.safe_dump(job))
    name = name.strip()
    waited = kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=complete",
        name,
        "--timeout=600s",
        check=False,
        timeout=660,
    )
    logs = kubectl("logs", "-n", namespace, name, check=False)
    assert "condition met" in waited, logs[-3000:]
    assert f"at {sha[:12]} succeeded" in logs
    assert "trained on 120 rows" in logs  # stage output streamed into the controller's log

    ip = cluster_ip(namespace, "train-and-deploy--stage-2-serve-model")
    body = json.dumps(
        {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    ).encode()
    answer = json.loads(http_get(f"http://{ip}:5000/iris/v1/score", body))
    assert answer["species_prediction"] == "setosa"
    assert answer["model_commit"] == sha  # served at exactly the pushed commit


def test_failing_batch_stage_is_retried_then_fails_with_its_exit_code(
    namespace: str, publish
) -> None:
    """RETRIES=1 runs a second pod; the run fails naming the exit code; later steps don't run."""
    script = "import sys\nprint('attempt failing')\nsys.exit(3)\n"
    files = project_files(
        "flaky >> after",
        {
            "flaky": (batch_config("[batch]\nRETRIES = 1\n"), script),
            "after": (batch_config(), "print('must not run')\n"),
        },
    )
    url, _ = publish("flaky", files)
    done = run_workflow(namespace, url)
    assert done.returncode == 5, done.stdout + done.stderr
    assert summary_row(done.stdout, "flaky")[2:4] == ["failed", "2"]  # result, attempts
    assert "exited with code 3" in done.stderr
    assert "must not run" not in done.stdout
    assert summary_row(done.stdout, "after")[2:4] == ["not", "run"]
    assert done.stdout.count("flaky | attempt failing") == 2  # both attempts streamed live


def test_rollout_that_never_becomes_ready_rolls_back_and_old_version_keeps_serving(
    namespace: str, publish
) -> None:
    """v2 never listens: the run fails within MAX_STARTUP_TIME_SECONDS and v1 still answers."""
    port = 8080
    url, v1_commit = publish(
        "svc",
        project_files(
            "web",
            {
                "web": (service_config(port, 60), http_server_script("v1", port)),
            },
        ),
    )
    first = run_workflow(namespace, url)
    assert first.returncode == 0, first.stdout + first.stderr
    # read at once: the run ended only once the Service routes to its pod
    assert routed_pods(namespace, "e2e--web") & stage_pods(namespace, "web")
    ip = cluster_ip(namespace, "e2e--web")
    assert http_get(f"http://{ip}:{port}/") == b"v1"

    never_ready = "import time\nprint('not listening')\ntime.sleep(3600)\n"
    publish("svc", {"web/main.py": never_ready, "web/config.ini": service_config(port, 20)})
    second = run_workflow(namespace, url)
    assert second.returncode == 5, second.stdout + second.stderr
    # the bootstrapper in the pod held the code itself to its 20 s, installation not counted
    assert "did not listen on port 8080 within 20 s" in second.stderr
    assert "MAX_STARTUP_TIME_SECONDS" in second.stderr
    assert "rolled back to the previous version" in second.stderr
    assert http_get(f"http://{ip}:{port}/") == b"v1"
    deployment = json.loads(kubectl("get", "deploy", "-n", namespace, "e2e--web", "-o", "json"))
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--commit") + 1] == v1_commit  # the template is v1's again


def test_first_deployment_that_crashes_is_removed(namespace: str, publish) -> None:
    """A brand-new service whose process exits fails fast and leaves nothing deployed."""
    url, _ = publish(
        "crash",
        project_files(
            "web",
            {
                "web": (service_config(8080, 120), "raise SystemExit('no model found')\n"),
            },
        ),
    )
    done = run_workflow(namespace, url)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "exited with code 1" in done.stderr
    assert "removed (it had no previous version)" in done.stderr
    assert kubectl("get", "deploy,svc", "-n", namespace, "-o", "name").strip() == ""


def test_missing_secret_fails_fast_naming_the_secret(namespace: str, publish) -> None:
    """A [secrets] entry for a Secret that does not exist fails with the kubelet's reason."""
    url, _ = publish(
        "secret",
        project_files(
            "uses-secret",
            {
                "uses-secret": (
                    batch_config("[secrets]\nAPI_KEY = model-credentials\n"),
                    "print('ran')\n",
                ),
            },
        ),
    )
    done = run_workflow(namespace, url)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "CreateContainerConfigError" in done.stderr
    assert 'secret "model-credentials" not found' in done.stderr
    assert kubectl("get", "jobs", "-n", namespace, "-o", "name").strip() == ""  # cleaned up


def test_unschedulable_stage_fails_fast_with_the_schedulers_reason(namespace: str, publish) -> None:
    """A CPU request no node has fails with 'Insufficient cpu', not a timeout."""
    config_ini = batch_config().replace("CPU_REQUEST = 0.1", "CPU_REQUEST = 512")
    url, _ = publish("huge", project_files("huge", {"huge": (config_ini, "print('ran')\n")}))
    done = run_workflow(namespace, url)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "unschedulable" in done.stderr and "Insufficient cpu" in done.stderr


def test_artifacts_written_by_one_stage_are_read_by_the_next(namespace: str, publish) -> None:
    """BODYWORK_ARTIFACTS_DIR is the project's PVC, shared across stages and pods."""
    path = "pathlib.Path(os.environ['BODYWORK_ARTIFACTS_DIR'], 'x')"
    write = f"import os, pathlib\n{path}.write_text(os.environ['BODYWORK_GIT_COMMIT'])\n"
    read = f"import os, pathlib\nprint('read', {path}.read_text())\n"
    url, sha = publish(
        "artifacts",
        project_files(
            "write >> read",
            {
                "write": (batch_config(), write),
                "read": (batch_config(), read),
            },
        ),
    )
    done = run_workflow(namespace, url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"read {sha}" in done.stdout
    claims = kubectl("get", "pvc", "-n", namespace, "-o", "name")
    assert "e2e--artifacts" in claims


def test_redeploy_updates_service_port_and_removes_ingress_when_turned_off(
    namespace: str, publish
) -> None:
    """PORT changes reach the Service; INGRESS on creates an Ingress, off deletes it."""
    url, _ = publish(
        "web",
        project_files(
            "web",
            {
                "web": (
                    service_config(8080, 60, "INGRESS = True\n"),
                    http_server_script("a", 8080),
                ),
            },
        ),
    )
    first = run_workflow(namespace, url)
    assert first.returncode == 0, first.stdout + first.stderr
    ingress = json.loads(kubectl("get", "ingress", "-n", namespace, "e2e--web", "-o", "json"))
    path = ingress["spec"]["rules"][0]["http"]["paths"][0]
    assert path["path"].startswith(f"/{namespace}/e2e--web")
    assert path["backend"]["service"] == {"name": "e2e--web", "port": {"number": 8080}}
    ip = cluster_ip(namespace, "e2e--web")

    publish(
        "web",
        {"web/config.ini": service_config(8081, 60), "web/main.py": http_server_script("b", 8081)},
    )
    second = run_workflow(namespace, url)
    assert second.returncode == 0, second.stdout + second.stderr
    assert kubectl("get", "ingress", "-n", namespace, "-o", "name").strip() == ""
    assert cluster_ip(namespace, "e2e--web") == ip  # same Service, same ClusterIP
    # kube-proxy programs the Service's new port asynchronously after the rollout: until it
    # has, the node rejects it (EHOSTUNREACH). Give it the seconds its sync takes.
    deadline = time.monotonic() + 15
    while True:
        try:
            answer = http_get(f"http://{ip}:8081/")
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert answer == b"b"


def test_oom_killed_stage_is_named_with_its_memory_limit(namespace: str, publish) -> None:
    """A stage that outgrows MEMORY_LIMIT_MB fails as OOMKilled, not a bare exit code."""
    hog = "blocks = []\nwhile True:\n    blocks.append(bytearray(16 * 1024 * 1024))\n"
    config_ini = batch_config("MEMORY_REQUEST_MB = 64\nMEMORY_LIMIT_MB = 64\n")
    url, _ = publish("oom", project_files("hog", {"hog": (config_ini, hog)}))
    done = run_workflow(namespace, url)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "OOMKilled (memory limit 64Mi)" in done.stderr


def test_unresolvable_requirement_fails_as_a_named_bootstrap_failure(
    namespace: str, publish
) -> None:
    """uv cannot resolve a requirement: the reason names it (termination message)."""
    files = project_files("train", {"train": (batch_config(), "print('never')\n")})
    files["train/requirements.txt"] = "bodywork-no-such-package-xyz==1.0\n"
    url, _ = publish("badreq", files)
    done = run_workflow(namespace, url)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "bootstrap failed: cannot install requirements for stage 'train'" in done.stderr
    assert "'bodywork-no-such-package-xyz==1.0' (requirements.txt line 1)" in done.stderr
    assert "never" not in done.stdout


def test_service_crashing_after_ready_fails_the_run_and_rolls_back(namespace: str, publish) -> None:
    """v2 serves for 3 s then dies while a later step runs: the run fails, v1 serves again."""
    port = 8080
    url, _ = publish("crashlater", project_files("web >> wait", {
        "web": (service_config(port, 60), http_server_script("v1", port)),
        "wait": (batch_config(), "print('waited')\n"),
    }))  # fmt: skip
    first = run_workflow(namespace, url)
    assert first.returncode == 0, first.stdout + first.stderr
    ip = cluster_ip(namespace, "e2e--web")

    # v2 dies once the next step has started (it drops a file in the shared artifacts
    # dir), so the crash is certain to come after the rollout was declared ready.
    dies = (
        "import http.server, os, pathlib, threading, time\n"
        "signal = pathlib.Path(os.environ['BODYWORK_ARTIFACTS_DIR'], 'crash-now')\n"
        "def watch():\n"
        "    while not signal.exists():\n"
        "        time.sleep(0.2)\n"
        "    print('v2 lost its model', flush=True)\n"
        "    os._exit(3)\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'v2')\n"
        "threading.Thread(target=watch, daemon=True).start()\n"
        f"http.server.HTTPServer(('0.0.0.0', {port}), H).serve_forever()\n"
    )
    trigger = (
        "import os, pathlib, time\n"
        "pathlib.Path(os.environ['BODYWORK_ARTIFACTS_DIR'], 'crash-now').write_text('now')\n"
        "time.sleep(15)\n"
    )
    publish("crashlater", {"web/main.py": dies, "wait/main.py": trigger})
    second = run_workflow(namespace, url)
    assert second.returncode == 5, second.stdout + second.stderr
    assert "stage 'web' failed: crashed after becoming ready: exited with code 3" in second.stderr
    assert "rolled back" in second.stderr
    # v2 had replaced v1's pods, so v1's come back up: within a minute, v1 answers again.
    deadline = time.monotonic() + 60
    answer = b""
    while time.monotonic() < deadline and answer != b"v1":
        try:
            answer = http_get(f"http://{ip}:{port}/")
        except OSError:
            time.sleep(1)
    assert answer == b"v1"
