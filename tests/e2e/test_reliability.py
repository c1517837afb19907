"""Faults injected for real on the cluster: two controllers for one project, a controller
killed mid-run and re-attached, and validation failures that must leave nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from bodywork.k8s import kube, lease
from tests.e2e.conftest import IMAGE, kubectl
from tests.e2e.test_day2 import status_json
from tests.e2e.test_kubernetes import batch_config, project_files


def _start_workflow(namespace: str, url: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["bodywork", "workflow", "-n", namespace, "--image", IMAGE, url, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_for_line(process: subprocess.Popen[str], text: str, timeout: float = 180) -> list[str]:
    seen = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"never saw {text!r}:\n{''.join(seen)}")


def _slow_project() -> dict[str, str]:
    counter = (
        "import os, pathlib\n"
        "f = pathlib.Path(os.environ['BODYWORK_ARTIFACTS_DIR'], 'first-runs')\n"
        "f.write_text((f.read_text() if f.exists() else '') + 'x')\n"
    )
    slow = "import time\nprint('slow stage started', flush=True)\ntime.sleep(20)\nprint('done')\n"
    return project_files("first >> slow", {
        "first": (batch_config(), counter), "slow": (batch_config(), slow),
    })  # fmt: skip


def test_second_controller_for_a_project_is_refused_and_creates_nothing(
    namespace: str, publish
) -> None:
    """While one run holds the project's Lease, another exits 6 naming the holder."""
    url, _ = publish("locked", _slow_project())
    first = _start_workflow(namespace, url, "--run-id", "20260101-000000-0001")
    try:
        _wait_for_line(first, "slow stage started")
        jobs_before = kubectl("get", "jobs", "-n", namespace, "-o", "name").split()
        second = subprocess.run(
            ["bodywork", "workflow", "-n", namespace, "--image", IMAGE, url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 6, second.stdout + second.stderr
        assert "is already being run by run 20260101-000000-0001" in second.stderr
        assert "Traceback" not in second.stderr
        assert kubectl("get", "jobs", "-n", namespace, "-o", "name").split() == jobs_before
        assert len(status_json(namespace)) == 1  # no record for the refused run
    finally:
        first.wait(timeout=180)
    assert first.returncode == 0
    # Released at the end: the next run may start at once.
    leases = kubectl("get", "leases", "-n", namespace, "-o", "name")
    assert lease.lease_name("e2e") not in leases


def test_killed_controller_is_reattached_without_duplicating_stages(
    namespace: str, publish
) -> None:
    """kill -9 mid-run, then --resume: same run id and commit, no stage runs twice."""
    url, sha = publish("killed", _slow_project())
    run_id = "20260101-000000-0002"
    first = _start_workflow(namespace, url, "--run-id", run_id)
    _wait_for_line(first, "slow stage started")
    os.killpg(first.pid, signal.SIGKILL)  # the controller dies; its stage Job runs on
    first.wait(timeout=10)
    assert status_json(namespace, run_id)["status"] == "running"

    resumed = subprocess.run(
        ["bodywork", "workflow", "-n", namespace, "--image", IMAGE, "--resume", run_id, url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    record = status_json(namespace, run_id)
    assert record["status"] == "succeeded" and record["commit"] == sha
    assert record["reattached"] is True
    jobs = json.loads(kubectl("get", "jobs", "-n", namespace, "-o", "json"))["items"]
    slow_jobs = [j for j in jobs if j["metadata"]["labels"]["bodywork.dev/stage"] == "slow"]
    assert len(slow_jobs) == 1  # adopted, not created again
    pods = kubectl(
        "get", "pods", "-n", namespace, "-l", "bodywork.dev/stage=first", "-o", "name"
    ).split()
    assert len(pods) == 1  # step 1 succeeded before the kill and was not run again


def test_invalid_project_creates_nothing_in_the_cluster(namespace: str, publish) -> None:
    """A config error stops `workflow` before any object (record, lease, claim) exists."""
    files = project_files("train", {"train": (batch_config("[batch]\nRETRIES = many\n"), "")})
    url, _ = publish("invalid", files)
    before = kubectl("get", "all,configmaps,leases,pvc", "-n", namespace, "-o", "name")
    done = subprocess.run(
        ["bodywork", "workflow", "-n", namespace, "--image", IMAGE, url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "train/config.ini: RETRIES: must be a whole number, got 'many'" in done.stderr
    after = kubectl("get", "all,configmaps,leases,pvc", "-n", namespace, "-o", "name")
    assert after == before


def test_expired_lease_of_a_dead_controller_is_taken_over(namespace: str) -> None:
    """A Lease nobody renews stops blocking the project once LEASE_SECONDS have passed."""
    api = kube.api_client()
    dead = lease.ProjectLease(api, namespace, "takeover", "r1", "run r1 (dead pod)")
    dead.acquire()
    dead._stop.set()  # simulate a controller that stopped renewing (no release)
    other = lease.ProjectLease(api, namespace, "takeover", "r2", "run r2")
    try:
        other.acquire()
        raise AssertionError("a live lease was taken over")
    except Exception as exc:  # noqa: BLE001 - asserting the exact type below
        assert type(exc).__name__ == "RunInProgress"
    lease_body = json.loads(
        kubectl("get", "lease", lease.lease_name("takeover"), "-n", namespace, "-o", "json")
    )
    lease_body["spec"]["renewTime"] = "2020-01-01T00:00:00.000000Z"
    kubectl("replace", "-f", "-", stdin=json.dumps(lease_body))
    other.acquire()  # expired: taken over
    holder = kubectl(
        "get",
        "lease",
        lease.lease_name("takeover"),
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    )
    assert holder == "run r2"
    other.release()
