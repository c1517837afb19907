"""Pod status classification and API error translation, on objects the real API returned.

Every fixture under fixtures/k8s/ was captured from the lab cluster (Kubernetes 1.20) with
`kubectl get -o json` (managedFields dropped) or, for the `status-*.json` Status bodies,
from the API server's answers to a forbidden list (403), a missing pod (404), a duplicate
create (409) and an invalid object (422). They are deserialized into the client's own
model classes, exactly as informers and calls hand them to the executor.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from bodywork.core.errors import ClusterError
from bodywork.k8s import kube, podstatus, streams

FIXTURES = Path(__file__).parent / "fixtures" / "k8s"
API = client.ApiClient()


def load(name: str, kind: str) -> Any:
    """A captured object as the client's model object (V1Pod, V1Job, V1Deployment)."""
    return API.deserialize((FIXTURES / f"{name}.json").read_text(), kind, "application/json")


def pod(name: str) -> Any:
    return load(f"pod-{name}", "V1Pod")


def api_exception(code: int) -> ApiException:
    """The ApiException the client raises for a captured Status body."""
    body = (FIXTURES / f"status-{code}.json").read_text()
    status = json.loads(body)
    exc = ApiException(status=status["code"], reason=status["reason"])
    exc.body = body
    return exc


# ---------------------------------------------------------------------------- pods
# (fixture, reason while a retry may still help, reason when a crash is fatal)
FATAL = [
    (
        "image-never-pull",
        "image 'bodywork-does-not-exist:1' cannot be pulled (ErrImageNeverPull): "
        'Container image "bodywork-does-not-exist:1" is not present with pull policy of Never',
    ),
    (
        "missing-secret",
        'container cannot start (CreateContainerConfigError): secret "no-such-secret" not found',
    ),
    ("unschedulable", "unschedulable: 0/1 nodes are available: 1 Insufficient cpu."),
]
CRASHED = [
    ("exit-1", "exited with code 1"),
    ("crash-loop", "exited with code 3"),  # waiting in CrashLoopBackOff: from lastState
    ("oom-killed", "OOMKilled (memory limit 32Mi)"),
    ("bootstrap-failed", "bootstrap failed: git fetch failed: repository not found"),
]


@pytest.mark.parametrize(("name", "reason"), FATAL)
def test_a_pod_that_can_never_start_is_fatal_whatever_the_crash_policy(
    name: str, reason: str
) -> None:
    assert podstatus.fatal_pod_reason(pod(name), crash_is_fatal=False) == reason
    assert podstatus.fatal_pod_reason(pod(name), crash_is_fatal=True) == reason


@pytest.mark.parametrize(("name", "reason"), CRASHED)
def test_a_crashed_container_is_fatal_only_when_crashes_are(name: str, reason: str) -> None:
    assert podstatus.fatal_pod_reason(pod(name), crash_is_fatal=False) is None  # Job retries
    assert podstatus.fatal_pod_reason(pod(name), crash_is_fatal=True) == reason


def test_a_pod_still_binding_its_claim_is_not_a_failure() -> None:
    assert podstatus.fatal_pod_reason(pod("claim-unbound"), crash_is_fatal=True) is None
    assert podstatus.failed_container_reason(pod("claim-unbound")) is None


def test_a_container_that_exited_0_ends_a_service_but_not_a_job() -> None:
    succeeded = pod("succeeded")
    assert podstatus.fatal_pod_reason(succeeded, crash_is_fatal=False) is None
    assert podstatus.failed_container_reason(succeeded) is None
    # a service's container must keep running: even a clean exit is a failure there
    assert podstatus.fatal_pod_reason(succeeded, crash_is_fatal=True) == "exited with code 0"


def test_a_claim_still_binding_is_unschedulable_but_waited_for() -> None:
    scheduled = podstatus.condition(pod("claim-unbound"), "PodScheduled")
    assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")
    assert "unbound" in scheduled.message


