"""Day-2 commands: `status` (runs, or one run), `logs` (live or recorded), `cleanup` (of a
namespace, or with --local of BODYWORK_HOME: `bodywork.engine.localcleanup`).

They read run records through `bodywork.engine.history`, so they work after Jobs and pods
are gone; this module only parses, prints (tables or -o json|yaml) and returns the exit
code. A refused or broken stream behind `logs -f` ends as one `error:` line.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from bodywork.cli import settings
from bodywork.cli.output import echo, render_output, render_rows, table
from bodywork.core.errors import UsageError

DEFAULT_OLDER_THAN_DAYS = 7.0


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


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_BYTES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_duration(text: str) -> float:
    """`7d`, `12h`, `30m`, `45s`, `2w` or a number of days → seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(
            f"--older-than {text!r}: give a number with a unit: s, m, h, d or w (e.g. 7d, 12h)"
        )
    return float(match[1]) * _SECONDS[(match[2] or "d").lower()]


def parse_size(text: str) -> int:
    """`5G`, `500M`, `1.5GiB`, `800k` or bytes → bytes (K, M, G, T are powers of 1024)."""
    match = _SIZE.match(text)
    if match is None:
        raise UsageError(f"--max-size {text!r}: give a size such as 5G, 500M or 1.5GiB")
    return int(float(match[1]) * _BYTES[match[2].lower()])


def cmd_cleanup(args: argparse.Namespace) -> int:
    if args.older_than is not None and args.older_than_days is not None:
        raise UsageError("--older-than and --older-than-days say the same: give one")
    if args.older_than is not None:
        days = parse_duration(args.older_than) / 86400
    else:
        days = DEFAULT_OLDER_THAN_DAYS if args.older_than_days is None else args.older_than_days
    if args.local:
        return _cleanup_local(args, days)
    if args.max_size is not None:
        raise UsageError("--max-size bounds BODYWORK_HOME: it goes with --local")
    from bodywork.engine import history

    history.cleanup(
        settings.api_client(),
        args.namespace,
        args.project,
        days,
        args.services,
        args.dry_run,
        echo,
    )
    return 0


def _cleanup_local(args: argparse.Namespace, days: float) -> int:
    """Old runs' folders, unused venvs, their locks and the uv cache under BODYWORK_HOME."""
    import os

    from bodywork.engine import localcleanup

    for flag, given in (("--services", args.services), ("--project", args.project)):
        if given:
            raise UsageError(
                f"{flag} is for a namespace: locally, venvs and caches are shared by every "
                "project, and cleanup --local looks at the whole of BODYWORK_HOME"
            )
    max_size = parse_size(args.max_size) if args.max_size is not None else None
    home = settings.default_home(dict(os.environ))
    localcleanup.cleanup(
        home,
        days * 86400,
        max_size,
        args.dry_run,
        echo,
        own_uv_cache="UV_CACHE_DIR" not in os.environ,  # the user's own cache is theirs
    )
    return 0


def add_status(sub: argparse.ArgumentParser) -> None:
    settings.add_namespace(sub)
    sub.add_argument("run", nargs="?", metavar="RUN", help="a run id (or a unique prefix)")
    sub.add_argument("--project", default=None)
    settings.add_output(sub)
    sub.set_defaults(handler=cmd_status)


def add_logs(sub: argparse.ArgumentParser) -> None:
    settings.add_namespace(sub)
    sub.add_argument("run", metavar="RUN")
    sub.add_argument("stage", nargs="?", metavar="STAGE")
    sub.add_argument("-f", "--follow", action="store_true", help="stream while the run runs")
    sub.set_defaults(handler=cmd_logs)


def add_cleanup(sub: argparse.ArgumentParser) -> None:
    settings.add_namespace(sub)
    sub.add_argument(
        "--local",
        action="store_true",
        help="clean BODYWORK_HOME on this machine instead of a namespace: old runs' "
        "checkouts, unused venvs and the uv cache, never what a live run uses",
    )
    sub.add_argument("--project", default=None)
    sub.add_argument(
        "--older-than",
        default=None,
        metavar="AGE",
        help="remove what is older than AGE: 7d, 12h, 30m (default: 7d)",
    )
    sub.add_argument("--older-than-days", type=float, default=None, help=argparse.SUPPRESS)
    sub.add_argument(
        "--max-size",
        default=None,
        metavar="SIZE",
        help="with --local: then remove the oldest until runs, venvs and caches take at most "
        "SIZE (5G, 500M; powers of 1024)",
    )
    sub.add_argument("--services", action="store_true", help="also remove deployed services")
    sub.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    sub.set_defaults(handler=cmd_cleanup)
