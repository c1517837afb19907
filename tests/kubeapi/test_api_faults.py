"""The controller against API faults: the real API server behind a FaultProxy that fails,
resets, expires and cuts requests, so retries, error messages and informer recovery are
exercised over real HTTP (no mocks)."""

from __future__ import annotations

import json
import re
import secrets
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from bodywork.core import config, objects, plan, results
from bodywork.core.errors import ClusterError
from bodywork.engine import gitsource, workflow
from bodywork.engine.executors.kubernetes import KubernetesExecutor
from bodywork.k8s import informers, kube
from tests.e2e.conftest import IMAGE, kubectl
from tests.e2e.test_kubernetes import (
    batch_config,
    http_server_script,
    project_files,
    service_config,
)
from tests.kubeapi.faultproxy import FaultProxy, Request, Rule, describe_request

CONTROLLER = "bodywork-controller"


# ---------------------------------------------------------------------------- helpers
def configmap(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"faulttest": "call"}},
        "data": {"k": "v"},
    }


def job(name: str, backoff_limit: int = 0) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": IMAGE, "command": ["true"]}],
                }
            },
        },
    }


def configmaps_in(namespace: str) -> list[str]:
    """Names of the test's ConfigMaps, read with kubectl (not through the proxy)."""
    out = kubectl("get", "configmaps", "-n", namespace, "-l", "faulttest=call", "-o", "name")
    return out.split()


def park_pod(namespace: str, name: str, label: str) -> None:
    """Create a pod no scheduler picks up (so it sees no changes but ours), with kubectl."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"faulttest": label}},
        "spec": {
            "schedulerName": "faultproxy-nobody",
            "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}],
        },
    }
    kubectl("create", "-n", namespace, "-f", "-", stdin=json.dumps(pod))


def wait_until(
    changes: informers.Changes, predicate: Callable[[], bool], timeout: float = 30
) -> None:
    """Wait on informer change notifications until `predicate()` holds."""
    deadline = time.monotonic() + timeout
    seen = changes.version
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"not true within {timeout}s")
        seen = changes.wait(seen, min(remaining, 1.0))


@pytest.fixture
def pod_informer(
    api: client.ApiClient, namespace: str
) -> Iterator[Callable[..., informers.Informer]]:
    """Start (on call) an Informer on this test's pods, through the proxy; stop it after."""
    started: list[informers.Informer] = []
    label = secrets.token_hex(3)

    def start(read_timeout: float = informers.WATCH_READ_TIMEOUT_SECONDS) -> informers.Informer:
        informer = informers.Informer(
            client.CoreV1Api(api).list_namespaced_pod,
            namespace,
            f"faulttest={label}",
            "pods",
            informers.Changes(),
            read_timeout=read_timeout,
        ).start()
        informer.label = label  # type: ignore[attr-defined]
        started.append(informer)
        return informer

    yield start
    for informer in started:
        informer.stop()


def kinds(log: list[Request], path_regex: str = r"/pods$") -> list[tuple[str, str | None]]:
    """The list/watch sequence on one collection: [("list"|"watch", fault), ...]."""
    return [
        ("watch" if r.watch else "list", r.fault)
        for r in log
        if r.method == "GET" and re.search(path_regex, r.path)
    ]


# ---------------------------------------------------------------------------- the proxy
def test_proxy_forbid_answers_exactly_like_the_api_servers_rbac(
    proxy: FaultProxy, api: client.ApiClient, namespace: str
) -> None:
    """A read the shipped Role forbids (Secrets) and proxy.forbid() give the same error."""
    user = f"system:serviceaccount:{namespace}:{CONTROLLER}"
    api.set_default_header("Impersonate-User", user)  # the controller's own rights
    core = client.CoreV1Api(api)
    with pytest.raises(ClusterError) as real:
        kube.call("list secrets", namespace, core.list_namespaced_secret, namespace)
    proxy.forbid("GET", r"/secrets$", user=user)
    with pytest.raises(ClusterError) as fake:
        kube.call("list secrets", namespace, core.list_namespaced_secret, namespace)
    assert [(r.status, r.fault) for r in proxy.requests("GET")] == [(403, None), (403, "forbid")]
    assert real.value.status == fake.value.status == 403
    assert str(fake.value) == str(real.value)


