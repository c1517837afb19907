"""Pod status classification, refused pods and API error translation, on objects the real
API returned.

Every fixture under fixtures/k8s/ was captured from the lab cluster (Kubernetes 1.20) with
`kubectl get -o json` (managedFields dropped) or, for the `status-*.json` Status bodies,
from the API server's answers to a forbidden list (403), a missing pod (404), a duplicate
create (409) and an invalid object (422). They are deserialized into the client's own
model classes, exactly as informers and calls hand them to the executor.
"""

from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from bodywork.core import objects
from bodywork.core.errors import ClusterError
from bodywork.k8s import kube, podstatus, refusals, streams

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


# What the kubelet printed in a CI run for a Secret created a moment before the pod: its
# cache had not caught up, and it retries by itself, so the stage waits rather than fails.
KUBELET_CATCHING_UP = [
    (
        "CreateContainerConfigError",
        "failed to sync secret cache: timed out waiting for the condition",
    ),
    (
        "CreateContainerConfigError",
        "failed to sync configmap cache: timed out waiting for the condition",
    ),
    ("CreateContainerError", "context deadline exceeded"),
]


@pytest.mark.parametrize(("reason", "message"), KUBELET_CATCHING_UP)
def test_a_kubelet_still_catching_up_is_a_wait_not_a_failure(reason: str, message: str) -> None:
    waiting_pod = pod("missing-secret")
    waiting = waiting_pod.status.container_statuses[0].state.waiting
    waiting.reason, waiting.message = reason, message
    assert podstatus.fatal_pod_reason(waiting_pod, crash_is_fatal=True) is None
    assert podstatus.start_refusal(waiting, "bodywork:e2e") is None


def test_a_refused_start_is_named_the_same_for_any_container() -> None:
    missing = pod("missing-secret").status.container_statuses[0]
    assert podstatus.start_refusal(missing.state.waiting, missing.image) == (
        'container cannot start (CreateContainerConfigError): secret "no-such-secret" not found'
    )
    assert podstatus.start_refusal(None, missing.image) is None


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


# ---------------------------------------------------------------------------- refused pods
# Captured on the lab (Kubernetes 1.20) by creating a Job and a Deployment whose pods the
# API refuses: in a namespace without the bodywork-stage service account; under a
# ResourceQuota of pods=0, of requests.cpu=50m, of limits.* (the pod sets none) and of
# pods=1 already used; under a LimitRange (max cpu 500m, min memory 128Mi; and max cpu
# 50m with no default, so the defaulted limit falls below the request); and behind a
# validating webhook that denies, and one whose server is down. Events come from
# `kubectl get events --field-selector involvedObject.kind=Job,...`.
NS = "ml"
URL = "git://git.example/project.git"


def event(name: str) -> Any:
    return load(f"event-{name}", "CoreV1Event")


def refused(name: str) -> Any:
    """The Job or ReplicaSet event `name`, classified as the executor does."""
    refusal = podstatus.job_refusal([event(name)], NS, URL)
    assert refusal is not None
    return refusal


def test_a_namespace_without_the_stage_service_account_is_named_with_the_fix() -> None:
    refusal = refused("job-refused-no-service-account")
    assert (refusal.cause, refusal.permanent) == (refusals.SERVICE_ACCOUNT, True)
    assert refusal.reason == (
        "namespace 'ml' is not set up for Bodywork (service account bodywork-stage not "
        "found): run `bodywork bootstrap -n ml git://git.example/project.git`, or "
        "`kubectl apply -k manifests/` with `namespace: ml` in manifests/kustomization.yaml"
    )


