"""The `bodywork` command: build the parser from the command modules, run one handler,
and map errors to exit codes in one place.

Each error class has its exit code (`BodyworkError.exit_code`) and ends as one `error:`
line on stderr, never a traceback. Logging is configured once, before the handler runs.
`bodywork stage` (what every stage pod runs) skips argparse and the heavy imports.

The last resort: an OSError no layer turned into a BodyworkError (a full disk, a file it may
not write, a path too long, standard output closed) is one `error:` line naming the path and
the system's reason, exit 1; Ctrl-C is exit 130. Standard output is flushed before the exit
code is returned, so a failing write is reported here rather than as a traceback at exit.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import os
import sys
from collections.abc import Callable
from typing import Any

from bodywork import __version__
from bodywork.cli import cronjob, deploy, history, legacy, run, secret, settings
from bodywork.core.errors import BodyworkError
from bodywork.logs import logger
from bodywork_bootstrap import envnames

EXIT_INTERRUPTED = run.EXIT_INTERRUPTED
# A command reads a project and builds its plan and objects in one burst of allocations that
# stay alive (a 10,000-stage project is some 2 million objects), which the collector's
# default thresholds (700, 10, 10) walk again and again: half of `validate`'s time there.
# These collect young cycles every 100,000 allocations instead, for a few MB more at most.
GC_THRESHOLDS = (100_000, 50, 100)
EXIT_OS_ERROR = BodyworkError.exit_code  # 1: the general failure


# Every command, in --help's order: its name, its line of help, and what adds its arguments
# and handler (None: `stage`, which main runs before argparse).
COMMANDS: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None] | None], ...] = (
    ("run", "run a workflow on this machine (no cluster needed)", run.add_run),
    ("workflow", "run a workflow in Kubernetes (what the controller Job runs)", run.add_workflow),
    ("deploy", "start a run in the cluster (controller Job)", deploy.add_deploy),
    ("render", "print the manifests a run would apply", deploy.add_render),
    (
        "bootstrap",
        "install RBAC, create secrets, start and follow the first run",
        deploy.add_bootstrap,
    ),
    ("status", "runs of the namespace, or one run", history.add_status),
    ("logs", "a run's stage logs, even after cleanup", history.add_logs),
    ("cronjob", "scheduled retraining: create|list|delete|history", cronjob.add_cronjob),
    ("secret", "Secrets for [secrets] sections: create|list|delete", secret.add_secret),
    ("cleanup", "remove old runs (and services)", history.add_cleanup),
    ("validate", "check a project's configuration", run.add_validate),
    ("stage", "run one stage (what every stage pod runs)", None),
)
ALL = "*"


def _columns() -> int:
    """The terminal's width, as shutil.get_terminal_size finds it ($COLUMNS, then stdout's
    terminal, else 80), without importing shutil (with bz2 and lzma) at every start."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0 and sys.__stdout__ is not None:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):  # not a terminal, or no real file
            columns = 0
    return columns or 80