def test_describe_request_names_the_rbac_verb_and_resource() -> None:
    """Paths and methods map to the verb, resource and group RBAC checks."""
    assert describe_request("POST", "/apis/batch/v1/namespaces/ns/jobs", {}) == {
        "verb": "create",
        "resource": "jobs",
        "group": "batch",
        "namespace": "ns",
    }
    assert describe_request("GET", "/api/v1/namespaces/ns/pods", {"watch": "true"})["verb"] == (
        "watch"
    )
    logs = describe_request("GET", "/api/v1/namespaces/ns/pods/p/log", {})
    assert (logs["verb"], logs["resource"]) == ("get", "pods/log")


# ---------------------------------------------------------------------------- kube.call
def test_create_is_retried_through_two_503s_and_makes_one_object(
    proxy: FaultProxy, api: client.ApiClient, namespace: str
) -> None:
    """Two 503s then success: three POSTs, one ConfigMap."""
    proxy.fail("POST", r"/configmaps$", status=503, times=2)
    core = client.CoreV1Api(api)
    created = kube.call(
        "create configmap once",
        namespace,
        core.create_namespaced_config_map,
        namespace,
        configmap("once"),
    )
    assert created.metadata.name == "once"
    assert [r.status for r in proxy.requests("POST", r"/configmaps$")] == [503, 503, 201]
    assert configmaps_in(namespace) == ["configmap/once"]


def test_create_is_retried_after_429_too_many_requests(
    proxy: FaultProxy, api: client.ApiClient, namespace: str
) -> None:
    """A 429 (Retry-After: 0) is transient: the create is sent again and succeeds."""
    proxy.fail("POST", r"/configmaps$", status=429, times=1)
    core = client.CoreV1Api(api)
    kube.call(
        "create configmap throttled",
        namespace,
        core.create_namespaced_config_map,
        namespace,
        configmap("throttled"),
    )
    assert [r.status for r in proxy.requests("POST", r"/configmaps$")] == [429, 201]
    assert configmaps_in(namespace) == ["configmap/throttled"]


def test_create_is_retried_after_the_connection_is_reset_unanswered(
    proxy: FaultProxy, api: client.ApiClient, namespace: str
) -> None:
    """A POST whose connection is reset before any answer is sent again and succeeds."""
    proxy.reset_connection("POST", r"/configmaps$", times=1)
    core = client.CoreV1Api(api)
    kube.call(
        "create configmap reset",
        namespace,
        core.create_namespaced_config_map,
        namespace,
        configmap("reset"),
    )
    assert [r.status for r in proxy.requests("POST", r"/configmaps$")] == [None, 201]
    assert configmaps_in(namespace) == ["configmap/reset"]


def test_forbidden_create_fails_at_once_naming_verb_resource_and_role(
    proxy: FaultProxy, api: client.ApiClient, namespace: str
) -> None:
    """403 is not retried; the error names the verb and resource and points at role.yaml."""
    proxy.forbid("POST", r"/jobs$", user=f"system:serviceaccount:{namespace}:{CONTROLLER}")
    batch = client.BatchV1Api(api)
    with pytest.raises(ClusterError) as caught:
        kube.call("create job j", namespace, batch.create_namespaced_job, namespace, job("j"))
    assert len(proxy.requests("POST", r"/jobs$")) == 1
    message = str(caught.value)
    assert caught.value.status == 403
    assert message.startswith(f"cannot create job j in namespace '{namespace}': forbidden")
    assert 'cannot create resource "jobs" in API group "batch"' in message
    assert "manifests/role.yaml" in message


def test_invalid_object_fails_at_once_naming_the_bad_field(
    proxy: FaultProxy, api: client.ApiClient, namespace: str
) -> None:
    """The API server's 422 is not retried; the error names the invalid field."""
    batch = client.BatchV1Api(api)
    with pytest.raises(ClusterError) as caught:
        kube.call(
            "create job bad", namespace, batch.create_namespaced_job, namespace, job("bad", -1)
        )
    assert [r.status for r in proxy.requests("POST")] == [422]
    assert caught.value.status == 422
    assert "the object is invalid" in str(caught.value)
    assert "spec.backoffLimit" in str(caught.value)