def test_a_quota_the_pod_can_never_fit_names_the_figures_and_the_fix() -> None:
    pods = refused("job-refused-quota")
    assert (pods.cause, pods.permanent) == (refusals.QUOTA, True)
    assert pods.reason == (
        "the pod exceeds ResourceQuota q: requested pods=1, used pods=0, limited pods=0 — "
        "raise the quota (kubectl edit resourcequota q -n ml)"
    )
    cpu = refused("job-refused-quota-cpu")
    assert cpu.reason == (
        "the pod exceeds ResourceQuota q-cpu: requested requests.cpu=100m, used "
        "requests.cpu=0, limited requests.cpu=50m — raise the quota (kubectl edit "
        "resourcequota q-cpu -n ml) or lower CPU_REQUEST in the stage's config"
    )
    # the ReplicaSet controller's aggregated event carries the same message, prefixed
    combined = refused("replicaset-refused-quota-combined")
    assert event("replicaset-refused-quota-combined").message.startswith("(combined from")
    assert combined.reason == pods.reason


def test_a_quota_that_is_full_now_is_waited_for_not_fatal() -> None:
    """requested pods=1, used pods=1, limited pods=1: it fits once another pod ends (on the
    lab it did, when the Job's pod completed)."""
    full = refused("replicaset-refused-quota-full")
    assert (full.cause, full.permanent) == (refusals.QUOTA_FULL, False)
    assert full.reason == (
        "waiting for room in ResourceQuota q-full (requested pods=1, used pods=1, limited "
        "pods=1): other pods in namespace 'ml' use it; it is admitted when they end"
    )


def test_a_quota_that_needs_limits_names_the_config_keys() -> None:
    refusal = refused("job-refused-quota-must-specify")
    assert (refusal.cause, refusal.permanent) == (refusals.QUOTA_UNSET, True)
    assert refusal.reason == (
        "ResourceQuota q-limits admits only pods that set limits.cpu, limits.memory: set "
        "CPU_LIMIT/MEMORY_LIMIT_MB in the stage's config, or give namespace 'ml' a "
        "LimitRange with defaults"
    )


def test_a_limit_range_refusal_keeps_its_message() -> None:
    refusal = refused("job-refused-limitrange")
    assert (refusal.cause, refusal.permanent) == (refusals.LIMIT_RANGE, True)
    assert refusal.reason == (
        "refused by the LimitRange of namespace 'ml': minimum memory usage per Container is "
        "128Mi, but request is 64Mi, maximum cpu usage per Container is 500m, but limit is 1 "
        "— keep CPU_REQUEST/CPU_LIMIT/MEMORY_REQUEST_MB/MEMORY_LIMIT_MB within it "
        "(kubectl describe limitrange -n ml)"
    )


def test_a_limit_range_default_below_the_request_makes_the_pod_invalid() -> None:
    refusal = refused("job-refused-limitrange-default")
    assert (refusal.cause, refusal.permanent) == (refusals.INVALID, True)
    assert refusal.reason == (
        "the API refuses the pod as invalid: spec.containers[0].resources.requests: Invalid "
        'value: "100m": must be less than or equal to cpu limit (a LimitRange\'s default '
        "limit may be below the stage's request: set CPU_LIMIT/MEMORY_LIMIT_MB, or lower the "
        "request)"
    )


def test_a_webhook_that_denies_is_fatal_one_that_does_not_answer_is_waited_for() -> None:
    denied = refused("job-refused-webhook")
    assert (denied.cause, denied.permanent) == (refusals.WEBHOOK, True)
    assert denied.reason == (
        "refused by admission webhook image-policy.example.com: images must come from "
        "registry.example.com"
    )
    down = refused("job-refused-webhook-down")
    assert (down.cause, down.permanent) == (refusals.WEBHOOK_UNREACHABLE, False)
    assert down.reason.startswith(
        "waiting for admission webhook down.example.com, which does not answer: Internal "
        'error occurred: failed calling webhook "down.example.com": Post'
    )
    assert down.reason.endswith("connect: connection refused")


def with_message(message: str) -> Any:
    refusal = copy.deepcopy(event("job-refused-quota"))
    refusal.message = message
    return refusal


