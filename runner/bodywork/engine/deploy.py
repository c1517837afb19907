"""Starting runs in the cluster from outside it: deploy, follow, render, install, bootstrap.

These run with the *user's* kubeconfig (not the controller's Role). `deploy` creates the
same controller Job as manifests/workflow-job.yaml (objects.build_controller_job);
`follow` streams its log and returns the controller's exit code; `install` applies the
namespace, service accounts and RBAC idempotently, saying what it changed; `bootstrap`
does all of it in one go and skips a run when the commit is already deployed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

from bodywork.core import objects, records
from bodywork.core.errors import ClusterError
from bodywork.k8s import kube, podstatus, recordstore, streams
from bodywork.logs.logger import get_logger
from bodywork_bootstrap.recordclass import record

log = get_logger("bodywork.engine.deploy")
FOLLOW_START_SECONDS = 300  # the controller pod must start within this (image pull etc.)
Printer = Callable[[str], None]


# ---------------------------------------------------------------------------- install
@record
class Change:
    kind: str
    name: str
    action: str  # created | updated | unchanged

    def __str__(self) -> str:
        return f"{self.kind.lower()}/{self.name} {self.action}"


# The fields that say what an install object *is*; anything else (status, server-set
# metadata) is ignored when deciding whether it changed.
_COMPARED = {
    "Namespace": (),
    "ServiceAccount": ("automountServiceAccountToken",),
    "Role": ("rules",),
    "RoleBinding": ("roleRef", "subjects"),
}


def _api_for(kind: str, api: client.ApiClient) -> tuple[Any, str]:
    snake = {
        "Namespace": "namespace",
        "ServiceAccount": "service_account",
        "Role": "role",
        "RoleBinding": "role_binding",
    }[kind]
    target = (
        client.RbacAuthorizationV1Api(api) if kind.startswith("Role") else client.CoreV1Api(api)
    )
    return target, snake


def apply_object(api: client.ApiClient, body: dict[str, Any]) -> Change:
    """Create `body`, or update it if its defining fields differ; report which."""
    kind, name = body["kind"], body["metadata"]["name"]
    namespace = body["metadata"].get("namespace")
    target, snake = _api_for(kind, api)
    scoped = [namespace] if namespace else []
    read = getattr(target, f"read{'_namespaced' if namespace else ''}_{snake}")
    current = kube.exists(f"get {kind.lower()} {name}", namespace or "", read, name, *scoped)
    if current is None:
        create = getattr(target, f"create{'_namespaced' if namespace else ''}_{snake}")
        kube.call(f"create {kind.lower()} {name}", namespace or "", create, *scoped, body)
        return Change(kind, name, "created")
    # The client's serialiser is unannotated; both sides come back as plain JSON dicts.
    existing = api.sanitize_for_serialization(current)  # type: ignore[no-untyped-call]
    wanted = api.sanitize_for_serialization(body)  # type: ignore[no-untyped-call]
    if all(existing.get(f) == wanted.get(f) for f in _COMPARED[kind]):
        return Change(kind, name, "unchanged")
    body = {
        **body,
        "metadata": {**body["metadata"], "resourceVersion": current.metadata.resource_version},
    }
    replace = getattr(target, f"replace{'_namespaced' if namespace else ''}_{snake}")
    kube.call(f"update {kind.lower()} {name}", namespace or "", replace, name, *scoped, body)
    return Change(kind, name, "updated")


def install(api: client.ApiClient, namespace: str) -> list[Change]:
    changes = []
    for body in objects.build_install_objects(namespace):
        try:
            changes.append(apply_object(api, body))
        except ClusterError as exc:
            if body["kind"] != "Namespace" or exc.status != 403:
                raise
            # A namespace admin may not read Namespace objects; the checks that follow
            # (creating service accounts in it) tell whether it exists and is theirs.
            changes.append(Change("Namespace", namespace, "not checked (no cluster access)"))
    return changes


def missing_permissions(
    api: client.ApiClient, namespace: str, checks: list[tuple[str, str, str]]
) -> list[str]:
    """The (verb, resource, group) checks the current user may NOT do, as kubectl commands."""
    authz = client.AuthorizationV1Api(api)
    missing = []
    for verb, resource, group in checks:
        resource_name, _, subresource = resource.partition("/")
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {
                "namespace": namespace, "verb": verb, "group": group,
                "resource": resource_name, "subresource": subresource,
            }},
        }  # fmt: skip
        answer = kube.call(
            "check access", namespace, authz.create_self_subject_access_review, review
        )
        assert answer.status is not None, "the API server answers every review"
        if not answer.status.allowed:
            full = f"{resource}.{group}" if group else resource
            missing.append(f"{verb} {full} (kubectl auth can-i {verb} {full} -n {namespace})")
    return missing


# ---------------------------------------------------------------------------- deploy + follow
def deploy(
    api: client.ApiClient,
    namespace: str,
    run: objects.ControllerRun,
    image: str,
    pull_policy: str = objects.DEFAULT_PULL_POLICY,
) -> str:
    """Create the controller Job for `run`; return its name."""
    body = objects.build_controller_job(run, namespace, image, pull_policy)
    created = kube.call(
        "create job", namespace, client.BatchV1Api(api).create_namespaced_job, namespace, body
    )
    assert created.metadata is not None and created.metadata.name is not None
    return created.metadata.name


def _controller_pod(core: Any, namespace: str, job: str) -> Any | None:
    pods = kube.call(
        "list pods",
        namespace,
        core.list_namespaced_pod,
        namespace,
        label_selector=f"job-name={job}",
    ).items
    return pods[0] if pods else None


def follow(api: client.ApiClient, namespace: str, job: str, printer: Printer) -> int:
    """Stream the controller's output until it ends; return its exit code."""
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + FOLLOW_START_SECONDS
    pod = None
    for event in streams.Stream(
        "watch pods",
        namespace,
        core.list_namespaced_pod,
        namespace,
        label_selector=f"job-name={job}",
        timeout_seconds=FOLLOW_START_SECONDS,
    ):
        pod = event["object"]
        statuses = pod.status.container_statuses or []
        refusal = next(
            (r for r in (podstatus.start_refusal(s.state.waiting, s.image) for s in statuses) if r),
            None,
        )
        if refusal is not None:
            raise ClusterError(f"controller pod {pod.metadata.name}: {refusal}")
        if any(s.state.running or s.state.terminated for s in statuses):
            break
        if time.monotonic() > deadline:
            break
    if pod is None:
        raise ClusterError(f"no pod for controller job {job} after {FOLLOW_START_SECONDS}s")
    name = pod.metadata.name
    log_stream = streams.Stream(
        f"follow the log of pod {name}",
        namespace,
        core.read_namespaced_pod_log,
        name,
        namespace,
        follow=True,
    )
    for line in log_stream:
        printer(line)
    for _ in range(60):  # the log ended; the exit code lands in the pod status shortly after
        pod = kube.call(f"get pod {name}", namespace, core.read_namespaced_pod, name, namespace)
        assert pod.status is not None, "a pod read from the API server has a status"
        for status in pod.status.container_statuses or []:
            assert status.state is not None, "and each of its containers a state"
            if status.state.terminated is not None:
                return status.state.terminated.exit_code
        time.sleep(0.5)
    raise ClusterError(f"controller pod {name} stopped logging but did not terminate")


def already_deployed(core: Any, namespace: str, project: str, commit: str) -> str | None:
    """The id of a succeeded run of `project` at `commit`, if any."""
    for run in recordstore.list_records(core, namespace, project):
        if run.get("commit") == commit and run.get("status") == records.SUCCEEDED:
            return str(run["run_id"])
    return None
