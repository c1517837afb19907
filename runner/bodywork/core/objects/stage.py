"""The stage side: `RunSettings` and the bodies a run submits for its stages.

A batch stage is a Job; a service stage is a Deployment, a Service and, when asked, an
Ingress; the project's artifacts PVC is created unless one is named or the artifacts live
in S3. Where artifacts and caches live, and what that asks of placement, is
`storage.storage_of`: a ReadWriteOnce claim adds a required podAffinity, the S3 backend an
`artifacts-pull` init container (and, for a batch stage, an `artifacts-push` container) of
Bodywork's image, the only containers that see the S3 credentials. Also the Git credential
env and SSH volume shared with the controller's pod. Names and labels come from
`conventions`. Pure: no client, no I/O.
"""

from __future__ import annotations

import math
from typing import Any

from bodywork.core import bootstrapargs, deadlines, names
from bodywork.core.objects import conventions as conv
from bodywork.core.objects import placement, storage
from bodywork.core.plan import Plan, StageSpec
from bodywork_bootstrap.recordclass import record, replace

Manifest = dict[str, Any]


@record(frozen=True, slots=True)
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
    return storage.claim_name(project, settings)


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


def _paths(where: storage.Storage) -> bootstrapargs.StagePaths:
    return bootstrapargs.StagePaths(
        workdir=conv.WORK_MOUNT,
        venv_root=conv.VENV_ROOT,
        artifacts_dir=where.artifacts_dir,
        cache_dir=conv.UV_CACHE_DIR,
        termination_log=conv.TERMINATION_LOG,
    )


_MOUNT_PATHS = {
    conv.DATA_VOLUME: conv.DATA_MOUNT,
    conv.WORK_VOLUME: conv.WORK_MOUNT,
    conv.TMP_VOLUME: conv.TMP_MOUNT,
    conv.TOOLS_VOLUME: conv.TOOLS_MOUNT,
    conv.ARTIFACTS_VOLUME: conv.S3_ARTIFACTS_DIR,
    conv.STATUS_VOLUME: conv.STATUS_MOUNT,
    conv.S3_HOME_VOLUME: conv.S3_HOME_MOUNT,
}


def _mounts(*volumes: str) -> list[Manifest]:
    return [{"name": v, "mountPath": _MOUNT_PATHS[v]} for v in volumes]


def _stage_mounts(where: storage.Storage, batch: bool) -> list[Manifest]:
    """The stage container's own volumes: caches (and a claim's artifacts), the checkout,
    /tmp; in the S3 backend the artifacts emptyDir and, for a batch stage, the status dir
    it reports its outcome in."""
    volumes = [conv.DATA_VOLUME, conv.WORK_VOLUME, conv.TMP_VOLUME]
    if where.backend == storage.S3:
        volumes.append(conv.ARTIFACTS_VOLUME)
        if batch:
            volumes.append(conv.STATUS_VOLUME)
    return _mounts(*volumes)


def _status_flags(where: storage.Storage, batch: bool) -> list[str]:
    """`--status-dir`: a batch stage in the S3 backend tells artifacts-push how it ended."""
    return ["--status-dir", conv.STATUS_MOUNT] if where.backend == storage.S3 and batch else []


def _base_container(name: str, image: str, settings: RunSettings) -> Manifest:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "terminationMessagePath": conv.TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": locked_down(),
    }


def _stage_env(stage: StageSpec, where: storage.Storage) -> list[Manifest]:
    env: list[Manifest] = [{"name": k, "value": v} for k, v in stage.env().items()]
    env += [
        {"name": conv.ARTIFACTS_DIR_ENV, "value": where.artifacts_dir},
        {"name": conv.HOME_ENV, "value": conv.TMP_MOUNT},
        {"name": conv.PYTHONUNBUFFERED_ENV, "value": "1"},
    ]
    # A secret's value reaches only the stage's environment; the controller never reads it.
    env += [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": var}}}
        for var, secret in stage.config.secrets
    ]
    return env


def _container(
    stage: StageSpec, image: str, settings: RunSettings, where: storage.Storage, batch: bool
) -> Manifest:
    """The single-container path: Bodywork's image fetches, installs and runs the stage."""
    container = _base_container(conv.STAGE_CONTAINER, image, settings)
    flags = _status_flags(where, batch)
    container["args"] = ["stage", *bootstrapargs.stage_args(stage, _paths(where), flags)]
    container["env"] = _stage_env(stage, where) + git_auth_env(
        settings.git_ssh_secret, settings.git_token_secret
    )
    container["resources"] = _resources(stage)
    container["volumeMounts"] = _stage_mounts(where, batch)
    if settings.git_ssh_secret:
        container["volumeMounts"].append(git_ssh_mount())
    return container