def test_pod_security_admission_and_policy_refusals_are_named() -> None:
    # Kubernetes 1.20 (the lab) has no Pod Security admission and runs without the
    # PodSecurityPolicy plugin, so these two messages are not captured: they follow the
    # format the Pod Security admission docs show ('pods "x" is forbidden: violates
    # PodSecurity "restricted:latest": ...', kubernetes.io/docs/concepts/security/
    # pod-security-admission) and PodSecurityPolicy's admission error, inside the Job
    # controller's "Error creating: " event of a captured FailedCreate event.
    psa = with_message(
        'Error creating: pods "train-x2l6m" is forbidden: violates PodSecurity '
        '"restricted:latest": seccompProfile (pod or container "stage" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
    )
    refusal = podstatus.job_refusal([psa], NS, URL)
    assert refusal is not None and refusal.permanent
    assert refusal.reason == (
        "refused by Pod Security admission (restricted:latest): seccompProfile (pod or "
        'container "stage" must set securityContext.seccompProfile.type to "RuntimeDefault" '
        'or "Localhost") — the namespace\'s pod-security.kubernetes.io/enforce label decides '
        "what it admits"
    )
    psp = with_message(
        'Error creating: pods "train-x2l6m" is forbidden: PodSecurityPolicy: unable to admit '
        'pod: [spec.volumes[0]: Invalid value: "persistentVolumeClaim": persistentVolumeClaim '
        "volumes are not allowed to be used]"
    )
    refusal = podstatus.job_refusal([psp], NS, URL)
    assert refusal is not None and refusal.cause == refusals.POD_SECURITY_POLICY
    assert refusal.permanent
    assert refusal.reason.startswith("refused by PodSecurityPolicy: PodSecurityPolicy: unable")
    assert refusal.reason.endswith(
        "let service account bodywork-stage use a policy that admits the stage pod"
    )


def test_an_unknown_refusal_is_shown_but_not_fatal() -> None:
    refusal = podstatus.job_refusal(
        [with_message("Error creating: Timeout: request did not complete within 60s")], NS, URL
    )
    assert refusal == refusals.Refusal(
        refusals.OTHER, "pod creation refused: Timeout: request did not complete within 60s", False
    )


def test_an_unreadable_quota_figure_counts_as_never_fitting() -> None:
    broken = with_message(
        'Error creating: pods "x" is forbidden: exceeded quota: q, requested: '
        "requests.memory=lots, used: requests.memory=0, limited: requests.memory=1Gi"
    )
    refusal = podstatus.job_refusal([broken], NS, URL)
    assert refusal is not None and refusal.permanent
    assert refusal.reason.endswith("or lower MEMORY_REQUEST_MB in the stage's config")


def test_job_refusal_reads_only_failed_create_warnings_and_a_permanent_one_wins() -> None:
    assert podstatus.job_refusal([], NS, URL) is None
    normal = copy.deepcopy(event("job-refused-quota"))
    normal.type, normal.reason = "Normal", "SuccessfulCreate"
    assert podstatus.job_refusal([normal], NS, URL) is None
    # the quota was full, then the pod was refused for good, then full again: the
    # permanent refusal decides, whatever the order
    full = copy.deepcopy(event("replicaset-refused-quota-full"))
    later = copy.deepcopy(full)
    later.last_timestamp = full.last_timestamp + datetime.timedelta(minutes=1)
    fatal = event("job-refused-quota")
    refusal = podstatus.job_refusal([later, fatal, full], NS, URL)
    assert refusal is not None and refusal.cause == refusals.QUOTA
    newest = podstatus.job_refusal([full, later], NS, URL)
    assert newest is not None and newest.cause == refusals.QUOTA_FULL
    undated = copy.deepcopy(full)
    undated.last_timestamp = undated.first_timestamp = undated.event_time = None
    assert podstatus.job_refusal([undated, full], NS, URL) is not None


def deployment(name: str, run_id: str = "run-1") -> Any:
    """A captured refused Deployment, labelled as a Bodywork run's (the lab's test
    Deployments carried no Bodywork labels; the status is untouched)."""
    found = load(f"deployment-refused-{name}", "V1Deployment")
    found.metadata.labels = {objects.RUN_LABEL: run_id}
    return found


