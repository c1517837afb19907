"""StageSpec → Kubernetes object bodies (plain dicts): the only place manifests are built.

The Kubernetes executor submits exactly these dicts and `render` prints exactly these
dicts, so what a reviewer reads is what the cluster gets. Names and labels come from the
constants here. Pure: no client, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from bodywork.core import names
from bodywork.core.plan import Plan, StageSpec

Manifest = dict[str, Any]

LABEL_PREFIX = "bodywork.dev"
MANAGED_BY = {"app.kubernetes.io/managed-by": "bodywork"}
PROJECT_LABEL = f"{LABEL_PREFIX}/project"
STAGE_LABEL = f"{LABEL_PREFIX}/stage"
RUN_LABEL = f"{LABEL_PREFIX}/run-id"
COMMIT_LABEL = f"{LABEL_PREFIX}/commit"
ROLE_LABEL = f"{LABEL_PREFIX}/role"

CONTROLLER_SERVICE_ACCOUNT = "bodywork-controller"
STAGE_SERVICE_ACCOUNT = "bodywork-stage"
STAGE_UID = 10001  # the image's non-root user (Dockerfile)
DATA_MOUNT = "/bodywork/data"  # the project's PVC: artifacts, uv cache and venvs
WORK_MOUNT = "/bodywork/work"  # emptyDir: the checkout at the pinned commit
TERMINATION_LOG = "/dev/termination-log"
JOB_TTL_SECONDS = 3600  # finished stage Jobs linger an hour for `kubectl logs`, then go
PROBE_PERIOD_SECONDS = 2  # startup probe period; failureThreshold stretches it to the limit
ROLLOUT_GRACE_SECONDS = 30  # progressDeadline beyond MAX_STARTUP_TIME_SECONDS
# Private repos. The SSH Secret (keys `ssh-privatekey`, `known_hosts`) is a read-only volume,
# never env; the bootstrapper finds it through GIT_SSH_DIR_ENV. The token Secret's key `token`
# reaches the pod as GIT_TOKEN_ENV. Names match bodywork_bootstrap.gitfetch (checked in tests).
GIT_SSH_MOUNT = "/bodywork/git-ssh"
GIT_SSH_VOLUME = "git-ssh"
GIT_SSH_MODE = 0o400  # owner read only (with fsGroup the kubelet adds group read)
GIT_SSH_DIR_ENV = "BODYWORK_GIT_SSH_DIR"
GIT_TOKEN_ENV = "BODYWORK_GIT_TOKEN"
GIT_TOKEN_KEY = "token"


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Operator knobs for a cluster run (flags and env, read in cli.py)."""

    namespace: str
    image: str  # the controller's image; stage pods use it unless DOCKER_IMAGE is set
    image_pull_policy: str = "IfNotPresent"  # images loaded into kind/k3d/minikube work
    artifacts_pvc: str | None = None  # an existing claim to use; None = create one
    artifacts_size: str = "1Gi"
    artifacts_storage_class: str | None = None  # None = the cluster's default class
    ingress_class: str = "nginx"
    job_ttl_seconds: int = JOB_TTL_SECONDS
    git_ssh_secret: str | None = None  # Secret with ssh-privatekey + known_hosts, mounted
    git_token_secret: str | None = None  # Secret with key `token` for HTTPS, as env


def git_auth_env(ssh_secret: str | None, token_secret: str | None) -> list[Manifest]:
    """Env entries that point the bootstrapper (or controller) at the Git credentials."""
    env: list[Manifest] = []
    if ssh_secret:
        env.append({"name": GIT_SSH_DIR_ENV, "value": GIT_SSH_MOUNT})  # a path, not a secret
    if token_secret:
        env.append(
            {
                "name": GIT_TOKEN_ENV,
                "valueFrom": {"secretKeyRef": {"name": token_secret, "key": GIT_TOKEN_KEY}},
            }
        )
    return env


def git_ssh_mount() -> Manifest:
    return {"name": GIT_SSH_VOLUME, "mountPath": GIT_SSH_MOUNT, "readOnly": True}


def git_ssh_volume(secret: str) -> Manifest:
    return {"name": GIT_SSH_VOLUME, "secret": {"secretName": secret, "defaultMode": GIT_SSH_MODE}}


def labels(stage: StageSpec, with_run: bool = True) -> dict[str, str]:
    found = {
        **MANAGED_BY,
        PROJECT_LABEL: stage.project,
        STAGE_LABEL: names.k8s_name(stage.name),
        ROLE_LABEL: "stage",
    }
    if with_run:
        found[RUN_LABEL] = stage.run_id
        found[COMMIT_LABEL] = stage.source.commit
    return found


