"""The stage side: `RunSettings` and the bodies a run submits for its stages.

A batch stage is a Job; a service stage is a Deployment, a Service and, when asked, an
Ingress; the project's artifacts PVC is created unless one is named. Also the Git
credential env and SSH volume shared with the controller's pod. Names and labels come from
`conventions`. Pure: no client, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from bodywork.core import bootstrapargs, deadlines, names
from bodywork.core.objects import conventions as conv
from bodywork.core.objects import placement
from bodywork.core.plan import Plan, StageSpec

Manifest = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Operator knobs for a cluster run (flags and env, read in cli.py)."""

    namespace: str
    image: str  # the controller's image; stage pods use it unless DOCKER_IMAGE is set
    image_pull_policy: str = conv.DEFAULT_PULL_POLICY
    artifacts_pvc: str | None = None  # an existing claim to use; None = create one
    artifacts_size: str = conv.DEFAULT_ARTIFACTS_SIZE
    artifacts_storage_class: str | None = None  # None = the cluster's default class
    # Deploy-time choices of the artifacts backend (flags); None: the project's own, if any.
    artifacts_pvc_access_mode: str | None = None  # None: ReadWriteOnce
    artifacts_url: str | None = None  # s3://bucket/prefix: the S3 backend
    artifacts_s3_endpoint_url: str | None = None
    artifacts_s3_secret: str | None = None
    ingress_class: str = conv.DEFAULT_INGRESS_CLASS
    job_ttl_seconds: int = conv.JOB_TTL_SECONDS
    git_ssh_secret: str | None = None  # Secret with ssh-privatekey + known_hosts, mounted
    git_token_secret: str | None = None  # Secret with key `token` for HTTPS, as env


def with_project_storage(settings: RunSettings, plan: Plan) -> RunSettings:
    """The settings a run's objects are built with: the project's artifacts backend, unless
    a deploy-time flag chose another (a flag wins; ARTIFACTS_PVC keeps the project's first,
    as it always has)."""
    return replace(
        settings,
        artifacts_pvc=plan.artifacts_pvc or settings.artifacts_pvc,
        artifacts_pvc_access_mode=settings.artifacts_pvc_access_mode
        or plan.artifacts_pvc_access_mode,
        artifacts_url=settings.artifacts_url or plan.artifacts_url,
        artifacts_s3_endpoint_url=settings.artifacts_s3_endpoint_url
        or plan.artifacts_s3_endpoint_url,
        artifacts_s3_secret=settings.artifacts_s3_secret or plan.artifacts_s3_secret,
    )


def git_auth_env(ssh_secret: str | None, token_secret: str | None) -> list[Manifest]:
    """Env entries that point the bootstrapper (or controller) at the Git credentials."""
    env: list[Manifest] = []
    if ssh_secret:  # the value is a path, not a secret
        env.append({"name": conv.GIT_SSH_DIR_ENV, "value": conv.GIT_SSH_MOUNT})
    if token_secret:
        env.append(
            {
                "name": conv.GIT_TOKEN_ENV,
                "valueFrom": {"secretKeyRef": {"name": token_secret, "key": conv.GIT_TOKEN_KEY}},
            }
        )
    return env


def git_ssh_mount() -> Manifest:
    return {"name": conv.GIT_SSH_VOLUME, "mountPath": conv.GIT_SSH_MOUNT, "readOnly": True}


def git_ssh_volume(secret: str) -> Manifest:
    return {
        "name": conv.GIT_SSH_VOLUME,
        "secret": {"secretName": secret, "defaultMode": conv.GIT_SSH_MODE},
    }


def labels(stage: StageSpec, with_run: bool = True) -> dict[str, str]:
    found = {
        **conv.MANAGED_BY,
        conv.PROJECT_LABEL: stage.project,
        conv.STAGE_LABEL: names.k8s_name(stage.name),
        conv.ROLE_LABEL: conv.STAGE_ROLE,
    }
    if with_run:
        found[conv.RUN_LABEL] = stage.run_id
        found[conv.COMMIT_LABEL] = stage.source.commit
    return found


