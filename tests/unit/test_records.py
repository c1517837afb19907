"""Run records: the ConfigMap body a run leaves in the namespace, and reading it back."""

from __future__ import annotations

import json
import types

from bodywork.core import objects, plan, records
from bodywork.core.results import FAILED, NOT_RUN, SUCCEEDED, RunOutcome, StageResult
from tests import builders

RUN_ID = "20261125-120000-abcd"
COMMIT = "c" * 40
STARTED = "2026-11-25T12:00:00Z"


def make_plan(*stage_names: str, repo: str = builders.REPO) -> plan.Plan:
    stages = (builders.stage_config(name=n, module_path=f"{n}/main.py") for n in stage_names)
    return builders.make_plan(*stages, repo=repo, commit=COMMIT, run_id=RUN_ID)


def run_json(body: dict) -> dict:
    return json.loads(body["data"][records.RUN_KEY])


def failed_outcome() -> RunOutcome:
    return RunOutcome(
        RUN_ID,
        COMMIT,
        [
            StageResult("prepare", "batch", SUCCEEDED, attempts=1, seconds=1.234),
            StageResult(
                "train",
                "batch",
                FAILED,
                attempts=3,
                seconds=9.876,
                reason="exited with code 1: no data",
                log_tail=["loading", "no data"],
            ),
            StageResult("report", "batch", NOT_RUN, reason="step 2 failed"),
        ],
        on_failure=StageResult(
            "alert", "on-failure", SUCCEEDED, attempts=1, seconds=0.5, log_tail=["paged"]
        ),
        failed_step=2,
        seconds=12.3456,
    )


def test_record_is_labelled_by_project_run_role_and_trigger() -> None:
    """Labels let status/cleanup find a run by project, run id, role and trigger."""
    body = records.build_record(make_plan("train"), "ml", "cron", STARTED)
    assert body["kind"] == "ConfigMap"
    assert body["metadata"]["namespace"] == "ml"
    assert body["metadata"]["name"] == records.record_name("demo", RUN_ID)
    labels = body["metadata"]["labels"]
    assert labels[objects.PROJECT_LABEL] == "demo"
    assert labels[objects.RUN_LABEL] == RUN_ID
    assert labels[objects.ROLE_LABEL] == "run-record"
    assert labels[records.TRIGGER_LABEL] == "cron"
    assert labels["app.kubernetes.io/managed-by"] == "bodywork"


def test_record_at_start_is_running_with_the_dag_and_no_stages() -> None:
    """Before any step ends: status running, no finish time, the planned DAG."""
    run = run_json(records.build_record(make_plan("prepare", "train"), "ml", "manual", STARTED))
    assert run["status"] == records.RUNNING
    assert run["finished_at"] is None
    assert run["started_at"] == STARTED
    assert run["commit"] == COMMIT
    assert run["dag"] == [["prepare"], ["train"]]
    assert run["stages"] == []


def test_record_of_a_failed_run_holds_each_stage_and_the_on_failure_stage() -> None:
    """Stages keep attempts and reason; failed_step, on_failure and resumed_from are kept."""
    body = records.build_record(
        make_plan("prepare", "train", "report"),
        "ml",
        "manual",
        STARTED,
        failed_outcome(),
        records.FAILED,
        extra={"resumed_from": "20261124-000000-0000"},
    )
    run = run_json(body)
    assert run["status"] == "failed"
    assert run["finished_at"] is not None
    assert run["commit"] == COMMIT
    assert run["failed_step"] == 2
    assert run["seconds"] == 12.35
    assert run["resumed_from"] == "20261124-000000-0000"
    stages = {s["stage"]: s for s in run["stages"]}
    assert list(stages) == ["prepare", "train", "report"]
    assert stages["train"]["status"] == "failed"
    assert stages["train"]["attempts"] == 3
    assert stages["train"]["reason"] == "exited with code 1: no data"
    assert stages["train"]["seconds"] == 9.88
    assert "log_tail" not in stages["train"]
    assert stages["report"]["status"] == "not run"
    assert run["on_failure"]["stage"] == "alert"
    assert run["on_failure"]["status"] == "succeeded"
    assert body["data"]["log.train"] == "loading\nno data"
    assert body["data"]["log.alert"] == "paged"
    assert "log.prepare" not in body["data"]  # no output, no key


