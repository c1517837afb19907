"""Runs the API refuses: a namespace nobody set up, or a Role short of verbs, is named by
the preflight before anything is created; a pod the API refuses to create (a ResourceQuota
of pods=0; the stage service account missing where an old Role cannot check it) fails its
stage within seconds, with the reason and the fix, instead of waiting for the deadline; a
quota that is only full now is waited for, and the wait is shown.

Each stage's own limit is 300 s and its backstop longer still, so a run that ends in under
30 s did not wait for either: it failed fast, which is what these tests check."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import pytest
import yaml

from bodywork.core import records
from tests.e2e.conftest import IMAGE, MANIFESTS, kubectl, run_workflow
from tests.e2e.test_kubernetes import (
    batch_config,
    http_server_script,
    project_files,
    service_config,
    summary_row,
)

FAST_SECONDS = 30  # "fails fast": far below the 300 s limits the stages are given
STAGE_LIMIT = 300


def one_stage_project(stage_type: str) -> dict[str, str]:
    if stage_type == "batch":
        config = batch_config(f"[batch]\nMAX_COMPLETION_TIME_SECONDS = {STAGE_LIMIT}\n")
        return project_files("train", {"train": (config, "print('ran')\n")})
    config = service_config(8080, STAGE_LIMIT)
    return project_files("web", {"web": (config, http_server_script("up", 8080))})


def stage_name(stage_type: str) -> str:
    return "train" if stage_type == "batch" else "web"


def leftovers(namespace: str) -> str:
    """The stage objects left in the namespace (names), empty if none."""
    return kubectl(
        "get", "jobs,deployments,services,ingresses", "-n", namespace, "-o", "name"
    ).strip()


@pytest.fixture
def bare_namespace() -> Iterator[str]:
    """A namespace as `kubectl create namespace` leaves it: no service accounts, no Role."""
    name = f"bw-e2e-bare-{secrets.token_hex(3)}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.parametrize("stage_type", ["batch", "service"])
def test_a_namespace_nobody_set_up_fails_before_anything_is_created(
    bare_namespace: str, publish, stage_type: str
) -> None:
    """The preflight names the missing service account and both ways to set it up; no
    claim, Job, Deployment or Service is made and the Lease is released."""
    url, _ = publish(f"bare-{stage_type}", one_stage_project(stage_type))
    started = time.monotonic()
    done = run_workflow(bare_namespace, url)
    elapsed = time.monotonic() - started
    assert done.returncode == 4, done.stdout + done.stderr  # ClusterError
    assert elapsed < FAST_SECONDS, f"took {elapsed:.0f}s"
    assert (
        f"error: namespace '{bare_namespace}' is not set up for Bodywork (service account "
        f"bodywork-stage not found): run `bodywork bootstrap -n {bare_namespace} {url}`, or "
        f"`kubectl apply -k manifests/` with `namespace: {bare_namespace}` in "
        "manifests/kustomization.yaml"
    ) in done.stderr
    assert leftovers(bare_namespace) == ""
    assert kubectl("get", "pvc,leases", "-n", bare_namespace, "-o", "name").strip() == ""


def test_a_run_refused_by_the_preflight_is_recorded_as_failed(bare_namespace: str, publish) -> None:
    url, _ = publish("bare-record", one_stage_project("batch"))
    done = run_workflow(bare_namespace, url)
    assert done.returncode == 4, done.stdout + done.stderr
    maps = json.loads(kubectl("get", "configmaps", "-n", bare_namespace, "-o", "json"))
    found = [m for m in maps["items"] if records.RUN_KEY in (m.get("data") or {})]
    assert len(found) == 1
    record = json.loads(found[0]["data"][records.RUN_KEY])
    assert record["status"] == records.FAILED
    assert "bodywork-stage not found" in json.dumps(record)


@pytest.mark.parametrize("stage_type", ["batch", "service"])
def test_a_stage_a_resource_quota_refuses_fails_fast_naming_the_quota(
    namespace: str, publish, stage_type: str
) -> None:
    """pods=0: the Job controller's FailedCreate event (batch) or the Deployment's
    ReplicaFailure condition (service) fails the stage within seconds; the Job is deleted,
    the first Deployment and its Service removed."""
    kubectl("create", "quota", "q", "--hard=pods=0", "-n", namespace)
    url, _ = publish(f"quota-{stage_type}", one_stage_project(stage_type))
    started = time.monotonic()
    done = run_workflow(namespace, url)
    elapsed = time.monotonic() - started
    assert done.returncode == 5, done.stdout + done.stderr  # a stage failed
    assert elapsed < FAST_SECONDS, f"took {elapsed:.0f}s"
    stage = stage_name(stage_type)
    assert (
        f"stage '{stage}' failed: the pod exceeds ResourceQuota q: requested pods=1, used "
        f"pods=0, limited pods=0 — raise the quota (kubectl edit resourcequota q -n "
        f"{namespace})"
    ) in done.stderr
    assert summary_row(done.stdout, stage)[2] == "failed"
    if stage_type == "service":
        assert "removed (it had no previous version)" in done.stderr
    assert leftovers(namespace) == ""


def test_a_quota_that_is_full_now_is_waited_for_and_shown(namespace: str, publish) -> None:
    """pods=1 and two batch stages in one step: one pod is refused while the other runs
    (the quota is full, not too small), so the stage waits, saying why, and runs later."""
    kubectl("create", "quota", "q", "--hard=pods=1", "-n", namespace)
    script = "import time\ntime.sleep(5)\nprint('done')\n"
    url, _ = publish("quota-full", project_files("first,second", {
        "first": (batch_config(), script),
        "second": (batch_config(), script),
    }))  # fmt: skip
    done = run_workflow(namespace, url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[event] FailedCreate: waiting for room in ResourceQuota q (requested pods=1, " in (
        done.stdout
    )
    assert done.stdout.count("| done") == 2


def without_role_rules(namespace: str, *resources: str) -> None:
    """Take the rules for `resources` out of the controller's Role in `namespace`."""
    role = json.loads(kubectl("get", "role", "bodywork-controller", "-n", namespace, "-o", "json"))
    role["rules"] = [r for r in role["rules"] if not set(resources) & set(r["resources"])]
    kubectl("replace", "-n", namespace, "-f", "-", stdin=json.dumps(role))