def selector(stage: StageSpec) -> dict[str, str]:
    """Qualified by project, so two projects with a same-named stage never share pods."""
    return {conv.PROJECT_LABEL: stage.project, conv.STAGE_LABEL: names.k8s_name(stage.name)}


def job_name(stage: StageSpec) -> str:
    return names.object_name(stage.project, stage.name, stage.run_id)


def artifacts_claim_name(project: str, settings: RunSettings) -> str:
    return settings.artifacts_pvc or names.object_name(project, "artifacts")


def _metadata(
    name: str, stage: StageSpec, settings: RunSettings, with_run: bool = True
) -> Manifest:
    return {"name": name, "namespace": settings.namespace, "labels": labels(stage, with_run)}


def locked_down() -> Manifest:
    """A container's securityContext: no privilege escalation, no capabilities, read-only /."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def stage_image(plan_image: str | None, settings: RunSettings) -> str:
    return plan_image or settings.image


def cpu_quantity(cores: float) -> str:
    """Cores as Kubernetes writes them back (0.1 → '100m', 2 → '2'), so render == live."""
    millis = max(1, round(cores * 1000))  # below 1m Kubernetes cannot express it
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _resources(stage: StageSpec, devices: bool = True) -> Manifest:
    """Requests and limits; `devices`: GPUs and other extended resources too (the stage's
    own container has them, the fetch init container does not)."""
    config = stage.config
    # A request of 0 asks for no reservation, as the original read it.
    requests: dict[str, str] = {}
    if config.cpu_request > 0:
        requests["cpu"] = cpu_quantity(config.cpu_request)
    if config.memory_request_mb > 0:
        requests["memory"] = f"{config.memory_request_mb}Mi"
    limits: dict[str, str] = {}
    if config.cpu_limit is not None:
        limits["cpu"] = cpu_quantity(config.cpu_limit)
    if config.memory_limit_mb is not None:
        limits["memory"] = f"{config.memory_limit_mb}Mi"
    if devices:
        # Extended resources cannot be overcommitted: request == limit, as the API stores it.
        extended = placement.extended_limits(config)
        requests.update(extended)
        limits.update(extended)
    resources: Manifest = {"requests": requests} if requests else {}
    if limits:
        resources["limits"] = limits
    return resources


def uses_handoff(image: str, settings: RunSettings) -> bool:
    """Whether a stage fetches in an init container of Bodywork's image and runs in `image`.

    Another image (a user's CUDA or company base image) has no Bodywork inside, so the init
    container supplies the checkout, the stdlib bootstrapper and uv. With Git credentials the
    init container is used even for Bodywork's own image: the key and the token then exist
    only in a container that runs no user code."""
    return image != settings.image or bool(settings.git_ssh_secret or settings.git_token_secret)


def _paths() -> bootstrapargs.StagePaths:
    return bootstrapargs.StagePaths(
        workdir=conv.WORK_MOUNT,
        venv_root=conv.VENV_ROOT,
        artifacts_dir=conv.ARTIFACTS_DIR,
        cache_dir=conv.UV_CACHE_DIR,
        termination_log=conv.TERMINATION_LOG,
    )


def _mounts(*volumes: str) -> list[Manifest]:
    paths = {
        conv.DATA_VOLUME: conv.DATA_MOUNT,
        conv.WORK_VOLUME: conv.WORK_MOUNT,
        conv.TMP_VOLUME: conv.TMP_MOUNT,
        conv.TOOLS_VOLUME: conv.TOOLS_MOUNT,
    }
    return [{"name": v, "mountPath": paths[v]} for v in volumes]


def _base_container(name: str, image: str, settings: RunSettings) -> Manifest:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "terminationMessagePath": conv.TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": locked_down(),
    }


def _stage_env(stage: StageSpec) -> list[Manifest]:
    env: list[Manifest] = [{"name": k, "value": v} for k, v in stage.env().items()]
    env += [
        {"name": conv.ARTIFACTS_DIR_ENV, "value": conv.ARTIFACTS_DIR},
        {"name": conv.HOME_ENV, "value": conv.TMP_MOUNT},
        {"name": conv.PYTHONUNBUFFERED_ENV, "value": "1"},
    ]
    # A secret's value reaches only the stage's environment; the controller never reads it.
    env += [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": var}}}
        for var, secret in stage.config.secrets
    ]
    return env


def _container(stage: StageSpec, image: str, settings: RunSettings) -> Manifest:
    """The single-container path: Bodywork's image fetches, installs and runs the stage."""
    container = _base_container(conv.STAGE_CONTAINER, image, settings)
    container["args"] = ["stage", *bootstrapargs.stage_args(stage, _paths())]
    container["env"] = _stage_env(stage) + git_auth_env(
        settings.git_ssh_secret, settings.git_token_secret
    )
    container["resources"] = _resources(stage)
    container["volumeMounts"] = _mounts(conv.DATA_VOLUME, conv.WORK_VOLUME, conv.TMP_VOLUME)
    if settings.git_ssh_secret:
        container["volumeMounts"].append(git_ssh_mount())
    return container


def _fetch_container(stage: StageSpec, settings: RunSettings) -> Manifest:
    """The hand-off's init container: Bodywork's image fetches the pinned commit and hands
    over the bootstrapper and uv. The only container that sees the Git credentials."""
    container = _base_container(conv.FETCH_CONTAINER, settings.image, settings)
    flags = ["--fetch-only", "--handoff", conv.TOOLS_MOUNT]
    container["args"] = ["stage", *bootstrapargs.stage_args(stage, _paths(), flags)]
    container["env"] = [
        {"name": conv.HOME_ENV, "value": conv.TMP_MOUNT},
        *git_auth_env(settings.git_ssh_secret, settings.git_token_secret),
    ]
    # Init and main run one after the other: no extra quota, and no GPU for fetching.
    container["resources"] = _resources(stage, devices=False)
    container["volumeMounts"] = _mounts(conv.WORK_VOLUME, conv.TMP_VOLUME, conv.TOOLS_VOLUME)
    if settings.git_ssh_secret:
        container["volumeMounts"].append(git_ssh_mount())
    return container


def _handed_over_container(stage: StageSpec, image: str, settings: RunSettings) -> Manifest:
    """The hand-off's stage container: the image's own python3 runs the bootstrapper handed
    over, on the checkout handed over; no credentials, no Git server needed."""
    container = _base_container(conv.STAGE_CONTAINER, image, settings)
    container["command"] = ["python3", "-m", "bodywork_bootstrap"]
    container["args"] = bootstrapargs.stage_args(stage, _paths(), ["--checkout-ready"])
    container["env"] = [
        *_stage_env(stage),
        {"name": conv.PYTHONPATH_ENV, "value": conv.TOOLS_MOUNT},
        {"name": conv.UV_ENV, "value": f"{conv.TOOLS_MOUNT}/bin/uv"},
    ]
    container["resources"] = _resources(stage)
    container["volumeMounts"] = [
        *_mounts(conv.DATA_VOLUME, conv.WORK_VOLUME, conv.TMP_VOLUME),
        {"name": conv.TOOLS_VOLUME, "mountPath": conv.TOOLS_MOUNT, "readOnly": True},
    ]
    return container


def _pod_spec(stage: StageSpec, image: str, settings: RunSettings) -> Manifest:
    claim = {"claimName": artifacts_claim_name(stage.project, settings)}
    handoff = uses_handoff(image, settings)
    pod: Manifest = {
        "serviceAccountName": conv.STAGE_SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,  # stage code gets no Kubernetes API rights
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": conv.STAGE_UID,
            "runAsGroup": conv.STAGE_UID,
            "fsGroup": conv.STAGE_UID,  # makes the PVC writable for the non-root user
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumes": [
            {"name": conv.DATA_VOLUME, "persistentVolumeClaim": claim},
            {"name": conv.WORK_VOLUME, "emptyDir": {}},
            {"name": conv.TMP_VOLUME, "emptyDir": {}},
        ],
    }
    if handoff:
        pod["initContainers"] = [_fetch_container(stage, settings)]
        pod["containers"] = [_handed_over_container(stage, image, settings)]
        pod["volumes"].append({"name": conv.TOOLS_VOLUME, "emptyDir": {}})
    else:
        pod["containers"] = [_container(stage, image, settings)]
    if settings.git_ssh_secret:
        pod["volumes"].append(git_ssh_volume(settings.git_ssh_secret))
    pod.update(placement.pod_placement(stage.config))  # node selector, tolerations, pulls
    return pod


