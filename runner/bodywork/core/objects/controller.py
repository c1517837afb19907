"""The controller side: `ControllerRun`, its Job and CronJob, and the install objects.

A run on the cluster is one controller Job (`bodywork deploy`), or a CronJob that starts
one on a schedule; `bootstrap` installs the namespace, the two service accounts and the
controller's Role and RoleBinding. manifests/ ships exactly these bodies (tests/unit check
they are equal). Names come from `conventions`. Pure: no client, no I/O.
"""

from __future__ import annotations

from bodywork.core import names
from bodywork.core.objects import conventions as conv
from bodywork.core.objects.stage import (
    Manifest,
    git_auth_env,
    git_ssh_mount,
    git_ssh_volume,
    locked_down,
)
from bodywork_bootstrap.recordclass import record, replace

# What the controller may do, in its namespace only. manifests/role.yaml carries the same
# rules with a comment justifying each verb (tests/unit check the two are equal).
CONTROLLER_RULES: list[Manifest] = [
    {"apiGroups": ["batch"], "resources": ["jobs"],
     "verbs": ["create", "list", "watch", "delete"]},
    {"apiGroups": ["apps"], "resources": ["deployments"],
     "verbs": ["get", "create", "update", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "create", "update", "delete"]},
    {"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"],
     "verbs": ["get", "create", "update", "delete"]},
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]},
    {
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews"],
        "verbs": ["create"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["persistentvolumeclaims"],
     "verbs": ["get", "create", "watch"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "update", "list"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
     "verbs": ["get", "create", "update", "delete"]},
]  # fmt: skip


def build_install_objects(namespace: str) -> list[Manifest]:
    """Namespace, service accounts, Role and RoleBinding: what `kubectl apply -k` installs."""
    meta = {"labels": dict(conv.MANAGED_BY)}
    controller_sa, role = conv.CONTROLLER_SERVICE_ACCOUNT, conv.CONTROLLER_ROLE
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, **meta}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": controller_sa, "namespace": namespace, **meta}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": conv.STAGE_SERVICE_ACCOUNT, "namespace": namespace, **meta},
         "automountServiceAccountToken": False},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": role, "namespace": namespace, **meta},
         "rules": CONTROLLER_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": role, "namespace": namespace, **meta},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
         "subjects": [{"kind": "ServiceAccount", "name": controller_sa,
                       "namespace": namespace}]},
    ]  # fmt: skip


@record(frozen=True, slots=True)
class ControllerRun:
    """What a controller Job is asked to run."""

    repo: str
    branch: str | None = None
    project_dir: str = ""
    run_id: str | None = None
    resume: str | None = None  # a failed run to resume
    trigger: str = conv.DEFAULT_TRIGGER
    webhook_secret: str | None = None  # Secret with key WEBHOOK_URL, read by the kubelet
    git_ssh_secret: str | None = None  # mounted in the controller and passed to stage pods
    git_token_secret: str | None = None  # as env in the controller and stage pods
    # The artifacts backend chosen at deploy time (flags); None: the project's own choice.
    artifacts_url: str | None = None
    artifacts_s3_endpoint_url: str | None = None
    artifacts_s3_secret: str | None = None
    artifacts_pvc_access_mode: str | None = None


def _controller_labels(run: ControllerRun) -> dict[str, str]:
    found = {**conv.MANAGED_BY, conv.ROLE_LABEL: conv.CONTROLLER_ROLE_VALUE}
    if run.run_id:
        found[conv.RUN_LABEL] = run.run_id
    return found


def _controller_args(run: ControllerRun) -> list[str]:
    args = ["workflow", "--namespace", f"$({conv.POD_NAMESPACE_ENV})"]
    if run.branch:
        args += ["--branch", run.branch]
    if run.project_dir:
        args += ["--project-dir", run.project_dir]
    if run.run_id:
        args += ["--run-id", run.run_id]
    if run.resume:
        args += ["--resume", run.resume]
    if run.git_ssh_secret:
        args += ["--git-ssh-secret", run.git_ssh_secret]
    if run.git_token_secret:
        args += ["--git-token-secret", run.git_token_secret]
    for flag, value in (
        ("--artifacts-url", run.artifacts_url),
        ("--artifacts-s3-endpoint-url", run.artifacts_s3_endpoint_url),
        ("--artifacts-s3-secret", run.artifacts_s3_secret),
        ("--artifacts-pvc-access-mode", run.artifacts_pvc_access_mode),
    ):
        if value:
            args += [flag, value]
    args.append(run.repo)
    return args


