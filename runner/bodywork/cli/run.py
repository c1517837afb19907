"""Commands that run a workflow, or check one: run, workflow, validate, stage.

`run` runs every stage on this machine; `workflow` is the controller (what the controller
Job runs, or a laptop with a kubeconfig); `validate` checks a project's configuration;
`stage` runs one stage (what every stage pod runs) and is dispatched by `main` before
argparse, so a stage pod starts without the heavy imports.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bodywork.cli import output, settings
from bodywork.core.errors import BodyworkError, StageFailed
from bodywork_bootstrap import envnames

if TYPE_CHECKING:
    from types import FrameType

    from kubernetes import client

    from bodywork.core import config, results

EXIT_INTERRUPTED = 130  # the shell convention for "ended by Ctrl-C"; also `kill` (SIGTERM)
EXIT_HUNG_UP = 129  # 128 + SIGHUP: the terminal closed
EXIT_OUTPUT_CLOSED = 141  # 128 + SIGPIPE: stdout's reader went away (`bodywork run | head`)


def raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class Stop(KeyboardInterrupt):
    """Raised in the main thread to end `bodywork run` cleanly: why, and the exit code."""

    def __init__(self, code: int, why: str):
        super().__init__(why)
        self.code = code
        self.why = why


class RunStopper:
    """`bodywork run`'s signal handling. SIGINT (Ctrl-C), SIGTERM and SIGHUP (the terminal
    closed) each raise Stop in the main thread, whatever it waits on, so every stage is
    stopped and its port freed; so does a closed stdout, which a reader thread reports
    through `output_closed`. While the run is stopping, further signals are ignored: the
    clean-up is bounded (every stage's grace), and SIGKILL is still safe (the stages watch
    their lifeline, see the local executor)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.main_thread = threading.main_thread().ident
        self.stopping = False
        self.stdout_closed = False

    def install(self) -> None:
        for signum in self.SIGNALS:
            signal.signal(signum, self.handle)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            return
        self.stopping = True
        if self.stdout_closed:
            raise Stop(EXIT_OUTPUT_CLOSED, "standard output was closed")
        if signum == signal.SIGHUP:
            raise Stop(EXIT_HUNG_UP, "the terminal hung up: SIGHUP")
        if signum == signal.SIGTERM:
            raise Stop(EXIT_INTERRUPTED, "terminated: SIGTERM")
        raise Stop(EXIT_INTERRUPTED, "interrupted: Ctrl-C")

    def output_closed(self) -> None:
        """From a reader thread: stdout's reader went away. Wake the main thread with a
        real signal (it may be blocked in a wait that nothing else would interrupt)."""
        self.stdout_closed = True
        if self.main_thread is not None:
            with contextlib.suppress(OSError, ProcessLookupError):
                signal.pthread_kill(self.main_thread, signal.SIGINT)


def _tell(message: str) -> None:
    """A line on stderr, if anyone still reads it (a hung-up terminal does not)."""
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr, flush=True)


# A reason may be any size (a stage's last line, uv's whole explanation): what is printed of
# it keeps its first and last lines, each held to a width, and says how much was cut.
REASON_HEAD_LINES = 6
REASON_TAIL_LINES = 6
REASON_LINE_CHARS = 500  # of one line of a reason (the error line, the log tail: 1000)
TABLE_DETAIL_CHARS = 200  # the summary table's DETAIL column: one line


def cap_line(line: str, limit: int = REASON_LINE_CHARS) -> str:
    """`line` if it fits `limit`, else its start and end around a note of what was cut."""
    if len(line) <= limit:
        return line
    keep_head, keep_tail = (limit * 3) // 5, limit // 5
    cut = len(line) - keep_head - keep_tail
    return f"{line[:keep_head]} [… {cut} characters cut …] {line[-keep_tail:]}"


def cap_reason(reason: str) -> str:
    """A reason for printing: its first and last lines (each capped), and how many were cut."""
    lines = [cap_line(line) for line in reason.splitlines()]
    if len(lines) > REASON_HEAD_LINES + REASON_TAIL_LINES:
        cut = len(lines) - REASON_HEAD_LINES - REASON_TAIL_LINES
        lines = [*lines[:REASON_HEAD_LINES], f"[… {cut} lines cut …]", *lines[-REASON_TAIL_LINES:]]
    return "\n".join(lines)


def table_detail(reason: str) -> str:
    """A reason as one line of the summary table (the error line below has the rest)."""
    lines = reason.splitlines()
    first = cap_line(lines[0], TABLE_DETAIL_CHARS) if lines else ""
    return first + (f" [+{len(lines) - 1} line(s)]" if len(lines) > 1 else "")