def failed_controller_job(namespace: str, url: str) -> tuple[str, str]:
    """Run manifests/workflow-job.yaml for `url` until it fails; (job name, its log)."""
    job = yaml.safe_load((MANIFESTS / "workflow-job.yaml").read_text())
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["image"] = IMAGE
    container["args"][-1] = url
    created = kubectl("create", "-n", namespace, "-f", "-", "-o", "name", stdin=yaml.safe_dump(job))
    name = created.strip()
    waited = kubectl(
        "wait", "-n", namespace, "--for=condition=failed", name, "--timeout=120s",
        check=False, timeout=150,
    )  # fmt: skip
    logs = kubectl("logs", "-n", namespace, name, check=False)
    assert "condition met" in waited, logs[-3000:]
    return name, logs


def test_a_controller_whose_role_lacks_verbs_names_them_all_and_creates_nothing(
    namespace: str, publish
) -> None:
    """The in-cluster controller Job under a Role without the jobs rule (and, as a Role from
    before the preflight, without `get serviceaccounts`): one error names every missing
    verb with its `kubectl auth can-i` line and the fix; no claim or stage object is made."""
    without_role_rules(namespace, "jobs", "serviceaccounts")
    url, _ = publish("no-jobs", one_stage_project("batch"))
    name, logs = failed_controller_job(namespace, url)
    can_i = [
        f"{verb} jobs.batch (kubectl auth can-i {verb} jobs.batch -n {namespace})"
        for verb in ("create", "delete", "list", "watch")
    ]
    assert (
        f"error: the controller may not do all this run needs in namespace '{namespace}': "
        + "; ".join(can_i)
        + f" — grant manifests/role.yaml there (`bodywork bootstrap -n {namespace} {url}`, "
        f"or `kubectl apply -k manifests/` with `namespace: {namespace}`), or run as a user "
        "who may"
    ) in logs
    assert "stage_account_not_checked" in logs  # an old Role: the check is skipped, said so
    assert kubectl("get", "pvc,deployments", "-n", namespace, "-o", "name").strip() == ""
    assert kubectl("get", "jobs", "-n", namespace, "-o", "name").strip() == name


def test_with_an_old_role_a_missing_stage_account_fails_fast_at_the_job(
    namespace: str, publish
) -> None:
    """A Role from before the preflight cannot read service accounts, so the check is
    skipped; the stage's Job is then refused (serviceaccount "bodywork-stage" not found),
    and its FailedCreate event fails the run within seconds, naming the fix. The Job is
    deleted."""
    without_role_rules(namespace, "serviceaccounts")
    kubectl("delete", "serviceaccount", "bodywork-stage", "-n", namespace)
    url, _ = publish("old-role", one_stage_project("batch"))
    started = time.monotonic()
    name, logs = failed_controller_job(namespace, url)
    assert time.monotonic() - started < FAST_SECONDS + 30  # + the controller pod's start
    assert (
        f"error: stage 'train' failed: namespace '{namespace}' is not set up for Bodywork "
        f"(service account bodywork-stage not found): run `bodywork bootstrap -n {namespace} "
        f"{url}`"
    ) in logs
    assert kubectl("get", "jobs", "-n", namespace, "-o", "name").strip() == name