def test_a_refused_deployment_is_named_from_its_replica_failure_condition() -> None:
    quota = podstatus.deployment_refusal(deployment("quota"), "run-1", NS, URL)
    assert quota == refused("job-refused-quota")  # the same reason as the Job's event
    account = podstatus.deployment_refusal(deployment("no-service-account"), "run-1", NS, URL)
    assert account is not None and account.cause == refusals.SERVICE_ACCOUNT
    webhook = podstatus.deployment_refusal(deployment("webhook"), "run-1", NS, URL)
    assert webhook is not None and webhook.cause == refusals.WEBHOOK


def test_a_deployment_refusal_counts_only_at_this_runs_observed_template() -> None:
    assert podstatus.deployment_refusal(None, "run-1", NS, URL) is None
    assert podstatus.deployment_refusal(deployment("quota", "run-0"), "run-1", NS, URL) is None
    unobserved = deployment("quota")
    unobserved.metadata.generation = 2  # replaced; the controller has not caught up
    assert podstatus.deployment_refusal(unobserved, "run-1", NS, URL) is None
    healthy = load("deployment-svc-ok", "V1Deployment")
    assert podstatus.deployment_refusal(healthy, "run-1", NS, URL) is None


def test_a_deadline_reached_while_refused_says_what_refused_the_pod() -> None:
    full = refused("replicaset-refused-quota-full")
    assert refusals.while_refused("not ready after 90s", None) == "not ready after 90s"
    assert refusals.while_refused("not ready after 90s", full) == (
        f"not ready after 90s; its pod was refused: {full.reason}"
    )


# ---------------------------------------------------------------------------- the hand-off
# Captured from the lab: stage pods whose `fetch` init container (Bodywork's image, handing
# over to python:3.11-slim) could not reach the repo, as a Job's pod and a Deployment's.
def test_a_fetch_init_container_that_failed_names_the_bootstrap_failure() -> None:
    failed = pod("init-fetch-failed")
    reason = podstatus.failed_container_reason(failed)
    assert reason is not None and reason.startswith("bootstrap failed: cannot fetch git://")
    looping = pod("init-crash-loop")
    fatal = podstatus.fatal_pod_reason(looping, crash_is_fatal=True)
    assert fatal is not None and fatal.startswith("bootstrap failed: cannot fetch git://")


def test_a_completed_fetch_init_container_is_not_a_crash() -> None:
    """The hand-off working: fetch exited 0, the stage's container runs."""
    running = pod("init-handoff-running")
    assert running.status.init_container_statuses[0].state.terminated.exit_code == 0
    assert podstatus.fatal_pod_reason(running, crash_is_fatal=True) is None
    assert podstatus.failed_container_reason(running) is None


# ---------------------------------------------------------------------------- storage
# Captured on the lab (Kubernetes 1.20): a pod mounting a claim that does not exist; a pod
# whose claim has no volume to bind (storageClassName "", no PV) and that claim; a claim of
# a StorageClass that does not exist; a pod mounting a Secret volume that does not exist
# (the kubelet's FailedMount, then after two minutes its "timed out" one); a pod whose
# claim's hostPath PersistentVolume points at no directory; pods whose `artifacts-pull`
# init container and `artifacts-push` container failed with a termination message, and
# one whose stage failed while push exited 0; and a pod with a podAffinity no node meets.
# Multi-Attach needs an attachable volume on a second node, which the single-node lab
# has not: those events are the captured FailedMount event with the reason and message
# the attach-detach controller writes (pkg/controller/volume/attachdetach/reconciler).
def pod_event(name: str) -> Any:
    return load(f"event-pod-{name}", "CoreV1Event")


def attach_event(message: str) -> Any:
    found = copy.deepcopy(pod_event("mount-bad-volume"))
    found.reason, found.message = "FailedAttachVolume", message
    found.source.component, found.source.host = "attachdetach-controller", None
    return found


