"""Batch stages as Jobs: create one, wait for its outcome, delete it.

A Job is done when it has a Complete or Failed *condition* (so its retries really run),
never when one pod ends. Its pods are read from the executor's pod informer on every
change: a pod that can never succeed (podstatus.fatal_pod_reason) fails the stage at once
and the Job is deleted; the last container failure names the reason of a Failed Job, and
a DeadlineExceeded Job is TIMED_OUT. Logs are followed as pods start (logs.follow).

While a Job has no pod yet, its FailedCreate events are read (every REFUSAL_CHECK_SECONDS):
a pod the API refuses for good (namespace not set up, a quota it can never fit, a
LimitRange, Pod Security, a webhook: podstatus.job_refusal) fails the stage within seconds
with the reason and the fix, and the Job is deleted; a refusal that may pass (a quota that
is full now) is shown once and waited for. A pod that exists but cannot start for its
volumes (Multi-Attach, a mount of a missing Secret, a claim that will not bind) fails the
stage the same way (volumes.check); one that may still start is shown once and waited for.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bodywork.core import deadlines, objects
from bodywork.core.errors import ClusterError
from bodywork.core.plan import StageSpec
from bodywork.core.results import FAILED, STOPPED, SUCCEEDED, TIMED_OUT, StageResult
from bodywork.engine.executors.kubernetes import logs, volumes
from bodywork.engine.executors.kubernetes.handle import (
    WAIT_GRACE_SECONDS,
    WAKE_SECONDS,
    KubeHandle,
    stage_result,
)
from bodywork.k8s import kube, podstatus, refusals
from bodywork.logs.logger import get_logger

if TYPE_CHECKING:
    from bodywork.engine.executors.kubernetes.executor import KubernetesExecutor

log = get_logger("bodywork.kubernetes")
REFUSAL_CHECK_SECONDS = 2.0  # how often a Job with no pod yet has its events read


def start(ex: KubernetesExecutor, stage: StageSpec) -> KubeHandle:
    body = objects.build_job(stage, ex.image, ex.settings)
    handle = KubeHandle(stage, body["metadata"]["name"])
    # An existing Job of this name is this run's own create, retried after its answer was
    # lost (the name carries the run id).
    kube.create(
        f"create job {handle.name}",
        ex.namespace,
        ex.batch.create_namespaced_job,
        ex.namespace,
        body,
    )
    return handle


def wait(ex: KubernetesExecutor, handle: KubeHandle) -> StageResult:
    config = handle.stage.config
    backstop = deadlines.batch_backstop_seconds(config)
    deadline = handle.started + backstop + WAIT_GRACE_SECONDS
    seen = ex.changes.version
    next_refusal_check = 0.0
    shown: set[str] = set()  # the causes of passing refusals already shown
    waiting: refusals.Refusal | None = None  # the latest, while the Job has no pod
    while True:
        pods = ex.stage_pods(handle)
        logs.follow(ex, handle, pods)
        attempts = max(1, len(pods))
        if pods:
            waiting = None
        if handle.stop_requested.is_set():
            return stage_result(handle, STOPPED, attempts, "stopped")
        if not pods and time.monotonic() >= next_refusal_check:
            next_refusal_check = time.monotonic() + REFUSAL_CHECK_SECONDS
            refusal = _refusal(ex, handle)
            if refusal is not None and refusal.permanent:
                delete(ex, handle)
                return stage_result(handle, FAILED, 0, refusal.reason)
            waiting = refusal or waiting
            if refusal is not None and refusal.cause not in shown:
                shown.add(refusal.cause)
                logs.report_line(ex, handle, f"[event] FailedCreate: {refusal.reason}")
        for pod in pods:
            if (failure := podstatus.failed_container_reason(pod)) is not None:
                handle.last_failure = failure
        fatal = next(
            (r for r in (podstatus.fatal_pod_reason(p, crash_is_fatal=False) for p in pods) if r),
            None,
        )
        if not fatal:  # a pod that exists but whose volumes never attach, mount or bind
            problem = volumes.check(ex, handle, pods)
            fatal = problem.reason if problem is not None and problem.permanent else None
        if fatal:
            logs.report_events(ex, handle, pods)
            delete(ex, handle)
            return stage_result(handle, FAILED, attempts, fatal)
        job = ex.jobs.get(handle.name)
        if job is not None:
            if podstatus.condition_true(job, "Complete") is not None:
                return stage_result(handle, SUCCEEDED, attempts)
            if (c := podstatus.condition_true(job, "Failed")) is not None:
                logs.report_events(ex, handle, pods)
                if c.reason == "DeadlineExceeded":
                    reason = (
                        f"no result within the Job's backstop of {backstop}s (every attempt's "
                        "MAX_INSTALL_TIME_SECONDS + MAX_COMPLETION_TIME_SECONDS, plus grace)"
                    )
                    reason = volumes.while_waiting(refusals.while_refused(reason, waiting), handle)
                    return stage_result(handle, TIMED_OUT, attempts, reason)
                reason = handle.last_failure or c.message or c.reason or "failed"
                status = TIMED_OUT if podstatus.is_time_limit(reason) else FAILED
                return stage_result(handle, status, attempts, reason)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            delete(ex, handle)
            reason = refusals.while_refused(
                "the Job reported no result before its deadline", waiting
            )
            return stage_result(handle, TIMED_OUT, attempts, volumes.while_waiting(reason, handle))
        # Events change no pod: while a pod waits on its volumes, read them every few seconds.
        wake = REFUSAL_CHECK_SECONDS if not pods or volumes.stuck(pods) else WAKE_SECONDS
        seen = ex.changes.wait(seen, min(remaining, wake))


def _refusal(ex: KubernetesExecutor, handle: KubeHandle) -> refusals.Refusal | None:
    """What the Job's FailedCreate events say; None if it has none or they cannot be read
    (the wait goes on as before: reading events must never fail a stage)."""
    try:
        events = logs.events_of(ex, handle.name, kind="Job")
    except ClusterError as exc:
        log.debug("job_events_unread", job=handle.name, error=str(exc))
        return None
    return podstatus.job_refusal(events, ex.namespace, ex.repo_url)


def delete(ex: KubernetesExecutor, handle: KubeHandle) -> None:
    """Delete the stage's Job and, in the background, its pods; a failure is logged."""
    try:
        kube.delete(
            f"delete job {handle.name}",
            ex.namespace,
            ex.batch.delete_namespaced_job,
            handle.name,
            propagation_policy="Background",
        )
    except ClusterError as exc:
        log.warning("job_not_deleted", job=handle.name, error=str(exc))