def _fetch_container(stage: StageSpec, settings: RunSettings, where: storage.Storage) -> Manifest:
    """The hand-off's init container: Bodywork's image fetches the pinned commit and hands
    over the bootstrapper and uv. The only container that sees the Git credentials."""
    container = _base_container(conv.FETCH_CONTAINER, settings.image, settings)
    flags = ["--fetch-only", "--handoff", conv.TOOLS_MOUNT]
    container["args"] = ["stage", *bootstrapargs.stage_args(stage, _paths(where), flags)]
    container["env"] = [
        {"name": conv.HOME_ENV, "value": conv.TMP_MOUNT},
        *git_auth_env(settings.git_ssh_secret, settings.git_token_secret),
    ]
    # Init and main run one after the other: no extra quota, and no GPU for fetching.
    container["resources"] = _resources(stage, devices=False)
    volumes = [conv.WORK_VOLUME, conv.TMP_VOLUME, conv.TOOLS_VOLUME]
    if not (settings.git_ssh_secret or settings.git_token_secret):
        # The project's commit cache: a later stage or a restarting replica copies the tree
        # from there, with no fetch. Never with credentials: git would then run, beside the
        # key or token, on files that stage code can write (a planted .git/config).
        volumes.insert(0, conv.DATA_VOLUME)
    container["volumeMounts"] = _mounts(*volumes)
    if settings.git_ssh_secret:
        container["volumeMounts"].append(git_ssh_mount())
    return container


def _handed_over_container(
    stage: StageSpec, image: str, settings: RunSettings, where: storage.Storage, batch: bool
) -> Manifest:
    """The hand-off's stage container: the image's own python3 runs the bootstrapper handed
    over, on the checkout handed over; no credentials, no Git server needed."""
    container = _base_container(conv.STAGE_CONTAINER, image, settings)
    container["command"] = ["python3", "-m", "bodywork_bootstrap"]
    flags = ["--checkout-ready", *_status_flags(where, batch)]
    container["args"] = bootstrapargs.stage_args(stage, _paths(where), flags)
    container["env"] = [
        *_stage_env(stage, where),
        {"name": conv.PYTHONPATH_ENV, "value": conv.TOOLS_MOUNT},
        {"name": conv.UV_ENV, "value": f"{conv.TOOLS_MOUNT}/bin/uv"},
    ]
    container["resources"] = _resources(stage)
    container["volumeMounts"] = [
        *_stage_mounts(where, batch),
        {"name": conv.TOOLS_VOLUME, "mountPath": conv.TOOLS_MOUNT, "readOnly": True},
    ]
    return container


def s3_env(where: storage.Storage) -> list[Manifest]:
    """The artifacts containers' env: the bucket's credentials from the Secret (the session
    token and region only if the Secret has them), the endpoint, their own HOME."""
    env: list[Manifest] = [{"name": conv.HOME_ENV, "value": conv.S3_HOME_MOUNT}]
    if where.s3_secret:  # always, by storage_of; the sync takes credentials only from it
        for var, optional in (
            (conv.AWS_ACCESS_KEY_ID_ENV, False),
            (conv.AWS_SECRET_ACCESS_KEY_ENV, False),
            (conv.AWS_SESSION_TOKEN_ENV, True),
            (conv.AWS_REGION_ENV, True),
        ):
            ref: Manifest = {"name": where.s3_secret, "key": var}
            if optional:
                ref["optional"] = True
            env.append({"name": var, "valueFrom": {"secretKeyRef": ref}})
    if where.endpoint_url:
        env.append({"name": conv.S3_ENDPOINT_URL_ENV, "value": where.endpoint_url})
    env.append({"name": conv.PYTHONUNBUFFERED_ENV, "value": "1"})
    return env


