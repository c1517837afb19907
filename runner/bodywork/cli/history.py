"""Day-2 commands: `status` (runs, or one run), `logs` (live or recorded), `cleanup`.

They read run records through `bodywork.engine.history`, so they work after Jobs and pods
are gone; this module only parses, prints (tables or -o json|yaml) and returns the exit
code. A refused or broken stream behind `logs -f` ends as one `error:` line.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from bodywork.cli import settings
from bodywork.cli.output import echo, render_output, render_rows, table

if TYPE_CHECKING:
    from bodywork.cli.settings import SubParsers


def format_run(described: dict[str, Any]) -> str:
    """One run (`history.describe_run`) as a heading and a table of its stages."""
    from bodywork.engine import history

    duration = history.run_rows([described])[0]["duration"]
    head = (
        f"run {described.get('run_id')} of {described.get('project')}: "
        f"{described.get('status')} ({described.get('trigger')}, commit "
        f"{described.get('commit')}, started {described.get('started_at')}, {duration})"
    )
    if described.get("resumed_from"):
        head += f"\nresumed from run {described['resumed_from']}"
    return head + "\n" + table(described["stages"], history.STAGE_COLUMNS)


def cmd_status(args: argparse.Namespace) -> int:
    from bodywork.engine import history
    from bodywork.k8s import recordstore

    api = settings.api_client()
    core = settings.core_api(api)
    if args.run:
        run = history.describe_run(
            api, args.namespace, history.get_run(core, args.namespace, args.run)
        )
        echo(render_output(run, args.output, format_run))
        return 0
    rows = history.run_rows(recordstore.list_records(core, args.namespace, args.project))
    if not rows and args.output == "table":
        echo(f"no runs recorded in namespace '{args.namespace}'")
        return 0
    echo(render_rows(rows, args.output, history.RUN_COLUMNS))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from bodywork.engine import history

    api = settings.api_client()
    history.print_logs(api, args.namespace, args.run, args.stage, args.follow, echo)
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    from bodywork.engine import history

    history.cleanup(
        settings.api_client(),
        args.namespace,
        args.project,
        args.older_than_days,
        args.services,
        args.dry_run,
        echo,
    )
    return 0


def register(commands: SubParsers) -> None:
    sub = settings.add_namespace(
        commands.add_parser("status", help="runs of the namespace, or one run")
    )
    sub.add_argument("run", nargs="?", metavar="RUN", help="a run id (or a unique prefix)")
    sub.add_argument("--project", default=None)
    settings.add_output(sub)
    sub.set_defaults(handler=cmd_status)

    sub = settings.add_namespace(
        commands.add_parser("logs", help="a run's stage logs, even after cleanup")
    )
    sub.add_argument("run", metavar="RUN")
    sub.add_argument("stage", nargs="?", metavar="STAGE")
    sub.add_argument("-f", "--follow", action="store_true", help="stream while the run runs")
    sub.set_defaults(handler=cmd_logs)


def register_cleanup(commands: SubParsers) -> None:
    """cleanup, listed last in --help as before."""
    sub = settings.add_namespace(
        commands.add_parser("cleanup", help="remove old runs (and services)")
    )
    sub.add_argument("--project", default=None)
    sub.add_argument("--older-than-days", type=float, default=7.0)
    sub.add_argument("--services", action="store_true", help="also remove deployed services")
    sub.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    sub.set_defaults(handler=cmd_cleanup)