def test_failed_container_reason_reads_only_the_current_termination() -> None:
    assert podstatus.failed_container_reason(pod("exit-1")) == "exited with code 1"
    assert podstatus.failed_container_reason(pod("oom-killed")) == "OOMKilled (memory limit 32Mi)"
    assert podstatus.failed_container_reason(pod("crash-loop")) is None  # waiting to restart


def test_memory_limit_is_the_stage_containers() -> None:
    assert podstatus.memory_limit(pod("oom-killed")) == "32Mi"
    assert podstatus.memory_limit(pod("exit-1")) is None


def test_terminated_reason_without_a_limit_or_a_message() -> None:
    oom = pod("oom-killed").status.container_statuses[0].state.terminated
    assert podstatus.terminated_reason(oom, None) == (
        "OOMKilled (memory limit none set: the node ran out)"
    )
    bootstrap = pod("bootstrap-failed").status.container_statuses[0].state.terminated
    assert bootstrap.exit_code == 90
    bootstrap.message = None
    assert podstatus.terminated_reason(bootstrap, None) == (
        "bootstrap failed: fetching the code failed"
    )
    exited = pod("exit-1").status.container_statuses[0].state.terminated
    exited.message = "Traceback (most recent call last):\n  ...\nValueError: bad input\n"
    assert podstatus.terminated_reason(exited, None) == "exited with code 1: ValueError: bad input"


# ---------------------------------------------------------------------------- conditions
def test_job_conditions() -> None:
    complete, failed, deadline = (
        load(f"job-{n}", "V1Job") for n in ("complete", "failed", "deadline")
    )
    assert podstatus.condition_true(complete, "Complete") is not None
    assert podstatus.condition_true(complete, "Failed") is None
    assert podstatus.condition_true(failed, "Complete") is None
    assert podstatus.condition_true(failed, "Failed").reason == "BackoffLimitExceeded"
    assert podstatus.condition_true(deadline, "Failed").reason == "DeadlineExceeded"
    assert podstatus.condition(complete, "Progressing") is None


def test_condition_true_ignores_a_false_condition() -> None:
    unschedulable = pod("unschedulable")
    assert podstatus.condition(unschedulable, "PodScheduled") is not None
    assert podstatus.condition_true(unschedulable, "PodScheduled") is None
    assert podstatus.condition_true(pod("succeeded"), "Ready") is None
    assert podstatus.condition_true(pod("succeeded"), "PodScheduled") is not None


# ---------------------------------------------------------------------------- rollouts
def test_an_available_deployment_of_this_run_is_ready() -> None:
    deployment = load("deployment-svc-ok", "V1Deployment")
    assert podstatus.rollout_state(deployment, "run-1") == (True, None)


def test_a_deployment_of_another_run_or_none_is_not_ready_yet() -> None:
    deployment = load("deployment-svc-ok", "V1Deployment")
    assert podstatus.rollout_state(deployment, "run-2") == (False, None)
    assert podstatus.rollout_state(None, "run-1") == (False, None)


def test_a_rollout_with_fewer_pods_than_wanted_or_unobserved_is_not_ready() -> None:
    scaled = load("deployment-svc-ok", "V1Deployment")
    scaled.spec.replicas = 2
    assert podstatus.rollout_state(scaled, "run-1") == (False, None)
    updated = copy.deepcopy(load("deployment-svc-ok", "V1Deployment"))
    updated.metadata.generation = 2  # a new template the controller has not seen yet
    assert podstatus.rollout_state(updated, "run-1") == (False, None)


def test_a_stalled_rollout_is_a_failure() -> None:
    deployment = load("deployment-svc-stuck", "V1Deployment")
    available, failure = podstatus.rollout_state(deployment, "run-1")
    assert not available
    assert failure is not None
    assert failure.startswith('rollout made no progress: ReplicaSet "svc-stuck-')
    assert failure.endswith('" has timed out progressing.')