def report(outcome: results.RunOutcome) -> None:
    """Print the run summary; on failure, the failed stage's last lines, then raise. Reasons
    are capped for printing (`cap_reason`); the outcome itself keeps them whole."""
    from bodywork.core import results
    from bodywork_bootstrap.recordclass import replace

    def shown(result: results.StageResult) -> results.StageResult:
        return replace(result, reason=table_detail(result.reason))

    print(
        results.format_summary(
            replace(
                outcome,
                results=[shown(r) for r in outcome.results],
                on_failure=shown(outcome.on_failure) if outcome.on_failure else None,
            )
        ),
        flush=True,
    )
    failed = outcome.failed_result
    if failed is None:
        return
    if failed.log_tail:
        print(f"--- last lines of {failed.stage} ---", file=sys.stderr)
        tail = [cap_line(line, 2 * REASON_LINE_CHARS) for line in failed.log_tail[-20:]]
        print("\n".join(tail), file=sys.stderr, flush=True)
    raise StageFailed(
        f"stage '{failed.stage}' {failed.status}: {cap_reason(failed.reason)}", outcome.results
    )


def cmd_run(args: argparse.Namespace) -> int:
    """Run the workflow here. Exit codes beyond the errors': 130 on Ctrl-C or SIGTERM, 129
    on SIGHUP, 141 when stdout's reader went away; every stage is stopped in each case."""
    from bodywork.engine import controller, locallock, localproject, localsecrets, workflow
    from bodywork.engine.executors.local import COMMITS_DIR, LocalExecutor

    stopper = RunStopper()
    stopper.install()  # `kill` and a closed terminal clean up like Ctrl-C
    executor: LocalExecutor | None = None
    lock: locallock.ProjectLock | None = None
    try:
        parallel = settings.max_parallel(args, dict(os.environ))  # a typo costs no fetch
        backend = settings.artifacts_backend(args)  # --artifacts-url, checked before a fetch
        home = settings.default_home(dict(os.environ))
        # The planning fetch fills the stages' commit cache: one fetch per run, not per stage.
        the_plan = settings.load_plan(args, commit_cache=home / COMMITS_DIR)
        secrets_file = Path(args.secrets_file) if args.secrets_file else None
        stage_secrets = localsecrets.resolve(the_plan, os.environ, secrets_file)
        # Stages fetch the same URL, so they get the same credentials (as paths and env).
        stage_env = settings.git_auth_env(args) or os.environ
        # One run of a project at a time (its identity: name and repository), else exit 6.
        run_dir = home / "runs" / the_plan.run_id
        lock = locallock.ProjectLock(
            home, localproject.identity_of(the_plan), the_plan.run_id, run_dir
        )
        lock.acquire(wait=args.wait_for_lock, on_wait=_tell)
        printer = output.stage_printer(the_plan, on_closed=stopper.output_closed)
        executor = LocalExecutor(
            printer,
            home,
            stage_env,
            stage_secrets=stage_secrets,
            held_fds=lock.inheritable_fds(),
            artifacts_url=backend["artifacts_url"],
            artifacts_s3_endpoint_url=backend["artifacts_s3_endpoint_url"],
        )
        outcome = workflow.run_workflow(the_plan, executor, max_parallel=parallel)
        controller.send_webhook(the_plan, outcome)
        report(outcome)
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
    except Stop as stop:
        _tell(f"stopping: ending every stage process ({stop.why})")
        return stop.code
    except BrokenPipeError:  # this thread's own print found stdout closed
        stopper.stopping = True
        output.silence(sys.stdout)
        _tell("stopping: ending every stage process (standard output was closed)")
        return EXIT_OUTPUT_CLOSED
    finally:
        stopper.stopping = True  # a signal now would cut the clean-up short: ignored
        if executor is not None:
            executor.close()
        if lock is not None:
            lock.release()
        output.settle(sys.stdout)  # a reader gone: no error at exit, no code 120
        output.settle(sys.stderr)


def own_image(api: client.ApiClient, namespace: str) -> str | None:
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
    assert pod.spec is not None, "a pod read from the API server has a spec"
    image: str | None = pod.spec.containers[0].image
    return image


