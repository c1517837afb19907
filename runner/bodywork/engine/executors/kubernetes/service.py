"""Service stages as a Deployment, a Service and optionally an Ingress.

`apply` creates or replaces all three (keeping an existing Service's ClusterIP, taking
the Ingress down when INGRESS is turned off) and remembers the previous pod template.
`wait` returns once the rollout at this run's template is available (podstatus.
rollout_state) and the Service's Endpoints list one of its pods (podstatus.routes_to), so
a later step can call it; or fails on a fatal pod or a stalled rollout, or times out after
MAX_STARTUP_TIME_SECONDS; a failed service is rolled back to its previous template, or
deleted with its new Service if it had none (`rollback`). A pod the API refuses for good
(the Deployment's ReplicaFailure condition, podstatus.deployment_refusal) fails the
rollout at once with the reason and the fix, and is rolled back the same way; a refusal
that may pass (a quota full now) is shown once and waited for; so is a pod that cannot
start for its volumes (volumes.check: Multi-Attach, FailedMount, a claim that will not bind).
A service with REPLICAS > 1 spreads its pods across nodes when it can (objects.storage).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bodywork.core import deadlines, objects
from bodywork.core.errors import ClusterError
from bodywork.core.plan import StageSpec
from bodywork.core.results import FAILED, STOPPED, SUCCEEDED, TIMED_OUT, StageResult
from bodywork.engine.executors.kubernetes import logs, volumes
from bodywork.engine.executors.kubernetes.handle import (
    ENDPOINTS_POLL_SECONDS,
    VOLUME_CHECK_SECONDS,
    WAKE_SECONDS,
    KubeHandle,
    stage_result,
)
from bodywork.k8s import kube, podstatus, refusals
from bodywork.logs.logger import get_logger

if TYPE_CHECKING:
    from bodywork.engine.executors.kubernetes.executor import KubernetesExecutor

log = get_logger("bodywork.kubernetes")


def apply(ex: KubernetesExecutor, stage: StageSpec) -> KubeHandle:
    ns, name = ex.namespace, stage.object_name
    handle = KubeHandle(stage, name)
    body = objects.build_deployment(stage, ex.image, ex.settings)
    # Read objects are typed with Optional fields the server always fills in: Any here.
    previous: Any = kube.exists(
        f"get deployment {name}", ns, ex.apps.read_namespaced_deployment, name, ns
    )
    if previous is None:
        kube.create(f"create deployment {name}", ns, ex.apps.create_namespaced_deployment, ns, body)
    else:
        handle.previous_template = ex.api.sanitize_for_serialization(  # type: ignore[no-untyped-call]
            previous.spec.template
        )
        handle.previous_replicas = previous.spec.replicas
        kube.call(
            f"replace deployment {name}", ns, ex.apps.replace_namespaced_deployment, name, ns, body
        )

    service = objects.build_service(stage, ex.settings)
    existing: Any = kube.exists(
        f"get service {name}", ns, ex.core.read_namespaced_service, name, ns
    )
    if existing is None:
        kube.create(f"create service {name}", ns, ex.core.create_namespaced_service, ns, service)
        handle.created_service = True
    else:  # keep the ClusterIP; ports follow PORT
        service["metadata"]["resourceVersion"] = existing.metadata.resource_version
        service["spec"]["clusterIP"] = existing.spec.cluster_ip
        kube.call(
            f"replace service {name}", ns, ex.core.replace_namespaced_service, name, ns, service
        )
    _apply_ingress(ex, stage)
    return handle


def _apply_ingress(ex: KubernetesExecutor, stage: StageSpec) -> None:
    ns, name = ex.namespace, stage.object_name
    networking = ex.networking
    existing: Any = kube.exists(
        f"get ingress {name}", ns, networking.read_namespaced_ingress, name, ns
    )
    if stage.config.ingress:
        body = objects.build_ingress(stage, ex.settings)
        if existing is None:
            kube.create(
                f"create ingress {name}", ns, networking.create_namespaced_ingress, ns, body
            )
        else:
            body["metadata"]["resourceVersion"] = existing.metadata.resource_version
            kube.call(
                f"replace ingress {name}", ns, networking.replace_namespaced_ingress, name, ns, body
            )
    elif existing is not None:  # INGRESS turned off: take the route down
        kube.delete(f"delete ingress {name}", ns, networking.delete_namespaced_ingress, name)


def wait(ex: KubernetesExecutor, handle: KubeHandle) -> StageResult:
    config = handle.stage.config
    backstop = deadlines.service_backstop_seconds(config)
    deadline = handle.started + backstop
    seen = ex.changes.version
    shown: set[str] = set()  # the causes of passing refusals already shown
    while True:
        pods = ex.stage_pods(handle)
        logs.follow(ex, handle, pods)
        if handle.stop_requested.is_set():
            return stage_result(handle, STOPPED, 1, "stopped")
        deployment = ex.deployments.get(handle.name)
        available, failure = podstatus.rollout_state(deployment, handle.stage.run_id)
        if available and _routed(ex, handle, pods):
            return stage_result(handle, SUCCEEDED, 1, url=service_url(ex, handle))
        refusal = podstatus.deployment_refusal(
            deployment, handle.stage.run_id, ex.namespace, ex.repo_url
        )
        if refusal is not None and refusal.permanent:
            failure = failure or refusal.reason
        elif refusal is not None and refusal.cause not in shown:
            shown.add(refusal.cause)
            logs.report_line(ex, handle, f"[event] FailedCreate: {refusal.reason}")
        failure = failure or next(
            (r for r in (podstatus.fatal_pod_reason(p, crash_is_fatal=True) for p in pods) if r),
            None,
        )
        if failure is None:  # a pod that exists but whose volumes never attach, mount or bind
            problem = volumes.check(ex, handle, pods)
            failure = problem.reason if problem is not None and problem.permanent else None
        if failure is None and time.monotonic() >= deadline:
            failure = (
                f"its pods are ready but Service {handle.name} routed to none of them within "
                f"{backstop}s (its Endpoints list no ready address of this run)"
                if available
                else volumes.while_waiting(
                    f"not ready after {backstop}s (MAX_INSTALL_TIME_SECONDS + "
                    "MAX_STARTUP_TIME_SECONDS + grace)",
                    handle,
                )
            )
            status = TIMED_OUT
        else:
            status = TIMED_OUT if failure and podstatus.is_time_limit(failure) else FAILED
        if failure is not None:
            if refusal is not None and not refusal.permanent:  # still refused at its deadline
                failure = refusals.while_refused(failure, refusal)
            logs.report_events(ex, handle, pods)
            rolled = rollback(ex, handle)
            return stage_result(handle, status, 1, f"{failure}; {rolled}")
        # Events change neither Endpoints nor a pod waiting on its volumes: poll those.
        if available:
            wake = ENDPOINTS_POLL_SECONDS
        else:
            wake = VOLUME_CHECK_SECONDS if volumes.stuck(pods) else WAKE_SECONDS
        seen = ex.changes.wait(seen, min(deadline - time.monotonic(), wake))


def _routed(ex: KubernetesExecutor, handle: KubeHandle, pods: list[Any]) -> bool:
    """Whether the stage's Service sends traffic to a pod of this run yet. Endpoints are
    read, not watched: one small GET per poll, only once the rollout is available."""
    if not handle.endpoints_readable:
        return True
    ns = ex.namespace
    try:
        endpoints = kube.exists(
            f"read endpoints {handle.name}", ns, ex.core.read_namespaced_endpoints, handle.name, ns
        )
    except ClusterError as exc:
        if exc.status != 403:
            raise
        handle.endpoints_readable = False
        log.warning(
            "endpoints_unreadable",
            stage=handle.stage.name,
            fix="re-apply manifests/role.yaml (get endpoints) so a service stage succeeds "
            "only once its Service routes to it",
        )
        return True
    return podstatus.routes_to(endpoints, {p.metadata.name for p in pods})


def service_url(ex: KubernetesExecutor, handle: KubeHandle) -> str:
    port = handle.stage.config.port
    return f"http://{handle.name}.{ex.namespace}.svc.cluster.local:{port}"


def rollback(ex: KubernetesExecutor, handle: KubeHandle) -> str:
    """Restore the previous revision, or delete a first deployment; say which."""
    if handle.rolled_back or not handle.stage.config.is_service:
        return "rolled back"
    handle.rolled_back = True
    ns, name = ex.namespace, handle.name
    if handle.previous_template is None:
        kube.delete(f"delete deployment {name}", ns, ex.apps.delete_namespaced_deployment, name)
        if handle.created_service:
            kube.delete(f"delete service {name}", ns, ex.core.delete_namespaced_service, name)
        log.warning(
            "service_removed",
            stage=handle.stage.name,
            detail="first deployment failed; nothing was serving before",
        )
        return "removed (it had no previous version)"
    current = kube.call(f"get deployment {name}", ns, ex.apps.read_namespaced_deployment, name, ns)
    body = ex.api.sanitize_for_serialization(current)  # type: ignore[no-untyped-call]
    body["spec"]["template"] = handle.previous_template
    body["spec"]["replicas"] = handle.previous_replicas
    previous_run = (handle.previous_template.get("metadata", {}).get("labels") or {}).get(
        objects.RUN_LABEL, "unknown"
    )
    body["metadata"]["labels"][objects.RUN_LABEL] = previous_run
    kube.call(
        f"replace deployment {name}", ns, ex.apps.replace_namespaced_deployment, name, ns, body
    )
    log.warning("service_rolled_back", stage=handle.stage.name, to_run=previous_run)
    return f"rolled back to the previous version (run {previous_run})"
