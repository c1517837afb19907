"""Reading what the API says about pods, Jobs and Deployments: pure functions, no calls.

Owns the classification of a pod's status into a named failure reason (Unschedulable,
image pull, missing secret or config, OOMKilled, bootstrap failure, crash, a failed
`artifacts-pull`/`artifacts-push` container, a missing claim, the podAffinity of a
ReadWriteOnce claim), the lookup of an object's condition by type, and the rollout state of
a Deployment at one run's template. Inputs are the client's model objects (V1Pod, V1Job,
V1Deployment) as informers and calls return them; nothing here talks to the cluster, so it
is tested on captured objects (tests/unit/fixtures/k8s).

A pod the API refuses to create never exists: `job_refusal` reads the Job's FailedCreate
events and `deployment_refusal` the Deployment's ReplicaFailure condition, and
`bodywork.k8s.refusals` names the cause and the fix.

A pod that is created but whose volumes never attach or mount shows nothing in its status
(it stays ContainerCreating): `volume_problem` reads its kubelet and attach-detach Warning
events (Multi-Attach, FailedAttachVolume, FailedMount), and `claim_problem` the artifacts
claim of a pod the scheduler holds for an unbound claim, each → cause, reason and fix, and
whether waiting could help (`permanent`).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from bodywork.core import objects
from bodywork.core.objects import conventions
from bodywork.core.results import TIMED_OUT
from bodywork.k8s import refusals
from bodywork_bootstrap import ARTIFACTS_EXIT_CODES, BOOTSTRAP_EXIT_CODES, TIME_LIMIT_EXIT_CODES
from bodywork_bootstrap.recordclass import record

IMAGE_ERRORS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"}
)
CONFIG_ERRORS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
# What the kubelet says while its own Secret/ConfigMap caches or the container runtime
# catch up (a just-created Secret, a busy API server or node): it retries by itself, so
# this is a wait. A missing Secret, key or ConfigMap is named at once.
TRANSIENT_START_MESSAGES = (
    "failed to sync",
    "timed out waiting for the condition",
    "context deadline exceeded",
    "is already in use",
)


def start_refusal(waiting: Any, image: str | None) -> str | None:
    """Why a waiting container (a V1ContainerStateWaiting) will never start, or None while
    it is starting, or while the kubelet is still catching up and will retry by itself."""
    if waiting is None:
        return None
    if waiting.reason in IMAGE_ERRORS:
        return f"image '{image}' cannot be pulled ({waiting.reason}): {waiting.message}"
    if waiting.reason in CONFIG_ERRORS and not any(
        m in (waiting.message or "") for m in TRANSIENT_START_MESSAGES
    ):
        return f"container cannot start ({waiting.reason}): {waiting.message}"
    return None


def terminated_reason(state: Any, limit: str | None, container: str | None = None) -> str:
    """Why a container ended (a V1ContainerStateTerminated), given its memory limit; an
    `artifacts-pull`/`artifacts-push` container's end is named as an artifacts failure."""
    if container in objects.ARTIFACTS_CONTAINERS:
        return artifacts_reason(state, limit, container)
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


ARTIFACTS_FIX = (
    "check the bucket, ARTIFACTS_S3_ENDPOINT_URL and the keys of the Secret in ARTIFACTS_S3_SECRET"
)


def artifacts_reason(state: Any, limit: str | None, container: str) -> str:
    """A failed S3 sync: which way, the container's exit and its termination message."""
    verb = "pull" if container == objects.ARTIFACTS_PULL_CONTAINER else "push"
    head = f"artifacts {verb} failed"
    if state.reason == "OOMKilled":
        return f"{head}: {container} was OOMKilled (memory limit {limit or 'none'})"
    lines = (state.message or "").strip().splitlines()
    detail = lines[-1].strip() if lines else ""
    detail = detail.removeprefix(f"{head}:").strip()
    what = f"{head} ({container}, exit {state.exit_code})"
    if detail:
        return f"{what}: {detail}"
    meaning = ARTIFACTS_EXIT_CODES.get(state.exit_code)
    return f"{what}: {meaning} — {ARTIFACTS_FIX}" if meaning else f"{what}: {ARTIFACTS_FIX}"


def is_time_limit(reason: str) -> bool:
    """Whether a reason from `terminated_reason` says the stage's own time limit was hit."""
    return reason.startswith(f"{TIMED_OUT}: ")


def memory_limit(pod: Any, container: str | None = None) -> str | None:
    """The memory limit of the named container (init or not), else of the pod's first (the
    stage's) container, if any."""
    specs = [*(pod.spec.init_containers or []), *pod.spec.containers]
    spec = next((c for c in specs if c.name == container), pod.spec.containers[0])
    limits = (spec.resources.limits if spec.resources else None) or {}
    limit: str | None = limits.get("memory")
    return limit


