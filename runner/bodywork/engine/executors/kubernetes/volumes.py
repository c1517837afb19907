"""Stage pods that exist but cannot start for their volumes: named within seconds.

A pod whose volume does not attach (Multi-Attach, FailedAttachVolume) or mount
(FailedMount) sits in ContainerCreating with nothing in its status; a pod the scheduler holds
for an unbound claim shows only "pod has unbound immediate PersistentVolumeClaims", which
is also what a claim binding normally says for a second. `check` reads, every
VOLUME_CHECK_SECONDS while a stage's pod is in one of those states, the pod's Warning events
(and for an unbound claim the claim and its events), classified by
`podstatus.volume_problem` / `claim_problem`: a permanent problem fails the stage (the
caller deletes or rolls back), a passing one is shown once and kept for the deadline's
reason. Reading events never fails a stage: an unreadable event list is skipped.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bodywork.core.errors import ClusterError
from bodywork.engine.executors.kubernetes import logs
from bodywork.engine.executors.kubernetes.handle import VOLUME_CHECK_SECONDS, KubeHandle
from bodywork.k8s import kube, podstatus
from bodywork.logs.logger import get_logger

if TYPE_CHECKING:
    from bodywork.engine.executors.kubernetes.executor import KubernetesExecutor

log = get_logger("bodywork.kubernetes")
MAX_PODS_READ = 3  # a many-replica service: the newest stuck pods speak for the rest


def stuck(pods: list[Any]) -> bool:
    """Whether any pod waits on its volumes or its claim (so its events are worth reading)."""
    return any(podstatus.waiting_for_volumes(p) or podstatus.unbound_claim(p) for p in pods)


def _pick(
    a: podstatus.VolumeProblem | None, b: podstatus.VolumeProblem | None
) -> podstatus.VolumeProblem | None:
    """A permanent problem over a passing one, else the later one."""
    if a is None or (b is not None and (b.permanent or not a.permanent)):
        return b
    return a


def _events(ex: KubernetesExecutor, name: str, kind: str) -> list[Any]:
    try:
        return logs.events_of(ex, name, kind=kind)
    except ClusterError as exc:
        log.debug("events_unread", name=name, error=str(exc))
        return []


def _claim(ex: KubernetesExecutor, name: str) -> podstatus.VolumeProblem | None:
    ns = ex.namespace
    try:
        claim = kube.exists(
            f"get persistentvolumeclaim {name}",
            ns,
            ex.core.read_namespaced_persistent_volume_claim,
            name,
            ns,
        )
    except ClusterError as exc:
        log.debug("claim_unread", claim=name, error=str(exc))
        return None
    events = _events(ex, name, "PersistentVolumeClaim") if claim is not None else []
    return podstatus.claim_problem(name, claim, events)


def check(
    ex: KubernetesExecutor, handle: KubeHandle, pods: list[Any]
) -> podstatus.VolumeProblem | None:
    """The stage's volume problem, read at most every VOLUME_CHECK_SECONDS (in between,
    the last one read); None once no pod is stuck. A passing problem is shown once per cause."""
    if not stuck(pods):
        handle.volume_waiting = None
        return None
    now = time.monotonic()
    if now < handle.volumes_checked_at:
        found: podstatus.VolumeProblem | None = handle.volume_waiting
        return found
    handle.volumes_checked_at = now + VOLUME_CHECK_SECONDS
    problem: podstatus.VolumeProblem | None = None
    waiting = [p for p in pods if podstatus.waiting_for_volumes(p)][-MAX_PODS_READ:]
    for pod in waiting:
        events = _events(ex, pod.metadata.name, "Pod")
        problem = _pick(problem, podstatus.volume_problem(events, ex.storage.pinned))
    if ex.storage.claim is not None and any(podstatus.unbound_claim(p) for p in pods):
        problem = _pick(problem, _claim(ex, ex.storage.claim))
    shown = handle.volume_causes_shown
    if problem is not None and not problem.permanent and problem.cause not in shown:
        shown.add(problem.cause)
        logs.report_line(ex, handle, f"[event] {problem.cause}: {problem.reason}")
    handle.volume_waiting = problem
    return problem


def while_waiting(reason: str, handle: KubeHandle) -> str:
    """A deadline's reason, with the volume problem its pod was waiting on, if any."""
    problem: podstatus.VolumeProblem | None = handle.volume_waiting
    return reason if problem is None else f"{reason}; its pod was waiting: {problem.reason}"
