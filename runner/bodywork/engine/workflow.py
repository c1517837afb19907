"""The workflow engine: run a Plan's steps in order through an Executor.

Stages of a step start together (or at most `max_parallel` at a time, the rest queued until
a slot frees: locally, `bodywork run --max-parallel`) and are awaited concurrently. The
first failure stops the step's other stages, rolls back the step's services and skips every
later step; queued stages are then not started. The engine knows nothing of processes or
pods; that is the executor's business.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures

from bodywork.core.errors import BodyworkError
from bodywork.core.plan import Plan, StageSpec, Step, on_failure_stage
from bodywork.core.results import (
    FAILED,
    NOT_RUN,
    SKIPPED,
    RunOutcome,
    StageResult,
    timing_summary,
)
from bodywork.engine.executors.base import Executor, H
from bodywork.logs.logger import bound, get_logger

log = get_logger("bodywork.engine.workflow")


def _log_timing(result: StageResult) -> None:
    """--log-level debug: where the stage's time went, from its bootstrapper's timeline
    (either executor: the line is in the stage's log tail)."""
    timings = result.timings
    if timings is not None:
        breakdown = timing_summary(timings)
        log.debug("stage_timing", stage=result.stage, breakdown=breakdown, **timings)


def _not_run(stage: StageSpec, reason: str) -> StageResult:
    return StageResult(stage.name, stage.config.stage_type, NOT_RUN, reason=reason)


def _run_step(
    step: Step, executor: Executor[H], max_parallel: int | None = None
) -> tuple[list[StageResult], list[H]]:
    """Start the step's stages, at most `max_parallel` at a time (None: all at once), each
    queued one as a slot frees: a batch stage holds its slot until it ends, a service until
    it is ready. The first failure stops the running ones; the queued ones are not run."""
    limit = len(step.stages) if max_parallel is None else max(1, max_parallel)
    queued = deque(step.stages)
    handles: list[H] = []
    results: dict[str, StageResult] = {}
    pool = ThreadPoolExecutor(
        max_workers=max(1, min(limit, len(step.stages))), thread_name_prefix=f"step{step.number}"
    )
    futures: dict[Future[StageResult], H] = {}
    pending: set[Future[StageResult]] = set()
    stopping = False

    def start_more() -> None:
        while queued and len(pending) < limit and not stopping:
            stage = queued.popleft()
            handle = executor.start(stage)
            handles.append(handle)
            log.info("stage_started", stage=stage.name, type=stage.config.stage_type)
            future = pool.submit(executor.wait, handle)
            futures[future] = handle
            pending.add(future)

    try:
        start_more()
        if queued:
            log.info("stages_queued", stages=[s.name for s in queued], max_parallel=limit)
        while pending:
            done, _ = wait_futures(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            pending.difference_update(done)
            for future in done:
                handle = futures[future]
                result = future.result()
                results[handle.stage.name] = result
                log.info(
                    "stage_finished",
                    stage=result.stage,
                    result=result.status,
                    attempts=result.attempts,
                    seconds=round(result.seconds, 2),
                    **({"reason": result.reason} if result.reason else {}),
                    **({"url": result.url} if result.url else {}),
                )
                _log_timing(result)
                if not result.ok and not stopping:
                    stopping = True
                    for other in pending:
                        log.info(
                            "stage_stopping",
                            stage=futures[other].stage.name,
                            because=f"{result.stage} {result.status}",
                        )
                        executor.stop(futures[other])
                    while queued:
                        never = queued.popleft()
                        reason = f"not started: {result.stage} {result.status} first"
                        results[never.name] = _not_run(never, reason)
            start_more()
    except BaseException:
        # Ctrl-C or a bug: stop everything this step started before leaving.
        for handle in handles:
            executor.stop(handle)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    ordered = [results[stage.name] for stage in step.stages]
    if not all(r.ok for r in ordered):
        executor.rollback([h for h in handles if h.stage.config.is_service])
    return ordered, handles


def _run_step_batch_first(
    step: Step, executor: Executor[H], max_parallel: int | None = None
) -> tuple[list[StageResult], list[H]]:
    """The original's order within a step: its batch stages to completion, then its services
    (`BATCH_STAGES_FIRST`). A batch stage that fails leaves the step's services unstarted."""
    batch = tuple(s for s in step.stages if not s.config.is_service)
    services = tuple(s for s in step.stages if s.config.is_service)
    if not batch or not services:
        return _run_step(step, executor, max_parallel)
    results, handles = _run_step(Step(step.number, batch), executor, max_parallel)
    if all(r.ok for r in results):
        more, service_handles = _run_step(Step(step.number, services), executor, max_parallel)
        results += more
        handles += service_handles
    else:
        results += [_not_run(s, "a batch stage of its step failed") for s in services]
    by_name = {r.stage: r for r in results}
    return [by_name[s.name] for s in step.stages], handles


def _run_on_failure(plan: Plan, executor: Executor[H], failed: StageResult) -> StageResult | None:
    stage = on_failure_stage(plan, failed.stage, f"{failed.status}: {failed.reason}")
    if stage is None:
        return None
    log.info("on_failure_started", stage=stage.name, failed_stage=failed.stage)
    try:
        result = executor.wait(executor.start(stage))
    except BodyworkError as exc:  # it must never hide the failure it reports on
        result = StageResult(stage.name, "batch", FAILED, reason=str(exc))
    result.stage_type = "on-failure"
    log.info("on_failure_finished", stage=stage.name, result=result.status)
    return result


def _check_services(serving: list[tuple[int, StageResult, H]], executor: Executor[H]) -> int | None:
    """After a step: a service of an earlier step that crashed since it became ready fails
    the run (and is rolled back) instead of leaving a broken deployment; its step number."""
    for number, result, handle in serving:
        reason = executor.check(handle)
        if reason is None:
            continue
        log.warning("service_crashed", stage=result.stage, reason=reason)
        executor.rollback([handle])
        result.status = FAILED
        result.reason = f"crashed after becoming ready: {reason}; rolled back"
        return number
    return None


def run_workflow(
    plan: Plan,
    executor: Executor[H],
    skip_steps: int = 0,
    on_progress: Callable[[RunOutcome], None] | None = None,
    max_parallel: int | None = None,
) -> RunOutcome:
    """Run every step; return the outcome of every stage (later steps 'not run' on failure).

    `skip_steps` resumes a failed run: steps up to it succeeded before and are not rerun.
    `on_progress` sees the outcome after every step (the run record is written from it).
    `max_parallel`: at most this many stages of a step start at once, the others queued
    (`bodywork run --max-parallel`); None, the cluster's way, starts a step's stages together.
    """
    outcome = RunOutcome(plan.run_id, plan.source.commit, [])
    started = time.monotonic()
    log.info(
        "run_started",
        project=plan.project,
        run_id=plan.run_id,
        commit=plan.source.commit,
        steps=len(plan.steps),
    )
    executor.prepare(plan)
    serving: list[tuple[int, StageResult, H]] = []  # services of earlier steps
    for step in plan.steps:
        if step.number <= skip_steps:
            outcome.results += [
                StageResult(s.name, s.config.stage_type, SKIPPED, reason="succeeded before")
                for s in step.stages
            ]
            continue
        if outcome.failed_step is not None:
            outcome.results += [
                _not_run(s, f"step {outcome.failed_step} failed") for s in step.stages
            ]
            continue
        with bound(step=step.number):
            log.info("step_started", stages=[s.name for s in step.stages])
            step_started = time.monotonic()
            run_step = _run_step_batch_first if plan.batch_stages_first else _run_step
            results, handles = run_step(step, executor, max_parallel)
            outcome.results += results
            by_name = {r.stage: r for r in results}
            serving += [
                (step.number, by_name[handle.stage.name], handle)
                for handle in handles
                if handle.stage.config.is_service and by_name[handle.stage.name].ok
            ]
            ok = all(r.ok for r in results)
            log.info(
                "step_finished",
                result="succeeded" if ok else "failed",
                seconds=round(time.monotonic() - step_started, 2),
            )
        if not ok:
            outcome.failed_step = step.number
        else:
            outcome.failed_step = _check_services(serving, executor)
        outcome.seconds = time.monotonic() - started
        if on_progress is not None:
            on_progress(outcome)
    failed = outcome.failed_result
    if failed is not None:
        outcome.on_failure = _run_on_failure(plan, executor, failed)
    outcome.seconds = time.monotonic() - started
    log.info(
        "run_finished",
        result="succeeded" if outcome.succeeded else "failed",
        seconds=round(outcome.seconds, 2),
    )
    return outcome
