"""Run records: what happened in each run, kept in the namespace after pods and Jobs are gone.

One ConfigMap per run, labelled by project and run id, holds `run.json` (source, commit,
trigger, per-stage results, timings) and the tail of each stage's log, capped so the object
stays far below Kubernetes' 1 MiB limit. The controller writes it when the run starts,
after each step, and at the end; `bodywork status` and `bodywork logs` read it.
Pure: building and parsing a record. `bodywork.k8s.recordstore` writes and reads them.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from bodywork.core import names, objects
from bodywork.core.plan import Plan
from bodywork.core.results import RunOutcome, StageResult
from bodywork_bootstrap.recordclass import asdict
from bodywork_bootstrap.redaction import redact

RECORD_ROLE = "run-record"
TRIGGER_LABEL = f"{objects.LABEL_PREFIX}/trigger"
RUN_KEY = "run.json"
LOG_KEY_PREFIX = "log."
MAX_LOG_BYTES = 400 * 1024  # all stage logs together; the whole object stays < 0.5 MiB
MAX_DATA_BYTES = 480 * 1024  # run.json and the logs: what the logs get is what run.json leaves
MAX_TIMING_KEYS = 12  # of a stage's timeline in run.json (it has 8 or so): bounded per stage
RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


def record_name(project: str, run_id: str) -> str:
    return names.object_name(project, "run", run_id)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tail(lines: list[str], budget: int) -> str:
    """The last lines of a log that fit in `budget` bytes (UTF-8)."""
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        size = len(line.encode()) + 1
        if used + size > budget:
            break
        kept.append(line)
        used += size
    return "\n".join(reversed(kept))


def _stage_dict(result: StageResult) -> dict[str, Any]:
    found = asdict(result)
    found.pop("log_tail")
    found["seconds"] = round(result.seconds, 2)
    # The bootstrapper's timeline (started_at, then each phase's offset): a few numbers,
    # read from the whole log tail before it is cut to the record's share.
    timings = result.timings
    if timings is not None:
        found["timings"] = {k: v for k, v in list(timings.items())[:MAX_TIMING_KEYS]}
    return found


def build_record(
    plan: Plan,
    namespace: str,
    trigger: str,
    started_at: str,
    outcome: RunOutcome | None = None,
    status: str = RUNNING,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ConfigMap body for a run, at any point of it."""
    run: dict[str, Any] = {
        "project": plan.project,
        "run_id": plan.run_id,
        "trigger": trigger,
        "repo": redact(plan.source.repo_url),
        "ref": plan.source.ref,
        "commit": plan.source.commit,
        "project_dir": plan.source.project_dir,
        "status": status,
        "started_at": started_at,
        "finished_at": _now() if status != RUNNING else None,
        "dag": [[s.name for s in step.stages] for step in plan.steps],
        "stages": [],
        **(extra or {}),
    }
    data: dict[str, str] = {}
    if outcome is not None:
        run["seconds"] = round(outcome.seconds, 2)
        run["failed_step"] = outcome.failed_step
        run["stages"] = [_stage_dict(r) for r in outcome.results]
        results = list(outcome.results)
        if outcome.on_failure is not None:
            run["on_failure"] = _stage_dict(outcome.on_failure)
            results.append(outcome.on_failure)
    data[RUN_KEY] = json.dumps(run, indent=1)
    if outcome is not None:
        with_logs = [r for r in results if r.log_tail]
        keys = [f"{LOG_KEY_PREFIX}{names.k8s_name(r.stage)}" for r in with_logs]
        # The logs share what run.json (which grows with the stages and their timelines)
        # leaves of the cap; an equal share each, never a floor: 4 KiB x 300 stages would
        # pass 1 MiB.
        left = MAX_DATA_BYTES - len(data[RUN_KEY].encode()) - sum(len(k) for k in keys)
        budget = max(0, min(MAX_LOG_BYTES, left)) // max(1, len(with_logs))
        for key, result in zip(keys, with_logs, strict=True):
            data[key] = _tail(result.log_tail, budget)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": record_name(plan.project, plan.run_id),
            "namespace": namespace,
            "labels": {
                **objects.MANAGED_BY,
                objects.PROJECT_LABEL: plan.project,
                objects.RUN_LABEL: plan.run_id,
                objects.ROLE_LABEL: RECORD_ROLE,
                TRIGGER_LABEL: trigger,
            },
        },
        "data": data,
    }


def parse_record(config_map: Any) -> dict[str, Any]:
    """run.json of a record ConfigMap, plus `logs`: stage → log tail."""
    data = config_map.data or {}
    run: dict[str, Any] = json.loads(data.get(RUN_KEY, "{}"))
    run["logs"] = {
        key.removeprefix(LOG_KEY_PREFIX): text
        for key, text in data.items()
        if key.startswith(LOG_KEY_PREFIX)
    }
    return run


def succeeded_steps(run: dict[str, Any]) -> int:
    """How many leading steps of a recorded run had every stage succeed (or skipped)."""
    status = {s["stage"]: s["status"] for s in run.get("stages", [])}
    count = 0
    for step in run.get("dag", []):
        if not all(status.get(name) in ("succeeded", "skipped") for name in step):
            break
        count += 1
    return count