def test_create_in_a_missing_namespace_fails_at_once_as_not_found(
    proxy: FaultProxy, api: client.ApiClient
) -> None:
    """A 404 for the namespace is not retried and says which namespace."""
    missing = f"bw-missing-{secrets.token_hex(3)}"
    core = client.CoreV1Api(api)
    with pytest.raises(ClusterError) as caught:
        kube.call(
            "create configmap c",
            missing,
            core.create_namespaced_config_map,
            missing,
            configmap("c"),
        )
    assert [r.status for r in proxy.requests("POST")] == [404]
    assert caught.value.status == 404
    assert f"cannot create configmap c in namespace '{missing}': not found" in str(caught.value)
    assert f'namespaces "{missing}" not found' in str(caught.value)


# ---------------------------------------------------------------------------- Informer
def test_informer_relists_after_410_gone_and_sees_later_pods(
    proxy: FaultProxy, namespace: str, pod_informer: Callable[[], informers.Informer]
) -> None:
    """A watch answered with 410 Expired makes the informer list again, then watch on."""
    proxy.gone_on_watch(r"/pods$")
    informer = pod_informer()
    proxy.wait_for(lambda log: len(kinds(log)) >= 4)
    park_pod(namespace, "after-gone", informer.label)  # type: ignore[attr-defined]
    wait_until(informer.changes, lambda: informer.get("after-gone") is not None)
    assert kinds(proxy.requests())[:4] == [
        ("list", None),
        ("watch", "gone"),
        ("list", None),
        ("watch", None),
    ]


def test_informer_resumes_a_cut_watch_from_its_last_resource_version(
    proxy: FaultProxy, namespace: str, pod_informer: Callable[[], informers.Informer]
) -> None:
    """A watch cut after one event reconnects at that event's version, without re-listing."""
    proxy.drop_watch_after(r"/pods$", events=1)
    informer = pod_informer()
    assert informer.synced.wait(30)
    label = informer.label  # type: ignore[attr-defined]
    park_pod(namespace, "first", label)
    wait_until(informer.changes, lambda: informer.get("first") is not None)
    seen_version = informer.get("first").metadata.resource_version
    proxy.wait_for(lambda log: any(r.watch and r.resource_version == seen_version for r in log))
    park_pod(namespace, "second", label)
    kubectl("delete", "pod", "-n", namespace, "first", "--wait=false")
    wait_until(
        informer.changes,
        lambda: informer.get("second") is not None and informer.get("first") is None,
    )
    assert kinds(proxy.requests())[:3] == [("list", None), ("watch", "drop"), ("watch", None)]
    assert len(proxy.requests("GET", r"/pods$", watch=False)) == 1  # resumed, not re-listed


def test_informer_reconnects_after_its_watch_connection_is_reset(
    proxy: FaultProxy, namespace: str, pod_informer: Callable[[], informers.Informer]
) -> None:
    """A watch whose connection is reset unanswered is opened again from the same version."""
    proxy.reset_connection("GET", r"/pods$", watch=True, times=1)
    informer = pod_informer()
    proxy.wait_for(lambda log: len(kinds(log)) >= 3)
    park_pod(namespace, "after-reset", informer.label)  # type: ignore[attr-defined]
    wait_until(informer.changes, lambda: informer.get("after-reset") is not None)
    watches = proxy.requests("GET", r"/pods$", watch=True)
    assert (watches[0].status, watches[0].fault) == (None, "reset")
    assert watches[1].fault is None
    assert watches[1].resource_version == watches[0].resource_version