def selector(stage: StageSpec) -> dict[str, str]:
    """Qualified by project, so two projects with a same-named stage never share pods."""
    return {PROJECT_LABEL: stage.project, STAGE_LABEL: names.k8s_name(stage.name)}


def job_name(stage: StageSpec) -> str:
    return names.object_name(stage.project, stage.name, stage.run_id)


def artifacts_claim_name(project: str, settings: RunSettings) -> str:
    return settings.artifacts_pvc or names.object_name(project, "artifacts")


def stage_image(plan_image: str | None, settings: RunSettings) -> str:
    return plan_image or settings.image


def cpu_quantity(cores: float) -> str:
    """Cores as Kubernetes writes them back (0.1 → '100m', 2 → '2'), so render == live."""
    millis = max(1, round(cores * 1000))  # below 1m Kubernetes cannot express it
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _container(stage: StageSpec, image: str, settings: RunSettings) -> Manifest:
    config, source = stage.config, stage.source
    args = [
        "stage",
        "--repo", source.repo_url,
        "--commit", source.commit,
        "--stage", stage.name,
        "--script", config.executable_script,
        "--project", stage.project,
        "--run-id", stage.run_id,
        "--project-dir", source.project_dir,
        "--workdir", WORK_MOUNT,
        "--venv-root", f"{DATA_MOUNT}/venvs",
        "--cache-dir", f"{DATA_MOUNT}/uv-cache",
        "--artifacts-dir", f"{DATA_MOUNT}/artifacts",
        "--termination-log", TERMINATION_LOG,
    ]  # fmt: skip
    env = [{"name": k, "value": v} for k, v in stage.env().items()]
    env += [
        {"name": "BODYWORK_ARTIFACTS_DIR", "value": f"{DATA_MOUNT}/artifacts"},
        {"name": "HOME", "value": "/tmp"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    # A secret's value reaches only the stage's environment; the controller never reads it.
    env += [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": var}}}
        for var, secret in config.secrets
    ]
    env += git_auth_env(settings.git_ssh_secret, settings.git_token_secret)
    resources: Manifest = {
        "requests": {
            "cpu": cpu_quantity(config.cpu_request),
            "memory": f"{config.memory_request_mb}Mi",
        }
    }
    limits = {}
    if config.cpu_limit is not None:
        limits["cpu"] = cpu_quantity(config.cpu_limit)
    if config.memory_limit_mb is not None:
        limits["memory"] = f"{config.memory_limit_mb}Mi"
    if limits:
        resources["limits"] = limits
    container: Manifest = {
        "name": "stage",
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": args,
        "env": env,
        "resources": resources,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_MOUNT},
            {"name": "work", "mountPath": WORK_MOUNT},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if settings.git_ssh_secret:
        container["volumeMounts"].append(git_ssh_mount())
    return container


def _pod_spec(stage: StageSpec, image: str, settings: RunSettings) -> Manifest:
    pod: Manifest = {
        "serviceAccountName": STAGE_SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,  # stage code gets no Kubernetes API rights
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": STAGE_UID,
            "runAsGroup": STAGE_UID,
            "fsGroup": STAGE_UID,  # makes the PVC writable for the non-root user
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(stage, image, settings)],
        "volumes": [
            {
                "name": "data",
                "persistentVolumeClaim": {
                    "claimName": artifacts_claim_name(stage.project, settings)
                },
            },
            {"name": "work", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if settings.git_ssh_secret:
        pod["volumes"].append(git_ssh_volume(settings.git_ssh_secret))
    return pod


def build_job(stage: StageSpec, image: str, settings: RunSettings) -> Manifest:
    config = stage.config
    pod = _pod_spec(stage, image, settings)
    pod["restartPolicy"] = "Never"  # retries are new pods, counted by backoffLimit
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(stage),
            "namespace": settings.namespace,
            "labels": labels(stage),
        },
        "spec": {
            "backoffLimit": config.retries,
            "activeDeadlineSeconds": config.max_completion_time_seconds,
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            "template": {"metadata": {"labels": labels(stage)}, "spec": pod},
        },
    }


def build_deployment(stage: StageSpec, image: str, settings: RunSettings) -> Manifest:
    config = stage.config
    assert config.port is not None
    pod = _pod_spec(stage, image, settings)
    probe = {"tcpSocket": {"port": config.port}}
    container = pod["containers"][0]
    container["ports"] = [{"name": "http", "containerPort": config.port}]
    # The startup probe covers fetching code and installing requirements, so liveness
    # never kills a pod that is still installing; readiness gates traffic on PORT.
    container["startupProbe"] = {
        **probe,
        "periodSeconds": PROBE_PERIOD_SECONDS,
        "failureThreshold": math.ceil(config.max_startup_time_seconds / PROBE_PERIOD_SECONDS),
    }
    container["readinessProbe"] = {**probe, "periodSeconds": 5, "failureThreshold": 2}
    container["livenessProbe"] = {**probe, "periodSeconds": 10, "failureThreshold": 3}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": stage.object_name,
            "namespace": settings.namespace,
            "labels": labels(stage),
        },
        "spec": {
            "replicas": config.replicas,
            "selector": {"matchLabels": selector(stage)},
            "progressDeadlineSeconds": config.max_startup_time_seconds + ROLLOUT_GRACE_SECONDS,
            "revisionHistoryLimit": 5,
            # Old pods keep serving until new ones are ready.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {"metadata": {"labels": labels(stage)}, "spec": pod},
        },
    }