def _statuses(pod: Any) -> list[Any]:
    """Init containers (artifacts-pull, the hand-off's `fetch`) first, as they run first,
    then the stage's own container, then the others (artifacts-push): the kubelet sorts
    them by name, but the stage's failure is the one to name."""
    main = sorted(
        pod.status.container_statuses or [], key=lambda s: s.name != conventions.STAGE_CONTAINER
    )
    return [*(pod.status.init_container_statuses or []), *main]


def _ended(status: Any, pod: Any, state: Any) -> str:
    return terminated_reason(state, memory_limit(pod, status.name), status.name)


def failed_container_reason(pod: Any) -> str | None:
    """The reason of the first container that terminated with a non-zero code, if any; an
    init container that completed (exit 0) is not a failure."""
    for status in _statuses(pod):
        terminated = status.state.terminated
        if terminated and terminated.exit_code != 0:
            return _ended(status, pod, terminated)
    return None


AFFINITY_FIX = (
    "the project's pods are kept on the node that holds its ReadWriteOnce artifacts claim "
    f"(a required podAffinity on {objects.CLAIM_LABEL}), and that node cannot take this "
    "one: free room there, or set ARTIFACTS_PVC_ACCESS_MODE = ReadWriteMany with a claim "
    "that offers it, or keep artifacts in S3 (ARTIFACTS_URL), so the pods may spread"
)
_CLAIM_NOT_FOUND = re.compile(r'persistentvolumeclaim "(?P<name>[^"]+)" not found')


def unschedulable_reason(message: str) -> str:
    """The scheduler's reason, with the cause and fix of the two Bodywork's storage makes
    likely: a claim that does not exist, and the node of a ReadWriteOnce claim being full."""
    if match := _CLAIM_NOT_FOUND.search(message):
        return (
            f"unschedulable: the artifacts claim '{match['name']}' does not exist ({message}): "
            "create it or fix ARTIFACTS_PVC, or remove ARTIFACTS_PVC to have one created"
        )
    if "pod affinity" in message:
        return f"unschedulable: {message} — {AFFINITY_FIX}"
    return f"unschedulable: {message}"


def unbound_claim(pod: Any) -> bool:
    """Whether the scheduler holds the pod until its claim binds: a wait, unless the claim
    itself says it never will (`claim_problem`)."""
    cond = condition(pod, "PodScheduled")
    return (
        cond is not None
        and cond.status == "False"
        and "unbound immediate PersistentVolumeClaims" in (cond.message or "")
    )


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
            return unschedulable_reason(cond.message or "")
    init = {id(s) for s in pod.status.init_container_statuses or []}
    for status in _statuses(pod):
        refusal = start_refusal(status.state.waiting, status.image)
        if refusal is not None:
            return refusal
        if crash_is_fatal:
            crashed = status.state.terminated or status.last_state.terminated
            # A completed init container (the fetch, exit 0) is the hand-off working; a
            # service's own container that exits at all, even with 0, has crashed.
            if crashed is not None and not (id(status) in init and crashed.exit_code == 0):
                return _ended(status, pod, crashed)
    return None


def waiting_for_volumes(pod: Any) -> bool:
    """Whether the pod is on a node but none of its containers has started: the kubelet is
    still attaching and mounting its volumes (or pulling its image), which only its
    events tell."""
    if pod.status.phase != "Pending" or condition_true(pod, "PodScheduled") is None:
        return False
    return not any(s.state.running or s.state.terminated for s in _statuses(pod))


# ---------------------------------------------------------------------------- volumes
MULTI_ATTACH = "Multi-Attach"  # VolumeProblem.cause values
ATTACH_FAILED = "FailedAttachVolume"
MOUNT_FAILED = "FailedMount"
CLAIM_MISSING = "claim missing"
CLAIM_UNBOUND = "claim unbound"
CLAIM_LOST = "claim lost"

MULTI_ATTACH_FIX = (
    "a ReadWriteOnce volume attaches to one node at a time, and pods on another node hold "
    "it: keep ARTIFACTS_PVC_ACCESS_MODE = ReadWriteOnce for such a claim (Bodywork then "
    "keeps the project's pods on its node), or name a ReadWriteMany claim, or keep "
    "artifacts in S3 (ARTIFACTS_URL)"
)
MULTI_ATTACH_PINNED_FIX = (
    "Bodywork keeps this project's pods on the claim's node, so the pods holding it are "
    "others (the message names them in this namespace): stop them, or give this project "
    "its own claim"
)
_MISSING_OBJECT = re.compile(r'(?:secret|configmap) "[^"]+" not found')
_VOLUME_REASONS = ("FailedAttachVolume", "FailedMount")


