"""The `bodywork` command: parse arguments, call one function, print, map errors to exit codes.

Environment variables are read here and passed down. Heavy imports (GitPython, the
Kubernetes client) happen inside the handlers, so `bodywork stage` in a stage pod starts
in milliseconds. User mistakes print one clear message and never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from bodywork import __version__
from bodywork.core.errors import BodyworkError, StageFailed

EXIT_INTERRUPTED = 130  # the shell convention for "ended by Ctrl-C"
_COLORS = ("36", "33", "35", "32", "34", "91", "96", "93")


class StagePrinter:
    """Prints each line of stage output prefixed by its stage name, like docker compose."""

    def __init__(self, stream: TextIO, names: Sequence[str], color: bool):
        self.stream = stream
        self.width = max((len(n) for n in names), default=0)
        self.colors = {n: _COLORS[i % len(_COLORS)] for i, n in enumerate(names)}
        self.color = color
        self._lock = threading.Lock()

    def __call__(self, stage: str, line: str) -> None:
        prefix = f"{stage:<{self.width}} |"
        if self.color:
            prefix = f"\x1b[{self.colors.get(stage, '0')}m{prefix}\x1b[0m"
        with self._lock:
            self.stream.write(f"{prefix} {line}\n")
            self.stream.flush()


def default_home(env: dict[str, str]) -> Path:
    """Where local mode keeps artifacts, venvs and the uv cache between runs."""
    if env.get("BODYWORK_HOME"):
        return Path(env["BODYWORK_HOME"])
    data = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "bodywork"


def _setup_logging(args: argparse.Namespace, level: str | None = None) -> None:
    from bodywork.cli import logsetup

    json = args.log_format == "json"
    logsetup.configure_logging(args.log_level or level or "info", json=json)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def git_auth_env(
    args: argparse.Namespace, environ: dict[str, str] | None = None
) -> dict[str, str] | None:
    """The environment for git with --ssh-key/--known-hosts/--git-token-env applied (paths
    and the token travel only in this dict, never os.environ); None when none is given."""
    from bodywork.core.errors import UsageError
    from bodywork_bootstrap import gitfetch

    environ = dict(os.environ if environ is None else environ)
    key, known, token_var = (
        getattr(args, "ssh_key", None),
        getattr(args, "known_hosts", None),
        getattr(args, "git_token_env", None),
    )
    extra: dict[str, str] = {}
    if key or known:
        if not (key and known):
            raise UsageError(
                "--ssh-key and --known-hosts go together: the server's host key is always "
                "checked (get it with `ssh-keyscan HOST` and verify its fingerprint)"
            )
        for flag, path, var in (
            ("--ssh-key", key, gitfetch.SSH_KEY_ENV),
            ("--known-hosts", known, gitfetch.KNOWN_HOSTS_ENV),
        ):
            if not Path(path).is_file():
                raise UsageError(f"{flag} {path}: no such file")
            extra[var] = str(Path(path).resolve())
    if token_var:
        if not environ.get(token_var):
            raise UsageError(f"--git-token-env {token_var}: that variable is not set or empty")
        extra[gitfetch.TOKEN_ENV] = environ[token_var]
    return {**environ, **extra} if extra else None


def _load_plan(args: argparse.Namespace, run_id: str | None = None):  # noqa: ANN202
    from bodywork.engine import controller

    def apply_log_level(project) -> None:  # noqa: ANN001 - config.ProjectConfig
        if args.log_level is None and project.log_level != "info":
            _setup_logging(args, project.log_level)  # LOG_LEVEL in bodywork.ini

    return controller.load_plan(
        args.source,
        args.branch,
        args.project_dir,
        run_id=run_id,
        on_project=apply_log_level,
        git_env=git_auth_env(args),
    )


def cmd_run(args: argparse.Namespace) -> int:
    from bodywork.engine import controller, workflow
    from bodywork.engine.executors.local import LocalExecutor

    _setup_logging(args)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # `kill` cleans up like Ctrl-C
    the_plan = _load_plan(args)
    printer = _printer(the_plan)
    # Stages fetch the same URL, so they get the same credentials (as paths and env).
    stage_env = git_auth_env(args) or os.environ
    executor = LocalExecutor(printer, default_home(dict(os.environ)), stage_env)
    try:
        outcome = workflow.run_workflow(the_plan, executor)
        controller.send_webhook(the_plan, outcome)
        _report(outcome)
        services = executor.running_services()
        if not services:
            return 0
        for handle in services:
            print(f"service {handle.stage.name} is ready at {handle.url}", flush=True)
        print("services keep running; press Ctrl-C to stop them", flush=True)
        crashed = executor.wait_for_service_exit()
        if crashed is not None:
            code = crashed.process.returncode if crashed.process else "?"
            raise StageFailed(f"service '{crashed.stage.name}' exited with code {code}")
        return 0
    except KeyboardInterrupt:
        print("stopping: ending every stage process", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    finally:
        executor.close()


def _report(outcome) -> None:  # noqa: ANN001 - results.RunOutcome, imported lazily
    """Print the run summary; on failure, the failed stage's last lines, then raise."""
    from bodywork.core import results

    print(results.format_summary(outcome), flush=True)
    failed = outcome.failed_result
    if failed is None:
        return
    if failed.log_tail:
        print(f"--- last lines of {failed.stage} ---", file=sys.stderr)
        print("\n".join(failed.log_tail[-20:]), file=sys.stderr, flush=True)
    raise StageFailed(f"stage '{failed.stage}' {failed.status}: {failed.reason}", outcome.results)


