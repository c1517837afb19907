"""Day-2 views of a namespace: run status, logs (during and long after a run), cleanup.
(`bodywork cleanup --local`, of BODYWORK_HOME on this machine, is `engine.localcleanup`: it
needs no cluster client.)

Everything here reads run records (records.py) first, so it works after Jobs and pods
were garbage-collected; live objects add what only they know (ready replicas, a log
that is still being written).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any

from kubernetes import client

from bodywork.core import names, objects, records
from bodywork.core.errors import ClusterError, UsageError
from bodywork.k8s import kube, recordstore, streams

Printer = Callable[[str], None]


def _duration(run: dict[str, Any]) -> str:
    seconds = run.get("seconds")
    return f"{seconds:.0f}s" if isinstance(seconds, (int, float)) else "-"


def run_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{
        "run": r.get("run_id"), "project": r.get("project"), "trigger": r.get("trigger"),
        "commit": (r.get("commit") or "")[:12], "status": r.get("status"),
        "started": r.get("started_at"), "duration": _duration(r),
        "resumed_from": r.get("resumed_from"),
    } for r in runs]  # fmt: skip


RUN_COLUMNS = [("RUN", "run"), ("PROJECT", "project"), ("TRIGGER", "trigger"),
               ("COMMIT", "commit"), ("STATUS", "status"), ("STARTED", "started"),
               ("DURATION", "duration")]  # fmt: skip
STAGE_COLUMNS = [("STAGE", "stage"), ("TYPE", "stage_type"), ("RESULT", "status"),
                 ("ATTEMPTS", "attempts"), ("DURATION", "seconds"), ("READY", "ready"),
                 ("DETAIL", "detail")]  # fmt: skip


def describe_run(api: client.ApiClient, namespace: str, run: dict[str, Any]) -> dict[str, Any]:
    """A run record plus, for its services, the replicas ready right now."""
    apps = client.AppsV1Api(api)
    stages = []
    for stage in run.get("stages", []):
        row = dict(stage)
        row["detail"] = stage.get("url") or stage.get("reason") or ""
        if stage.get("stage_type") == "service":
            name = names.object_name(run["project"], stage["stage"])
            deployment = kube.exists(
                f"get deployment {name}",
                namespace,
                apps.read_namespaced_deployment,
                name,
                namespace,
            )
            if deployment is not None:
                assert deployment.status is not None, "the API server sets a status"
                row["ready"] = f"{deployment.status.ready_replicas or 0}/{deployment.spec.replicas}"
            else:
                row["ready"] = "gone"
        stages.append(row)
    described = {k: v for k, v in run.items() if k != "logs"}
    described["stages"] = stages
    return described


def get_run(core: Any, namespace: str, run_id: str) -> dict[str, Any]:
    run = recordstore.find_record(core, namespace, run_id)
    if run is None:
        raise UsageError(
            f"no run '{run_id}' in namespace '{namespace}' (`bodywork status` lists them)"
        )
    return run


RECORD_WAIT_SECONDS = 120  # `logs -f` right after `deploy`: the controller pod is starting


def wait_for_run(core: Any, namespace: str, run_id: str) -> dict[str, Any]:
    """The run's record, waiting (by watch) for its controller to create it."""
    run = recordstore.find_record(core, namespace, run_id)
    if run is not None:
        return run
    selector = f"{objects.RUN_LABEL}={run_id},{objects.ROLE_LABEL}={records.RECORD_ROLE}"
    for _event in streams.Stream(
        "watch configmaps",
        namespace,
        core.list_namespaced_config_map,
        namespace,
        label_selector=selector,
        timeout_seconds=RECORD_WAIT_SECONDS,
    ):
        return get_run(core, namespace, run_id)
    return get_run(core, namespace, run_id)  # still none: the usual clear error


FOLLOW_ATTEMPTS = 10  # a log stream refused while the pod settles is retried, 1 s apart
FINISH_WAIT_SECONDS = 6 * 3600  # as long as a controller Job may run


def _follow_controller(
    core: Any, namespace: str, pod: str, stage: str | None, printer: Printer
) -> bool:
    """Stream the controller pod's output (one stage's lines if asked); False if no line
    of that stage could be streamed."""
    prefix = f"{stage} " if stage else ""
    printed = 0
    for _attempt in range(FOLLOW_ATTEMPTS):
        try:
            for line in streams.Stream(
                f"follow the log of pod {pod}",
                namespace,
                core.read_namespaced_pod_log,
                pod,
                namespace,
                follow=True,
            ):
                if not prefix or line.startswith(prefix):
                    printer(line)
                    printed += 1
            return printed > 0
        except ClusterError as exc:
            if exc.status in (401, 403):
                raise  # retrying will not help: the user gets one clear `error:` line
            time.sleep(1)  # 400 while the container starts, or a dropped stream
    return False


