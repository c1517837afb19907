"""What the commands print on stdout: stage lines, plain lines, tables and -o json|yaml.

stdout carries only what a command prints (`render` YAML, `status -o json`); logs and
errors go to stderr. `StagePrinter` prefixes each stage's output with its name, like
docker compose; `table` and `render_output` format the day-2 views.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from bodywork.core import plan

_COLORS = ("36", "33", "35", "32", "34", "91", "96", "93")


class StagePrinter:
    """Prints each line of stage output prefixed by its stage name, like docker compose."""

    def __init__(self, stream: TextIO, names: Sequence[str], color: bool):
        self.stream = stream
        self.width = max((len(n) for n in names), default=0)
        self.colors = {n: _COLORS[i % len(_COLORS)] for i, n in enumerate(names)}
        self.color = color
        self._lock = threading.Lock()

    def __call__(self, stage: str, line: str) -> None:
        prefix = f"{stage:<{self.width}} |"
        if self.color:
            prefix = f"\x1b[{self.colors.get(stage, '0')}m{prefix}\x1b[0m"
        with self._lock:
            self.stream.write(f"{prefix} {line}\n")
            self.stream.flush()


def stage_printer(the_plan: plan.Plan) -> StagePrinter:
    """A StagePrinter on stdout for every stage of the plan, its on-failure stage too."""
    stages = [s.name for s in the_plan.stages]
    if the_plan.on_failure is not None:
        stages.append(the_plan.on_failure.name)
    return StagePrinter(sys.stdout, stages, sys.stdout.isatty())


def echo(line: str) -> None:
    print(line, flush=True)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """Fixed-width text table: columns are (header, key)."""
    cells = [[h for h, _ in columns]]
    cells += [["" if r.get(k) is None else str(r.get(k)) for _, k in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def render_output(data: Any, output: str, as_table: Callable[[Any], str]) -> str:
    """`data` as -o json, -o yaml, or (table) whatever `as_table` makes of it."""
    if output == "json":
        return json.dumps(data, indent=2, default=str)
    if output == "yaml":
        import yaml

        text: str = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
        return text
    return as_table(data)


def render_rows(rows: list[dict[str, Any]], output: str, columns: list[tuple[str, str]]) -> str:
    """Rows as a table with `columns`, or as -o json|yaml."""
    return render_output(rows, output, lambda found: table(found, columns))