def test_forbidden_watch_reaches_waiters_as_a_cluster_error(
    proxy: FaultProxy, namespace: str, pod_informer: Callable[[], informers.Informer]
) -> None:
    """A permanent failure (403) on the watch is raised to whoever waits on changes."""
    user = f"system:serviceaccount:{namespace}:{CONTROLLER}"
    proxy.forbid("GET", r"/pods$", user=user, watch=True)  # the list is allowed, not the watch
    informer = pod_informer()
    with pytest.raises(ClusterError) as caught:
        wait_until(informer.changes, lambda: False, timeout=30)
    assert caught.value.status == 403
    assert "cannot watch pods" in str(caught.value)
    assert "manifests/role.yaml" in str(caught.value)
    assert kinds(proxy.requests()) == [("list", None), ("watch", "forbid")]  # not retried


# ---------------------------------------------------------------------------- a workflow
def run_jobs(namespace: str, run_id: str) -> list[str]:
    """The run's Jobs, read with kubectl (not through the proxy)."""
    selector = f"{objects.RUN_LABEL}={run_id}"
    return kubectl("get", "jobs", "-n", namespace, "-l", selector, "-o", "name").split()


def load_plan(url: str) -> plan.Plan:
    """What cli.settings.load_plan does: pin the URL, check it out, read the project, plan it."""
    source = gitsource.resolve(url, None, warn=lambda message: None)
    with tempfile.TemporaryDirectory(prefix="bodywork-config-") as tmp:
        root = gitsource.checkout(source, Path(tmp) / "src")
        project = config.load_project(root, gitsource.project_fallback_name(source))
    return plan.build_plan(project, source, plan.new_run_id())


def test_workflow_succeeds_through_503s_on_job_creation_and_broken_watches(
    proxy: FaultProxy, api: client.ApiClient, workflow_namespace: str, publish
) -> None:
    """503s on Job creation, a cut and an expired Job watch, a cut pod watch: still green."""
    url, sha = publish(
        "faults",
        project_files(
            "first >> second",
            {
                "first": (batch_config(), "print('first ran')\n"),
                "second": (batch_config(), "print('second ran')\n"),
            },
        ),
    )
    the_plan = load_plan(url)
    proxy.fail("POST", r"/jobs$", status=503, times=2)
    proxy.drop_watch_after(r"/jobs$", events=1)  # cut at the first Job's ADDED event...
    proxy.gone_on_watch(r"/jobs$")  # ...and the resumed watch is told its version expired
    proxy.drop_watch_after(r"/pods$", events=2)
    lines: list[tuple[str, str]] = []
    settings = objects.RunSettings(namespace=workflow_namespace, image=IMAGE)
    executor = KubernetesExecutor(api, settings, lambda stage, line: lines.append((stage, line)))
    try:
        outcome = workflow.run_workflow(the_plan, executor)
    finally:
        executor.close()

    summary = results.format_summary(outcome)
    assert outcome.succeeded, summary
    assert [(r.stage, r.status, r.attempts) for r in outcome.results] == [
        ("first", "succeeded", 1),
        ("second", "succeeded", 1),
    ]
    assert summary.splitlines()[0] == f"run {the_plan.run_id} at {sha[:12]} succeeded"
    assert ("first", "first ran") in lines and ("second", "second ran") in lines
    assert [r.status for r in proxy.requests("POST", r"/jobs$")] == [503, 503, 201, 201]
    assert len(run_jobs(workflow_namespace, the_plan.run_id)) == 2  # one per stage, not four
    assert kinds(proxy.requests(), r"/jobs$")[:5] == [
        ("list", None),
        ("watch", "drop"),
        ("watch", "gone"),
        ("list", None),
        ("watch", None),
    ]
    pod_watches = proxy.requests("GET", r"/pods$", watch=True)
    assert pod_watches[0].fault == "drop"
    assert pod_watches[1].resource_version != pod_watches[0].resource_version  # resumed later