def test_repo_credentials_never_reach_the_record() -> None:
    """https://user:tok@host/x.git is stored with the token redacted."""
    the_plan = make_plan("train", repo="https://user:tok@host/x.git")
    body = records.build_record(the_plan, "ml", "manual", STARTED, failed_outcome())
    assert "tok" not in json.dumps(body)
    assert run_json(body)["repo"].endswith("@host/x.git")


def test_huge_logs_are_cut_to_their_last_lines_and_the_record_stays_small() -> None:
    """20 stages x 10,000 long lines: under 512 KiB, each stage keeping its last lines."""
    stage_names = [f"stage-{i:02d}" for i in range(20)]
    results = [
        StageResult(
            name,
            "batch",
            SUCCEEDED,
            attempts=1,
            log_tail=[f"{name} line {n:05d} " + "x" * 200 for n in range(10_000)],
        )
        for name in stage_names
    ]
    outcome = RunOutcome(RUN_ID, COMMIT, results, seconds=60)
    body = records.build_record(
        make_plan(*stage_names), "ml", "manual", STARTED, outcome, records.SUCCEEDED
    )
    size = len(json.dumps(body).encode())
    assert size < 512 * 1024, size
    for name in stage_names:
        lines = body["data"][f"log.{name}"].splitlines()
        assert lines[-1] == f"{name} line 09999 " + "x" * 200
        assert len(lines) > 10  # a useful tail, not a token one
        numbers = [int(line.split()[2]) for line in lines]
        assert numbers == list(range(10_000 - len(lines), 10_000))  # contiguous, ends last


def test_many_stages_with_logs_never_push_the_record_past_the_cap() -> None:
    """300 logging stages share the log budget: the record stays under 512 KiB too."""
    stage_names = [f"s{i:03d}" for i in range(300)]
    results = [
        StageResult(name, "batch", SUCCEEDED, log_tail=[f"{name} " + "y" * 100] * 2_000)
        for name in stage_names
    ]
    outcome = RunOutcome(RUN_ID, COMMIT, results)
    body = records.build_record(
        make_plan(*stage_names), "ml", "manual", STARTED, outcome, records.SUCCEEDED
    )
    data_bytes = sum(len(k) + len(v.encode()) for k, v in body["data"].items())
    assert data_bytes < 512 * 1024, data_bytes  # what the API server counts (limit 1 MiB)
    assert len(json.dumps(body).encode()) < 512 * 1024
    assert all(body["data"][f"log.{name}"] for name in stage_names)  # each keeps some tail


def test_parse_record_round_trips_run_json_and_logs() -> None:
    """What build_record writes, parse_record reads back: run fields plus stage logs."""
    body = records.build_record(
        make_plan("prepare", "train", "report"),
        "ml",
        "manual",
        STARTED,
        failed_outcome(),
        records.FAILED,
        extra={"resumed_from": "20261124-000000-0000"},
    )
    config_map = types.SimpleNamespace(data=body["data"])
    run = records.parse_record(config_map)
    assert run["run_id"] == RUN_ID
    assert run["status"] == "failed"
    assert run["resumed_from"] == "20261124-000000-0000"
    assert [s["stage"] for s in run["stages"]] == ["prepare", "train", "report"]
    assert run["logs"] == {"train": "loading\nno data", "alert": "paged"}
    assert {k: v for k, v in run.items() if k != "logs"} == run_json(body)


def test_parse_record_of_an_empty_config_map_is_empty_not_an_error() -> None:
    """A ConfigMap with no data (hand-edited, half-written) reads as an empty record."""
    assert records.parse_record(types.SimpleNamespace(data=None)) == {"logs": {}}
