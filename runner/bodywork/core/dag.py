"""The workflow DAG string: `"a >> b, c >> d"` → ordered steps of stage names.

`>>` separates steps, which run one after another; `,` separates the stages of one step,
which run concurrently. Pure: parsing only; checking names against stage directories is
config.py's job.
"""

from __future__ import annotations

import re

STEP_SEPARATOR = ">>"
STAGE_SEPARATOR = ","
_STAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class DagError(ValueError):
    """Carries every problem found in one DAG string."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def parse_dag(text: str) -> tuple[tuple[str, ...], ...]:
    problems: list[str] = []
    if not text.strip():
        raise DagError(['is empty: name the stages to run, e.g. "train >> serve"'])
    if ">" in text.replace(STEP_SEPARATOR, ""):
        problems.append("steps are separated by '>>' (found a lone '>')")
    steps: list[tuple[str, ...]] = []
    seen: set[str] = set()
    for number, raw_step in enumerate(text.split(STEP_SEPARATOR), 1):
        stages = [s.strip() for s in raw_step.split(STAGE_SEPARATOR)]
        if all(not s for s in stages):
            problems.append(f"step {number} is empty: remove the extra '>>'")
            continue
        if any(not s for s in stages):
            problems.append(f"step {number} has an empty stage name: remove the extra ','")
        names = []
        for stage in filter(None, stages):
            if not _STAGE_NAME.match(stage):
                problems.append(
                    f"'{stage}' in step {number} is not a stage directory name "
                    "(letters, digits, '-', '_' and '.' only)"
                )
            elif stage in seen:
                problems.append(
                    f"stage '{stage}' appears more than once: a stage runs in exactly one step"
                )
            else:
                seen.add(stage)
                names.append(stage)
        if names:
            steps.append(tuple(names))
    if problems:
        raise DagError(problems)
    return tuple(steps)


def format_dag(steps: tuple[tuple[str, ...], ...]) -> str:
    return f" {STEP_SEPARATOR} ".join(", ".join(step) for step in steps)
