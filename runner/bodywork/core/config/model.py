"""The parsed configuration: frozen dataclasses, and the snapshot of files parsing reads.

`StageConfig` and `ProjectConfig` are what the rest of Bodywork plans and runs from;
`ProjectFiles` and `StageDir` are the strings and file names `reader.parse_project` takes.
No default is written here: each field that has one takes it from its `schema.Key`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bodywork.core.config import schema as s
from bodywork.core.errors import Problem


@dataclass(frozen=True, slots=True)
class StageConfig:
    name: str
    stage_type: str
    executable_script: str
    cpu_request: float = s.default_of(s.CPU_REQUEST)
    memory_request_mb: int = s.default_of(s.MEMORY_REQUEST_MB)
    cpu_limit: float | None = s.CPU_LIMIT.default
    memory_limit_mb: int | None = s.MEMORY_LIMIT_MB.default
    retries: int = s.default_of(s.RETRIES)
    max_completion_time_seconds: int = s.default_of(s.MAX_COMPLETION_TIME_SECONDS)
    replicas: int = s.default_of(s.REPLICAS)
    max_startup_time_seconds: int = s.default_of(s.MAX_STARTUP_TIME_SECONDS)
    port: int | None = s.PORT.default  # required for a service; a batch stage has none
    ingress: bool = s.default_of(s.INGRESS)
    secrets: tuple[tuple[str, str], ...] = ()  # (ENV_VAR, secret-name), key in secret = ENV_VAR

    @property
    def is_service(self) -> bool:
        return self.stage_type == s.SERVICE


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    project_name: str
    dag: tuple[tuple[str, ...], ...]
    stages: Mapping[str, StageConfig]
    docker_image: str | None = s.DOCKER_IMAGE.default
    artifacts_pvc: str | None = s.ARTIFACTS_PVC.default
    on_failure: str | None = (
        s.ON_FAILURE.default
    )  # a batch stage outside the DAG, run when a step fails
    webhook_url_secret: str | None = s.WEBHOOK_URL_SECRET.default
    log_level: str = s.default_of(s.LOG_LEVEL)
    warnings: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class StageDir:
    """What config validation needs to know about one directory of the project."""

    config_ini: str | None  # the text of config.ini, None when the file is absent
    files: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ProjectFiles:
    """A snapshot of a project's configuration texts and the files in its top-level dirs."""

    bodywork_ini: str | None
    dirs: Mapping[str, StageDir] = field(default_factory=dict)
    fallback_name: str = s.FALLBACK_PROJECT_NAME  # project name when PROJECT_NAME is not set
