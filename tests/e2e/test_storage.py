"""The artifacts backends on the real cluster: a ReadWriteOnce claim's co-location rule
through a service rollout, a ReadWriteMany claim with spread replicas, claims and volumes
that never bind or mount named within seconds, and the example trained and served through
the S3 backend against a real S3-compatible server on the host.

The lab has one node, so these prove the rendered rules are accepted and kept by a real
API server, scheduler and kubelet, and that nothing hangs; they cannot show pods kept off
another node (docs/reliability.md lists that gap)."""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bodywork_bootstrap import s3
from tests.e2e.conftest import kubectl, run_workflow
from tests.e2e.test_kubernetes import (
    EXAMPLE,
    batch_config,
    cluster_ip,
    http_get,
    http_server_script,
    project_files,
    service_config,
)

CLAIM_LABEL = "bodywork.dev/artifacts-claim"
HOSTNAME = "kubernetes.io/hostname"


def get_json(namespace: str, *what: str) -> Any:
    return json.loads(kubectl("get", "-n", namespace, *what, "-o", "json"))


def pods_of(namespace: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get_json(namespace, "pods", "-l", selector)["items"]
    return items


def required_terms(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    affinity = pod_spec.get("affinity", {}).get("podAffinity", {})
    terms: list[dict[str, Any]] = affinity.get("requiredDuringSchedulingIgnoredDuringExecution", [])
    return terms


def with_ini(files: dict[str, str], extra: str) -> dict[str, str]:
    """The project's bodywork.ini with `extra` lines in its [default] section."""
    ini = files["bodywork.ini"].replace("[default]\n", f"[default]\n{extra}", 1)
    return {**files, "bodywork.ini": ini}


def test_read_write_once_pods_share_the_claims_node_through_a_rollout(
    namespace: str, publish
) -> None:
    """Every pod mounting the RWO claim carries its label and the required podAffinity, as
    the live objects show; a redeploy that changes the pod template rolls out beside the old
    pod (maxSurge 1: both mount the claim at once) and completes."""
    port = 8080
    files = project_files("prepare >> web", {
        "prepare": (batch_config(), "print('prepared')\n"),
        "web": (service_config(port, 60), http_server_script("v1", port)),
    })  # fmt: skip
    url, _ = publish("rwo", files)
    first = run_workflow(namespace, url)
    assert first.returncode == 0, first.stdout + first.stderr

    claim = "e2e--artifacts"
    assert get_json(namespace, "pvc", claim)["spec"]["accessModes"] == ["ReadWriteOnce"]
    batch_pods = pods_of(namespace, "bodywork.dev/stage=prepare")
    web_pods = pods_of(namespace, "bodywork.dev/stage=web")
    assert batch_pods and web_pods
    for pod in batch_pods + web_pods:
        assert pod["metadata"]["labels"][CLAIM_LABEL] == claim
        (term,) = required_terms(pod["spec"])
        assert term["topologyKey"] == HOSTNAME
        assert term["labelSelector"]["matchLabels"] == {CLAIM_LABEL: claim}
    nodes = {p["spec"]["nodeName"] for p in batch_pods + web_pods}
    assert len(nodes) == 1  # (one node in the lab: the rule holds trivially here)
    ip = cluster_ip(namespace, "e2e--web")
    assert http_get(f"http://{ip}:{port}/") == b"v1"
    old_pod = web_pods[0]["metadata"]["name"]

    publish("rwo", {"web/main.py": http_server_script("v2", port)})  # a new commit: template
    second = run_workflow(namespace, url)
    assert second.returncode == 0, second.stdout + second.stderr
    assert http_get(f"http://{ip}:{port}/") == b"v2"
    deployment = get_json(namespace, "deploy", "e2e--web")
    assert deployment["status"]["updatedReplicas"] == deployment["status"]["readyReplicas"] == 1
    (term,) = required_terms(deployment["spec"]["template"]["spec"])
    assert term["labelSelector"]["matchLabels"] == {CLAIM_LABEL: claim}
    new_pods = [
        p
        for p in pods_of(namespace, "bodywork.dev/stage=web")
        if p["metadata"].get("deletionTimestamp") is None
    ]
    assert [p["metadata"]["name"] for p in new_pods] != [old_pod]
    assert {p["spec"]["nodeName"] for p in new_pods} == nodes
    assert all(required_terms(p["spec"]) for p in new_pods)


def test_read_write_many_claim_has_no_affinity_and_replicas_spread(namespace: str, publish) -> None:
    """ARTIFACTS_PVC_ACCESS_MODE = ReadWriteMany: the created claim asks for RWX, no pod is
    tied to a node, and a two-replica service carries its soft spread and becomes ready."""
    port = 8080
    files = project_files("web", {
        "web": (service_config(port, 60, "REPLICAS = 2\n"), http_server_script("rwx", port)),
    })  # fmt: skip
    url, _ = publish("rwx", with_ini(files, "ARTIFACTS_PVC_ACCESS_MODE = ReadWriteMany\n"))
    done = run_workflow(namespace, url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert get_json(namespace, "pvc", "e2e--artifacts")["spec"]["accessModes"] == ["ReadWriteMany"]
    pods = pods_of(namespace, "bodywork.dev/stage=web")
    assert len(pods) == 2
    for pod in pods:
        assert "affinity" not in pod["spec"]
        assert CLAIM_LABEL not in pod["metadata"]["labels"]
        (spread,) = pod["spec"]["topologySpreadConstraints"]
        assert (spread["topologyKey"], spread["whenUnsatisfiable"], spread["maxSkew"]) == (
            HOSTNAME,
            "ScheduleAnyway",
            1,
        )
    assert http_get(f"http://{cluster_ip(namespace, 'e2e--web')}:{port}/") == b"rwx"


def test_a_named_claim_that_can_never_bind_fails_the_run_within_seconds(
    namespace: str, publish
) -> None:
    """ARTIFACTS_PVC names a claim with no volume to bind (storageClassName "", no such
    PV): the binder's FailedBinding is named with the fix, long before the two minutes a
    binding claim is given."""
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "never-binds"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    kubectl("create", "-n", namespace, "-f", "-", stdin=json.dumps(claim))
    deadline = time.monotonic() + 60  # the binder says so within its first sync
    while "FailedBinding" not in kubectl("get", "events", "-n", namespace):
        assert time.monotonic() < deadline, "the binder never reported on the claim"
        time.sleep(1)
    files = project_files("train", {"train": (batch_config(), "print('never')\n")})
    url, _ = publish("unbound", with_ini(files, "ARTIFACTS_PVC = never-binds\n"))
    started = time.monotonic()
    done = run_workflow(namespace, url, timeout=300)
    took = time.monotonic() - started
    assert done.returncode == 4, done.stdout + done.stderr
    assert "the artifacts claim 'never-binds' is not bound (FailedBinding)" in done.stderr
    assert "no persistent volumes available for this claim" in done.stderr
    assert "never" not in done.stdout
    print(f"named after {took:.1f} s")  # a figure, not an assertion


def test_a_volume_that_cannot_mount_fails_the_stage_within_seconds(namespace: str, publish) -> None:
    """The fetch init container mounts a Git SSH Secret that does not exist: the pod sits
    in ContainerCreating with nothing in its status, and the kubelet's FailedMount event
    fails the stage, named, instead of the Job's backstop of an hour and more."""
    files = project_files("train", {"train": (batch_config(), "print('never')\n")})
    url, _ = publish("nomount", files)
    done = run_workflow(namespace, url, "--git-ssh-secret", "no-such-ssh-secret", timeout=300)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "a volume cannot be mounted (FailedMount)" in done.stderr
    assert 'secret "no-such-ssh-secret" not found' in done.stderr
    assert kubectl("get", "jobs", "-n", namespace, "-o", "name").strip() == ""  # cleaned up


S3_ENDPOINT = os.environ.get("BODYWORK_TEST_S3_ENDPOINT")  # moto's server on the host


FAKE_KEY_ID, FAKE_SECRET = "testing-key-id", "testing-secret-key"  # moto takes any


def create_bucket(name: str) -> None:
    """moto's server mode creates a bucket on an unsigned PUT (it checks no signature
    unless told to); the objects the pods upload are then read back signed."""
    assert S3_ENDPOINT
    request = urllib.request.Request(f"{S3_ENDPOINT}/{name}", method="PUT")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def bucket_client(name: str) -> s3.S3Client:
    """The bootstrapper's own S3 client, with the fake credentials the pods were given."""
    return s3.S3Client(name, s3.Credentials(FAKE_KEY_ID, FAKE_SECRET), S3_ENDPOINT)


@pytest.mark.skipif(
    not S3_ENDPOINT,
    reason="BODYWORK_TEST_S3_ENDPOINT is unset: it names an S3-compatible server pods can "
    "reach (bash .ci/run starts moto's server on the host at port 5900 and sets it)",
)
def test_example_trains_and_serves_through_the_s3_backend(
    namespace: str, publish, tmp_path: Path
) -> None:
    """The example with ARTIFACTS_URL: no claim; training's model is pushed to the bucket
    under <prefix>/<project>/, the service pulls it and answers at the pushed commit; the S3
    Secret reaches only the artifacts containers."""
    bucket = f"bw-e2e-{secrets.token_hex(4)}"
    create_bucket(bucket)
    kubectl(
        "create", "secret", "generic", "s3-creds", "-n", namespace,
        f"--from-literal=AWS_ACCESS_KEY_ID={FAKE_KEY_ID}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={FAKE_SECRET}",
        "--from-literal=AWS_REGION=us-east-1",
    )  # fmt: skip
    files = {
        str(p.relative_to(EXAMPLE)): p.read_text()
        for p in EXAMPLE.rglob("*")
        if p.is_file() and p.name != "README.md"
    }
    files = with_ini(
        files,
        f"ARTIFACTS_URL = s3://{bucket}/e2e\nARTIFACTS_S3_SECRET = s3-creds\n"
        f"ARTIFACTS_S3_ENDPOINT_URL = {S3_ENDPOINT}\n",
    )
    url, sha = publish("s3-example", files)
    done = run_workflow(namespace, url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trained on 120 rows" in done.stdout

    client = bucket_client(bucket)
    keys = [o.key for o in client.list("e2e/train-and-deploy/")]
    assert "e2e/train-and-deploy/model.joblib" in keys, keys
    assert "e2e/train-and-deploy/model-info.json" in keys, keys
    client.get("e2e/train-and-deploy/model-info.json", tmp_path / "model-info.json")
    client.close()
    info = json.loads((tmp_path / "model-info.json").read_text())
    assert info["commit"] == sha  # trained at the pushed commit, and uploaded
    assert kubectl("get", "pvc", "-n", namespace, "-o", "name").strip() == ""  # no claim at all
    for pod in get_json(namespace, "pods")["items"]:
        spec = pod["spec"]
        names = [c["name"] for c in [*spec.get("initContainers", []), *spec["containers"]]]
        assert names[0] == "artifacts-pull", names
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            refs = [e for e in container.get("env", []) if "s3-creds" in json.dumps(e)]
            assert bool(refs) == container["name"].startswith("artifacts-"), container["name"]
        assert not any("persistentVolumeClaim" in v for v in spec["volumes"])

    ip = cluster_ip(namespace, "train-and-deploy--stage-2-serve-model")
    body = json.dumps(
        {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    ).encode()
    answer = json.loads(http_get(f"http://{ip}:5000/iris/v1/score", body))
    assert answer["species_prediction"] == "setosa"
    assert answer["model_commit"] == sha  # served at the pushed commit, its model pulled from S3
