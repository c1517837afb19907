"""What the commands print on stdout: stage lines, plain lines, tables and -o json|yaml.

stdout carries only what a command prints (`render` YAML, `status -o json`); logs and
errors go to stderr. `StagePrinter` prefixes each stage's output with its name, like
docker compose; `table` and `render_output` format the day-2 views.

A closed stdout (`bodywork run | head -3`) is no crash: the printer notices the broken pipe,
points stdout at /dev/null (so no later print, nor the interpreter's last flush, fails) and
calls its `on_closed`, which `bodywork run` uses to end the run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from bodywork.core import plan

_COLORS = ("36", "33", "35", "32", "34", "91", "96", "93")


def silence(stream: TextIO) -> None:
    """Point `stream`'s file descriptor at /dev/null: its reader is gone (a closed pipe, a
    hung-up terminal), and what is still written, or still buffered, must not fail."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)


def settle(stream: TextIO) -> bool:
    """Flush `stream`; if its reader is gone, silence it. True if it was still open."""
    try:
        stream.flush()
        return True
    except (OSError, ValueError):
        silence(stream)
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
        return False


def is_gone(exc: BaseException) -> bool:
    """The write failed because nobody reads any more: a closed pipe, a hung-up terminal."""
    return isinstance(exc, BrokenPipeError) or (
        isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.EIO)
    )


class StagePrinter:
    """Prints each line of stage output prefixed by its stage name, like docker compose.

    Never raises: called from the executor's reader threads, which must keep draining the
    stages' pipes. When the stream's reader is gone the printer goes quiet and calls
    `on_closed` once; any other failed write loses that line only."""

    def __init__(
        self,
        stream: TextIO,
        names: Sequence[str],
        color: bool,
        on_closed: Callable[[], None] | None = None,
    ):
        self.stream = stream
        self.width = max((len(n) for n in names), default=0)
        self.colors = {n: _COLORS[i % len(_COLORS)] for i, n in enumerate(names)}
        self.color = color
        self.on_closed = on_closed
        self.closed = False
        self._lock = threading.Lock()

    def __call__(self, stage: str, line: str) -> None:
        prefix = f"{stage:<{self.width}} |"
        if self.color:
            prefix = f"\x1b[{self.colors.get(stage, '0')}m{prefix}\x1b[0m"
        with self._lock:
            if self.closed:
                return
            try:
                self.stream.write(f"{prefix} {line}\n")
                self.stream.flush()
            except (OSError, ValueError) as exc:
                if not is_gone(exc):
                    return  # e.g. a full disk: this line is lost, the run goes on
                self.closed = True
                silence(self.stream)
            else:
                return
        if self.on_closed is not None:
            self.on_closed()


def stage_printer(the_plan: plan.Plan, on_closed: Callable[[], None] | None = None) -> StagePrinter:
    """A StagePrinter on stdout for every stage of the plan, its on-failure stage too;
    `on_closed` is called (once, from a reader thread) if stdout's reader goes away."""
    stages = [s.name for s in the_plan.stages]
    if the_plan.on_failure is not None:
        stages.append(the_plan.on_failure.name)
    return StagePrinter(sys.stdout, stages, sys.stdout.isatty(), on_closed)


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
        import json

        return json.dumps(data, indent=2, default=str)
    if output == "yaml":
        import yaml

        text: str = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
        return text
    return as_table(data)


def render_rows(rows: list[dict[str, Any]], output: str, columns: list[tuple[str, str]]) -> str:
    """Rows as a table with `columns`, or as -o json|yaml."""
    return render_output(rows, output, lambda found: table(found, columns))