def _own_image(api, namespace: str) -> str | None:  # noqa: ANN001 - kubernetes ApiClient
    """In a controller pod, the image it runs (so kustomize image overrides just work)."""
    from kubernetes import client

    from bodywork.k8s import kube

    pod_name = os.environ.get("POD_NAME")
    if not pod_name:
        return None
    pod = kube.call(
        f"get pod {pod_name}",
        namespace,
        client.CoreV1Api(api).read_namespaced_pod,
        pod_name,
        namespace,
    )
    return pod.spec.containers[0].image


def default_namespace() -> str:
    from bodywork.k8s import kube

    try:
        return Path(kube.SERVICE_ACCOUNT_FILE).read_text().strip()
    except OSError:
        return "default"


def cmd_workflow(args: argparse.Namespace) -> int:
    """The controller: run a workflow in the cluster (in a controller Job or from a laptop)."""
    from kubernetes import client

    from bodywork.core import objects, records
    from bodywork.core.errors import UsageError
    from bodywork.engine import controller
    from bodywork.k8s import kube, recordstore

    _setup_logging(args)
    namespace = args.namespace or default_namespace()
    api = kube.api_client()
    image = args.image or os.environ.get("BODYWORK_IMAGE") or _own_image(api, namespace)
    if not image:
        raise UsageError("no image for stage pods: pass --image or set BODYWORK_IMAGE")
    skip_steps = 0
    extra = {
        "controller_pod": os.environ.get("POD_NAME"),
        "cronjob": os.environ.get("BODYWORK_CRONJOB"),
    }
    if args.resume:
        record = recordstore.find_record(client.CoreV1Api(api), namespace, args.resume)
        if record is None:
            raise UsageError(f"no run '{args.resume}' in namespace '{namespace}'")
        status = record.get("status")
        if status == records.SUCCEEDED:
            raise UsageError(f"run {record['run_id']} succeeded: there is nothing to resume")
        args.branch = record["commit"]  # the same commit, whatever the branch says now
        if status == records.RUNNING:
            # Its controller died (the lease below refuses if it is in fact alive):
            # re-attach as the same run; existing Jobs are adopted, not duplicated.
            args.run_id = record["run_id"]
            skip_steps = records.succeeded_steps(record)
            extra["reattached"] = True
        else:
            skip_steps = max(0, (record.get("failed_step") or 1) - 1)
            extra["resumed_from"] = record["run_id"]
    the_plan = _load_plan(args, run_id=args.run_id)
    settings = objects.RunSettings(
        namespace=namespace,
        image=image,
        image_pull_policy=args.image_pull_policy,
        artifacts_size=args.artifacts_size,
        artifacts_storage_class=args.artifacts_storage_class,
        git_ssh_secret=args.git_ssh_secret,
        git_token_secret=args.git_token_secret,
    )
    trigger = args.trigger or os.environ.get("BODYWORK_TRIGGER") or "manual"
    outcome = controller.run_in_cluster(
        api, settings, the_plan, _printer(the_plan), trigger, skip_steps, extra
    )
    _report(outcome)
    return 0


def _printer(the_plan) -> StagePrinter:  # noqa: ANN001 - plan.Plan
    stages = [s.name for s in the_plan.stages]
    if the_plan.on_failure is not None:
        stages.append(the_plan.on_failure.name)
    return StagePrinter(sys.stdout, stages, sys.stdout.isatty())