def _artifacts_container(
    name: str, stage: StageSpec, settings: RunSettings, where: storage.Storage
) -> Manifest:
    """`artifacts-pull` (an init container) or `artifacts-push` (beside a batch stage):
    Bodywork's image syncing the project's artifacts with the bucket. With the hand-off's
    `fetch`, the only containers that see the S3 credentials; never the stage's."""
    assert where.artifacts_url is not None
    push = name == conv.ARTIFACTS_PUSH_CONTAINER
    container = _base_container(name, settings.image, settings)
    container["command"] = ["python3", "-m", conv.ARTIFACTS_MODULE]
    args = ["push" if push else "pull", "--url", where.artifacts_url]
    args += ["--project", stage.project, "--dir", conv.S3_ARTIFACTS_DIR]
    if where.endpoint_url:
        args += ["--endpoint-url", where.endpoint_url]
    args += ["--manifest", conv.PULLED_MANIFEST]
    if push:
        args += ["--status-dir", conv.STATUS_MOUNT]
        args += ["--stale-seconds", str(conv.PUSH_STALE_SECONDS)]
    container["args"] = [*args, "--termination-log", conv.TERMINATION_LOG]
    container["env"] = s3_env(where)
    # Small and bounded: push runs beside the stage, so it counts against a quota.
    container["resources"] = {k: dict(v) for k, v in conv.ARTIFACTS_RESOURCES.items()}
    container["volumeMounts"] = _mounts(
        conv.ARTIFACTS_VOLUME, conv.STATUS_VOLUME, conv.S3_HOME_VOLUME
    )
    if push:  # it only reads what the stage wrote
        container["volumeMounts"][0]["readOnly"] = True
    return container


def _volumes(where: storage.Storage) -> list[Manifest]:
    """The claim (or an emptyDir for the caches) at DATA_MOUNT, the checkout and /tmp; in
    the S3 backend also the artifacts, status and the artifacts containers' HOME."""
    data: Manifest = (
        {"persistentVolumeClaim": {"claimName": where.claim}} if where.claim else {"emptyDir": {}}
    )
    volumes = [
        {"name": conv.DATA_VOLUME, **data},
        {"name": conv.WORK_VOLUME, "emptyDir": {}},
        {"name": conv.TMP_VOLUME, "emptyDir": {}},
    ]
    if where.backend == storage.S3:
        volumes += [
            {"name": v, "emptyDir": {}}
            for v in (conv.ARTIFACTS_VOLUME, conv.STATUS_VOLUME, conv.S3_HOME_VOLUME)
        ]
    return volumes


def pod_labels(stage: StageSpec, settings: RunSettings) -> dict[str, str]:
    """A stage pod's labels: the stage's, and the claim's identity when it mounts a
    ReadWriteOnce claim (what the pods' podAffinity selects)."""
    where = storage.storage_of(stage.project, settings)
    return {**labels(stage), **storage.pod_labels(where)}


def _pod_spec(stage: StageSpec, image: str, settings: RunSettings, batch: bool) -> Manifest:
    where = storage.storage_of(stage.project, settings)
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
        "volumes": _volumes(where),
    }
    init: list[Manifest] = []
    if where.backend == storage.S3:
        init.append(_artifacts_container(conv.ARTIFACTS_PULL_CONTAINER, stage, settings, where))
    if handoff:
        init.append(_fetch_container(stage, settings, where))
        pod["containers"] = [_handed_over_container(stage, image, settings, where, batch)]
        pod["volumes"].append({"name": conv.TOOLS_VOLUME, "emptyDir": {}})
    else:
        pod["containers"] = [_container(stage, image, settings, where, batch)]
    if init:
        pod["initContainers"] = init
    if where.backend == storage.S3 and batch:  # the stage's container stays the first
        push = _artifacts_container(conv.ARTIFACTS_PUSH_CONTAINER, stage, settings, where)
        pod["containers"].append(push)
    if settings.git_ssh_secret:
        pod["volumes"].append(git_ssh_volume(settings.git_ssh_secret))
    pod.update(placement.pod_placement(stage.config))  # node selector, tolerations, pulls
    pod.update(storage.pod_affinity(where))  # a ReadWriteOnce claim: its node only
    if not batch:
        pod.update(storage.spread(where, stage.config.replicas, selector(stage)))
    return pod


def build_job(stage: StageSpec, image: str, settings: RunSettings) -> Manifest:
    config = stage.config
    pod = _pod_spec(stage, image, settings, batch=True)
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
            "template": {"metadata": {"labels": pod_labels(stage, settings)}, "spec": pod},
        },
    }


def build_deployment(stage: StageSpec, image: str, settings: RunSettings) -> Manifest:
    config = stage.config
    assert config.port is not None
    pod = _pod_spec(stage, image, settings, batch=False)
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
            "template": {"metadata": {"labels": pod_labels(stage, settings)}, "spec": pod},
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
    where = storage.storage_of(project, settings)
    spec: Manifest = {
        # ReadWriteOnce binds everywhere; the pods that mount it then share its node (their
        # podAffinity, storage.pod_affinity). ReadWriteMany (ARTIFACTS_PVC_ACCESS_MODE)
        # needs a class that offers it (NFS, CephFS, EFS, Filestore...) and lets them spread.
        "accessModes": [where.access_mode],
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
    if storage.storage_of(plan.project, settings).create_claim:
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
