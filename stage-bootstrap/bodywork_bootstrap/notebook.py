"""Run a Jupyter notebook's code cells as one script, with no Jupyter installed.

    python -u notebook.py NOTEBOOK.ipynb [ARGS...]

The bootstrapper runs this file with the stage venv's python, which has no bodywork_bootstrap,
so it is a standalone script: standard library only, never importing its own package. Python
puts this file's folder first on sys.path until `main` puts the notebook's there, so it
imports only modules no file of this folder shadows (never `venv`, `stage`, ...).

What it does, as IPython would for each code cell in order, in one shared `__main__`
namespace, with sys.argv = [NOTEBOOK, *ARGS]:
- the value of a cell's final bare expression is shown (its repr, unless None or the line
  ends with `;`), through sys.displayhook, which also sets `_`; `display(x)` prints repr(x);
- `!cmd` lines run in a shell (a non-zero exit fails the cell); `x = !cmd` gets its lines;
- line magics (`%matplotlib inline`) are skipped, and so is a cell with a cell magic, except
  `%%time`, whose cell runs without it; each with a `[bodywork] skipped IPython magic` note;
- top-level `await` works, on one event loop for the whole notebook;
- markdown and raw cells are ignored. Cells are numbered from 1 counting every cell, as they
  appear in the notebook.
On an exception the traceback is printed, then `[bodywork] cell N raised Type: message`, and
the exit status is 1. Output is not buffered: it streams as the cells run.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import json
import linecache
import re
import subprocess
import sys
import traceback
import types
from pathlib import Path
from typing import Any

_CELL_MAGIC = "%%"
_RUN_WITHOUT_MAGIC = {"%%time"}  # the cell still runs, untimed
_LINE_MAGIC = re.compile(r"^(\s*)%([A-Za-z_]\w*)")
_SHELL = re.compile(r"^(\s*)!(?!=)(.*)$")
_SHELL_ASSIGN = re.compile(r"^(\s*)([A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)\s*=\s*!(.*)$")
_SHELL_HELPER = "__bodywork_shell__"


class NotebookError(Exception):
    """The notebook cannot be read; the message is one line."""


def note(message: str) -> None:
    print(f"[bodywork] {message}", file=sys.stderr, flush=True)


def code_cells(path: Path) -> list[tuple[int, str]]:
    """(cell number, source) of every code cell of an nbformat 4 notebook."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookError(f"cannot read notebook {path.name}: {exc}") from None
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(
            f"{path.name} is not a notebook: not valid JSON ({exc.msg} at line {exc.lineno} "
            f"column {exc.colno})"
        ) from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        if isinstance(notebook, dict) and "worksheets" in notebook:
            raise NotebookError(
                f"{path.name} is an nbformat 3 notebook: save it with a current Jupyter "
                "(nbformat 4) to run it"
            )
        raise NotebookError(f"{path.name} is not a notebook: it has no list of 'cells'")
    cells = []
    for number, cell in enumerate(notebook["cells"], 1):
        if not isinstance(cell, dict):
            raise NotebookError(f"{path.name}: cell {number} is not a JSON object")
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(part, str) for part in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise NotebookError(f"{path.name}: cell {number} has no text as its source")
        cells.append((number, source))
    return cells


def to_python(source: str, number: int) -> str | None:
    """The cell as Python: magics skipped, `!` lines as shell calls; None to skip the cell."""
    lines = source.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].lstrip().startswith(_CELL_MAGIC):
        magic = lines[first].split()[0]
        if magic not in _RUN_WITHOUT_MAGIC:
            note(f"skipped IPython magic '{magic}' in cell {number}: the cell was not run")
            return None
        note(f"skipped IPython magic '{magic}' in cell {number}")
        lines[first] = ""  # kept as a blank line, so line numbers still match the cell
    text = "\n".join(lines)
    try:
        ast.parse(text)
        return text  # plain Python: nothing looks like a magic outside a string
    except SyntaxError:
        pass
    converted = []
    for line in lines:
        assign = _SHELL_ASSIGN.match(line)
        shell = _SHELL.match(line)
        line_magic = _LINE_MAGIC.match(line)
        if assign:
            indent, target, command = assign.groups()
            line = f"{indent}{target} = {_SHELL_HELPER}({command.strip()!r}, capture=True)"
        elif shell:
            indent, command = shell.groups()
            line = f"{indent}{_SHELL_HELPER}({command.strip()!r})"
        elif line_magic:
            note(f"skipped IPython magic '{line.strip()}' in cell {number}")
            line = f"{line_magic.group(1)}pass"
        converted.append(line)
    return "\n".join(converted)