def cmd_validate(args: argparse.Namespace) -> int:
    import tempfile

    from bodywork.core import config
    from bodywork.core.errors import ConfigError
    from bodywork.engine import gitsource

    def report(project: config.ProjectConfig) -> int:
        for warning in project.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        stages = sum(len(step) for step in project.dag)
        print(
            f"{config.PROJECT_FILE} OK: project '{project.project_name}', "
            f"{stages} stage(s) in {len(project.dag)} step(s)"
        )
        return 0

    try:
        if gitsource.is_url(args.source):
            env = git_auth_env(args)
            source = gitsource.resolve(
                args.source, args.branch, warn=lambda m: None, project_dir=args.project_dir, env=env
            )
            with tempfile.TemporaryDirectory(prefix="bodywork-validate-") as tmp:
                root = gitsource.checkout(source, Path(tmp) / "src", env)
                return report(config.load_project(root, gitsource.project_fallback_name(source)))
        # A local path is validated as it is on disk, so mistakes show up before a commit.
        root = Path(args.source) / args.project_dir
        if not root.is_dir():
            raise BodyworkError(f"{root} is not a directory")
        return report(config.load_project(root, root.resolve().name))
    except ConfigError as exc:
        for problem in exc.problems:
            if problem.severity == "warning":
                print(f"warning: {problem}", file=sys.stderr)
        raise


def cmd_stage(argv: list[str]) -> int:
    from bodywork_bootstrap.stage import main as stage_main

    return stage_main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bodywork",
        description="Deploy machine-learning projects to Kubernetes straight from Git.",
    )
    parser.add_argument("--version", action="version", version=f"bodywork {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from bodywork.cli import ops as cli_ops

    def with_source(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "source", metavar="PATH_OR_URL", help="project path in a git repo, or a git URL"
        )
        sub.add_argument(
            "--branch", "-b", default=None, help="branch, tag or full commit SHA (default: HEAD)"
        )
        sub.add_argument(
            "--project-dir", default="", help="project root inside the repo, if not the repo root"
        )
        cli_ops.add_local_git_auth(sub)

    def with_logging(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--log-format",
            choices=("auto", "console", "json"),
            default="auto",
            help="console (default) or json, one object per line",
        )
        sub.add_argument(
            "--log-level",
            choices=("debug", "info", "warning", "error"),
            default=None,
            help="default: LOG_LEVEL from bodywork.ini, else info",
        )

    run = commands.add_parser("run", help="run a workflow on this machine (no cluster needed)")
    with_source(run)
    with_logging(run)
    run.set_defaults(handler=cmd_run)

    flow = commands.add_parser(
        "workflow", help="run a workflow in Kubernetes (what the controller Job runs)"
    )
    with_source(flow)
    with_logging(flow)
    flow.add_argument(
        "--namespace",
        "-n",
        default=None,
        help="default: the controller pod's namespace, else 'default'",
    )
    flow.add_argument(
        "--image",
        default=None,
        help="image for stage pods without DOCKER_IMAGE (env BODYWORK_IMAGE)",
    )
    flow.add_argument(
        "--image-pull-policy", default="IfNotPresent", choices=("IfNotPresent", "Always", "Never")
    )
    flow.add_argument("--run-id", default=None, help=argparse.SUPPRESS)  # set by `deploy`
    flow.add_argument("--trigger", default=None, help=argparse.SUPPRESS)  # manual | cron
    flow.add_argument(
        "--resume",
        default=None,
        metavar="RUN",
        help="rerun a failed run from its failed step, at the same commit",
    )
    flow.add_argument("--artifacts-size", default="1Gi", help="size of a created artifacts PVC")
    flow.add_argument(
        "--artifacts-storage-class",
        default=None,
        help="class of a created artifacts PVC (default: the cluster default)",
    )
    cli_ops.add_git_secrets(flow)
    flow.set_defaults(handler=cmd_workflow)

    cli_ops.add_commands(commands, with_source, with_logging)

    validate = commands.add_parser("validate", help="check a project's configuration")
    with_source(validate)
    validate.set_defaults(handler=cmd_validate)

    commands.add_parser("stage", help="run one stage (what every stage pod runs)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["stage"]:  # fast path: no argparse tree, no heavy imports
        return cmd_stage(argv[1:])
    args = build_parser().parse_args(argv)
    from bodywork.cli import logsetup

    # Logs go to stderr from the start: stdout carries only what a command prints
    # (`render` YAML, `status -o json`). Handlers that report progress set their own level.
    logsetup.configure_logging("warning")
    try:
        return args.handler(args)
    except BodyworkError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