def cmd_workflow(args: argparse.Namespace) -> int:
    """The controller: run a workflow in the cluster (in a controller Job or from a laptop)."""
    from bodywork.core import objects, records
    from bodywork.core.errors import UsageError
    from bodywork.engine import controller
    from bodywork.k8s import kube, recordstore

    namespace = args.namespace or settings.default_namespace()
    api = kube.api_client()
    # Bodywork's image: stages without DOCKER_IMAGE run in it, and it supplies the fetch
    # init container of those with one; DOCKER_IMAGE alone is enough to start a run.
    image = (
        own_image(api, namespace) if not (args.image or os.environ.get(envnames.IMAGE)) else None
    )
    image = image or settings.controller_image(args)
    skip_steps = 0
    extra: dict[str, Any] = {
        "controller_pod": os.environ.get("POD_NAME"),
        "cronjob": os.environ.get(envnames.CRONJOB),
    }
    if args.resume:
        record = recordstore.find_record(settings.core_api(api), namespace, args.resume)
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
    the_plan = settings.load_plan(args, run_id=args.run_id)
    run_settings = objects.RunSettings(
        namespace=namespace,
        image=image,
        image_pull_policy=args.image_pull_policy,
        artifacts_size=args.artifacts_size,
        artifacts_storage_class=args.artifacts_storage_class,
        git_ssh_secret=args.git_ssh_secret,
        git_token_secret=args.git_token_secret,
    )
    run_settings = settings.with_artifacts_backend(run_settings, args)
    trigger = args.trigger or os.environ.get(envnames.TRIGGER) or "manual"
    printer = output.stage_printer(the_plan)
    outcome = controller.run_in_cluster(
        api, run_settings, the_plan, printer, trigger, skip_steps, extra
    )
    report(outcome)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from bodywork.core import config
    from bodywork.core.errors import ConfigError
    from bodywork.engine import confinement, gitsource

    def summarise(project: config.ProjectConfig) -> int:
        for warning in project.warnings:
            print(f"{warning.severity}: {warning}", file=sys.stderr)
        stages = sum(len(step) for step in project.dag)
        print(
            f"{project.config_file} OK: project '{project.project_name}', "
            f"{stages} stage(s) in {len(project.dag)} step(s)"
        )
        return 0

    try:
        if gitsource.is_url(args.source):
            import tempfile  # with shutil: only a URL needs a checkout

            env = settings.git_auth_env(args)
            source = gitsource.resolve(
                args.source, args.branch, warn=lambda m: None, project_dir=args.project_dir, env=env
            )
            with tempfile.TemporaryDirectory(prefix="bodywork-validate-") as tmp:
                root = gitsource.checkout(source, Path(tmp) / "src", env)
                name = gitsource.project_fallback_name(source)
                return summarise(config.load_project(root, name, strict=args.strict))
        # A local path is validated as it is on disk, so mistakes show up before a commit.
        top = confinement.repo_root_of(Path(args.source))
        confinement.check_local_project_dir(Path(args.source), args.project_dir, top)
        root = Path(args.source) / args.project_dir
        if not root.is_dir():
            raise BodyworkError(f"{root} is not a directory")
        listings: config.Listings = {}  # each folder listed once, by the first walk
        confinement.refuse_links_leaving(root, top, listings)
        project = config.load_project(root, root.resolve().name, args.strict, listings)
        return summarise(project)
    except ConfigError as exc:
        for problem in exc.problems:
            if problem.severity != "error":
                print(f"{problem.severity}: {problem}", file=sys.stderr)
        raise


def cmd_stage(argv: list[str]) -> int:
    from bodywork_bootstrap.stage import main as stage_main

    return stage_main(argv)


def add_run(run: argparse.ArgumentParser) -> None:
    settings.add_source(run)
    settings.add_logging(run)
    run.add_argument(
        "--secrets-file",
        default=None,
        metavar="FILE",
        help="values for the stages' [secrets]: an ini file, one [secret-name] section per "
        "Secret (default: the variables of your environment)",
    )
    run.add_argument(
        "--max-parallel",
        type=int,
        default=None,
        metavar="N",
        help="start at most N stages of a step at once, the others as slots free (a service "
        f"frees its slot once ready; env {settings.MAX_PARALLEL_ENV}; default: the CPUs + 4, "
        "at most 32)",
    )
    run.add_argument(
        "--wait-for-lock",
        action="store_true",
        help="if another `bodywork run` of this project is running, wait for it to end "
        "instead of exiting with code 6",
    )
    settings.add_artifacts_backend(run, local=True)
    run.set_defaults(handler=cmd_run)


def add_workflow(flow: argparse.ArgumentParser) -> None:
    settings.add_source(flow)
    settings.add_logging(flow)
    flow.add_argument(
        "--namespace",
        "-n",
        default=None,
        help="default: the controller pod's namespace, else 'default'",
    )
    flow.add_argument(
        "--image",
        default=None,
        help="Bodywork's image: for stage pods without DOCKER_IMAGE and the fetch init "
        "container of those with one (env BODYWORK_IMAGE; default: the controller pod's "
        "own, else bodywork:VERSION)",
    )
    settings.add_pull_policy(flow)
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
    settings.add_git_secrets(flow)
    settings.add_artifacts_backend(flow)
    flow.set_defaults(handler=cmd_workflow)


def add_validate(validate: argparse.ArgumentParser) -> None:
    settings.add_source(validate)
    validate.add_argument(
        "--strict",
        action="store_true",
        help="unknown keys and sections are errors, not warnings",
    )
    validate.set_defaults(handler=cmd_validate)  # it prints what it finds