MULTI_ATTACH = (
    'Multi-Attach error for volume "pvc-5f1e2c34-0d0e-4a57-9d5c-2b1f4f0f9a11" Volume is '
    "already used by pod(s) demo--serve-7c9f8d6b5-x2l6m"
)


def test_a_multi_attach_error_is_permanent_and_names_the_fix_for_each_placement() -> None:
    problem = podstatus.volume_problem([attach_event(MULTI_ATTACH)])
    assert problem is not None
    assert (problem.cause, problem.permanent) == (podstatus.MULTI_ATTACH, True)
    assert problem.reason == f"volume cannot attach: {MULTI_ATTACH} — {podstatus.MULTI_ATTACH_FIX}"
    assert "ARTIFACTS_PVC_ACCESS_MODE = ReadWriteOnce" in problem.reason
    pinned = podstatus.volume_problem([attach_event(MULTI_ATTACH)], pinned=True)
    assert pinned is not None and pinned.reason.endswith(podstatus.MULTI_ATTACH_PINNED_FIX)


def test_another_attach_failure_is_shown_and_waited_for() -> None:
    message = (
        'AttachVolume.Attach failed for volume "pvc-5f1e" : rpc error: code = Internal desc = '
        "Could not attach volume: RequestLimitExceeded"
    )
    problem = podstatus.volume_problem([attach_event(message)])
    assert problem is not None
    assert (problem.cause, problem.permanent) == (podstatus.ATTACH_FAILED, False)
    assert message in problem.reason and "FailedAttachVolume" in problem.reason


def test_a_mount_of_a_missing_secret_is_permanent() -> None:
    event = pod_event("mount-missing-secret")
    assert (event.type, event.reason) == ("Warning", "FailedMount")
    problem = podstatus.volume_problem([event])
    assert problem == podstatus.VolumeProblem(
        podstatus.MOUNT_FAILED,
        'a volume cannot be mounted (FailedMount): MountVolume.SetUp failed for volume "git-ssh" '
        ': secret "no-such-secret" not found — create it, or fix the name given '
        "(--git-ssh-secret)",
        True,
    )
    # the kubelet's two-minute timeout, newer, says less than the cause: the cause wins
    timed_out = pod_event("mount-timed-out")
    assert "timed out waiting for the condition" in timed_out.message
    assert podstatus.volume_problem([event, timed_out]) == problem
    alone = podstatus.volume_problem([timed_out])
    assert alone is not None and not alone.permanent
    assert "unmounted volumes=[git-ssh]" in alone.reason


def test_a_volume_that_fails_to_mount_otherwise_is_shown_and_waited_for() -> None:
    problem = podstatus.volume_problem([pod_event("mount-bad-volume")])
    assert problem is not None
    assert (problem.cause, problem.permanent) == (podstatus.MOUNT_FAILED, False)
    assert problem.reason.startswith(
        "waiting for a volume to mount (FailedMount): MountVolume.SetUp failed for volume "
        '"bw-capture-st1-badpath" : hostPath type check failed: '
    )
    assert problem.reason.endswith(
        "check the volume's server or PersistentVolume (kubectl describe pv)"
    )


def test_volume_problem_ignores_other_events_and_a_permanent_one_wins() -> None:
    assert podstatus.volume_problem([]) is None
    assert podstatus.volume_problem([pod_event("claim-missing")]) is None  # FailedScheduling
    normal = copy.deepcopy(attach_event(MULTI_ATTACH))
    normal.type = "Normal"
    assert podstatus.volume_problem([normal]) is None
    later = copy.deepcopy(pod_event("mount-bad-volume"))
    later.last_timestamp = later.last_timestamp + datetime.timedelta(minutes=1)
    found = podstatus.volume_problem([later, attach_event(MULTI_ATTACH)])
    assert found is not None and found.cause == podstatus.MULTI_ATTACH


