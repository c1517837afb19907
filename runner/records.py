"""Run records: what happened in each run, kept in the namespace after pods and Jobs are gone.

One ConfigMap per run, labelled by project and run id, holds `run.json` (source, commit,
trigger, per-stage results, timings) and the tail of each stage's log, capped so the object
stays far below Kubernetes' 1 MiB limit. The controller writes it when the run starts,
after each step, and at the end; `bodywork status` and `bodywork logs` read it.
The format functions are pure; `Recorder` and the readers take a CoreV1Api.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from bodywork import names, objects
from bodywork.events import RunOutcome, StageResult
from bodywork.plan import Plan
from bodywork_bootstrap.gitfetch import redact

RECORD_ROLE = "run-record"
TRIGGER_LABEL = f"{objects.LABEL_PREFIX}/trigger"
RUN_KEY = "run.json"
LOG_KEY_PREFIX = "log."
MAX_LOG_BYTES = 400 * 1024  # all stage logs together; the whole object stays < 0.5 MiB
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
        with_logs = [r for r in results if r.log_tail]
        # An equal share each, never a floor: 4 KiB x 300 stages would pass 1 MiB.
        budget = MAX_LOG_BYTES // max(1, len(with_logs))
        for result in with_logs:
            data[f"{LOG_KEY_PREFIX}{names.k8s_name(result.stage)}"] = _tail(result.log_tail, budget)
    data[RUN_KEY] = json.dumps(run, indent=1)
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
    run = json.loads(data.get(RUN_KEY, "{}"))
    run["logs"] = {
        key.removeprefix(LOG_KEY_PREFIX): text
        for key, text in data.items()
        if key.startswith(LOG_KEY_PREFIX)
    }
    return run


class Recorder:
    """Writes one run's record as it progresses (controller side)."""

    def __init__(
        self,
        core: Any,
        namespace: str,
        plan: Plan,
        trigger: str,
        extra: dict[str, Any] | None = None,
    ):
        from bodywork import kube

        self.kube = kube
        self.core = core
        self.namespace = namespace
        self.plan = plan
        self.trigger = trigger
        self.extra = extra or {}
        self.started_at = _now()
        self.started = time.monotonic()
        self.name = record_name(plan.project, plan.run_id)
        body = build_record(plan, namespace, trigger, self.started_at, extra=self.extra)
        created = kube.create(
            f"create configmap {self.name}",
            namespace,
            core.create_namespaced_config_map,
            namespace,
            body,
        )
        if created is None:  # the same run re-attaching after its controller died
            kube.call(
                f"update configmap {self.name}",
                namespace,
                core.replace_namespaced_config_map,
                self.name,
                namespace,
                body,
            )

    def update(self, outcome: RunOutcome, status: str = RUNNING) -> None:
        body = build_record(
            self.plan, self.namespace, self.trigger, self.started_at, outcome, status, self.extra
        )
        self.kube.call(
            f"update configmap {self.name}",
            self.namespace,
            self.core.replace_namespaced_config_map,
            self.name,
            self.namespace,
            body,
        )

    def finish(self, outcome: RunOutcome) -> None:
        self.update(outcome, SUCCEEDED if outcome.succeeded else FAILED)


def succeeded_steps(run: dict[str, Any]) -> int:
    """How many leading steps of a recorded run had every stage succeed (or skipped)."""
    status = {s["stage"]: s["status"] for s in run.get("stages", [])}
    count = 0
    for step in run.get("dag", []):
        if not all(status.get(name) in ("succeeded", "skipped") for name in step):
            break
        count += 1
    return count


def list_records(core: Any, namespace: str, project: str | None = None) -> list[dict[str, Any]]:
    """Every run record in the namespace (optionally one project's), newest first."""
    from bodywork import kube

    selector = f"{objects.ROLE_LABEL}={RECORD_ROLE}"
    if project:
        selector += f",{objects.PROJECT_LABEL}={project}"
    listing = kube.call(
        "list configmaps",
        namespace,
        core.list_namespaced_config_map,
        namespace,
        label_selector=selector,
    )
    runs = [parse_record(item) for item in listing.items]
    return sorted(runs, key=lambda r: r.get("run_id", ""), reverse=True)


def find_record(core: Any, namespace: str, run_id: str) -> dict[str, Any] | None:
    """The record of run `run_id` (a unique prefix of it is enough)."""
    matches = [r for r in list_records(core, namespace) if r.get("run_id", "").startswith(run_id)]
    exact = [r for r in matches if r.get("run_id") == run_id]
    if exact:
        return exact[0]
    return matches[0] if len(matches) == 1 else None