def build_service(stage: StageSpec, settings: RunSettings) -> Manifest:
    port = stage.config.port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": stage.object_name,
            "namespace": settings.namespace,
            "labels": labels(stage, with_run=False),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector(stage),
            "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


def ingress_path(stage: StageSpec, settings: RunSettings) -> str:
    return f"/{settings.namespace}/{stage.object_name}"


def build_ingress(stage: StageSpec, settings: RunSettings) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": stage.object_name,
            "namespace": settings.namespace,
            "labels": labels(stage, with_run=False),
            "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/$2"},
        },
        "spec": {
            "ingressClassName": settings.ingress_class,
            "rules": [
                {
                    "http": {
                        "paths": [
                            {
                                "path": f"{ingress_path(stage, settings)}(/|$)(.*)",
                                "pathType": "ImplementationSpecific",
                                "backend": {
                                    "service": {
                                        "name": stage.object_name,
                                        "port": {"number": stage.config.port},
                                    }
                                },
                            }
                        ]
                    }
                }
            ],
        },
    }


def build_artifacts_claim(project: str, settings: RunSettings) -> Manifest:
    spec: Manifest = {
        # ReadWriteOnce binds everywhere; all of a project's pods must then share a node
        # (see docs/kubernetes.md). Name an RWX claim in ARTIFACTS_PVC for multi-node.
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": settings.artifacts_size}},
    }
    if settings.artifacts_storage_class:
        spec["storageClassName"] = settings.artifacts_storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": artifacts_claim_name(project, settings),
            "namespace": settings.namespace,
            "labels": {**MANAGED_BY, PROJECT_LABEL: project},
        },
        "spec": spec,
    }


def build_stage_objects(plan: Plan, settings: RunSettings) -> list[Manifest]:
    """Every object a run of `plan` submits, in order (used by render and its tests)."""
    image = stage_image(plan.docker_image, settings)
    found: list[Manifest] = []
    if settings.artifacts_pvc is None:
        found.append(build_artifacts_claim(plan.project, settings))
    for stage in plan.stages:
        if stage.config.is_service:
            found.append(build_deployment(stage, image, settings))
            found.append(build_service(stage, settings))
            if stage.config.ingress:
                found.append(build_ingress(stage, settings))
        else:
            found.append(build_job(stage, image, settings))
    return found


# ---------------------------------------------------------------------------- controller side
CONTROLLER_ROLE = "bodywork-controller"
CONTROLLER_ACTIVE_DEADLINE_SECONDS = 6 * 3600  # no run may hang for more than 6 hours
CONTROLLER_TTL_SECONDS = 86400  # finished controller Jobs (and their logs) stay a day

