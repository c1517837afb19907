"""`bodywork cronjob create|list|delete|history`: scheduled retraining.

A CronJob runs the controller on a schedule from a branch (default HEAD), so each run
retrains on that branch's latest commit; `create` validates the project there first and
builds the run with `settings.controller_run`, like `render --schedule`.
"""

from __future__ import annotations

import argparse

from bodywork.cli import settings
from bodywork.cli.output import echo, render_rows

CRONJOB_COLUMNS = [
    ("NAME", "name"),
    ("SCHEDULE", "schedule"),
    ("REPO", "repo"),
    ("BRANCH", "branch"),
    ("LAST RUN", "last_schedule"),
]


def cmd_cronjob(args: argparse.Namespace) -> int:
    from bodywork.core import names, objects
    from bodywork.core.errors import UsageError
    from bodywork.engine import history
    from bodywork.k8s import cronjobs, recordstore

    if args.action == "create":  # before the cluster is asked anything
        settings.check_schedule(args.schedule)
    api = settings.api_client()
    namespace = args.namespace
    if args.action == "create":
        settings.require_url(args.source, "cronjob create")
        the_plan = settings.load_plan(args)
        name = args.name or names.cronjob_name(the_plan.project)
        if len(name) > names.CRONJOB_NAME_MAX:
            raise UsageError(
                f"--name '{name}' has {len(name)} characters: a CronJob name may have at most "
                f"{names.CRONJOB_NAME_MAX} (Kubernetes adds a suffix to its Jobs' names)"
            )
        run = settings.controller_run(args, the_plan, scheduled=True)
        version = cronjobs.api_version(api)
        image = settings.controller_image(args)
        body = objects.build_cronjob(
            name, args.schedule, run, namespace, image, version, args.image_pull_policy
        )
        action = cronjobs.create_or_update(api, body)
        echo(f"cronjob/{name} {action} ({version}, schedule '{args.schedule}')")
        return 0
    if args.action == "list":
        echo(render_rows(cronjobs.list_cronjobs(api, namespace), args.output, CRONJOB_COLUMNS))
        return 0
    if args.action == "delete":
        gone = cronjobs.delete(api, namespace, args.name)
        echo(f"cronjob/{args.name} {'deleted' if gone else 'was not there'}")
        return 0
    runs = recordstore.list_records(settings.core_api(api), namespace)
    runs = [r for r in runs if r.get("cronjob") == args.name]
    echo(render_rows(history.run_rows(runs), args.output, history.RUN_COLUMNS))
    return 0


def add_cronjob(cron: argparse.ArgumentParser) -> None:
    actions = cron.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub = settings.add_namespace(actions.add_parser("create", help="run REPO on a cron schedule"))
    sub.add_argument("source", metavar="REPO", help="git URL the cluster can reach")
    sub.add_argument("--branch", "-b", default=None, help="branch to retrain from (default HEAD)")
    sub.add_argument("--project-dir", default="")
    sub.add_argument(
        "--schedule",
        required=True,
        help='cron schedule: minute hour day month weekday, e.g. "0 3 * * *" (in the '
        "cluster's time zone, usually UTC), or @daily, @hourly...",
    )
    sub.add_argument("--name", help="CronJob name (default: <project>--retrain)")
    settings.add_image(sub)
    settings.add_local_git_auth(sub)
    settings.add_git_secrets(sub)
    settings.add_artifacts_backend(sub)
    for action, text in (
        ("list", "scheduled runs"),
        ("delete", "remove a schedule"),
        ("history", "past runs of a schedule"),
    ):
        sub = settings.add_namespace(actions.add_parser(action, help=text))
        if action != "list":
            sub.add_argument("name", metavar="NAME")
        settings.add_output(sub)
    cron.set_defaults(handler=cmd_cronjob, output="table")