def build_job(stage: StageSpec, image: str, settings: RunSettings) -> Manifest:
    config = stage.config
    pod = _pod_spec(stage, image, settings)
    pod["restartPolicy"] = "Never"  # retries are new pods, counted by backoffLimit
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(job_name(stage), stage, settings),
        "spec": {
            "backoffLimit": config.retries,
            # A backstop: the bootstrapper times installation and the code apart and
            # exits with a code naming which limit was hit, well before this fires.
            "activeDeadlineSeconds": deadlines.batch_backstop_seconds(config),
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            "template": {"metadata": {"labels": labels(stage)}, "spec": pod},
        },
    }


def build_deployment(stage: StageSpec, image: str, settings: RunSettings) -> Manifest:
    config = stage.config
    assert config.port is not None
    pod = _pod_spec(stage, image, settings)
    probe = {"tcpSocket": {"port": config.port}}
    container = pod["containers"][0]  # the stage's own container, in either path
    container["ports"] = [{"name": conv.HTTP_PORT_NAME, "containerPort": config.port}]
    # The startup probe covers fetching code and installing requirements too, so liveness
    # never kills a pod that is still installing; the bootstrapper holds the code itself to
    # MAX_STARTUP_TIME_SECONDS. Readiness gates traffic on PORT.
    startup = deadlines.service_startup_seconds(config)
    container["startupProbe"] = {
        **probe,
        "periodSeconds": conv.PROBE_PERIOD_SECONDS,
        "failureThreshold": math.ceil(startup / conv.PROBE_PERIOD_SECONDS),
    }
    container["readinessProbe"] = {**probe, "periodSeconds": 5, "failureThreshold": 2}
    container["livenessProbe"] = {**probe, "periodSeconds": 10, "failureThreshold": 3}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(stage.object_name, stage, settings),
        "spec": {
            "replicas": config.replicas,
            "selector": {"matchLabels": selector(stage)},
            "progressDeadlineSeconds": startup + conv.ROLLOUT_GRACE_SECONDS,
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
        "metadata": _metadata(stage.object_name, stage, settings, with_run=False),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(stage),
            "ports": [
                {"name": conv.HTTP_PORT_NAME, "port": port, "targetPort": port, "protocol": "TCP"}
            ],
        },
    }


def ingress_path(stage: StageSpec, settings: RunSettings) -> str:
    return f"/{settings.namespace}/{stage.object_name}"


def build_ingress(stage: StageSpec, settings: RunSettings) -> Manifest:
    backend = {"service": {"name": stage.object_name, "port": {"number": stage.config.port}}}
    path = {
        "path": f"{ingress_path(stage, settings)}(/|$)(.*)",
        "pathType": "ImplementationSpecific",
        "backend": backend,
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            **_metadata(stage.object_name, stage, settings, with_run=False),
            "annotations": {conv.REWRITE_TARGET_ANNOTATION: "/$2"},
        },
        "spec": {
            "ingressClassName": settings.ingress_class,
            "rules": [{"http": {"paths": [path]}}],
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
            "labels": {**conv.MANAGED_BY, conv.PROJECT_LABEL: project},
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
