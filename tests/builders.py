"""Builders for test objects: a stage, a project, a plan and cluster run settings.

Each has a working default for every field and takes keyword overrides, so a test names
only what it is about. Shared by the unit tests (test_objects, test_render, test_records,
test_git_auth) instead of each keeping a near-copy.
"""

from __future__ import annotations

from typing import Any

from bodywork.core import config, objects, plan

PROJECT = "demo"
RUN_ID = "20261125-120000-abcd"
COMMIT = "a" * 40
REPO = "git://host/repo.git"
NAMESPACE = "ml"
IMAGE = "bodywork:test"


def stage_config(**overrides: Any) -> config.StageConfig:
    """A batch stage `train` running train.py, with any field overridden."""
    values: dict[str, Any] = {
        "name": "train",
        "stage_type": "batch",
        "module_path": "train/train.py",
    }
    values.update(overrides)
    return config.StageConfig(**values)


def project_config(*stages: config.StageConfig, **overrides: Any) -> config.ProjectConfig:
    """Project `demo` running `stages` one per step, in order, with any field overridden."""
    values: dict[str, Any] = {
        "project_name": PROJECT,
        "dag": tuple((s.name,) for s in stages),
        "stages": {s.name: s for s in stages},
    }
    values.update(overrides)
    return config.ProjectConfig(**values)


def make_plan(
    *stages: config.StageConfig,
    repo: str = REPO,
    commit: str = COMMIT,
    ref: str | None = "main",
    project_dir: str = "",
    run_id: str = RUN_ID,
    **project: Any,
) -> plan.Plan:
    """The plan of `project_config(*stages, **project)` at `commit` of `repo`."""
    source = plan.Source(repo, commit, ref, project_dir)
    return plan.build_plan(project_config(*stages, **project), source, run_id)


def run_settings(**overrides: Any) -> objects.RunSettings:
    """Settings for namespace `ml` and image `bodywork:test`, with any field overridden."""
    values: dict[str, Any] = {"namespace": NAMESPACE, "image": IMAGE}
    values.update(overrides)
    return objects.RunSettings(**values)
