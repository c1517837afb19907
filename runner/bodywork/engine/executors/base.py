"""The one interface between the workflow engine and wherever stages run.

The engine only ever calls these methods; adding the Kubernetes executor beside the local
one changes nothing in workflow.py. Stage output is pushed to a `LogSink` as it arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from bodywork.core.plan import Plan, StageSpec
from bodywork.core.results import StageResult

LogSink = Callable[[str, str], None]  # (stage name, one line of its output)


class StageHandle(Protocol):
    stage: StageSpec


# Invariant: an executor both hands out its handles (start) and takes them back (wait, ...).
H = TypeVar("H", bound=StageHandle)


class Executor(Protocol[H]):
    def prepare(self, plan: Plan) -> None:
        """Check and create what every stage needs before the first one starts."""

    def start(self, stage: StageSpec) -> H:
        """Launch a stage and return at once."""

    def wait(self, handle: H) -> StageResult:
        """Block until a batch stage has finished (retries included) or a service is ready."""

    def stop(self, handle: H) -> None:
        """Ask a stage to stop; safe to call from another thread and more than once."""

    def check(self, handle: H) -> str | None:
        """For a service that became ready: why it is no longer healthy, or None."""

    def rollback(self, handles: Sequence[H]) -> None:
        """Undo the services of a failed step so nothing half-deployed keeps running."""

    def close(self) -> None:
        """Release what the executor holds; local mode stops its processes here."""
