"""The parsed configuration: frozen record classes, and the snapshot of files parsing reads.

`StageConfig` (with its `Toleration`s, from `kubevalues`) and `ProjectConfig` are what the
rest of Bodywork plans and runs from, read from either format; `ProjectFiles` and `StageDir`
are the strings and file names `reader.parse_project` takes.
No default is written here: each field that has one takes it from its `schema.Key`.
"""

from __future__ import annotations

from collections.abc import Mapping

from bodywork.core.config import schema as s
from bodywork.core.config.kubevalues import Toleration
from bodywork.core.errors import Problem
from bodywork_bootstrap.recordclass import field, record

__all__ = ["ProjectConfig", "ProjectFiles", "StageConfig", "StageDir", "Toleration"]


@record(frozen=True, slots=True)
class StageConfig:
    name: str
    stage_type: str
    module_path: str  # the module (.py or .ipynb), relative to the project root, POSIX
    args: tuple[str, ...] = ()  # appended to the module's command line (bodywork.yaml `args`)
    # None: the requirements.txt beside the module (ini era); a tuple: inline (bodywork.yaml)
    requirements: tuple[str, ...] | None = None
    cpu_request: float = s.default_of(s.CPU_REQUEST)
    memory_request_mb: int = s.default_of(s.MEMORY_REQUEST_MB)
    cpu_limit: float | None = s.CPU_LIMIT.default
    memory_limit_mb: int | None = s.MEMORY_LIMIT_MB.default
    retries: int = s.default_of(s.RETRIES)
    max_completion_time_seconds: int = s.default_of(s.MAX_COMPLETION_TIME_SECONDS)
    replicas: int = s.default_of(s.REPLICAS)
    max_startup_time_seconds: int = s.default_of(s.MAX_STARTUP_TIME_SECONDS)
    max_install_time_seconds: int = s.default_of(s.MAX_INSTALL_TIME_SECONDS)
    port: int | None = s.PORT.default  # required for a service; a batch stage has none
    ingress: bool = s.default_of(s.INGRESS)
    secrets: tuple[tuple[str, str], ...] = ()  # (ENV_VAR, secret-name), key in secret = ENV_VAR
    # Placement and devices (cluster runs only; objects.placement renders them)
    gpus: int = s.default_of(s.GPUS)  # nvidia.com/gpu, beside extended_resources
    extended_resources: tuple[tuple[str, int], ...] = s.default_of(s.EXTENDED_RESOURCES)
    node_selector: tuple[tuple[str, str], ...] = s.default_of(s.NODE_SELECTOR)  # (key, value)
    tolerations: tuple[Toleration, ...] = s.default_of(s.TOLERATIONS)
    image_pull_secrets: tuple[str, ...] = s.default_of(s.IMAGE_PULL_SECRETS)  # Secret names

    @property
    def is_service(self) -> bool:
        return self.stage_type == s.SERVICE

    @property
    def module_dir(self) -> str:
        """The module's folder, relative to the project root: its working directory."""
        return self.module_path.rpartition("/")[0]

    @property
    def requirements_file(self) -> str | None:
        """The requirements.txt the bootstrapper installs, relative to the project root."""
        if self.requirements is not None:
            return None
        return "/".join(filter(None, [self.module_dir, s.REQUIREMENTS_FILE]))


@record(frozen=True, slots=True)
class ProjectConfig:
    project_name: str
    dag: tuple[tuple[str, ...], ...]
    stages: Mapping[str, StageConfig]
    docker_image: str | None = s.DOCKER_IMAGE.default
    artifacts_pvc: str | None = s.ARTIFACTS_PVC.default
    artifacts_pvc_access_mode: str = s.default_of(s.ARTIFACTS_PVC_ACCESS_MODE)
    artifacts_url: str | None = s.ARTIFACTS_URL.default  # s3://…: the S3 backend; None: claim
    artifacts_s3_endpoint_url: str | None = s.ARTIFACTS_S3_ENDPOINT_URL.default
    artifacts_s3_secret: str | None = s.ARTIFACTS_S3_SECRET.default
    on_failure: str | None = (
        s.ON_FAILURE.default
    )  # a batch stage outside the DAG, run when a step fails
    webhook_url_secret: str | None = s.WEBHOOK_URL_SECRET.default
    log_level: str = s.default_of(s.LOG_LEVEL)
    batch_stages_first: bool = s.default_of(s.BATCH_STAGES_FIRST)  # the original's step order
    namespace: str | None = s.NAMESPACE.default  # bodywork.yaml `pipeline.namespace`
    config_file: str = s.PROJECT_FILE  # bodywork.ini or bodywork.yaml, for messages
    warnings: tuple[Problem, ...] = ()


@record(frozen=True)
class StageDir:
    """What config validation needs to know about one directory of the project."""

    config_ini: str | None  # the text of config.ini, None when the file is absent
    files: frozenset[str] = frozenset()


@record(frozen=True)
class ProjectFiles:
    """A snapshot of a project's configuration texts and the files it holds.

    `dirs` serves bodywork.ini projects (a stage is a top-level directory); `paths` serves
    bodywork.yaml ones, whose modules may be anywhere: every file's path relative to the
    root, POSIX, without .git and the skipped directories, at most MAX_PROJECT_FILES of them
    (`too_many_files` says the snapshot stopped there).
    """

    bodywork_ini: str | None = None
    dirs: Mapping[str, StageDir] = field(default_factory=dict)
    fallback_name: str = s.FALLBACK_PROJECT_NAME  # project name when PROJECT_NAME is not set
    bodywork_yaml: str | None = None
    paths: frozenset[str] = frozenset()
    too_many_files: bool = False
