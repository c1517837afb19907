"""What happened in a run: each stage's result, the run's outcome, and the summary table.

Pure data and formatting; the engine fills it, the CLI prints it, the record store keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from bodywork_bootstrap.recordclass import field, record

SUCCEEDED, FAILED, TIMED_OUT, STOPPED, NOT_RUN, SKIPPED = (
    "succeeded",
    "failed",
    "timed out",
    "stopped",
    "not run",
    "skipped",  # succeeded in the run being resumed, so not run again
)


@record
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

    @property
    def timings(self) -> dict[str, Any] | None:
        """The latest attempt's timeline from the bootstrapper (see `stage_timings`)."""
        return stage_timings(self.log_tail)


# The bootstrapper's line before it starts the module (bodywork_bootstrap.stage); searched,
# not matched, as a multi-replica service's lines carry a pod prefix.
_PREPARED = re.compile(r"\[bodywork\] prepared in ([0-9.]+)s")


# Its timeline line, before the module starts and when it exits 0 or a service listens:
# `[bodywork] timing start=<epoch> checkout=+0.052 venv=+0.071 module=+0.090 exited=+0.133
# checkout_from=cache venv_from=reused`.
_TIMING = re.compile(r"\[bodywork\] timing start=([0-9]+(?:\.[0-9]+)?)((?: [a-z_]+=\S+)*)\s*$")
_TIMING_PAIR = re.compile(r"([a-z_]+)=(\S+)")
# What the timeline's phases are called, in order: each offset is from the stage's start.
TIMING_PHASES = ("checkout", "venv", "module", "ready", "exited")


def stage_timings(lines: Iterable[str]) -> dict[str, Any] | None:
    """The bootstrapper's timeline of the latest attempt: `started_at` (wall clock, the
    container's or bootstrapper's start), each phase's offset in seconds from it (code checked
    out, venv ready, module started, service ready, module exited), and how the code and the
    venv were had; None if no timeline line was seen."""
    found: dict[str, Any] | None = None
    for line in lines:
        match = _TIMING.search(line)
        if match is None:
            continue
        start = round(float(match[1]), 3)
        if found is None or found["started_at"] != start:
            found = {"started_at": start}  # a new attempt
        for key, value in _TIMING_PAIR.findall(match[2]):
            if value.startswith("+"):
                try:
                    found[key] = round(float(value[1:]), 3)
                except ValueError:
                    continue
            elif key.endswith("_from"):
                found[key] = value[:40]
    return found


def timing_summary(timings: dict[str, Any]) -> str:
    """One line of the timeline: `checkout 0.05s (cache), venv 0.02s (reused), ...`, each
    phase's own duration."""
    parts, previous = [], 0.0
    for phase in TIMING_PHASES:
        if phase in timings:
            how = timings.get(f"{phase}_from")
            parts.append(f"{phase} {timings[phase] - previous:.2f}s" + (f" ({how})" if how else ""))
            previous = timings[phase]
    return ", ".join(parts)


def setup_seconds(lines: Iterable[str]) -> float | None:
    """Fetch + install time of the latest attempt, from the bootstrapper's output."""
    found = None
    for line in lines:
        if (match := _PREPARED.search(line)) is not None:
            found = float(match[1])
    return found


@record
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
        prepared = r.setup_seconds
        if prepared is None and (timeline := r.timings) is not None and "module" in timeline:
            prepared = timeline["module"]  # the "prepared in" line was not in the tail
        setup = f"{prepared:.1f}s" if ran and prepared is not None else "-"
        own = f"{max(0.0, r.seconds - prepared):.1f}s" if ran and prepared is not None else "-"
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
