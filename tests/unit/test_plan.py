"""plan.build_plan and new_run_id: a parsed project + pinned source → ordered, resolved stages."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from bodywork.core import config, names, plan

FILES = frozenset({"prep.py", "train.py", "serve.py", "requirements.txt"})
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
SOURCE = plan.Source(repo_url="https://example.com/ml.git", commit="a" * 40, ref="main")


def batch(script: str) -> config.StageDir:
    return config.StageDir(f"[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = {script}\n", FILES)


def parsed_project(project_name: str = "fraud", docker_image: str | None = None):
    image = f"DOCKER_IMAGE = {docker_image}\nARTIFACTS_PVC = shared\n" if docker_image else ""
    return config.parse_project(
        config.ProjectFiles(
            bodywork_ini=(
                f"[default]\nPROJECT_NAME = {project_name}\n{image}"
                "[workflow]\nDAG = prep >> train_a, train-b >> serve\n"
            ),
            dirs={
                "prep": batch("prep.py"),
                "train_a": batch("train.py"),
                "train-b": batch("train.py"),
                "serve": config.StageDir(
                    "[default]\nSTAGE_TYPE = service\nEXECUTABLE_SCRIPT = serve.py\n"
                    "[service]\nPORT = 5000\n",
                    FILES,
                ),
            },
        )
    )


def test_plan_keeps_dag_steps_in_order_numbered_from_one():
    """Steps follow the DAG, numbered 1.. as users count them, stages in DAG order."""
    built = plan.build_plan(parsed_project(), SOURCE, "run-1")
    assert [step.number for step in built.steps] == [1, 2, 3]
    assert [[s.name for s in step.stages] for step in built.steps] == [
        ["prep"],
        ["train_a", "train-b"],
        ["serve"],
    ]
    assert [s.name for s in built.stages] == ["prep", "train_a", "train-b", "serve"]


def test_plan_carries_project_run_source_image_and_stage_configs():
    """Every stage spec shares the run's project, run id and pinned source."""
    project = parsed_project(docker_image="me/img:2")
    built = plan.build_plan(project, SOURCE, "run-1")
    assert (built.project, built.run_id, built.source) == ("fraud", "run-1", SOURCE)
    assert built.docker_image == "me/img:2"
    assert built.artifacts_pvc == "shared"
    for spec in built.stages:
        assert (spec.project, spec.run_id, spec.source) == ("fraud", "run-1", SOURCE)
        assert spec.config is project.stages[spec.name]
    assert built.stages[-1].config.port == 5000


def test_stage_object_names_are_project_double_dash_stage():
    """Object names are '<project>--<stage>' in Kubernetes form, stable across runs."""
    first = plan.build_plan(parsed_project(), SOURCE, "run-1")
    second = plan.build_plan(parsed_project(), SOURCE, "run-2")
    assert [s.object_name for s in first.stages] == [
        "fraud--prep",
        "fraud--train-a",
        "fraud--train-b",
        "fraud--serve",
    ]
    assert [s.object_name for s in second.stages] == [s.object_name for s in first.stages]


def test_long_project_names_still_give_distinct_valid_object_names():
    """A project name near the limit still yields distinct DNS labels for every stage."""
    built = plan.build_plan(parsed_project("p" * 60), SOURCE, "run-1")
    object_names = [s.object_name for s in built.stages]
    assert len(set(object_names)) == 4
    assert all(names.is_dns_label(n) for n in object_names)


def test_stage_env_holds_the_bodywork_variables():
    """Each stage sees exactly its project, stage, run id and the pinned commit (also under
    the original's name, GIT_COMMIT_HASH)."""
    spec = plan.build_plan(parsed_project(), SOURCE, "run-7").stages[1]
    assert spec.env() == {
        "BODYWORK_PROJECT": "fraud",
        "BODYWORK_STAGE": "train_a",
        "BODYWORK_RUN_ID": "run-7",
        "BODYWORK_GIT_COMMIT": "a" * 40,
        "GIT_COMMIT_HASH": "a" * 40,
    }


def test_run_id_encodes_the_utc_time_and_a_random_hex_suffix():
    """new_run_id(t) is YYYYMMDD-HHMMSS-xxxx for the given time."""
    now = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert re.fullmatch(r"20240102-030405-[0-9a-f]{4}", plan.new_run_id(now))


def test_run_id_is_a_valid_kubernetes_label_value():
    """Run ids go into labels: at most 63 characters of the label alphabet."""
    run_id = plan.new_run_id()
    assert len(run_id) <= 63
    assert LABEL_VALUE.match(run_id)


def test_run_ids_sort_in_time_order():
    """Ids of runs started in later seconds sort after earlier ones, whatever the suffix."""
    start = datetime(2023, 12, 31, 23, 59, 58, tzinfo=timezone.utc)
    times = [start + timedelta(seconds=s) for s in (0, 1, 2, 61, 3600, 86400 * 40)]
    ids = [plan.new_run_id(t) for t in times]
    assert sorted(ids) == ids
    assert sorted(reversed(ids)) == ids


def test_run_ids_at_the_same_instant_differ():
    """The random suffix separates runs started in the same second."""
    now = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert len({plan.new_run_id(now) for _ in range(20)}) > 1


def test_run_id_defaults_to_now_in_utc():
    """Without a time, the id's timestamp is the current UTC time."""
    before = datetime.now(timezone.utc).replace(microsecond=0)
    stamp = datetime.strptime(plan.new_run_id()[:15], "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
    after = datetime.now(timezone.utc)
    assert before <= stamp <= after


def test_plan_needs_every_dag_stage_configured():
    """A DAG naming a stage with no config is a programming error, not a silent skip."""
    project = parsed_project()
    broken = config.ProjectConfig("fraud", (("prep", "ghost"),), project.stages)
    with pytest.raises(KeyError, match="ghost"):
        plan.build_plan(broken, SOURCE, "run-1")