def test_workflow_succeeds_when_the_answer_to_a_job_create_is_lost(
    proxy: FaultProxy, api: client.ApiClient, workflow_namespace: str, publish
) -> None:
    """The Job is created but the client gets a 504: the retry's 409 is our own Job."""
    url, _ = publish(
        "lost",
        project_files("only", {"only": (batch_config(), "print('only ran')\n")}),
    )
    the_plan = load_plan(url)
    proxy.lose_response("POST", r"/jobs$", status=504)
    lines: list[tuple[str, str]] = []
    settings = objects.RunSettings(namespace=workflow_namespace, image=IMAGE)
    executor = KubernetesExecutor(api, settings, lambda stage, line: lines.append((stage, line)))
    try:
        outcome = workflow.run_workflow(the_plan, executor)
    finally:
        executor.close()

    assert outcome.succeeded, results.format_summary(outcome)
    assert [r.status for r in proxy.requests("POST", r"/jobs$")] == [504, 409]
    assert ("only", "only ran") in lines
    assert len(run_jobs(workflow_namespace, the_plan.run_id)) == 1  # the first create's


# ---------------------------------------------------------------------------- stalled watches
STALL_READ_TIMEOUT = 3  # seconds; the controller's default is informers.WATCH_READ_TIMEOUT_SECONDS
JOB_STALL_READ_TIMEOUT = 12  # long enough for a one-line batch stage to finish inside it


def dropped_events(rule: Rule) -> list[tuple[str, dict]]:
    """The (type, object) events a stalled watch read upstream but never sent on."""
    events = [json.loads(line) for line in rule.dropped if line.strip()]
    return [(e["type"], e["object"]) for e in events]


def test_proxy_stall_keeps_the_watch_open_and_silent_until_the_client_leaves(
    proxy: FaultProxy, namespace: str
) -> None:
    """A stalled watch sends headers, then no byte and no close; leaving frees upstream."""
    stall = proxy.stall_watch(r"/pods$", after_events=0)
    label = secrets.token_hex(3)
    host, port = proxy.url.removeprefix("http://").split(":")
    path = f"/api/v1/namespaces/{namespace}/pods?watch=true&labelSelector=faulttest%3D{label}"
    connection = socket.create_connection((host, int(port)), timeout=10)
    connection.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, body = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200")
    assert body == b""
    connection.settimeout(1.0)
    with pytest.raises(TimeoutError):
        connection.recv(65536)  # b"" would mean the proxy closed the stream
    park_pod(namespace, "unsent", label)
    deadline = time.monotonic() + 10
    while not stall.dropped and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [(kind, obj["metadata"]["name"]) for kind, obj in dropped_events(stall)] == [
        ("ADDED", "unsent")
    ]
    with pytest.raises(TimeoutError):
        connection.recv(65536)  # the event was read upstream and not sent on
    connection.close()
    deadline = time.monotonic() + 5
    while proxy._upstreams and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not proxy._upstreams  # the stall ended with its client


def test_informer_reconnects_a_stalled_watch_and_sees_the_pod_the_stall_swallowed(
    proxy: FaultProxy, namespace: str, pod_informer: Callable[..., informers.Informer]
) -> None:
    """A watch that goes silent is dropped after read_timeout and resumed at its version."""
    stall = proxy.stall_watch(r"/pods$", after_events=0)
    informer = pod_informer(read_timeout=STALL_READ_TIMEOUT)
    proxy.wait_for(lambda log: any(r.fault == "stall" for r in log))
    stalled_at = time.monotonic()
    park_pod(namespace, "during-stall", informer.label)  # type: ignore[attr-defined]
    proxy.wait_for(lambda log: sum(r.watch for r in log) >= 2, timeout=15)
    stalled_for = time.monotonic() - stalled_at
    wait_until(informer.changes, lambda: informer.get("during-stall") is not None, timeout=15)
    assert stalled_for >= STALL_READ_TIMEOUT  # held open and silent until the read timeout
    assert ("ADDED", "during-stall") in [
        (kind, obj["metadata"]["name"]) for kind, obj in dropped_events(stall)
    ]  # the stalled stream never delivered it: only the reconnect could
    watches = proxy.requests("GET", r"/pods$", watch=True)
    assert [w.fault for w in watches[:2]] == ["stall", None]
    assert watches[1].resource_version is not None
    assert watches[1].resource_version == watches[0].resource_version  # nothing skipped
    assert len(proxy.requests("GET", r"/pods$", watch=False)) == 1  # resumed, not re-listed