class _Formatter(argparse.HelpFormatter):
    """argparse's own, its width found by `_columns` (argparse makes one per argument)."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        width = _columns() - 2 if width is None else width  # argparse's margin
        super().__init__(prog, indent_increment, max_help_position, width)


class _Parser(argparse.ArgumentParser):
    """Every parser and subparser (argparse makes those of this class) formats with
    `_Formatter`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def build_parser(only: str = ALL) -> argparse.ArgumentParser:
    """The `bodywork` parser. `only` names the one command whose arguments are built (a
    command line needs only its own: the others are listed, by name and help, for --help and
    argparse's "invalid choice"); the default builds them all."""
    parser = _Parser(
        prog="bodywork",
        description="Deploy machine-learning projects to Kubernetes straight from Git.",
    )
    parser.add_argument("--version", action="version", version=f"bodywork {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text, add_arguments in COMMANDS:
        built = add_arguments is not None and only in (ALL, name)
        sub = commands.add_parser(name, help=text, add_help=built)
        if built and add_arguments is not None:
            add_arguments(sub)
    return parser


def parser_for(argv: list[str]) -> argparse.ArgumentParser:
    """The parser for one command line: only its command's arguments built (none for an
    option or a word that is no command: argparse then prints help or "invalid choice")."""
    return build_parser(argv[0] if argv else "")


def describe_os_error(exc: OSError, what: str | None = None) -> str:
    """One line for an OSError: the path (or `what`), the system's reason and its errno name,
    e.g. "/data/x: No space left on device (ENOSPC)"."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    name = errno.errorcode.get(exc.errno) if isinstance(exc.errno, int) else None
    if name:
        reason = f"{reason} ({name})"
    paths = [os.fsdecode(p) for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(paths) if paths else what
    if name in FULL_DISK and not where:  # a write() names no file: name where Bodywork writes
        return f"{reason}: free space in {_written_places()}, or point them at a larger disk"
    return f"{where}: {reason}" if where else reason


FULL_DISK = ("ENOSPC", "EDQUOT")


def _written_places() -> str:
    """Where a command writes: Bodywork's home and the temporary directory, as set now."""
    import tempfile

    home = os.environ.get(envnames.HOME) or "~/.local/share/bodywork"
    return f"{envnames.HOME} ({home}) or TMPDIR ({tempfile.gettempdir()})"


STDOUT = "cannot write to standard output"
_FROM_STDOUT = "_bodywork_from_stdout"  # set on an OSError a write to standard output raised


class _MarkedStdout:
    """sys.stdout, marking the OSError a failing write or flush raises (and re-raising it as
    it is: callers still catch BrokenPipeError), so the one error line can say that it was
    standard output that could not be written; such errors name no file. Everything else
    is the stream's own."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except OSError as exc:
            setattr(exc, _FROM_STDOUT, True)
            raise

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            setattr(exc, _FROM_STDOUT, True)
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _flush_stdout() -> OSError | None:
    """Flush standard output; when that fails, point it at /dev/null so the interpreter's own
    flush at exit cannot fail a second time (with a traceback of its own)."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return exc
    return None


def _error(message: str, code: int) -> int:
    with contextlib.suppress(OSError):  # stderr itself gone: the exit code says it alone
        print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def _finish(code: int) -> int:
    failed = _flush_stdout()
    if failed is not None:
        return _error(describe_os_error(failed, STDOUT), EXIT_OS_ERROR)
    return code


def _run(call: Callable[[], int], guard_stdout: bool = True) -> int:
    """Run a command; every error ends as one `error:` line and its exit code."""
    real_stdout = sys.stdout
    if guard_stdout and real_stdout is not None:
        sys.stdout = _MarkedStdout(real_stdout)
    try:
        return _finish(call())
    except BodyworkError as exc:
        _flush_stdout()
        return _error(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _flush_stdout()
        return EXIT_INTERRUPTED
    except OSError as exc:
        failed = _flush_stdout()
        stdout = getattr(exc, _FROM_STDOUT, False) or failed is not None
        return _error(describe_os_error(exc, STDOUT if stdout else None), EXIT_OS_ERROR)
    finally:
        sys.stdout = real_stdout


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["stage"]:  # fast path: no argparse tree, no heavy imports
        stage_argv = argv[1:]
        return _run(lambda: run.cmd_stage(stage_argv), guard_stdout=False)
    parser = parser_for(argv)
    try:  # the original Bodywork's command lines still work (cli/legacy, docs/migrating.md)
        argv, note = legacy.translate(argv, parser)
    except BodyworkError as exc:
        return _error(str(exc), exc.exit_code)
    if note is not None:
        print(f"note: {note}", file=sys.stderr, flush=True)
        parser = parser_for(argv)  # today's form may be another command
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler

    def call() -> int:
        # Logs go to stderr: stdout carries only what a command prints (`render` YAML,
        # `status -o json`). Commands that report progress default to info, others warning;
        # structlog is loaded by the first event written at that level, if any (logs.logger).
        settings.configure_logging(args)
        settings.check_namespace(args)  # -n: the API server's rule, before asking it
        return handler(args)

    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        return _run(call)
    finally:
        gc.set_threshold(*thresholds)  # main() called in-process (tests) leaves them as found
        logger.forget_configuration()  # and later events go to structlog as configured


if __name__ == "__main__":
    sys.exit(main())