def _wait_until_finished(core: Any, namespace: str, run_id: str) -> dict[str, Any]:
    name_selector = f"{objects.RUN_LABEL}={run_id},{objects.ROLE_LABEL}={records.RECORD_ROLE}"
    for event in streams.Stream(
        "watch configmaps",
        namespace,
        core.list_namespaced_config_map,
        namespace,
        label_selector=name_selector,
        timeout_seconds=FINISH_WAIT_SECONDS,
    ):
        if records.parse_record(event["object"]).get("status") != records.RUNNING:
            break
    return get_run(core, namespace, run_id)


def print_logs(
    api: client.ApiClient,
    namespace: str,
    run_id: str,
    stage: str | None,
    follow: bool,
    printer: Printer,
) -> None:
    """A run's stage logs: live from the controller while it runs (--follow), else recorded."""
    core = client.CoreV1Api(api)
    run = wait_for_run(core, namespace, run_id) if follow else get_run(core, namespace, run_id)
    known = [s["stage"] for s in run.get("stages", [])] or [
        name for step in run.get("dag", []) for name in step
    ]
    if stage is not None and stage not in known:
        raise UsageError(f"run {run['run_id']} has no stage '{stage}' (stages: {', '.join(known)})")
    pod = run.get("controller_pod")
    if follow and run.get("status") == records.RUNNING:
        if pod and _follow_controller(core, namespace, pod, stage, printer):
            return
        # No live stream (laptop-mode controller, or the pod is gone): wait for the run
        # to end, then print what it recorded.
        run = _wait_until_finished(core, namespace, run["run_id"])
    logs = run.get("logs", {})
    for name in [stage] if stage else known:
        text = logs.get(names.k8s_name(name))
        if text is None:
            continue
        for line in text.splitlines():
            printer(line if stage else f"{name} | {line}")
    if run.get("status") == records.RUNNING and not follow:
        printer(f"(run {run['run_id']} is still running: add --follow to stream it)")


# ---------------------------------------------------------------------------- cleanup
def _age(timestamp: Any, now: datetime) -> timedelta:
    if isinstance(timestamp, str):
        timestamp = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return now - timestamp if timestamp else timedelta(0)


def cleanup(
    api: client.ApiClient,
    namespace: str,
    project: str | None,
    older_than_days: float,
    services: bool,
    dry_run: bool,
    printer: Printer,
) -> int:
    """Delete finished Jobs and run records older than N days (and services if asked)."""
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    apps, net = client.AppsV1Api(api), client.NetworkingV1Api(api)
    now = datetime.now(timezone.utc)
    limit = timedelta(days=older_than_days)
    selector = "app.kubernetes.io/managed-by=bodywork"
    if project:
        selector += f",{objects.PROJECT_LABEL}={project}"
    doomed: list[tuple[str, str, Callable[[], bool]]] = []

    for run in recordstore.list_records(core, namespace, project):
        if (
            run.get("status") != records.RUNNING
            and _age(run.get("finished_at") or run.get("started_at"), now) > limit
        ):
            name = records.record_name(run["project"], run["run_id"])
            doomed.append(
                (
                    "run record",
                    name,
                    partial(
                        kube.delete,
                        f"delete configmap {name}",
                        namespace,
                        core.delete_namespaced_config_map,
                        name,
                    ),
                )
            )
    jobs = kube.call(
        "list jobs", namespace, batch.list_namespaced_job, namespace, label_selector=selector
    ).items
    for job in jobs:
        assert job.status is not None, "the API server sets a status"
        finished = job.status.completion_time or next(
            (
                c.last_transition_time
                for c in job.status.conditions or []
                if c.type == "Failed" and c.status == "True"
            ),
            None,
        )
        if finished is not None and _age(finished, now) > limit:
            assert job.metadata is not None and job.metadata.name is not None, "listed: named"
            job_name = job.metadata.name
            doomed.append(
                (
                    "job",
                    job_name,
                    partial(
                        kube.delete,
                        f"delete job {job_name}",
                        namespace,
                        batch.delete_namespaced_job,
                        job_name,
                        propagation_policy="Background",
                    ),
                )
            )
    if services:
        # Three different object kinds: only their names are used, so the client's calls
        # are Any here.
        kinds: tuple[tuple[str, Callable[..., Any], Callable[..., Any]], ...] = (
            ("ingress", net.list_namespaced_ingress, net.delete_namespaced_ingress),
            ("service", core.list_namespaced_service, core.delete_namespaced_service),
            ("deployment", apps.list_namespaced_deployment, apps.delete_namespaced_deployment),
        )
        for kind, lister, deleter in kinds:
            for item in kube.call(
                f"list {kind}s", namespace, lister, namespace, label_selector=selector
            ).items:
                name = item.metadata.name
                doomed.append(
                    (
                        kind,
                        name,
                        partial(kube.delete, f"delete {kind} {name}", namespace, deleter, name),
                    )
                )
    verb = "would delete" if dry_run else "deleted"
    for kind, name, action in doomed:
        if not dry_run:
            action()
        printer(f"{verb} {kind} {name}")
    if not doomed:
        printer(f"nothing to clean up in namespace '{namespace}'")
    return len(doomed)