def test_job_that_completes_while_its_watch_is_stalled_is_reported_succeeded(
    proxy: FaultProxy, api: client.ApiClient, workflow_namespace: str, publish
) -> None:
    """The Job watch goes silent before the Job exists; its completion is still reported."""
    url, _ = publish(
        "stalled",
        project_files("only", {"only": (batch_config(), "print('only ran')\n")}),
    )
    the_plan = load_plan(url)
    stall = proxy.stall_watch(r"/jobs$", after_events=0)
    lines: list[tuple[str, str]] = []
    settings = objects.RunSettings(namespace=workflow_namespace, image=IMAGE)
    executor = KubernetesExecutor(
        api,
        settings,
        lambda stage, line: lines.append((stage, line)),
        watch_read_timeout=JOB_STALL_READ_TIMEOUT,
    )
    try:
        outcome = workflow.run_workflow(the_plan, executor)
    finally:
        executor.close()

    assert outcome.succeeded, results.format_summary(outcome)
    assert [(r.stage, r.status, r.attempts) for r in outcome.results] == [("only", "succeeded", 1)]
    assert ("only", "only ran") in lines
    completed = {
        f"job.batch/{obj['metadata']['name']}"
        for _, obj in dropped_events(stall)
        if any(
            c["type"] == "Complete" and c["status"] == "True"
            for c in obj.get("status", {}).get("conditions") or []
        )
    }  # the Job finished while its watch was silent: only the reconnect could report it
    assert completed == set(run_jobs(workflow_namespace, the_plan.run_id)), completed
    assert len(completed) == 1
    watches = proxy.requests("GET", r"/jobs$", watch=True)
    assert [w.fault for w in watches[:2]] == ["stall", None]
    assert watches[1].resource_version == watches[0].resource_version  # replayed from there
    assert len(proxy.requests("GET", r"/jobs$", watch=False)) == 1  # resumed, not re-listed


# ---------------------------------------------------------------------------- service routing
def run_service(api: client.ApiClient, namespace: str, url: str) -> tuple[plan.Plan, Any]:
    the_plan = load_plan(url)
    settings = objects.RunSettings(namespace=namespace, image=IMAGE)
    executor = KubernetesExecutor(api, settings, lambda stage, line: None)
    try:
        outcome = workflow.run_workflow(the_plan, executor)
    finally:
        executor.close()
    assert outcome.succeeded, results.format_summary(outcome)
    return the_plan, outcome


def test_service_succeeds_once_its_endpoints_route_and_a_role_without_them_only_warns(
    proxy: FaultProxy, api: client.ApiClient, workflow_namespace: str, publish
) -> None:
    """The controller reads the Service's Endpoints after the rollout is available and ends
    only when they list the new pod; where reading them is forbidden (a Role from before
    that rule) it asks once, then trusts availability as before."""
    endpoints_path = r"/namespaces/[^/]+/endpoints/e2e--web$"
    url, _ = publish(
        "routed",
        project_files("web", {"web": (service_config(8080, 60), http_server_script("v1", 8080))}),
    )
    run_service(api, workflow_namespace, url)
    reads = proxy.requests("GET", endpoints_path)
    assert reads and all(r.status == 200 for r in reads)
    endpoints = json.loads(
        kubectl("get", "endpoints", "-n", workflow_namespace, "e2e--web", "-o", "json")
    )
    routed = {a["targetRef"]["name"] for s in endpoints["subsets"] for a in s["addresses"]}
    pods = kubectl(
        "get", "pods", "-n", workflow_namespace, "-l", "bodywork.dev/stage=web",
        "-o", "jsonpath={.items[*].metadata.name}",
    ).split()  # fmt: skip
    assert routed & set(pods)

    proxy.forbid("GET", endpoints_path)
    publish("routed", {"web/main.py": http_server_script("v2", 8080)})
    run_service(api, workflow_namespace, url)  # still succeeds
    refused = [r for r in proxy.requests("GET", endpoints_path) if r.fault == "forbid"]
    assert len(refused) == 1  # asked once: a 403 is not retried, nor asked again each poll