def test_pods_stuck_before_any_container_starts_are_the_ones_to_read_events_of() -> None:
    assert podstatus.waiting_for_volumes(pod("mount-missing-secret"))
    assert podstatus.waiting_for_volumes(pod("mount-bad-volume"))
    assert not podstatus.waiting_for_volumes(pod("claim-no-pv"))  # not on a node yet
    assert not podstatus.waiting_for_volumes(pod("succeeded"))
    assert not podstatus.waiting_for_volumes(pod("init-handoff-running"))
    # and nothing in their status says why: only the events do
    assert podstatus.fatal_pod_reason(pod("mount-missing-secret"), crash_is_fatal=True) is None


def test_a_claim_that_does_not_exist_is_named_from_the_scheduler() -> None:
    reason = podstatus.fatal_pod_reason(pod("claim-missing"), crash_is_fatal=False)
    assert reason == (
        "unschedulable: the artifacts claim 'no-such-claim' does not exist (0/1 nodes are "
        'available: 1 persistentvolumeclaim "no-such-claim" not found.): create it or fix '
        "ARTIFACTS_PVC, or remove ARTIFACTS_PVC to have one created"
    )


def test_an_unbound_claim_is_waited_for_until_the_claim_says_it_never_binds() -> None:
    waiting = pod("claim-no-pv")
    assert podstatus.unbound_claim(waiting)
    assert not podstatus.unbound_claim(pod("claim-missing"))
    assert podstatus.fatal_pod_reason(waiting, crash_is_fatal=True) is None
    assert pod_event("claim-unbound").message == (
        "0/1 nodes are available: 1 pod has unbound immediate PersistentVolumeClaims."
    )
    claim = load("pvc-no-pv", "V1PersistentVolumeClaim")
    assert claim.status.phase == "Pending"
    assert podstatus.claim_problem("no-pv-claim", claim, []) is None  # still binding
    binding = load("event-pvc-no-volume", "CoreV1Event")
    assert (binding.type, binding.reason) == ("Normal", "FailedBinding")  # not even a Warning
    problem = podstatus.claim_problem("no-pv-claim", claim, [binding])
    assert problem is not None
    assert (problem.cause, problem.permanent) == (podstatus.CLAIM_UNBOUND, True)
    assert problem.reason.startswith(
        "the artifacts claim 'no-pv-claim' is not bound (FailedBinding): no persistent volumes "
        "available for this claim and no storage class is set — check its StorageClass"
    )


def test_a_claim_of_a_missing_storage_class_never_binds() -> None:
    claim = load("pvc-bad-class", "V1PersistentVolumeClaim")
    event = load("event-pvc-provisioning-failed", "CoreV1Event")
    problem = podstatus.claim_problem("bad-class-claim", claim, [event])
    assert problem is not None and problem.permanent
    assert '(ProvisioningFailed): storageclass.storage.k8s.io "no-such-class" not found' in (
        problem.reason
    )
    passing = copy.deepcopy(event)
    passing.message = "failed to provision volume: rpc error: code = DeadlineExceeded"
    retried = podstatus.claim_problem("bad-class-claim", claim, [passing])
    assert retried is not None and not retried.permanent  # the provisioner retries


def test_a_missing_lost_or_bound_claim() -> None:
    missing = podstatus.claim_problem("gone", None, [])
    assert missing is not None and missing.cause == podstatus.CLAIM_MISSING and missing.permanent
    claim = load("pvc-no-pv", "V1PersistentVolumeClaim")
    claim.status.phase = "Lost"
    lost = podstatus.claim_problem("c", claim, [])
    assert lost is not None and lost.cause == podstatus.CLAIM_LOST and lost.permanent
    claim.status.phase = "Bound"
    assert podstatus.claim_problem("c", claim, [load("event-pvc-no-volume", "CoreV1Event")]) is None


