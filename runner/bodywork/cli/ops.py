"""The cluster-facing `bodywork` commands a user runs with their own kubeconfig:
deploy, render, bootstrap, status, logs, cronjob, secret, cleanup.

Same shape as cli.py: each handler parses, calls one function from deploy / cronjobs /
usersecrets / history, prints, and returns an exit code. Flags are shared: -n/--namespace
(default 'bodywork', the namespace manifests/ installs), --branch, -o table|json|yaml.
Every entry point that takes a repo validates the project at its commit first.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bodywork import __version__
from bodywork.core.errors import ClusterError, UsageError

DEFAULT_NAMESPACE = "bodywork"
SubParsers = Any


def _echo(line: str) -> None:
    print(line, flush=True)


def _api() -> Any:
    from bodywork.k8s import kube

    return kube.api_client()


def _core(api: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api)


def _image(args: argparse.Namespace) -> str:
    return args.image or os.environ.get("BODYWORK_IMAGE") or f"bodywork:{__version__}"


def _require_url(source: str, command: str) -> None:
    from bodywork.engine import gitsource

    if not gitsource.is_url(source):
        raise UsageError(
            f"`bodywork {command}` needs a git URL the cluster can reach, not a local path "
            f"('{source}'); push the project and pass its URL"
        )


# ---------------------------------------------------------------------------- deploy
def cmd_deploy(args: argparse.Namespace) -> int:
    from bodywork.cli.main import _load_plan, _setup_logging
    from bodywork.core import objects, plan, records
    from bodywork.engine import deploy
    from bodywork.k8s import recordstore

    _setup_logging(args)
    _require_url(args.source, "deploy")
    api = _api()
    namespace = args.namespace
    if args.resume:
        record = recordstore.find_record(_core(api), namespace, args.resume)
        if record is None:
            raise UsageError(f"no run '{args.resume}' in namespace '{namespace}'")
        if record.get("status") == records.SUCCEEDED:
            raise UsageError(f"run {record['run_id']} succeeded: there is nothing to resume")
        args.branch = record["commit"]
    the_plan = _load_plan(args)  # validate before anything is created
    run = objects.ControllerRun(
        repo=args.source,
        branch=the_plan.source.commit,  # the commit just validated, not a moving branch
        project_dir=args.project_dir,
        run_id=plan.new_run_id(),
        resume=args.resume,
        webhook_secret=the_plan.webhook_url_secret,
        git_ssh_secret=args.git_ssh_secret,
        git_token_secret=args.git_token_secret,
    )
    job = deploy.deploy(api, namespace, run, _image(args), args.image_pull_policy)
    _echo(
        f"run {run.run_id} of {the_plan.project} at {the_plan.source.commit[:12]} started: "
        f"job/{job} in namespace {namespace}"
    )
    if not args.watch:
        _echo(f"follow it with: bodywork logs -n {namespace} {run.run_id} --follow")
        return 0
    try:
        return deploy.follow(api, namespace, job, _echo)
    except KeyboardInterrupt:
        # Only the following stops: the run is the controller Job's, in the cluster.
        print(
            f"stopped following; run {run.run_id} continues in the cluster "
            f"(bodywork logs -n {namespace} {run.run_id} --follow)",
            file=sys.stderr,
        )
        return 130


# ---------------------------------------------------------------------------- render
def cmd_render(args: argparse.Namespace) -> int:
    from bodywork.cli.main import _load_plan
    from bodywork.core import objects
    from bodywork.engine import deploy, gitsource
    from bodywork.k8s import cronjobs

    the_plan = _load_plan(args, run_id=args.run_id)
    settings = objects.RunSettings(
        namespace=args.namespace,
        image=_image(args),
        git_ssh_secret=args.git_ssh_secret,
        git_token_secret=args.git_token_secret,
    )
    controller = objects.ControllerRun(
        repo=args.source if gitsource.is_url(args.source) else the_plan.source.repo_url,
        branch=args.branch or the_plan.source.commit,
        project_dir=the_plan.source.project_dir,
        run_id=None if args.schedule else the_plan.run_id,
        webhook_secret=the_plan.webhook_url_secret,
        git_ssh_secret=args.git_ssh_secret,
        git_token_secret=args.git_token_secret,
    )
    api = _api() if args.dry_run == "server" else None
    version = cronjobs.api_version(api) if api is not None and args.schedule else "batch/v1"
    docs = deploy.render(the_plan, settings, controller, args.schedule, version)
    if api is not None:
        for doc in docs:
            _server_dry_run(api, doc)
        print(f"# server dry run: all {len(docs)} objects accepted", file=sys.stderr)
    sys.stdout.write(deploy.to_yaml(docs))
    return 0


CREATE_ONLY_KINDS = ("PersistentVolumeClaim", "Job")  # an existing one is used, not changed


def _server_dry_run(api: Any, doc: dict[str, Any]) -> None:
    """Create (or, if it exists, replace) with dryRun=All: the API server validates the
    object, admission included, and persists nothing."""
    from kubernetes import client, dynamic

    from bodywork.k8s import kube

    namespace = doc["metadata"].get("namespace", DEFAULT_NAMESPACE)
    name = doc["metadata"].get("name")
    what = f"dry-run {doc['kind'].lower()} {name or '(generated name)'}"
    try:
        resource = dynamic.DynamicClient(api).resources.get(
            api_version=doc["apiVersion"], kind=doc["kind"]
        )
        current = None
        if name:
            try:
                current = resource.get(name=name, namespace=namespace)
            except dynamic.exceptions.NotFoundError:
                current = None
        if current is None:
            resource.create(body=doc, namespace=namespace, dry_run="All")
        elif doc["kind"] not in CREATE_ONLY_KINDS:  # replaced on every run, as the executor does
            metadata = {**doc["metadata"], "resourceVersion": current.metadata.resourceVersion}
            body = {**doc, "metadata": metadata}
            if doc["kind"] == "Service":  # the ClusterIP is kept across updates
                body["spec"] = {**doc["spec"], "clusterIP": current.spec.clusterIP}
            resource.replace(body=body, namespace=namespace, dry_run="All")
    except client.ApiException as exc:
        raise kube.translate(exc, what, namespace) from exc


# ---------------------------------------------------------------------------- bootstrap
def _parse_secret_args(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    from bodywork.k8s import usersecrets

    found: dict[str, dict[str, str]] = {}
    for number, spec in enumerate(args.secret or [], 1):
        name, sep, pair = spec.partition("=")
        if not sep:
            raise UsageError(f"--secret #{number} is not NAME=KEY=VALUE (value not shown)")
        found.setdefault(name, {}).update(usersecrets.parse_pairs([pair]))
    for spec in args.secret_env_file or []:
        name, sep, path = spec.partition("=")
        if not sep:
            raise UsageError(f"--secret-env-file '{spec}' is not NAME=PATH")
        found.setdefault(name, {}).update(usersecrets.read_env_file(Path(path)))
    return found


BOOTSTRAP_CHECKS = [
    ("create", "serviceaccounts", ""),
    ("create", "roles", "rbac.authorization.k8s.io"),
    ("create", "rolebindings", "rbac.authorization.k8s.io"),
    ("create", "jobs", "batch"),
    ("get", "pods/log", ""),
    ("list", "configmaps", ""),
]


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from bodywork.cli.main import _load_plan, _setup_logging
    from bodywork.core import objects, plan
    from bodywork.engine import deploy
    from bodywork.k8s import usersecrets

    _setup_logging(args)
    _require_url(args.source, "bootstrap")
    secrets = _parse_secret_args(args)
    the_plan = _load_plan(args)
    api, namespace = _api(), args.namespace
    checks = list(BOOTSTRAP_CHECKS)
    if secrets:
        checks += [("get", "secrets", ""), ("create", "secrets", ""), ("update", "secrets", "")]
    missing = deploy.missing_permissions(api, namespace, checks)
    if missing:
        raise ClusterError(
            "bootstrap needs permissions you do not have in namespace "
            f"'{namespace}':\n  " + "\n  ".join(missing),
            status=403,
        )
    changes = deploy.install(api, namespace)
    for change in changes:
        _echo(str(change))
    changed = any(c.action != "unchanged" for c in changes)
    for name, values in secrets.items():
        action = usersecrets.apply(_core(api), namespace, name, values)
        changed |= action != "unchanged"
        _echo(f"secret/{name} {action} (keys: {', '.join(sorted(values))})")
    previous = deploy.already_deployed(
        _core(api), namespace, the_plan.project, the_plan.source.commit
    )
    if previous is not None:
        verdict = "nothing changed" if not changed else "set-up updated"
        _echo(
            f"{verdict}: {the_plan.project} is already deployed at "
            f"{the_plan.source.commit[:12]} (run {previous}); no new run started"
        )
        return 0
    run = objects.ControllerRun(
        repo=args.source,
        branch=the_plan.source.commit,
        project_dir=args.project_dir,
        run_id=plan.new_run_id(),
        webhook_secret=the_plan.webhook_url_secret,
        git_ssh_secret=args.git_ssh_secret,
        git_token_secret=args.git_token_secret,
    )
    job = deploy.deploy(api, namespace, run, _image(args), args.image_pull_policy)
    _echo(f"run {run.run_id} started: job/{job}; following it")
    return deploy.follow(api, namespace, job, _echo)


# ---------------------------------------------------------------------------- status, logs
def cmd_status(args: argparse.Namespace) -> int:
    from bodywork.engine import history
    from bodywork.k8s import recordstore

    api = _api()
    if args.run:
        run = history.describe_run(
            api, args.namespace, history.get_run(_core(api), args.namespace, args.run)
        )
        _echo(history.render_output(run, args.output, history.format_run))
        return 0
    runs = recordstore.list_records(_core(api), args.namespace, args.project)
    rows = history.run_rows(runs)
    if not rows and args.output == "table":
        _echo(f"no runs recorded in namespace '{args.namespace}'")
        return 0
    _echo(history.render_output(rows, args.output, lambda r: history.table(r, history.RUN_COLUMNS)))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from bodywork.engine import history

    history.print_logs(_api(), args.namespace, args.run, args.stage, args.follow, _echo)
    return 0


# ---------------------------------------------------------------------------- cronjob
def cmd_cronjob(args: argparse.Namespace) -> int:
    from bodywork.cli.main import _load_plan
    from bodywork.core import names, objects
    from bodywork.engine import history
    from bodywork.k8s import cronjobs, recordstore

    api = _api()
    namespace = args.namespace
    if args.action == "create":
        _require_url(args.source, "cronjob create")
        the_plan = _load_plan(args)
        name = args.name or names.object_name(the_plan.project, "retrain")
        run = objects.ControllerRun(
            repo=args.source,
            branch=args.branch,
            project_dir=args.project_dir,
            webhook_secret=the_plan.webhook_url_secret,
            git_ssh_secret=args.git_ssh_secret,
            git_token_secret=args.git_token_secret,
        )
        version = cronjobs.api_version(api)
        body = objects.build_cronjob(
            name, args.schedule, run, namespace, _image(args), version, args.image_pull_policy
        )
        action = cronjobs.create_or_update(api, body)
        _echo(f"cronjob/{name} {action} ({version}, schedule '{args.schedule}')")
        return 0
    if args.action == "list":
        rows = cronjobs.list_cronjobs(api, namespace)
        columns = [
            ("NAME", "name"),
            ("SCHEDULE", "schedule"),
            ("REPO", "repo"),
            ("BRANCH", "branch"),
            ("LAST RUN", "last_schedule"),
        ]
        _echo(history.render_output(rows, args.output, lambda r: history.table(r, columns)))
        return 0
    if args.action == "delete":
        gone = cronjobs.delete(api, namespace, args.name)
        _echo(f"cronjob/{args.name} {'deleted' if gone else 'was not there'}")
        return 0
    runs = recordstore.list_records(_core(api), namespace)
    runs = [r for r in runs if r.get("cronjob") == args.name]
    _echo(
        history.render_output(
            history.run_rows(runs), args.output, lambda r: history.table(r, history.RUN_COLUMNS)
        )
    )
    return 0


# ---------------------------------------------------------------------------- secret
def cmd_secret(args: argparse.Namespace) -> int:
    from bodywork.engine import history
    from bodywork.k8s import usersecrets

    values: dict[str, str] = {}
    if args.action == "create":  # a wrong command line is reported before any cluster call
        values = usersecrets.parse_pairs(args.value or [])
        if args.from_env_file:
            values.update(usersecrets.read_env_file(Path(args.from_env_file)))
        if not values:
            raise UsageError("secret create needs KEY=VALUE pairs or --from-env-file")
    core = _core(_api())
    if args.action == "list":
        rows = [
            {"name": r["name"], "keys": ", ".join(r["keys"])}
            for r in usersecrets.list_secrets(core, args.namespace)
        ]
        _echo(
            history.render_output(
                rows, args.output, lambda r: history.table(r, [("NAME", "name"), ("KEYS", "keys")])
            )
        )
        return 0
    if args.action == "delete":
        gone = usersecrets.delete(core, args.namespace, args.name)
        _echo(f"secret/{args.name} {'deleted' if gone else 'was not there'}")
        return 0
    action = usersecrets.apply(core, args.namespace, args.name, values)
    _echo(f"secret/{args.name} {action} (keys: {', '.join(sorted(values))})")
    return 0


# ---------------------------------------------------------------------------- cleanup
def cmd_cleanup(args: argparse.Namespace) -> int:
    from bodywork.engine import history

    history.cleanup(
        _api(),
        args.namespace,
        args.project,
        args.older_than_days,
        args.services,
        args.dry_run,
        _echo,
    )
    return 0


# ---------------------------------------------------------------------------- parser
def add_local_git_auth(sub: argparse.ArgumentParser) -> None:
    """Credentials for reading a private repo from this machine (values never printed)."""
    sub.add_argument(
        "--ssh-key", default=None, metavar="FILE", help="SSH private key for the git URL"
    )
    sub.add_argument(
        "--known-hosts",
        default=None,
        metavar="FILE",
        help="known_hosts with the git server's key (required with --ssh-key; checked strictly)",
    )
    sub.add_argument(
        "--git-token-env",
        default=None,
        metavar="VAR",
        help="environment variable holding an HTTPS token (default: BODYWORK_GIT_TOKEN)",
    )


def add_git_secrets(sub: argparse.ArgumentParser) -> None:
    """Secrets through which the controller and stage pods read a private repo."""
    sub.add_argument(
        "--git-ssh-secret",
        default=None,
        metavar="NAME",
        help="Secret with keys ssh-privatekey and known_hosts, mounted read-only in every pod",
    )
    sub.add_argument(
        "--git-token-secret",
        default=None,
        metavar="NAME",
        help="Secret with key token, for HTTPS repos (sent as a header, never in the URL)",
    )


def add_commands(
    commands: SubParsers, with_source: Callable[..., None], with_logging: Callable[..., None]
) -> None:
    def namespaced(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "-n", "--namespace", default=DEFAULT_NAMESPACE, help=f"default: {DEFAULT_NAMESPACE}"
        )
        return sub

    def output(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")

    def image(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--image",
            default=None,
            help=f"controller image (env BODYWORK_IMAGE; default bodywork:{__version__})",
        )
        sub.add_argument(
            "--image-pull-policy",
            default="IfNotPresent",
            choices=("IfNotPresent", "Always", "Never"),
        )

    sub = namespaced(
        commands.add_parser("deploy", help="start a run in the cluster (controller Job)")
    )
    with_source(sub)
    with_logging(sub)
    image(sub)
    sub.add_argument("--watch", action="store_true", help="follow the run; exit with its result")
    add_git_secrets(sub)
    sub.add_argument("--resume", metavar="RUN", help="rerun a failed run from its failed step")
    sub.set_defaults(handler=cmd_deploy)

    sub = namespaced(commands.add_parser("render", help="print the manifests a run would apply"))
    with_source(sub)
    image(sub)
    sub.add_argument("--schedule", help="render a CronJob with this cron schedule instead of a Job")
    sub.add_argument("--run-id", default=None, help="run id to name stage Jobs with")
    sub.add_argument(
        "--dry-run",
        choices=("none", "server"),
        default="none",
        help="server: also have the API server validate every object",
    )
    add_git_secrets(sub)
    sub.set_defaults(handler=cmd_render, log_level=None, log_format="console")

    sub = namespaced(
        commands.add_parser(
            "bootstrap", help="install RBAC, create secrets, start and follow the first run"
        )
    )
    with_source(sub)
    with_logging(sub)
    image(sub)
    sub.add_argument(
        "--secret",
        action="append",
        metavar="NAME=KEY=VALUE",
        help="create/update Secret NAME with KEY (repeatable; values never shown)",
    )
    sub.add_argument(
        "--secret-env-file",
        action="append",
        metavar="NAME=PATH",
        help="create/update Secret NAME from a KEY=VALUE file",
    )
    add_git_secrets(sub)
    sub.set_defaults(handler=cmd_bootstrap)

    sub = namespaced(commands.add_parser("status", help="runs of the namespace, or one run"))
    sub.add_argument("run", nargs="?", metavar="RUN", help="a run id (or a unique prefix)")
    sub.add_argument("--project", default=None)
    output(sub)
    sub.set_defaults(handler=cmd_status)

    sub = namespaced(commands.add_parser("logs", help="a run's stage logs, even after cleanup"))
    sub.add_argument("run", metavar="RUN")
    sub.add_argument("stage", nargs="?", metavar="STAGE")
    sub.add_argument("-f", "--follow", action="store_true", help="stream while the run runs")
    sub.set_defaults(handler=cmd_logs)

    cron = commands.add_parser("cronjob", help="scheduled retraining: create|list|delete|history")
    actions = cron.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub = namespaced(actions.add_parser("create", help="run REPO on a cron schedule"))
    sub.add_argument("source", metavar="REPO", help="git URL the cluster can reach")
    sub.add_argument("--branch", "-b", default=None, help="branch to retrain from (default HEAD)")
    sub.add_argument("--project-dir", default="")
    sub.add_argument("--schedule", required=True, help='cron schedule, e.g. "0 3 * * *"')
    sub.add_argument("--name", help="CronJob name (default: <project>--retrain)")
    image(sub)
    add_local_git_auth(sub)
    add_git_secrets(sub)
    for action, text in (
        ("list", "scheduled runs"),
        ("delete", "remove a schedule"),
        ("history", "past runs of a schedule"),
    ):
        sub = namespaced(actions.add_parser(action, help=text))
        if action != "list":
            sub.add_argument("name", metavar="NAME")
        output(sub)
    cron.set_defaults(handler=cmd_cronjob, log_level=None, log_format="console", output="table")

    secret = commands.add_parser(
        "secret", help="Secrets for [secrets] sections: create|list|delete"
    )
    actions = secret.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub = namespaced(actions.add_parser("create", help="create or update a Secret"))
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("value", nargs="*", metavar="KEY=VALUE")
    sub.add_argument("--from-env-file", default=None, metavar="PATH")
    sub = namespaced(actions.add_parser("list", help="names and keys, never values"))
    output(sub)
    sub = namespaced(actions.add_parser("delete", help="remove a Secret"))
    sub.add_argument("name", metavar="NAME")
    secret.set_defaults(handler=cmd_secret, output="table")

    sub = namespaced(commands.add_parser("cleanup", help="remove old runs (and services)"))
    sub.add_argument("--project", default=None)
    sub.add_argument("--older-than-days", type=float, default=7.0)
    sub.add_argument("--services", action="store_true", help="also remove deployed services")
    sub.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    sub.set_defaults(handler=cmd_cleanup)