@record(frozen=True, slots=True)
class VolumeProblem:
    cause: str  # one of the names above
    reason: str  # the kubelet's, scheduler's or claim's words, and the fix
    permanent: bool  # waiting cannot help: fail the stage now


def _volume_event(event: Any, pinned: bool) -> VolumeProblem:
    message = (event.message or "").strip()
    if event.reason == "FailedAttachVolume" and message.startswith("Multi-Attach error"):
        fix = MULTI_ATTACH_PINNED_FIX if pinned else MULTI_ATTACH_FIX
        return VolumeProblem(MULTI_ATTACH, f"volume cannot attach: {message} — {fix}", True)
    if event.reason == "FailedAttachVolume":
        return VolumeProblem(
            ATTACH_FAILED,
            f"waiting for a volume to attach to the pod's node (FailedAttachVolume): {message} "
            "— the storage driver's own message; kubectl describe pv shows the volume",
            permanent=False,
        )
    if _MISSING_OBJECT.search(message):
        return VolumeProblem(
            MOUNT_FAILED,
            f"a volume cannot be mounted (FailedMount): {message} — create it, or fix the "
            "name given (--git-ssh-secret)",
            permanent=True,
        )
    return VolumeProblem(
        MOUNT_FAILED,
        f"waiting for a volume to mount (FailedMount): {message} — the kubelet retries; "
        "check the volume's server or PersistentVolume (kubectl describe pv)",
        permanent=False,
    )


def volume_problem(events: list[Any], pinned: bool = False) -> VolumeProblem | None:
    """What a pod's FailedAttachVolume / FailedMount Warning events say, or None. A
    permanent problem (Multi-Attach, a mount of a Secret that does not exist) wins over a
    newer passing one; else the newest, whose message is the kubelet's latest word.
    `pinned`: the project's pods are kept on the claim's node (the fix differs)."""
    found = [
        _volume_event(e, pinned)
        for e in sorted(
            (e for e in events if e.type == "Warning" and e.reason in _VOLUME_REASONS),
            key=_event_time,
        )
    ]
    specific = [p for p in found if "timed out waiting for the condition" not in p.reason]
    found = specific or found  # the kubelet's 2-minute timeout says less than its cause
    return next((p for p in reversed(found) if p.permanent), found[-1] if found else None)


_CLAIM_EVENTS = ("ProvisioningFailed", "FailedBinding")
_NEVER_BINDS = re.compile(
    r'storageclass\.storage\.k8s\.io "[^"]+" not found|no persistent volumes available'
)


def claim_problem(name: str, claim: Any, events: list[Any]) -> VolumeProblem | None:
    """Whether the claim a pod waits for will not bind (V1PersistentVolumeClaim or None,
    and its events): missing, lost, or Pending with the binder's or provisioner's word
    that it cannot (a StorageClass that does not exist, no volume to bind). None while it
    may still bind."""
    fix = (
        "check its StorageClass (kubectl get storageclass), name a bound claim in "
        "ARTIFACTS_PVC, or keep artifacts in S3 (ARTIFACTS_URL)"
    )
    if claim is None:
        return VolumeProblem(
            CLAIM_MISSING,
            f"the artifacts claim '{name}' does not exist: create it or fix ARTIFACTS_PVC, "
            "or remove ARTIFACTS_PVC to have one created",
            permanent=True,
        )
    phase = claim.status.phase if claim.status else None
    if phase == "Bound":
        return None
    if phase == "Lost":
        return VolumeProblem(
            CLAIM_LOST, f"the artifacts claim '{name}' has lost its volume: recreate it", True
        )
    said = sorted((e for e in events if e.reason in _CLAIM_EVENTS), key=_event_time)
    if not said:
        return None
    message = (said[-1].message or "").strip()
    return VolumeProblem(
        CLAIM_UNBOUND,
        f"the artifacts claim '{name}' is not bound ({said[-1].reason}): {message} — {fix}",
        permanent=bool(_NEVER_BINDS.search(message)),
    )


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


def routes_to(endpoints: Any, pod_names: set[str]) -> bool:
    """Whether a Service's Endpoints (or None) hold a ready address of one of `pod_names`.

    A Deployment is available as soon as its pods pass their readiness probe; the
    endpoints controller adds them to the Service a moment later. Until then the
    ClusterIP refuses connections, so a later step calling the service would fail.
    """
    for subset in (endpoints.subsets or []) if endpoints is not None else []:
        for address in subset.addresses or []:  # ready ones; not_ready_addresses are not
            ref = address.target_ref
            if ref is not None and ref.kind == "Pod" and ref.name in pod_names:
                return True
    return False


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