def _controller_env(run: ControllerRun) -> list[Manifest]:
    env: list[Manifest] = [
        {"name": conv.TRIGGER_ENV, "value": run.trigger},
        {"name": conv.POD_NAME_ENV,
         "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": conv.POD_NAMESPACE_ENV,
         "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": conv.HOME_ENV, "value": conv.TMP_MOUNT},
    ]  # fmt: skip
    if run.webhook_secret:
        ref = {"name": run.webhook_secret, "key": conv.WEBHOOK_URL_KEY, "optional": True}
        env.append({"name": conv.WEBHOOK_URL_ENV, "valueFrom": {"secretKeyRef": ref}})
    return env + git_auth_env(run.git_ssh_secret, run.git_token_secret)


def _controller_pod(run: ControllerRun, image: str, pull_policy: str) -> Manifest:
    pod: Manifest = {
        "serviceAccountName": conv.CONTROLLER_SERVICE_ACCOUNT,
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": conv.STAGE_UID,
            "runAsGroup": conv.STAGE_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [{
            "name": conv.CONTROLLER_CONTAINER,
            "image": image,
            "imagePullPolicy": pull_policy,
            "args": _controller_args(run),
            "env": _controller_env(run),
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                          "limits": {"memory": "512Mi"}},
            "securityContext": locked_down(),
            "volumeMounts": [{"name": conv.TMP_VOLUME, "mountPath": conv.TMP_MOUNT}],
        }],
        "volumes": [{"name": conv.TMP_VOLUME, "emptyDir": {}}],
    }  # fmt: skip
    if run.git_ssh_secret:
        # The Secret's files are root's with mode 0400; fsGroup makes the kubelet give them
        # to the pod's group (0440), so the non-root controller can read the key.
        pod["securityContext"]["fsGroup"] = conv.STAGE_UID
        pod["containers"][0]["volumeMounts"].append(git_ssh_mount())
        pod["volumes"].append(git_ssh_volume(run.git_ssh_secret))
    return pod


def _controller_job_spec(run: ControllerRun, image: str, pull_policy: str) -> Manifest:
    return {
        "backoffLimit": 0,  # Never + 0: a failed run is reported, never silently re-run
        "activeDeadlineSeconds": conv.CONTROLLER_ACTIVE_DEADLINE_SECONDS,
        "ttlSecondsAfterFinished": conv.CONTROLLER_TTL_SECONDS,
        "template": {
            "metadata": {"labels": _controller_labels(run)},
            "spec": _controller_pod(run, image, pull_policy),
        },
    }


def build_controller_job(
    run: ControllerRun, namespace: str, image: str, pull_policy: str = conv.DEFAULT_PULL_POLICY
) -> Manifest:
    metadata: Manifest = {"namespace": namespace, "labels": _controller_labels(run)}
    if run.run_id:
        metadata["name"] = names.object_name(conv.WORKFLOW_JOB_PREFIX, run.run_id)
    else:
        metadata["generateName"] = f"{conv.WORKFLOW_JOB_PREFIX}-"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": _controller_job_spec(run, image, pull_policy),
    }


def build_cronjob(
    name: str,
    schedule: str,
    run: ControllerRun,
    namespace: str,
    image: str,
    api_version: str = conv.DEFAULT_CRONJOB_API_VERSION,
    pull_policy: str = conv.DEFAULT_PULL_POLICY,
) -> Manifest:
    """Scheduled retraining: the controller Job on a cron schedule, never two at once."""
    run = replace(run, run_id=None, resume=None, trigger=conv.CRON_TRIGGER)
    labels = {**_controller_labels(run), conv.CRONJOB_LABEL: name}
    job_spec = _controller_job_spec(run, image, pull_policy)
    job_spec["template"]["metadata"]["labels"] = labels
    container = job_spec["template"]["spec"]["containers"][0]
    container["env"].append({"name": conv.CRONJOB_ENV, "value": name})  # for run history
    return {
        "apiVersion": api_version,
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",  # a manual run or a slow one never overlaps
            "startingDeadlineSeconds": 3600,  # missed by > 1 h: skipped, not piled up
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"metadata": {"labels": labels}, "spec": job_spec},
        },
    }  # fmt: skip
