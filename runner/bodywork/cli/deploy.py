"""Commands that put a project in the cluster: deploy, render, bootstrap.

Each validates the project at its commit first (`settings.load_plan`), then builds the
controller run with `settings.controller_run`, so `render` prints exactly the Job that
`deploy` and `bootstrap` submit: the commit pinned, never a branch that may move.
`render --dry-run server` also has the API server validate every object.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bodywork.cli import settings
from bodywork.cli.output import echo
from bodywork.core.errors import ClusterError, UsageError

if TYPE_CHECKING:
    from kubernetes import client


EXIT_INTERRUPTED = 130
CREATE_ONLY_KINDS = ("PersistentVolumeClaim", "Job")  # an existing one is used, not changed
BOOTSTRAP_CHECKS = [
    ("create", "serviceaccounts", ""),
    ("create", "roles", "rbac.authorization.k8s.io"),
    ("create", "rolebindings", "rbac.authorization.k8s.io"),
    ("create", "jobs", "batch"),
    ("get", "pods/log", ""),
    ("list", "configmaps", ""),
]


def cmd_deploy(args: argparse.Namespace) -> int:
    from bodywork.core import records
    from bodywork.engine import deploy
    from bodywork.k8s import recordstore

    settings.require_url(args.source, "deploy")
    api = settings.api_client()
    namespace = settings.namespace_of(args)
    if args.resume:
        record = recordstore.find_record(settings.core_api(api), namespace, args.resume)
        if record is None:
            raise UsageError(f"no run '{args.resume}' in namespace '{namespace}'")
        if record.get("status") == records.SUCCEEDED:
            raise UsageError(f"run {record['run_id']} succeeded: there is nothing to resume")
        args.branch = record["commit"]
    the_plan = settings.load_plan(args)  # validate before anything is created
    namespace = settings.namespace_of(args, the_plan)
    run = settings.controller_run(args, the_plan)
    image = settings.controller_image(args)
    job = deploy.deploy(api, namespace, run, image, args.image_pull_policy)
    echo(
        f"run {run.run_id} of {the_plan.project} at {the_plan.source.commit[:12]} started: "
        f"job/{job} in namespace {namespace}"
    )
    if not args.watch:
        echo(f"follow it with: bodywork logs -n {namespace} {run.run_id} --follow")
        return 0
    try:
        return deploy.follow(api, namespace, job, echo)
    except KeyboardInterrupt:
        # Only the following stops: the run is the controller Job's, in the cluster.
        print(
            f"stopped following; run {run.run_id} continues in the cluster "
            f"(bodywork logs -n {namespace} {run.run_id} --follow)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


def cmd_render(args: argparse.Namespace) -> int:
    # core.render, not engine.deploy: without --dry-run server no cluster is involved, and
    # the Kubernetes client (0.2-0.4 s to import) is imported only for the dry run.
    from bodywork.core import objects, render

    the_plan = settings.load_plan(args, run_id=args.run_id)
    run_settings = objects.RunSettings(
        namespace=settings.namespace_of(args, the_plan),
        image=settings.controller_image(args),
        image_pull_policy=args.image_pull_policy,
        git_ssh_secret=args.git_ssh_secret,
        git_token_secret=args.git_token_secret,
    )
    run_settings = settings.with_artifacts_backend(run_settings, args)
    run = settings.controller_run(args, the_plan, scheduled=bool(args.schedule))
    api = settings.api_client() if args.dry_run == "server" else None
    version = "batch/v1"
    if api is not None and args.schedule:
        from bodywork.k8s import cronjobs

        version = cronjobs.api_version(api)
    docs = render.render(the_plan, run_settings, run, args.schedule, version)
    if api is not None:
        for doc in docs:
            server_dry_run(api, doc)
        print(f"# server dry run: all {len(docs)} objects accepted", file=sys.stderr)
    sys.stdout.write(render.to_yaml(docs))
    return 0


def server_dry_run(api: client.ApiClient, doc: dict[str, Any]) -> None:
    """Create (or, if it exists, replace) with dryRun=All: the API server validates the
    object, admission included, and persists nothing."""
    from kubernetes import client, dynamic

    from bodywork.k8s import kube

    namespace = doc["metadata"].get("namespace", settings.DEFAULT_NAMESPACE)
    name = doc["metadata"].get("name")
    what = f"dry-run {doc['kind'].lower()} {name or '(generated name)'}"
    try:
        # The dynamic client is unannotated: its resources are Any here.
        dynamic_client: Any = dynamic.DynamicClient(api)  # type: ignore[no-untyped-call]
        resource = dynamic_client.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
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


def parse_secret_args(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """--secret NAME=KEY=VALUE and --secret-env-file NAME=PATH, by Secret name."""
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


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from bodywork.engine import deploy
    from bodywork.k8s import usersecrets

    settings.require_url(args.source, "bootstrap")
    secrets = parse_secret_args(args)
    the_plan = settings.load_plan(args)
    api, namespace = settings.api_client(), settings.namespace_of(args, the_plan)
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
        echo(str(change))
    changed = any(c.action != "unchanged" for c in changes)
    core = settings.core_api(api)
    for name, values in secrets.items():
        action = usersecrets.apply(core, namespace, name, values)
        changed |= action != "unchanged"
        echo(f"secret/{name} {action} (keys: {', '.join(sorted(values))})")
    previous = deploy.already_deployed(core, namespace, the_plan.project, the_plan.source.commit)
    if previous is not None:
        verdict = "nothing changed" if not changed else "set-up updated"
        echo(
            f"{verdict}: {the_plan.project} is already deployed at "
            f"{the_plan.source.commit[:12]} (run {previous}); no new run started"
        )
        return 0
    run = settings.controller_run(args, the_plan)
    image = settings.controller_image(args)
    job = deploy.deploy(api, namespace, run, image, args.image_pull_policy)
    echo(f"run {run.run_id} started: job/{job}; following it")
    return deploy.follow(api, namespace, job, echo)


def add_deploy(sub: argparse.ArgumentParser) -> None:
    settings.add_namespace(sub, from_project=True)
    settings.add_source(sub)
    settings.add_logging(sub)
    settings.add_image(sub)
    sub.add_argument("--watch", action="store_true", help="follow the run; exit with its result")
    settings.add_git_secrets(sub)
    sub.add_argument("--resume", metavar="RUN", help="rerun a failed run from its failed step")
    settings.add_artifacts_backend(sub)
    sub.set_defaults(handler=cmd_deploy)


def add_render(sub: argparse.ArgumentParser) -> None:
    settings.add_namespace(sub, from_project=True)
    settings.add_source(sub)
    settings.add_image(sub)
    sub.add_argument("--schedule", help="render a CronJob with this cron schedule instead of a Job")
    sub.add_argument("--run-id", default=None, help="run id to name stage Jobs with")
    sub.add_argument(
        "--dry-run",
        choices=("none", "server"),
        default="none",
        help="server: also have the API server validate every object",
    )
    settings.add_git_secrets(sub)
    settings.add_artifacts_backend(sub)
    sub.set_defaults(handler=cmd_render)


def add_bootstrap(sub: argparse.ArgumentParser) -> None:
    settings.add_namespace(sub, from_project=True)
    settings.add_source(sub)
    settings.add_logging(sub)
    settings.add_image(sub)
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
    settings.add_git_secrets(sub)
    settings.add_artifacts_backend(sub)
    sub.set_defaults(handler=cmd_bootstrap)
