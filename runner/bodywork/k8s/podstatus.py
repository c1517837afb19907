"""Reading what the API says about pods, Jobs and Deployments: pure functions, no calls.

Owns the classification of a pod's status into a named failure reason (Unschedulable,
image pull, missing secret or config, OOMKilled, bootstrap failure, crash), the lookup of
an object's condition by type, and the rollout state of a Deployment at one run's
template. Inputs are the client's model objects (V1Pod, V1Job, V1Deployment) as informers
and calls return them; nothing here talks to the cluster, so it is tested on captured
objects (tests/unit/fixtures/k8s).

A pod the API refuses to create never exists: `job_refusal` reads the Job's FailedCreate
events and `deployment_refusal` the Deployment's ReplicaFailure condition, and
`bodywork.k8s.refusals` names the cause and the fix.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from bodywork.core import objects
from bodywork.core.results import TIMED_OUT
from bodywork.k8s import refusals
from bodywork_bootstrap import BOOTSTRAP_EXIT_CODES, TIME_LIMIT_EXIT_CODES

IMAGE_ERRORS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"}
)
CONFIG_ERRORS = frozenset({"CreateContainerConfigError", "CreateContainerError"})


def terminated_reason(state: Any, limit: str | None) -> str:
    """Why a container ended (a V1ContainerStateTerminated), given its memory limit."""
    if state.reason == "OOMKilled":
        return f"OOMKilled (memory limit {limit or 'none set: the node ran out'})"
    if state.exit_code in TIME_LIMIT_EXIT_CODES:  # the bootstrapper held the code to a limit
        return f"{TIMED_OUT}: {(state.message or BOOTSTRAP_EXIT_CODES[state.exit_code]).strip()}"
    if state.exit_code in BOOTSTRAP_EXIT_CODES:
        return (
            f"bootstrap failed: {(state.message or BOOTSTRAP_EXIT_CODES[state.exit_code]).strip()}"
        )
    message = (state.message or "").strip().splitlines()
    return f"exited with code {state.exit_code}" + (f": {message[-1]}" if message else "")


def is_time_limit(reason: str) -> bool:
    """Whether a reason from `terminated_reason` says the stage's own time limit was hit."""
    return reason.startswith(f"{TIMED_OUT}: ")


def memory_limit(pod: Any) -> str | None:
    """The memory limit of the pod's (first, the stage's) container, if any."""
    limits = pod.spec.containers[0].resources.limits or {}
    limit: str | None = limits.get("memory")
    return limit


def _statuses(pod: Any) -> list[Any]:
    """Init containers (the hand-off's `fetch`) first, as they run first, then the stage's."""
    return [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]


def failed_container_reason(pod: Any) -> str | None:
    """The reason of the first container that terminated with a non-zero code, if any; an
    init container that completed (exit 0) is not a failure."""
    for status in _statuses(pod):
        terminated = status.state.terminated
        if terminated and terminated.exit_code != 0:
            return terminated_reason(terminated, memory_limit(pod))
    return None


def fatal_pod_reason(pod: Any, crash_is_fatal: bool) -> str | None:
    """Why this pod can never succeed, or None while it still might."""
    for cond in pod.status.conditions or []:
        if (
            cond.type == "PodScheduled"
            and cond.status == "False"
            and cond.reason == "Unschedulable"
            # a claim that is still binding is a wait, not a failure
            and "unbound" not in (cond.message or "")
        ):
            return f"unschedulable: {cond.message}"
    init = {id(s) for s in pod.status.init_container_statuses or []}
    for status in _statuses(pod):
        waiting = status.state.waiting
        if waiting and waiting.reason in IMAGE_ERRORS:
            return f"image '{status.image}' cannot be pulled ({waiting.reason}): {waiting.message}"
        if waiting and waiting.reason in CONFIG_ERRORS:
            return f"container cannot start ({waiting.reason}): {waiting.message}"
        if crash_is_fatal:
            crashed = status.state.terminated or status.last_state.terminated
            # A completed init container (the fetch, exit 0) is the hand-off working; a
            # service's own container that exits at all, even with 0, has crashed.
            if crashed is not None and not (id(status) in init and crashed.exit_code == 0):
                return terminated_reason(crashed, memory_limit(pod))
    return None


def condition(obj: Any, kind: str) -> Any:
    """The status condition of type `kind` (Complete, Failed, Progressing...), or None."""
    for cond in obj.status.conditions or []:
        if cond.type == kind:
            return cond
    return None


def condition_true(obj: Any, kind: str) -> Any:
    """The condition of type `kind` if its status is "True", else None."""
    cond = condition(obj, kind)
    return cond if cond is not None and cond.status == "True" else None


def rollout_state(deployment: Any, run_id: str) -> tuple[bool, str | None]:
    """(available, failure) for a Deployment (or None) at the template of run `run_id`."""
    if deployment is None or (deployment.metadata.labels or {}).get(objects.RUN_LABEL) != run_id:
        return False, None
    status, wanted = deployment.status, deployment.spec.replicas
    progressing = condition(deployment, "Progressing")
    if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
        return False, f"rollout made no progress: {progressing.message}"
    available = (
        (status.observed_generation or 0) >= deployment.metadata.generation
        and (status.updated_replicas or 0) == wanted
        and (status.available_replicas or 0) >= wanted
        and (status.replicas or 0) == wanted  # no old pods left over
    )
    return available, None


_NEVER = datetime.min.replace(tzinfo=timezone.utc)


def _event_time(event: Any) -> datetime:
    when: datetime | None = event.last_timestamp or event.event_time or event.first_timestamp
    return when or _NEVER


def job_refusal(events: list[Any], namespace: str, repo_url: str) -> refusals.Refusal | None:
    """What the newest FailedCreate Warning event among a Job's `events` says, or None.

    A permanent refusal wins over a newer passing one (a quota that was full, then the
    same pod refused for good), so a stage fails as soon as any event shows it cannot start.
    """
    failed = sorted(
        (e for e in events if e.type == "Warning" and e.reason == "FailedCreate"),
        key=_event_time,
    )
    found = [refusals.classify(e.message or "", namespace, repo_url) for e in failed]
    return next((r for r in reversed(found) if r.permanent), found[-1] if found else None)


def deployment_refusal(
    deployment: Any, run_id: str, namespace: str, repo_url: str
) -> refusals.Refusal | None:
    """The refusal in a Deployment's ReplicaFailure condition (FailedCreate), at the
    template of run `run_id` and once the controller has seen that template; else None."""
    if deployment is None or (deployment.metadata.labels or {}).get(objects.RUN_LABEL) != run_id:
        return None
    if (deployment.status.observed_generation or 0) < (deployment.metadata.generation or 0):
        return None  # the condition may still be about the previous template
    failure = condition_true(deployment, "ReplicaFailure")
    if failure is None or failure.reason != "FailedCreate":
        return None
    return refusals.classify(failure.message or "", namespace, repo_url)