def test_the_node_of_a_read_write_once_claim_that_cannot_take_a_pod_is_named() -> None:
    reason = podstatus.fatal_pod_reason(pod("affinity-unmatched"), crash_is_fatal=False)
    assert reason is not None
    assert reason.startswith("unschedulable: 0/1 nodes are available: 1 node(s) didn't match pod")
    assert reason.endswith(podstatus.AFFINITY_FIX)


def test_a_failed_artifacts_pull_is_named_with_its_termination_message() -> None:
    failed = pod("artifacts-pull-failed")
    expected = (
        "artifacts pull failed (artifacts-pull, exit 1): cannot list s3://models/team/demo/: "
        "AccessDenied: Access Denied (check the Secret in ARTIFACTS_S3_SECRET)"
    )
    assert podstatus.failed_container_reason(failed) == expected
    assert podstatus.fatal_pod_reason(failed, crash_is_fatal=True) == expected  # a service
    assert podstatus.fatal_pod_reason(failed, crash_is_fatal=False) is None  # a Job retries


def test_a_failed_artifacts_push_fails_a_pod_whose_stage_succeeded() -> None:
    failed = pod("artifacts-push-failed")
    assert [s.name for s in failed.status.container_statuses] == ["artifacts-push", "stage"]
    assert podstatus.failed_container_reason(failed) == (
        "artifacts push failed (artifacts-push, exit 1): cannot upload model.joblib to "
        "s3://models/team/demo/model.joblib: EndpointConnectionError: Could not connect to the "
        "endpoint URL"
    )


def test_a_failed_stage_is_named_not_the_push_that_skipped_its_upload() -> None:
    skipped = pod("artifacts-push-skipped")
    push = skipped.status.container_statuses[0]
    assert (push.name, push.state.terminated.exit_code) == ("artifacts-push", 0)
    assert podstatus.failed_container_reason(skipped) == "exited with code 3: training failed"


def test_an_artifacts_container_without_a_message_or_out_of_memory() -> None:
    state = copy.deepcopy(pod("artifacts-pull-failed").status.init_container_statuses[0].state)
    terminated = state.terminated
    terminated.message = None
    assert podstatus.terminated_reason(terminated, "256Mi", "artifacts-pull") == (
        f"artifacts pull failed (artifacts-pull, exit 1): {podstatus.ARTIFACTS_FIX}"
    )
    terminated.exit_code = 96  # the bootstrapper's own code: the bucket refused or was away
    assert podstatus.terminated_reason(terminated, "256Mi", "artifacts-pull") == (
        "artifacts pull failed (artifacts-pull, exit 96): the bucket refused, or could not be "
        f"reached after retries — {podstatus.ARTIFACTS_FIX}"
    )
    terminated.reason = "OOMKilled"
    assert podstatus.terminated_reason(terminated, "256Mi", "artifacts-push") == (
        "artifacts push failed: artifacts-push was OOMKilled (memory limit 256Mi)"
    )


def endpoints(name: str) -> Any:
    return load(f"endpoints-{name}", "V1Endpoints")


# Captured from the lab: a Service over two pods, one passing its readiness probe.
READY_POD, UNREADY_POD = "web-54c4b58789-4q4qw", "web-54c4b58789-t59pc"


def test_a_service_routes_to_a_pod_among_its_ready_addresses_only() -> None:
    one_ready = endpoints("one-ready")
    assert podstatus.routes_to(one_ready, {READY_POD})
    assert podstatus.routes_to(one_ready, {"web-old-pod", READY_POD})
    assert not podstatus.routes_to(one_ready, {UNREADY_POD})  # listed, but not ready
    assert not podstatus.routes_to(one_ready, {"web-old-pod"})  # another run's pod
    assert not podstatus.routes_to(one_ready, set())


def test_a_service_with_no_ready_pod_or_no_endpoints_object_routes_nowhere() -> None:
    assert not podstatus.routes_to(endpoints("none-ready"), {READY_POD, UNREADY_POD})
    assert not podstatus.routes_to(None, {READY_POD})  # not created yet
