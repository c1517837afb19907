"""The command line of `bodywork stage` for one planned stage: one builder for both executors.

A stage pod's container args and a local stage subprocess's argv differ only in the paths
they pass (workdir, venvs, uv cache, artifacts, termination log), so both build them here
and the bootstrapper's flags are written once. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

from bodywork.core.plan import StageSpec
from bodywork_bootstrap.recordclass import record


@record(frozen=True, slots=True)
class StagePaths:
    """Where one stage's bootstrapper keeps things; each executor has its own layout."""

    workdir: str
    venv_root: str
    artifacts_dir: str
    cache_dir: str | None = None  # None: the bootstrapper's own default (or UV_CACHE_DIR)
    termination_log: str | None = None  # Kubernetes only
    # Checkouts by commit, shared by the stages (None: `commits` beside venv_root).
    commit_cache: str | None = None


def stage_args(stage: StageSpec, paths: StagePaths, flags: Sequence[str] = ()) -> list[str]:
    """`--repo … --module … [flags] [-- args]`: what follows `bodywork stage` for this stage.
    `flags` (e.g. the hand-off's) go before the module's own arguments."""
    config, source = stage.config, stage.source
    args = [
        "--repo", source.repo_url,
        "--commit", source.commit,
        "--stage", stage.name,
        "--module", config.module_path,
        "--project", stage.project,
        "--run-id", stage.run_id,
        "--project-dir", source.project_dir,
        "--workdir", paths.workdir,
        "--venv-root", paths.venv_root,
        "--artifacts-dir", paths.artifacts_dir,
        "--max-install-seconds", str(config.max_install_time_seconds),
    ]  # fmt: skip
    if paths.cache_dir is not None:
        args += ["--cache-dir", paths.cache_dir]
    if paths.termination_log is not None:
        args += ["--termination-log", paths.termination_log]
    if paths.commit_cache is not None:
        args += ["--commit-cache", paths.commit_cache]
    if config.requirements_file is not None:
        args += ["--requirements-file", config.requirements_file]
    for requirement in config.requirements or ():
        args += ["--requirement", requirement]
    if config.is_service:
        assert config.port is not None  # config validation requires PORT for a service
        args += [
            "--port", str(config.port),
            "--max-startup-seconds", str(config.max_startup_time_seconds),
        ]  # fmt: skip
    else:
        args += ["--max-run-seconds", str(config.max_completion_time_seconds)]
    args += flags
    if config.args:
        args += ["--", *config.args]
    return args
