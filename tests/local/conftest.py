"""The one in-process runner of the local layer: a committed project through the real
workflow engine and a real LocalExecutor (each stage a real bootstrap subprocess with a
real uv venv from the offline wheelhouse), collecting every output line."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bodywork.core import config, plan
from bodywork.core.results import RunOutcome, StageResult
from bodywork.engine import gitsource, workflow
from bodywork.engine.executors.local import LocalExecutor


class Sink:
    """Collects (stage, line) as the executor's reader threads deliver them."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)

    def __call__(self, stage: str, line: str) -> None:
        with self.changed:
            self.lines.append((stage, line))
            self.changed.notify_all()

    def of(self, stage: str) -> list[str]:
        with self._lock:
            return [line for s, line in self.lines if s == stage]

    def wait_for(self, stage: str, text: str, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(
                lambda: any(s == stage and text in ln for s, ln in self.lines), timeout
            )


@dataclass
class EngineRun:
    outcome: RunOutcome
    sink: Sink
    executor: LocalExecutor
    seconds: float
    project: str

    @property
    def lines(self) -> list[tuple[str, str]]:
        return self.sink.lines

    @property
    def artifacts(self) -> Path:
        return self.executor.artifacts_dir(self.project)

    def result(self, stage: str) -> StageResult:
        return next(r for r in self.outcome.results if r.stage == stage)

    def status(self, stage: str) -> str:
        return self.result(stage).status


RunEngine = Callable[..., EngineRun]


@pytest.fixture
def engine(offline_env: Path) -> Iterator[RunEngine]:
    """Runs a project through run_workflow with a LocalExecutor; closes every executor."""
    executors: list[LocalExecutor] = []

    def run(
        repo: Path,
        location: str | None = None,
        sink: Sink | None = None,
        skip_steps: int = 0,
    ) -> EngineRun:
        sink = sink or Sink()
        source = gitsource.resolve(location or str(repo), None, warn=lambda m: None)
        the_plan = plan.build_plan(config.load_project(repo), source, plan.new_run_id())
        executor = LocalExecutor(sink, offline_env, os.environ)
        executors.append(executor)
        started = time.monotonic()
        outcome = workflow.run_workflow(the_plan, executor, skip_steps=skip_steps)
        return EngineRun(outcome, sink, executor, time.monotonic() - started, the_plan.project)

    yield run
    for executor in executors:
        executor.close()