def shell(command: str, capture: bool = False) -> list[str] | None:
    """`!command`: run it in a shell, output streamed (or, for `x = !command`, returned)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if capture:
        done = subprocess.run(command, shell=True, stdout=subprocess.PIPE, text=True, check=True)
        return done.stdout.splitlines()
    subprocess.run(command, shell=True, check=True)
    return None


def display(*objects: object, **_options: object) -> None:
    """IPython's `display`, as text: the repr of each object."""
    for value in objects:
        print(repr(value))


class Runner:
    def __init__(self, path: Path, namespace: dict[str, Any]):
        self.path = path
        self.namespace = namespace
        self.loop: Any = None  # an asyncio loop, made for the first top-level `await`

    def _run(self, code: types.CodeType) -> None:
        result = eval(code, self.namespace)  # running the notebook's code is the point
        if code.co_flags & inspect.CO_COROUTINE:
            if self.loop is None:
                import asyncio

                self.loop = asyncio.new_event_loop()
            self.loop.run_until_complete(result)

    def cell(self, number: int, source: str) -> None:
        code = to_python(source, number)
        if code is None or not code.strip():
            return
        filename = f"{self.path.name}, cell {number}"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tree = ast.parse(code, filename)
        last: ast.stmt | None = None
        if tree.body and isinstance(tree.body[-1], ast.Expr) and not code.rstrip().endswith(";"):
            last = tree.body.pop()
        # dont_inherit: this file's `from __future__` imports are not the notebook's.
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        self._run(compile(tree, filename, "exec", flags=flags, dont_inherit=True))
        if last is not None:  # "single" mode shows the value through sys.displayhook
            shown = ast.Interactive(body=[last])
            self._run(compile(shown, filename, "single", flags=flags, dont_inherit=True))


def _report(number: int, exc: BaseException) -> None:
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next  # the runner's own frames say nothing about the notebook
    sys.stdout.flush()
    traceback.print_exception(type(exc), exc, tb)
    message = next(iter(str(exc).strip().splitlines()), "")
    note(f"cell {number} raised {type(exc).__name__}" + (f": {message}" if message else ""))


def main(argv: list[str]) -> int:
    if not argv:
        note("usage: notebook.py NOTEBOOK.ipynb [ARGS...]")
        return 2
    path = Path(argv[0])
    try:
        cells = code_cells(path)
    except NotebookError as exc:
        note(f"cannot run notebook: {exc}")
        return 1
    folder = str(path.resolve().parent)
    if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
        sys.path[0] = folder  # as for a script: the notebook's folder, not this one's
    else:
        sys.path.insert(0, folder)
    sys.argv = [str(path), *argv[1:]]
    main_module = types.ModuleType("__main__")
    main_module.__dict__["__builtins__"] = builtins
    # This file's module stays alive under another name (its functions use its globals);
    # `__main__` is the notebook's, so pickle and friends find the classes it defines.
    sys.modules["_bodywork_notebook_runner"] = sys.modules["__main__"]
    sys.modules["__main__"] = main_module
    setattr(builtins, _SHELL_HELPER, shell)
    if not hasattr(builtins, "display"):
        builtins.display = display  # type: ignore[attr-defined]
    runner = Runner(path, main_module.__dict__)
    for index, (number, source) in enumerate(cells):
        try:
            runner.cell(number, source)
        except SystemExit:
            if index + 1 < len(cells):
                note(f"cell {number} exited: the cells after it were not run")
            raise
        except Exception as exc:
            _report(number, exc)
            return 1
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
