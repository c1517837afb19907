"""ProjectConfig + the pinned source + run id → Plan: ordered steps of fully resolved stages.

Planning is pure: everything an executor needs to start a stage (names, commit, resources,
deadlines, env) is decided here, so the local and Kubernetes executors run the same plan
and `render` can show it without running anything.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from bodywork.core import names
from bodywork.core.config import ProjectConfig, StageConfig
from bodywork_bootstrap import envnames
from bodywork_bootstrap.recordclass import record, replace


@record(frozen=True, slots=True)
class Source:
    """Where the code comes from: one repo at one commit, for the whole run."""

    repo_url: str
    commit: str  # full SHA, resolved once at the start of the run
    ref: str | None = None  # what the user asked for (branch, tag, SHA), for the record
    project_dir: str = ""  # project root inside the repo; "" = the repo root


@record(frozen=True, slots=True)
class StageSpec:
    project: str
    run_id: str
    source: Source
    config: StageConfig
    extra_env: tuple[tuple[str, str], ...] = ()  # e.g. the failure, for an on-failure stage

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def object_name(self) -> str:
        """Stable per project and stage: a redeploy updates the same Deployment/Service."""
        return names.object_name(self.project, self.name)

    def env(self) -> dict[str, str]:
        """The BODYWORK_* variables every stage sees (artifacts dir is per executor)."""
        return {
            envnames.PROJECT: self.project,
            envnames.STAGE: self.name,
            envnames.RUN_ID: self.run_id,
            envnames.GIT_COMMIT: self.source.commit,
            envnames.ORIGINAL_GIT_COMMIT: self.source.commit,
            **dict(self.extra_env),
        }


@record(frozen=True, slots=True)
class Step:
    number: int  # 1-based, as users count steps in the DAG string
    stages: tuple[StageSpec, ...]


@record(frozen=True, slots=True)
class Plan:
    project: str
    run_id: str
    source: Source
    steps: tuple[Step, ...]
    docker_image: str | None = None
    artifacts_pvc: str | None = None
    artifacts_pvc_access_mode: str | None = None  # None: ReadWriteOnce
    artifacts_url: str | None = None  # s3://bucket/prefix: the S3 backend; None: the claim
    artifacts_s3_endpoint_url: str | None = None
    artifacts_s3_secret: str | None = None
    on_failure: StageSpec | None = None  # run when a step fails, with the failure in its env
    webhook_url_secret: str | None = None
    batch_stages_first: bool = False  # a step's batch stages finish before its services start
    namespace: str | None = None  # the project's own choice (bodywork.yaml), if it made one

    @property
    def stages(self) -> tuple[StageSpec, ...]:
        return tuple(stage for step in self.steps for stage in step.stages)


def new_run_id(now: datetime | None = None) -> str:
    """Sortable by time, unique by a random suffix, and a valid Kubernetes label value."""
    now = now or datetime.now(timezone.utc)
    # os.urandom is what secrets.token_hex reads, without secrets' hmac and OpenSSL load
    return f"{now:%Y%m%d-%H%M%S}-{os.urandom(2).hex()}"


def build_plan(project: ProjectConfig, source: Source, run_id: str) -> Plan:
    steps = tuple(
        Step(
            number=number,
            stages=tuple(
                StageSpec(project.project_name, run_id, source, project.stages[name])
                for name in step
            ),
        )
        for number, step in enumerate(project.dag, 1)
    )
    on_failure = (
        StageSpec(project.project_name, run_id, source, project.stages[project.on_failure])
        if project.on_failure
        else None
    )
    return Plan(
        project.project_name,
        run_id,
        source,
        steps,
        docker_image=project.docker_image,
        artifacts_pvc=project.artifacts_pvc,
        artifacts_pvc_access_mode=project.artifacts_pvc_access_mode,
        artifacts_url=project.artifacts_url,
        artifacts_s3_endpoint_url=project.artifacts_s3_endpoint_url,
        artifacts_s3_secret=project.artifacts_s3_secret,
        on_failure=on_failure,
        webhook_url_secret=project.webhook_url_secret,
        batch_stages_first=project.batch_stages_first,
        namespace=project.namespace,
    )


MAX_FAILURE_REASON_BYTES = 4096  # an env string may be 128 KiB at most (execve's E2BIG)


def _capped(text: str, limit: int = MAX_FAILURE_REASON_BYTES) -> str:
    """`text` within `limit` bytes of UTF-8: its start, and a marker saying how much is cut."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    marker = f" [... {len(data):,} bytes in all, cut to {limit:,}]"
    head = data[: limit - len(marker.encode())].decode("utf-8", errors="ignore")
    return head + marker


def on_failure_stage(plan: Plan, failed_stage: str, reason: str) -> StageSpec | None:
    """The plan's on-failure stage, told which stage failed and why (the reason capped at
    MAX_FAILURE_REASON_BYTES: a stage's last line may be any length, and one env value over
    128 KiB makes starting the on-failure stage fail with "argument list too long")."""
    if plan.on_failure is None:
        return None
    return replace(
        plan.on_failure,
        extra_env=(
            (envnames.FAILED_STAGE, failed_stage),
            (envnames.FAILURE_REASON, _capped(reason)),
            (envnames.ORIGINAL_FAILURE_MESSAGE, _capped(f"stage '{failed_stage}' {reason}")),
        ),
    )
