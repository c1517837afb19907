"""Kubernetes executor: batch stages as Jobs, service stages as Deployments + Services.

This module owns the Executor protocol methods, the preflight (before anything is created:
the namespace has the stage service account, and the controller may do all the run
needs), the run's storage mode (objects.storage_of: a claim, ReadWriteOnce or
ReadWriteMany, or S3), the run's informers (Jobs and pods of this run, Deployments of the
project) and the artifacts claim, when the mode mounts one (checked, created with its
access mode, waited for until bound, failing within seconds when it says it never will).
It waits through informers (watches, never polling) and hands the work per stage type to
`batch` (Jobs) and `service` (Deployment, Service, Ingress, rollback); pod failures and
refused pods are named by `bodywork.k8s.podstatus`, volumes that never attach or mount by
`volumes`, and logs and events come from `logs`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from kubernetes import client

from bodywork.core import objects
from bodywork.core.errors import ClusterError
from bodywork.core.plan import Plan, StageSpec
from bodywork.core.results import StageResult
from bodywork.engine import deploy
from bodywork.engine.executors.base import LogSink
from bodywork.engine.executors.kubernetes import batch, logs, service
from bodywork.engine.executors.kubernetes.handle import (
    CLAIM_BIND_SECONDS,
    CLAIM_CHECK_SECONDS,
    FOLLOWER_DRAIN_SECONDS,
    INFORMER_SYNC_SECONDS,
    KubeHandle,
)
from bodywork.k8s import informers, kube, podstatus, refusals, streams
from bodywork.logs.logger import get_logger
from bodywork_bootstrap.redaction import redact

log = get_logger("bodywork.kubernetes")

Check = tuple[str, str, str]  # (verb, resource, API group), as deploy.missing_permissions takes
READ_STAGE_ACCOUNT: Check = ("get", "serviceaccounts", "")


def run_permissions(plan: Plan) -> list[Check]:
    """What the controller does in its namespace to run `plan`, once the Lease is taken and
    the run record created: every check of the preflight, in manifests/role.yaml's order."""
    stages = [*plan.stages, *([plan.on_failure] if plan.on_failure else [])]
    checks: list[Check] = []
    if any(not s.config.is_service for s in stages):
        checks += [("create", "jobs", "batch"), ("delete", "jobs", "batch")]
    checks += [("list", "jobs", "batch"), ("watch", "jobs", "batch")]
    if any(s.config.is_service for s in stages):
        checks += [(v, "deployments", "apps") for v in ("get", "create", "update", "delete")]
    checks += [("list", "deployments", "apps"), ("watch", "deployments", "apps")]
    if any(s.config.is_service for s in stages):
        checks += [(v, "services", "") for v in ("get", "create", "update", "delete")]
        checks += [(v, "ingresses", "networking.k8s.io") for v in ("get", "delete")]
    if any(s.config.ingress for s in stages):
        checks += [(v, "ingresses", "networking.k8s.io") for v in ("create", "update")]
    checks += [("list", "pods", ""), ("watch", "pods", ""), ("get", "pods/log", "")]
    checks += [("list", "events", "")]
    checks += [(v, "persistentvolumeclaims", "") for v in ("get", "create", "watch")]
    checks += [("update", "configmaps", "")]
    checks += [(v, "leases", "coordination.k8s.io") for v in ("update", "delete")]
    return checks


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
        self.storage: objects.Storage  # decided in prepare, from the plan and the settings
        self.watch_read_timeout = watch_read_timeout  # for the informers' watches

    # ------------------------------------------------------------------ Executor protocol
    def prepare(self, plan: Plan) -> None:
        self.repo_url = redact(plan.source.repo_url)  # for the fixes refusals name
        self._preflight(plan)
        self.settings = objects.with_project_storage(self.settings, plan)
        self.storage = objects.storage_of(plan.project, self.settings)  # StorageError: exit 2
        self.image = objects.stage_image(plan.docker_image, self.settings)
        if any(s.config.ingress for s in plan.stages) and "Ingress" not in (
            kube.discover(self.api, "networking.k8s.io/v1") or set()
        ):
            raise ClusterError(
                "INGRESS = True needs networking.k8s.io/v1 Ingress (Kubernetes >= 1.19), "
                "which this cluster does not serve: turn INGRESS off or upgrade"
            )
        if self.storage.claim is not None:  # the S3 backend without a cache claim has none
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
        launch = service.apply if stage.config.is_service else batch.start
        handle = launch(self, stage)
        self.handles.append(handle)
        return handle

    def wait(self, handle: KubeHandle) -> StageResult:
        if handle.stage.config.is_service:
            return service.wait(self, handle)  # services keep streaming while they run
        result = batch.wait(self, handle)
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
        logs.follow(self, handle, fresh)
        for follower in handle.followers:
            follower.join(timeout=FOLLOWER_DRAIN_SECONDS)
        result.log_tail = list(handle.tail)
        return result

    def stop(self, handle: KubeHandle) -> None:
        handle.stop_requested.set()
        self.changes.bump()
        if not handle.stage.config.is_service:
            batch.delete(self, handle)

    def check(self, handle: KubeHandle) -> str | None:
        for pod in self.stage_pods(handle):
            reason = podstatus.fatal_pod_reason(pod, crash_is_fatal=True)
            if reason is not None:
                return reason
        return None

    def rollback(self, handles: Sequence[KubeHandle]) -> None:
        for handle in handles:
            service.rollback(self, handle)

    def close(self) -> None:
        for informer in self.informers:
            informer.stop()

    # ------------------------------------------------------------------ shared with batch/service
    def stage_pods(self, handle: KubeHandle) -> list[Any]:
        """The stage's pods of this run, from the pod informer, oldest first."""
        stage_label = objects.selector(handle.stage)[objects.STAGE_LABEL]
        pods = [
            p
            for p in self.pods.snapshot()
            if (p.metadata.labels or {}).get(objects.STAGE_LABEL) == stage_label
        ]
        return sorted(pods, key=lambda p: p.metadata.creation_timestamp or 0)

    # ------------------------------------------------------------------ set-up
    def _preflight(self, plan: Plan) -> None:
        """Fail before anything is created, naming everything missing and the fix: the
        stage service account (a namespace nobody set up) and the controller's rights."""
        ns = self.namespace
        try:
            missing = deploy.missing_permissions(self.api, ns, run_permissions(plan))
            may_read_account = not deploy.missing_permissions(self.api, ns, [READ_STAGE_ACCOUNT])
        except ClusterError as exc:
            if exc.status != 403:
                raise
            # A cluster that does not let its users review their own access (system:basic-user
            # unbound): each call still fails at once, naming what it lacks.
            log.warning("preflight_skipped", detail=str(exc))
            return
        problems = []
        account = objects.STAGE_SERVICE_ACCOUNT
        if may_read_account:
            found = kube.exists(
                f"get serviceaccount {account}",
                ns,
                self.core.read_namespaced_service_account,
                account,
                ns,
            )
            if found is None:
                problems.append(refusals.not_set_up(ns, self.repo_url, account))
        else:  # a Role from before the check: a refused pod still fails fast, with the fix
            log.warning(
                "stage_account_not_checked",
                detail=f"the controller may not get serviceaccounts in '{ns}': re-apply "
                "manifests/role.yaml to check the namespace before each run",
            )
        if missing:
            problems.append(
                f"the controller may not do all this run needs in namespace '{ns}': "
                + "; ".join(missing)
                + f" — grant manifests/role.yaml there (`bodywork bootstrap -n {ns} "
                f"{self.repo_url}`, or `kubectl apply -k manifests/` with `namespace: {ns}`), "
                "or run as a user who may"
            )
        if problems:
            raise ClusterError(
                problems[0]
                if len(problems) == 1
                else f"namespace '{ns}' is not ready for this run:\n  " + "\n  ".join(problems),
                status=403 if missing else None,
            )

    def _informer(
        self, list_fn: Callable[..., Any], selector: str, kind: str
    ) -> informers.Informer:
        informer = informers.Informer(
            list_fn, self.namespace, selector, kind, self.changes, self.watch_read_timeout
        ).start()
        self.informers.append(informer)
        return informer

    def _ensure_claim(self, project: str) -> None:
        name = objects.artifacts_claim_name(project, self.settings)
        what = f"get persistentvolumeclaim {name}"
        ns, core = self.namespace, self.core
        # The server fills in status and spec; the client types them Optional.
        found: Any = kube.exists(what, ns, core.read_namespaced_persistent_volume_claim, name, ns)
        if found is not None:
            if found.status.phase == "Lost":
                raise ClusterError(f"artifacts claim '{name}' has lost its volume: recreate it")
            if found.status.phase != "Bound":
                self._wait_for_claim(name)
            self._check_access_mode(name, found)
            return
        if self.settings.artifacts_pvc:
            instead = (
                "each pod then keeps its own caches"
                if self.storage.artifacts_url
                else "to have one created"
            )
            raise ClusterError(
                f"artifacts claim '{name}' (ARTIFACTS_PVC) does not exist in namespace "
                f"'{ns}': create it, or remove ARTIFACTS_PVC ({instead})"
            )
        body = objects.build_artifacts_claim(project, self.settings)
        # A server-side dry run shows what admission makes of the claim: with no default
        # StorageClass nothing fills in storageClassName and the claim would stay Pending
        # forever. Checked before creating, so nothing is left behind on that error.
        probe: Any = kube.call(
            f"check persistentvolumeclaim {name}",
            ns,
            core.create_namespaced_persistent_volume_claim,
            ns,
            body,
            dry_run="All",
        )
        if not probe.spec.storage_class_name:
            raise ClusterError(
                f"cannot create artifacts claim '{name}': the cluster has no default "
                "StorageClass; pass --artifacts-storage-class, or create a claim and name "
                "it in ARTIFACTS_PVC in bodywork.ini"
            )
        created: Any = kube.create(
            f"create persistentvolumeclaim {name}",
            ns,
            core.create_namespaced_persistent_volume_claim,
            ns,
            body,
        ) or kube.call(what, ns, core.read_namespaced_persistent_volume_claim, name, ns)
        log.info(
            "artifacts_claim_created",
            claim=name,
            size=self.settings.artifacts_size,
            storage_class=created.spec.storage_class_name,
        )
        self._wait_for_claim(name)

    def _check_access_mode(self, name: str, claim: Any) -> None:
        """A named claim's access mode is trusted; say so when its volume does not offer
        the ReadWriteMany it was named with (its pods would wait in Multi-Attach)."""
        if self.storage.access_mode != "ReadWriteMany" or claim.status.phase != "Bound":
            return
        modes = claim.status.access_modes or []
        if "ReadWriteMany" not in modes:
            log.warning(
                "claim_not_read_write_many",
                claim=name,
                access_modes=modes,
                detail="ARTIFACTS_PVC_ACCESS_MODE = ReadWriteMany, but the claim's volume "
                "does not offer it: pods on two nodes would wait in Multi-Attach",
            )

    def _wait_for_claim(self, name: str) -> None:
        """Return once the claim is Bound (or will bind with its first pod); else fail
        with the binder's or provisioner's message instead of leaving every stage pod
        Pending: within seconds when it says the claim never will (no volume to bind, a
        StorageClass that does not exist: podstatus.claim_problem), else after
        CLAIM_BIND_SECONDS."""
        ns = self.namespace
        deadline = time.monotonic() + CLAIM_BIND_SECONDS
        while True:
            claim: Any = None  # each watch starts with the claim as it is now
            for event in streams.Stream(
                "watch persistentvolumeclaims",
                ns,
                self.core.list_namespaced_persistent_volume_claim,
                ns,
                field_selector=f"metadata.name={name}",
                timeout_seconds=CLAIM_CHECK_SECONDS,
            ):
                claim = event["object"]
                if claim.status.phase == "Bound":
                    return
            events = logs.events_of(self, name)
            if any(e.reason == "WaitForFirstConsumer" for e in events):
                return  # binding mode WaitForFirstConsumer: the first stage pod binds it
            problem = podstatus.claim_problem(name, claim, events)
            if problem is not None and problem.permanent:
                raise ClusterError(problem.reason)
            if time.monotonic() > deadline:
                break
        detail = problem.reason if problem is not None else f"artifacts claim '{name}' is Pending"
        raise ClusterError(
            f"{detail}; not bound after {CLAIM_BIND_SECONDS}s: check the StorageClass, or "
            "name a working claim in ARTIFACTS_PVC"
        )
