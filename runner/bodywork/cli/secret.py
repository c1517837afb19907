"""`bodywork secret create|list|delete`: the Secrets a project's [secrets] sections name.

Values are read from KEY=VALUE arguments or an env file and never printed: listings show
names and keys only, and a malformed pair is reported without its value. A wrong command
line is reported before any cluster call.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bodywork.cli import settings
from bodywork.cli.output import echo, render_rows
from bodywork.core.errors import UsageError

SECRET_COLUMNS = [("NAME", "name"), ("KEYS", "keys")]


def cmd_secret(args: argparse.Namespace) -> int:
    from bodywork.k8s import usersecrets

    values: dict[str, str] = {}
    if args.action == "create":  # a wrong command line is reported before any cluster call
        values = usersecrets.parse_pairs(args.value or [])
        if args.from_env_file:
            values.update(usersecrets.read_env_file(Path(args.from_env_file)))
        if not values:
            raise UsageError("secret create needs KEY=VALUE pairs or --from-env-file")
    core = settings.core_api(settings.api_client())
    if args.action == "list":
        rows = [
            {"name": r["name"], "keys": ", ".join(r["keys"])}
            for r in usersecrets.list_secrets(core, args.namespace)
        ]
        echo(render_rows(rows, args.output, SECRET_COLUMNS))
        return 0
    if args.action == "delete":
        gone = usersecrets.delete(core, args.namespace, args.name)
        echo(f"secret/{args.name} {'deleted' if gone else 'was not there'}")
        return 0
    action = usersecrets.apply(core, args.namespace, args.name, values)
    echo(f"secret/{args.name} {action} (keys: {', '.join(sorted(values))})")
    return 0


def add_secret(secret: argparse.ArgumentParser) -> None:
    actions = secret.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub = settings.add_namespace(actions.add_parser("create", help="create or update a Secret"))
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("value", nargs="*", metavar="KEY=VALUE")
    sub.add_argument("--from-env-file", default=None, metavar="PATH")
    sub = settings.add_namespace(actions.add_parser("list", help="names and keys, never values"))
    settings.add_output(sub)
    sub = settings.add_namespace(actions.add_parser("delete", help="remove a Secret"))
    sub.add_argument("name", metavar="NAME")
    secret.set_defaults(handler=cmd_secret, output="table")
