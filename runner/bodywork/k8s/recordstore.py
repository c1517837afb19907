"""The run-record store: one ConfigMap per run, written by the controller as the run
progresses and read by `bodywork status` / `logs` / `cleanup`. What a record holds, and
its size cap, is `bodywork.core.records` (pure); this module only moves it to and from
the API, through `kube`.
"""

from __future__ import annotations

import time
from typing import Any

from bodywork.core import objects
from bodywork.core.plan import Plan
from bodywork.core.records import (
    FAILED,
    RECORD_ROLE,
    RUNNING,
    SUCCEEDED,
    _now,
    build_record,
    parse_record,
    record_name,
)
from bodywork.core.results import RunOutcome
from bodywork.k8s import kube


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
        kube.call(
            f"update configmap {self.name}",
            self.namespace,
            self.core.replace_namespaced_config_map,
            self.name,
            self.namespace,
            body,
        )

    def finish(self, outcome: RunOutcome) -> None:
        self.update(outcome, SUCCEEDED if outcome.succeeded else FAILED)


def list_records(core: Any, namespace: str, project: str | None = None) -> list[dict[str, Any]]:
    """Every run record in the namespace (optionally one project's), newest first."""
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