# ---------------------------------------------------------------------------- API errors
def test_translate_403_names_the_account_and_the_role() -> None:
    error = kube.translate(api_exception(403), "list pods", "ns1")
    assert isinstance(error, ClusterError)
    assert (error.status, error.reason) == (403, "Forbidden")
    assert str(error).startswith(
        "cannot list pods in namespace 'ns1': forbidden (pods is forbidden"
    )
    assert 'User "system:serviceaccount:default:nobody"' in str(error)
    assert str(error).endswith("grant it in the controller's Role (manifests/role.yaml)")


def test_translate_404_422_and_409() -> None:
    missing = kube.translate(api_exception(404), "get pod no-such-pod", "ns1")
    assert str(missing) == (
        "cannot get pod no-such-pod in namespace 'ns1': not found (pods \"no-such-pod\" not found)"
    )
    invalid = kube.translate(api_exception(422), "create configmap Bad_Name", "ns1")
    assert str(invalid).startswith(
        'cannot create configmap Bad_Name: the object is invalid (ConfigMap "Bad_Name" is '
        'invalid: metadata.name: Invalid value: "Bad_Name"'
    )
    duplicate = kube.translate(api_exception(409), "create configmap dup", "ns1")
    assert duplicate.status == 409
    assert str(duplicate) == (
        "cannot create configmap dup in namespace 'ns1': 409 configmaps \"dup\" already exists"
    )


def test_translate_without_a_json_body_falls_back_to_the_reason() -> None:
    exc = ApiException(status=502, reason="Bad Gateway")
    exc.body = "<html>upstream down</html>"
    assert str(kube.translate(exc, "list pods", "ns1")) == (
        "cannot list pods in namespace 'ns1': 502 Bad Gateway"
    )


@pytest.mark.parametrize("code", [403, 404, 409, 422])
def test_client_errors_are_not_transient(code: int) -> None:
    exc = api_exception(code)
    assert not kube.is_transient(exc)
    assert not kube.is_transient(kube.translate(exc, "x", "ns1"))


@pytest.mark.parametrize("code", [0, 429, 500, 502, 503, 504])
def test_throttling_server_errors_and_broken_connections_are_transient(code: int) -> None:
    assert kube.is_transient(ApiException(status=code, reason="x"))
    assert kube.is_transient(ClusterError("x", status=code))


def test_connection_errors_are_transient_and_others_are_not() -> None:
    assert kube.is_transient(urllib3.exceptions.ProtocolError("connection reset"))
    assert kube.is_transient(ConnectionResetError())
    assert kube.is_transient(TimeoutError())
    assert not kube.is_transient(ValueError("bad"))
    assert not kube.is_transient(ClusterError("no status"))


# ---------------------------------------------------------------------------- watch errors
def error_event(code: int) -> dict[str, Any]:
    """A watch ERROR event carrying a captured Status, decoded by the client's own Watch."""
    status = json.loads((FIXTURES / f"status-{code}.json").read_text())
    line = json.dumps({"type": "ERROR", "object": status})
    event: dict[str, Any] = watch.Watch().unmarshal_event(line, "V1PodList")  # type: ignore[no-untyped-call]
    return event


def never_called(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the stream was not meant to be iterated")


def test_a_watch_error_event_becomes_the_translated_error() -> None:
    stream = streams.Stream("watch pods", "ns1", never_called, "ns1")
    error = stream._error_event(error_event(403))
    assert error.status == 403
    assert str(error).startswith("cannot watch pods in namespace 'ns1': forbidden (pods is")
    assert not kube.is_transient(error)


@pytest.mark.parametrize("code", [404, 409, 422])
def test_a_watch_error_event_keeps_the_status_code(code: int) -> None:
    event = error_event(code)
    error = streams.Stream("watch pods", "ns1", never_called, "ns1")._error_event(event)
    assert error.status == code
    assert event["raw_object"]["message"] in str(error)


def test_a_watch_error_event_without_a_code_is_a_server_error() -> None:
    event = error_event(403)
    del event["raw_object"]["code"]
    error = streams.Stream("watch pods", "ns1", never_called, "ns1")._error_event(event)
    assert error.status == 500
    assert kube.is_transient(error)
