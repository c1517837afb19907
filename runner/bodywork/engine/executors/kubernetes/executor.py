"""Kubernetes executor: batch stages as Jobs, service stages as Deployments + Services.

It submits the bodies objects.py builds, then waits through informers (watches, never
polling): a Job is done when it has a Complete or Failed *condition* (so retries really
run), a service when its rollout is available. Pods are watched too, to fail fast with a
named reason (Unschedulable, image pull, missing secret, OOMKilled, crash, bootstrap
failure) instead of hanging until a deadline, and to stream their logs live. A service
that fails is rolled back to its previous template, or deleted if it is new.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from kubernetes import client

from bodywork.core import objects
from bodywork.core.errors import ClusterError
from bodywork.core.plan import Plan, StageSpec
from bodywork.core.results import FAILED, STOPPED, SUCCEEDED, TIMED_OUT, StageResult
from bodywork.engine.executors.base import LogSink
from bodywork.k8s import informers, kube, streams
from bodywork_bootstrap import BOOTSTRAP_EXIT_CODES

log = structlog.get_logger("bodywork.kubernetes")

LOG_TAIL_LINES = 500  # kept for the failure report and the run record (size-capped there)
WAIT_GRACE_SECONDS = 60  # beyond a stage's own deadline before the controller gives up
INFORMER_SYNC_SECONDS = 30
CLAIM_BIND_SECONDS = 120  # dynamic provisioning takes seconds; two minutes means it won't
WAKE_SECONDS = 5.0
FOLLOWER_DRAIN_SECONDS = 5.0  # re-check deadlines at least this often while waiting for events
IMAGE_ERRORS = {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"}
CONFIG_ERRORS = {"CreateContainerConfigError", "CreateContainerError"}


@dataclass
class KubeHandle:
    stage: StageSpec
    name: str
    started: float = field(default_factory=time.monotonic)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))
    followed: set[str] = field(default_factory=set)  # pods whose logs we stream
    followers: list[threading.Thread] = field(default_factory=list)
    stop_requested: threading.Event = field(default_factory=threading.Event)
    previous_template: dict[str, Any] | None = None  # for rollback; None = new deployment
    previous_replicas: int | None = None
    created_service: bool = False
    rolled_back: bool = False
    last_failure: str = ""


def _terminated_reason(state: Any, limit: str | None) -> str:
    if state.reason == "OOMKilled":
        return f"OOMKilled (memory limit {limit or 'none set: the node ran out'})"
    if state.exit_code in BOOTSTRAP_EXIT_CODES:
        return (
            f"bootstrap failed: {(state.message or BOOTSTRAP_EXIT_CODES[state.exit_code]).strip()}"
        )
    message = (state.message or "").strip().splitlines()
    return f"exited with code {state.exit_code}" + (f": {message[-1]}" if message else "")


def _memory_limit(pod: Any) -> str | None:
    limits = pod.spec.containers[0].resources.limits or {}
    return limits.get("memory")


def fatal_pod_reason(pod: Any, crash_is_fatal: bool) -> str | None:
    """Why this pod can never succeed, or None while it still might."""
    for condition in pod.status.conditions or []:
        if (
            condition.type == "PodScheduled"
            and condition.status == "False"
            and condition.reason == "Unschedulable"
            # a claim that is still binding is a wait, not a failure
            and "unbound" not in (condition.message or "")
        ):
            return f"unschedulable: {condition.message}"
    for status in pod.status.container_statuses or []:
        waiting = status.state.waiting
        if waiting and waiting.reason in IMAGE_ERRORS:
            return f"image '{status.image}' cannot be pulled ({waiting.reason}): {waiting.message}"
        if waiting and waiting.reason in CONFIG_ERRORS:
            return f"container cannot start ({waiting.reason}): {waiting.message}"
        if crash_is_fatal:
            crashed = status.state.terminated or status.last_state.terminated
            if crashed is not None:
                return _terminated_reason(crashed, _memory_limit(pod))
    return None


def _condition(obj: Any, kind: str) -> Any:
    for condition in obj.status.conditions or []:
        if condition.type == kind:
            return condition
    return None


class KubernetesExecutor:
    def __init__(
        self,
        api: client.ApiClient,
        settings: objects.RunSettings,
        sink: LogSink,
        watch_read_timeout: float = informers.WATCH_READ_TIMEOUT_SECONDS,
    ):
        self.api = api
        self.settings = settings
        self.sink = sink
        self.namespace = settings.namespace
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.networking = client.NetworkingV1Api(api)
        self.changes = informers.Changes()
        self.handles: list[KubeHandle] = []
        self.informers: list[informers.Informer] = []
        self.image = settings.image
        self.watch_read_timeout = watch_read_timeout  # for the informers' watches

    # ------------------------------------------------------------------ Executor protocol
    def prepare(self, plan: Plan) -> None:
        self.settings = replace(
            self.settings, artifacts_pvc=plan.artifacts_pvc or self.settings.artifacts_pvc
        )
        self.image = objects.stage_image(plan.docker_image, self.settings)
        if any(s.config.ingress for s in plan.stages) and "Ingress" not in (
            kube.discover(self.api, "networking.k8s.io/v1") or set()
        ):
            raise ClusterError(
                "INGRESS = True needs networking.k8s.io/v1 Ingress (Kubernetes >= 1.19), "
                "which this cluster does not serve: turn INGRESS off or upgrade"
            )
        self._ensure_claim(plan.project)
        project = f"{objects.PROJECT_LABEL}={plan.project}"
        run = f"{project},{objects.RUN_LABEL}={plan.run_id}"
        self.jobs = self._informer(self.batch.list_namespaced_job, run, "jobs")
        self.pods = self._informer(self.core.list_namespaced_pod, run, "pods")
        self.deployments = self._informer(
            self.apps.list_namespaced_deployment, project, "deployments"
        )
        deadline = time.monotonic() + INFORMER_SYNC_SECONDS
        seen = self.changes.version
        while not all(i.synced.is_set() for i in self.informers):
            if time.monotonic() > deadline:
                raise ClusterError(f"cannot watch namespace '{self.namespace}': no answer")
            seen = self.changes.wait(seen, 1.0)

    def start(self, stage: StageSpec) -> KubeHandle:
        if stage.config.is_service:
            handle = self._apply_service(stage)
        else:
            body = objects.build_job(stage, self.image, self.settings)
            handle = KubeHandle(stage, body["metadata"]["name"])
            # An existing Job of this name is this run's own create, retried after its
            # answer was lost (the name carries the run id).
            kube.create(
                f"create job {handle.name}",
                self.namespace,
                self.batch.create_namespaced_job,
                self.namespace,
                body,
            )
        self.handles.append(handle)
        return handle

    def wait(self, handle: KubeHandle) -> StageResult:  # type: ignore[override]
        if handle.stage.config.is_service:
            return self._wait_for_rollout(handle)  # services keep streaming while they run
        result = self._wait_for_job(handle)
        # A pod that finished quickly may not have been seen running (its watch may even be
        # reconnecting): read the Job's pods fresh from the API, follow any not yet
        # followed, and wait for their last lines, so the live output, the failure report
        # and the run record are complete.
        fresh = kube.call(
            f"list pods of job {handle.name}",
            self.namespace,
            self.core.list_namespaced_pod,
            self.namespace,
            label_selector=f"job-name={handle.name}",
        ).items
        self._follow_logs(handle, fresh)
        for follower in handle.followers:
            follower.join(timeout=FOLLOWER_DRAIN_SECONDS)
        result.log_tail = list(handle.tail)
        return result

    def stop(self, handle: KubeHandle) -> None:  # type: ignore[override]
        handle.stop_requested.set()
        self.changes.bump()
        if not handle.stage.config.is_service:
            self._delete_job(handle)

    def check(self, handle: KubeHandle) -> str | None:  # type: ignore[override]
        for pod in self._stage_pods(handle):
            reason = fatal_pod_reason(pod, crash_is_fatal=True)
            if reason is not None:
                return reason
        return None

    def rollback(self, handles: Sequence[KubeHandle]) -> None:  # type: ignore[override]
        for handle in handles:
            self._rollback(handle)

    def close(self) -> None:
        for informer in self.informers:
            informer.stop()

    # ------------------------------------------------------------------ set-up
    def _informer(self, list_fn: Any, selector: str, kind: str) -> informers.Informer:
        informer = informers.Informer(
            list_fn, self.namespace, selector, kind, self.changes, self.watch_read_timeout
        ).start()
        self.informers.append(informer)
        return informer

    def _ensure_claim(self, project: str) -> None:
        name = objects.artifacts_claim_name(project, self.settings)
        what = f"get persistentvolumeclaim {name}"
        found = kube.exists(
            what,
            self.namespace,
            self.core.read_namespaced_persistent_volume_claim,
            name,
            self.namespace,
        )
        if found is not None:
            if found.status.phase == "Lost":
                raise ClusterError(f"artifacts claim '{name}' has lost its volume: recreate it")
            if found.status.phase != "Bound":
                self._wait_for_claim(name)
            return
        if self.settings.artifacts_pvc:
            raise ClusterError(
                f"artifacts claim '{name}' (ARTIFACTS_PVC) does not exist in namespace "
                f"'{self.namespace}': create it, or remove ARTIFACTS_PVC to have one created"
            )
        body = objects.build_artifacts_claim(project, self.settings)
        # A server-side dry run shows what admission makes of the claim: with no default
        # StorageClass nothing fills in storageClassName and the claim would stay Pending
        # forever. Checked before creating, so nothing is left behind on that error.
        probe = kube.call(
            f"check persistentvolumeclaim {name}",
            self.namespace,
            self.core.create_namespaced_persistent_volume_claim,
            self.namespace,
            body,
            dry_run="All",
        )
        if not probe.spec.storage_class_name:
            raise ClusterError(
                f"cannot create artifacts claim '{name}': the cluster has no default "
                "StorageClass; pass --artifacts-storage-class, or create a claim and name "
                "it in ARTIFACTS_PVC in bodywork.ini"
            )
        created = kube.create(
            f"create persistentvolumeclaim {name}",
            self.namespace,
            self.core.create_namespaced_persistent_volume_claim,
            self.namespace,
            body,
        ) or kube.call(
            what,
            self.namespace,
            self.core.read_namespaced_persistent_volume_claim,
            name,
            self.namespace,
        )
        log.info(
            "artifacts_claim_created",
            claim=name,
            size=self.settings.artifacts_size,
            storage_class=created.spec.storage_class_name,
        )
        self._wait_for_claim(name)

    def _wait_for_claim(self, name: str) -> None:
        """Return once the claim is Bound (or will bind with its first pod); else fail
        with the provisioner's message instead of leaving every stage pod Pending."""
        ns = self.namespace
        deadline = time.monotonic() + CLAIM_BIND_SECONDS
        for event in streams.Stream(
            "watch persistentvolumeclaims",
            ns,
            self.core.list_namespaced_persistent_volume_claim,
            ns,
            field_selector=f"metadata.name={name}",
            timeout_seconds=CLAIM_BIND_SECONDS,
        ):
            if event["object"].status.phase == "Bound":
                return
            if time.monotonic() > deadline:
                break
            if any(e.reason == "WaitForFirstConsumer" for e in self._events_of(name)):
                return  # binding mode WaitForFirstConsumer: the first stage pod binds it
        warnings = [e.message for e in self._events_of(name) if e.type == "Warning"]
        detail = warnings[-1] if warnings else "no event explains why"
        raise ClusterError(
            f"artifacts claim '{name}' is not bound after {CLAIM_BIND_SECONDS}s: {detail}; "
            "check the StorageClass, or name a working claim in ARTIFACTS_PVC"
        )

    def _apply_service(self, stage: StageSpec) -> KubeHandle:
        ns, name = self.namespace, stage.object_name
        handle = KubeHandle(stage, name)
        body = objects.build_deployment(stage, self.image, self.settings)
        previous = kube.exists(
            f"get deployment {name}", ns, self.apps.read_namespaced_deployment, name, ns
        )
        if previous is None:
            kube.create(
                f"create deployment {name}", ns, self.apps.create_namespaced_deployment, ns, body
            )
        else:
            handle.previous_template = self.api.sanitize_for_serialization(previous.spec.template)
            handle.previous_replicas = previous.spec.replicas
            kube.call(
                f"replace deployment {name}",
                ns,
                self.apps.replace_namespaced_deployment,
                name,
                ns,
                body,
            )

        service = objects.build_service(stage, self.settings)
        existing = kube.exists(
            f"get service {name}", ns, self.core.read_namespaced_service, name, ns
        )
        if existing is None:
            kube.create(
                f"create service {name}", ns, self.core.create_namespaced_service, ns, service
            )
            handle.created_service = True
        else:  # keep the ClusterIP; ports follow PORT
            service["metadata"]["resourceVersion"] = existing.metadata.resource_version
            service["spec"]["clusterIP"] = existing.spec.cluster_ip
            kube.call(
                f"replace service {name}",
                ns,
                self.core.replace_namespaced_service,
                name,
                ns,
                service,
            )
        self._apply_ingress(stage)
        return handle

    def _apply_ingress(self, stage: StageSpec) -> None:
        ns, name = self.namespace, stage.object_name
        existing = kube.exists(
            f"get ingress {name}", ns, self.networking.read_namespaced_ingress, name, ns
        )
        if stage.config.ingress:
            body = objects.build_ingress(stage, self.settings)
            if existing is None:
                kube.create(
                    f"create ingress {name}",
                    ns,
                    self.networking.create_namespaced_ingress,
                    ns,
                    body,
                )
            else:
                body["metadata"]["resourceVersion"] = existing.metadata.resource_version
                kube.call(
                    f"replace ingress {name}",
                    ns,
                    self.networking.replace_namespaced_ingress,
                    name,
                    ns,
                    body,
                )
        elif existing is not None:  # INGRESS turned off: take the route down
            kube.delete(
                f"delete ingress {name}", ns, self.networking.delete_namespaced_ingress, name
            )

    # ------------------------------------------------------------------ waiting
    def _result(
        self,
        handle: KubeHandle,
        status: str,
        attempts: int,
        reason: str = "",
        url: str | None = None,
    ) -> StageResult:
        return StageResult(
            stage=handle.stage.name,
            stage_type=handle.stage.config.stage_type,
            status=status,
            attempts=attempts,
            seconds=time.monotonic() - handle.started,
            reason=reason,
            url=url,
            log_tail=list(handle.tail),
        )

    def _stage_pods(self, handle: KubeHandle) -> list[Any]:
        stage_label = objects.selector(handle.stage)[objects.STAGE_LABEL]
        pods = [
            p
            for p in self.pods.snapshot()
            if (p.metadata.labels or {}).get(objects.STAGE_LABEL) == stage_label
        ]
        return sorted(pods, key=lambda p: p.metadata.creation_timestamp or 0)

    def _wait_for_job(self, handle: KubeHandle) -> StageResult:
        config = handle.stage.config
        deadline = handle.started + config.max_completion_time_seconds + WAIT_GRACE_SECONDS
        seen = self.changes.version
        while True:
            pods = self._stage_pods(handle)
            self._follow_logs(handle, pods)
            attempts = max(1, len(pods))
            if handle.stop_requested.is_set():
                return self._result(handle, STOPPED, attempts, "stopped")
            for pod in pods:
                terminated = [
                    s.state.terminated
                    for s in pod.status.container_statuses or []
                    if s.state.terminated and s.state.terminated.exit_code != 0
                ]
                if terminated:
                    handle.last_failure = _terminated_reason(terminated[0], _memory_limit(pod))
            fatal = next(
                (r for r in (fatal_pod_reason(p, crash_is_fatal=False) for p in pods) if r), None
            )
            if fatal:
                self._report_events(handle, pods)
                self._delete_job(handle)
                return self._result(handle, FAILED, attempts, fatal)
            job = self.jobs.get(handle.name)
            if job is not None:
                if (c := _condition(job, "Complete")) is not None and c.status == "True":
                    return self._result(handle, SUCCEEDED, attempts)
                if (c := _condition(job, "Failed")) is not None and c.status == "True":
                    self._report_events(handle, pods)
                    if c.reason == "DeadlineExceeded":
                        return self._result(
                            handle,
                            TIMED_OUT,
                            attempts,
                            f"timed out after {config.max_completion_time_seconds}s "
                            "(MAX_COMPLETION_TIME_SECONDS, all attempts)",
                        )
                    reason = handle.last_failure or c.message or c.reason or "failed"
                    return self._result(handle, FAILED, attempts, reason)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._delete_job(handle)
                return self._result(
                    handle, TIMED_OUT, attempts, "the Job reported no result before its deadline"
                )
            seen = self.changes.wait(seen, min(remaining, WAKE_SECONDS))

    def _rollout_state(self, handle: KubeHandle) -> tuple[bool, str | None]:
        """(available, failure) for the stage's Deployment at this run's template."""
        deployment = self.deployments.get(handle.name)
        if (
            deployment is None
            or deployment.metadata.labels.get(objects.RUN_LABEL) != handle.stage.run_id
        ):
            return False, None
        status, wanted = deployment.status, deployment.spec.replicas
        progressing = _condition(deployment, "Progressing")
        if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
            return False, f"rollout made no progress: {progressing.message}"
        available = (
            (status.observed_generation or 0) >= deployment.metadata.generation
            and (status.updated_replicas or 0) == wanted
            and (status.available_replicas or 0) >= wanted
            and (status.replicas or 0) == wanted  # no old pods left over
        )
        return available, None

    def _wait_for_rollout(self, handle: KubeHandle) -> StageResult:
        config = handle.stage.config
        deadline = handle.started + config.max_startup_time_seconds
        seen = self.changes.version
        while True:
            pods = self._stage_pods(handle)
            self._follow_logs(handle, pods)
            if handle.stop_requested.is_set():
                return self._result(handle, STOPPED, 1, "stopped")
            available, failure = self._rollout_state(handle)
            if available:
                return self._result(handle, SUCCEEDED, 1, url=self._service_url(handle))
            failure = failure or next(
                (r for r in (fatal_pod_reason(p, crash_is_fatal=True) for p in pods) if r), None
            )
            if failure is None and time.monotonic() >= deadline:
                failure = (
                    f"not ready after {config.max_startup_time_seconds}s (MAX_STARTUP_TIME_SECONDS)"
                )
                status = TIMED_OUT
            else:
                status = FAILED
            if failure is not None:
                self._report_events(handle, pods)
                rolled = self._rollback(handle)
                return self._result(handle, status, 1, f"{failure}; {rolled}")
            seen = self.changes.wait(seen, min(deadline - time.monotonic(), WAKE_SECONDS))

    def _service_url(self, handle: KubeHandle) -> str:
        port = handle.stage.config.port
        return f"http://{handle.name}.{self.namespace}.svc.cluster.local:{port}"

    # ------------------------------------------------------------------ undo
    def _delete_job(self, handle: KubeHandle) -> None:
        try:
            kube.delete(
                f"delete job {handle.name}",
                self.namespace,
                self.batch.delete_namespaced_job,
                handle.name,
                propagation_policy="Background",
            )  # its pods go too
        except ClusterError as exc:
            log.warning("job_not_deleted", job=handle.name, error=str(exc))

    def _rollback(self, handle: KubeHandle) -> str:
        """Restore the previous revision, or delete a first deployment; say which."""
        if handle.rolled_back or not handle.stage.config.is_service:
            return "rolled back"
        handle.rolled_back = True
        ns, name = self.namespace, handle.name
        if handle.previous_template is None:
            kube.delete(
                f"delete deployment {name}", ns, self.apps.delete_namespaced_deployment, name
            )
            if handle.created_service:
                kube.delete(f"delete service {name}", ns, self.core.delete_namespaced_service, name)
            log.warning(
                "service_removed",
                stage=handle.stage.name,
                detail="first deployment failed; nothing was serving before",
            )
            return "removed (it had no previous version)"
        current = kube.call(
            f"get deployment {name}", ns, self.apps.read_namespaced_deployment, name, ns
        )
        body = self.api.sanitize_for_serialization(current)
        body["spec"]["template"] = handle.previous_template
        body["spec"]["replicas"] = handle.previous_replicas
        previous_run = (handle.previous_template.get("metadata", {}).get("labels") or {}).get(
            objects.RUN_LABEL, "unknown"
        )
        body["metadata"]["labels"][objects.RUN_LABEL] = previous_run
        kube.call(
            f"replace deployment {name}",
            ns,
            self.apps.replace_namespaced_deployment,
            name,
            ns,
            body,
        )
        log.warning("service_rolled_back", stage=handle.stage.name, to_run=previous_run)
        return f"rolled back to the previous version (run {previous_run})"

    # ------------------------------------------------------------------ logs and events
    def _follow_logs(self, handle: KubeHandle, pods: list[Any]) -> None:
        for pod in pods:
            name = pod.metadata.name
            statuses = pod.status.container_statuses or []
            started = any(s.state.running or s.state.terminated for s in statuses)
            if name in handle.followed or not started:
                continue
            handle.followed.add(name)
            thread = threading.Thread(
                target=self._stream_log, args=(handle, name), daemon=True, name=f"log-{name}"
            )
            handle.followers.append(thread)
            thread.start()

    def _stream_log(self, handle: KubeHandle, pod: str) -> None:
        prefix = (
            ""
            if handle.stage.config.replicas <= 1 or not handle.stage.config.is_service
            else f"[{pod.rsplit('-', 1)[-1]}] "
        )
        try:
            for line in streams.Stream(
                f"follow the log of pod {pod}",
                self.namespace,
                self.core.read_namespaced_pod_log,
                pod,
                self.namespace,
                container="stage",
                follow=True,
            ):
                handle.tail.append(line)
                self.sink(handle.stage.name, f"{prefix}{line}")
        except ClusterError as exc:  # a lost log stream must not fail the stage
            log.debug("log_stream_ended", pod=pod, status=exc.status)

    def _events_of(self, name: str) -> list[Any]:
        """The events about one object (a pod or the artifacts claim), oldest first."""
        return kube.call(
            "list events",
            self.namespace,
            self.core.list_namespaced_event,
            self.namespace,
            field_selector=f"involvedObject.name={name}",
        ).items

    def _report_events(self, handle: KubeHandle, pods: list[Any]) -> None:
        """Print the Warning events of a failed stage's pods (scheduler, kubelet)."""
        for pod in pods[-2:]:
            try:
                events = self._events_of(pod.metadata.name)
            except ClusterError:
                return
            for event in events:
                if event.type == "Warning":
                    line = f"[event] {event.reason}: {event.message}"
                    handle.tail.append(line)
                    self.sink(handle.stage.name, line)
