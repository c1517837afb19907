"""The controller's work, shared by `bodywork run` (local) and `bodywork workflow` (cluster).

`load_plan` pins the source to one commit, validates the project at that commit and plans
the run. `run_in_cluster` runs a plan through the Kubernetes executor while keeping the
run record current, then sends the completion webhook if one is configured.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bodywork.core import config, plan
from bodywork.engine import gitsource
from bodywork.logs.logger import get_logger
from bodywork_bootstrap.redaction import redact

if TYPE_CHECKING:
    from bodywork.core.results import RunOutcome
    from bodywork.engine.executors.base import LogSink

# What only running needs (the workflow engine and its thread pool, the webhook) is imported
# by the functions that run: `render` and `deploy` only plan.

log = get_logger("bodywork")


def load_plan(
    location: str,
    ref: str | None,
    project_dir: str = "",
    run_id: str | None = None,
    on_project: Callable[[config.ProjectConfig], None] | None = None,
    git_env: Mapping[str, str] | None = None,
    commit_cache: Path | None = None,
) -> plan.Plan:
    """Resolve `location` at `ref` to one commit, validate the project there, plan the run.

    `git_env`: the environment git credentials come from (default: this process's).
    `commit_cache`: a local run's stage commit cache, which the planning checkout of a URL
    fills. Otherwise the project is read from the commit's git objects, with no checkout
    (see `gitsource.read_commit`), unless only a checkout shows it as it is."""
    source = gitsource.resolve(
        location,
        ref,
        warn=lambda message: log.warning("uncommitted_changes", detail=message),
        project_dir=project_dir,
        env=git_env,
    )
    log.info(
        "source_pinned",
        repo=redact(source.repo_url),
        ref=source.ref,
        commit=source.commit,
    )
    fallback_name = gitsource.project_fallback_name(source)
    with tempfile.TemporaryDirectory(prefix="bodywork-config-") as tmp:
        dest = Path(tmp) / "src"
        files = None
        # Read the commit's objects when no stage needs the tree, or when they are read in
        # place (a local path: the first stage fills the commit cache from there, a local
        # copy). A URL's stages need it fetched once: into the cache, by this checkout.
        in_place = gitsource.is_on_this_machine(source)
        if commit_cache is None or in_place:
            files = gitsource.read_commit(source, dest, git_env, fallback_name)
        if files is not None:
            project = config.parse_project(files)
        else:
            fetched = commit_cache is None or in_place  # read_commit fetched into dest
            cache = None if fetched else commit_cache
            root = gitsource.checkout(source, dest, git_env, cache, fetched=fetched)
            project = config.load_project(root, fallback_name)
    if on_project is not None:
        on_project(project)
    if project.config_file == config.YAML_FILE:
        # bodywork.yaml's usage_stats asked the original to report runs; we never phone home.
        log.debug("usage_stats_ignored", detail="Bodywork sends no usage statistics")
    for problem in project.warnings:  # warnings and notes: neither stops a run
        if problem.severity == "note":
            log.info("config_note", detail=str(problem))
        else:
            log.warning("config_warning", detail=str(problem))
    return plan.build_plan(project, source, run_id or plan.new_run_id())


def send_webhook(the_plan: plan.Plan, outcome: RunOutcome) -> None:
    from bodywork.engine import notify

    url = os.environ.get(notify.WEBHOOK_ENV)
    if url:
        notify.send(url, notify.summary(the_plan, outcome))
    elif the_plan.webhook_url_secret:
        log.warning(
            "webhook_not_configured",
            detail=f"[notify] names secret '{the_plan.webhook_url_secret}' but "
            f"{notify.WEBHOOK_ENV} is not set in the controller's environment",
        )


def run_in_cluster(
    api: Any,
    settings: Any,
    the_plan: plan.Plan,
    sink: LogSink,
    trigger: str = "manual",
    skip_steps: int = 0,
    extra: dict[str, Any] | None = None,
) -> RunOutcome:
    """Run `the_plan` with the Kubernetes executor, recording it in the namespace."""
    from kubernetes import client

    from bodywork.core.errors import BodyworkError
    from bodywork.core.records import FAILED
    from bodywork.core.results import RunOutcome
    from bodywork.engine import workflow
    from bodywork.engine.executors.kubernetes import KubernetesExecutor
    from bodywork.k8s import lease, recordstore

    holder = f"run {the_plan.run_id}" + (
        f" (controller pod {os.environ['POD_NAME']})" if os.environ.get("POD_NAME") else ""
    )
    project_lease = lease.ProjectLease(
        api, settings.namespace, the_plan.project, the_plan.run_id, holder
    )
    project_lease.acquire()  # before anything is created: a refused run leaves no trace
    try:
        recorder = recordstore.Recorder(
            client.CoreV1Api(api), settings.namespace, the_plan, trigger, extra=extra
        )
        executor = KubernetesExecutor(api, settings, sink)
        try:
            outcome = workflow.run_workflow(
                the_plan, executor, skip_steps=skip_steps, on_progress=recorder.update
            )
        except BodyworkError as exc:  # e.g. the preflight: the record must not say running
            recorder.extra = {**recorder.extra, "error": str(exc)}
            recorder.update(RunOutcome(the_plan.run_id, the_plan.source.commit, []), FAILED)
            raise
        finally:
            executor.close()
        recorder.finish(outcome)
    finally:
        project_lease.release()
    send_webhook(the_plan, outcome)
    return outcome