# What the controller may do, in its namespace only. manifests/role.yaml carries the same
# rules with a comment justifying each verb (tests/unit check the two are equal).
CONTROLLER_RULES: list[Manifest] = [
    {"apiGroups": ["batch"], "resources": ["jobs"],
     "verbs": ["create", "list", "watch", "delete"]},
    {"apiGroups": ["apps"], "resources": ["deployments"],
     "verbs": ["get", "create", "update", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "create", "update", "delete"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"],
     "verbs": ["get", "create", "update", "delete"]},
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
    meta = {"labels": dict(MANAGED_BY)}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, **meta}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": CONTROLLER_SERVICE_ACCOUNT, "namespace": namespace, **meta}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": STAGE_SERVICE_ACCOUNT, "namespace": namespace, **meta},
         "automountServiceAccountToken": False},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": CONTROLLER_ROLE, "namespace": namespace, **meta},
         "rules": CONTROLLER_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": CONTROLLER_ROLE, "namespace": namespace, **meta},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": CONTROLLER_ROLE},
         "subjects": [{"kind": "ServiceAccount", "name": CONTROLLER_SERVICE_ACCOUNT,
                       "namespace": namespace}]},
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class ControllerRun:
    """What a controller Job is asked to run."""

    repo: str
    branch: str | None = None
    project_dir: str = ""
    run_id: str | None = None
    resume: str | None = None  # a failed run to resume
    trigger: str = "manual"
    webhook_secret: str | None = None  # Secret with key WEBHOOK_URL, read by the kubelet
    git_ssh_secret: str | None = None  # mounted in the controller and passed to stage pods
    git_token_secret: str | None = None  # as env in the controller and stage pods


def _controller_labels(run: ControllerRun) -> dict[str, str]:
    found = {**MANAGED_BY, ROLE_LABEL: "controller"}
    if run.run_id:
        found[RUN_LABEL] = run.run_id
    return found


def _controller_pod(run: ControllerRun, image: str, pull_policy: str) -> Manifest:
    args = ["workflow", "--namespace", "$(POD_NAMESPACE)"]
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
    args.append(run.repo)
    env: list[Manifest] = [
        {"name": "BODYWORK_TRIGGER", "value": run.trigger},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "HOME", "value": "/tmp"},
    ]
    if run.webhook_secret:
        env.append(
            {
                "name": "BODYWORK_WEBHOOK_URL",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": run.webhook_secret,
                        "key": "WEBHOOK_URL",
                        "optional": True,
                    }
                },
            }
        )
    env += git_auth_env(run.git_ssh_secret, run.git_token_secret)
    pod: Manifest = {
        "serviceAccountName": CONTROLLER_SERVICE_ACCOUNT,
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": STAGE_UID,
            "runAsGroup": STAGE_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [{
            "name": "controller",
            "image": image,
            "imagePullPolicy": pull_policy,
            "args": args,
            "env": env,
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                          "limits": {"memory": "512Mi"}},
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        }],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }  # fmt: skip
    if run.git_ssh_secret:
        # The Secret's files are root's with mode 0400; fsGroup makes the kubelet give them
        # to the pod's group (0440), so the non-root controller can read the key.
        pod["securityContext"]["fsGroup"] = STAGE_UID
        pod["containers"][0]["volumeMounts"].append(git_ssh_mount())
        pod["volumes"].append(git_ssh_volume(run.git_ssh_secret))
    return pod


def _controller_job_spec(run: ControllerRun, image: str, pull_policy: str) -> Manifest:
    return {
        "backoffLimit": 0,  # Never + 0: a failed run is reported, never silently re-run
        "activeDeadlineSeconds": CONTROLLER_ACTIVE_DEADLINE_SECONDS,
        "ttlSecondsAfterFinished": CONTROLLER_TTL_SECONDS,
        "template": {
            "metadata": {"labels": _controller_labels(run)},
            "spec": _controller_pod(run, image, pull_policy),
        },
    }


def build_controller_job(
    run: ControllerRun, namespace: str, image: str, pull_policy: str = "IfNotPresent"
) -> Manifest:
    metadata: Manifest = {"namespace": namespace, "labels": _controller_labels(run)}
    if run.run_id:
        metadata["name"] = names.object_name("bodywork-workflow", run.run_id)
    else:
        metadata["generateName"] = "bodywork-workflow-"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": _controller_job_spec(run, image, pull_policy),
    }


CRONJOB_LABEL = f"{LABEL_PREFIX}/cronjob"


def build_cronjob(
    name: str,
    schedule: str,
    run: ControllerRun,
    namespace: str,
    image: str,
    api_version: str = "batch/v1",
    pull_policy: str = "IfNotPresent",
) -> Manifest:
    """Scheduled retraining: the controller Job on a cron schedule, never two at once."""
    run = replace(run, run_id=None, resume=None, trigger="cron")
    labels = {**_controller_labels(run), CRONJOB_LABEL: name}
    job_spec = _controller_job_spec(run, image, pull_policy)
    job_spec["template"]["metadata"]["labels"] = labels
    container = job_spec["template"]["spec"]["containers"][0]
    container["env"].append({"name": "BODYWORK_CRONJOB", "value": name})  # for run history
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
