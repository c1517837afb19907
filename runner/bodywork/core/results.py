"""What happened in a run: each stage's result, the run's outcome, and the summary table.

Pure data and formatting; the engine fills it, the CLI prints it, the record store keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

SUCCEEDED, FAILED, TIMED_OUT, STOPPED, NOT_RUN, SKIPPED = (
    "succeeded",
    "failed",
    "timed out",
    "stopped",
    "not run",
    "skipped",  # succeeded in the run being resumed, so not run again
)


@dataclass
class StageResult:
    stage: str
    stage_type: str
    status: str
    attempts: int = 0
    seconds: float = 0.0
    setup_seconds: float | None = None  # fetch + install, as the bootstrapper reported it
    reason: str = ""  # why it did not succeed, in one line a user can act on
    url: str | None = None  # where a service answers
    log_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in (SUCCEEDED, SKIPPED)

    @property
    def run_seconds(self) -> float | None:
        """The stage's own time: what its limits measure (installation not counted)."""
        if self.setup_seconds is None:
            return None
        return max(0.0, self.seconds - self.setup_seconds)


# The bootstrapper's line before it starts the module (bodywork_bootstrap.stage); searched,
# not matched, as a multi-replica service's lines carry a pod prefix.
_PREPARED = re.compile(r"\[bodywork\] prepared in ([0-9.]+)s")


def setup_seconds(lines: Iterable[str]) -> float | None:
    """Fetch + install time of the latest attempt, from the bootstrapper's output."""
    found = None
    for line in lines:
        if (match := _PREPARED.search(line)) is not None:
            found = float(match[1])
    return found


@dataclass
class RunOutcome:
    run_id: str
    commit: str
    results: list[StageResult]
    on_failure: StageResult | None = None  # the on-failure stage's own result, if it ran
    failed_step: int | None = None
    seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    @property
    def failed_result(self) -> StageResult | None:
        return next((r for r in self.results if r.status in (FAILED, TIMED_OUT)), None)


def format_summary(outcome: RunOutcome) -> str:
    """A fixed-width table: stage, type, result, attempts, duration, install, run, detail."""
    rows = [("STAGE", "TYPE", "RESULT", "ATTEMPTS", "DURATION", "INSTALL", "RUN", "DETAIL")]
    extra = [outcome.on_failure] if outcome.on_failure else []
    for r in [*outcome.results, *extra]:
        detail = r.url or r.reason
        ran = r.status not in (NOT_RUN, SKIPPED)
        seconds = f"{r.seconds:.1f}s" if ran else "-"
        # Install and run apart: the stage's limits time only its own code.
        setup = f"{r.setup_seconds:.1f}s" if ran and r.setup_seconds is not None else "-"
        own = f"{r.run_seconds:.1f}s" if ran and r.run_seconds is not None else "-"
        rows.append((r.stage, r.stage_type, r.status, str(r.attempts), seconds, setup, own, detail))
    columns = len(rows[0]) - 1
    widths = [max(len(row[i]) for row in rows) for i in range(columns)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[columns]
        for row in rows
    ]
    verdict = "succeeded" if outcome.succeeded else "FAILED"
    header = f"run {outcome.run_id} at {outcome.commit[:12]} {verdict}"
    return "\n".join([header, *(line.rstrip() for line in lines)])
