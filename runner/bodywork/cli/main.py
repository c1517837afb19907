"""The `bodywork` command: build the parser from the command modules, run one handler,
and map errors to exit codes in one place.

Each error class has its exit code (`BodyworkError.exit_code`) and ends as one `error:`
line on stderr, never a traceback. Logging is configured once, before the handler runs.
`bodywork stage` (what every stage pod runs) skips argparse and the heavy imports.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bodywork import __version__
from bodywork.cli import cronjob, deploy, history, legacy, run, secret, settings
from bodywork.core.errors import BodyworkError

EXIT_INTERRUPTED = run.EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bodywork",
        description="Deploy machine-learning projects to Kubernetes straight from Git.",
    )
    parser.add_argument("--version", action="version", version=f"bodywork {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run.register(commands)
    deploy.register(commands)
    history.register(commands)
    cronjob.register(commands)
    secret.register(commands)
    history.register_cleanup(commands)
    run.register_checks(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["stage"]:  # fast path: no argparse tree, no heavy imports
        return run.cmd_stage(argv[1:])
    try:  # the original Bodywork's command lines still work (cli/legacy, docs/migrating.md)
        argv, note = legacy.translate(argv)
    except BodyworkError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    if note is not None:
        print(f"note: {note}", file=sys.stderr, flush=True)
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        # Logs go to stderr: stdout carries only what a command prints (`render` YAML,
        # `status -o json`). Commands that report progress default to info, others warning.
        settings.configure_logging(args)
        return handler(args)
    except BodyworkError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
