"""What every command derives from its parsed arguments, built in one place each.

The plan (`load_plan`), the controller run a Job or CronJob is asked to do
(`controller_run`, the one place a `ControllerRun` is assembled), the git credentials
(`git_auth_env`), the default namespace and home (made absolute, and checked usable), the
checks of a namespace and a schedule given on the command line (`check_namespace`,
`check_schedule`: the rules the API server applies, in core), the log level, and the argparse
option groups the command modules share. Heavy modules are imported inside the functions.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bodywork import __version__
from bodywork.core import names
from bodywork.core.errors import UsageError
from bodywork_bootstrap import envnames

if TYPE_CHECKING:
    from kubernetes import client

    from bodywork.core import objects, plan

    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

DEFAULT_NAMESPACE = "bodywork"  # the namespace manifests/ installs
LOG_LEVELS = ("debug", "info", "warning", "error")


# ---------------------------------------------------------------------------- defaults
def default_home(env: dict[str, str], cwd: Path | None = None) -> Path:
    """Where local mode keeps artifacts, venvs and the uv cache between runs: BODYWORK_HOME,
    else $XDG_DATA_HOME/bodywork, else ~/.local/share/bodywork; created, and checked to be a
    directory this user can write (else a UsageError naming it and why).

    A relative BODYWORK_HOME is taken from `cwd` (default: the current directory) once, here:
    every stage runs in its own folder, where the relative path would name another place."""
    chosen = env.get(envnames.HOME)
    if chosen:
        home = Path(chosen).expanduser()
        what = f"{envnames.HOME}={chosen}"
    else:
        data = env.get("XDG_DATA_HOME", "")
        if not Path(data).is_absolute():  # the XDG spec: ignore a relative one
            data = str(Path.home() / ".local" / "share")
        home = Path(data) / "bodywork"
        what = f"Bodywork's home {home} (set {envnames.HOME} to choose another)"
    if not home.is_absolute():
        home = (cwd or Path.cwd()) / home
    return _usable_home(Path(os.path.normpath(home)), what)


def _usable_home(home: Path, what: str) -> Path:
    try:
        home.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"{what}: {home} is a file, not a directory: point it elsewhere") from None
    except NotADirectoryError:
        raise UsageError(
            f"{what}: a part of {home} is a file, not a directory: point it elsewhere"
        ) from None
    except OSError as exc:
        raise UsageError(f"{what}: cannot create {home}: {exc.strerror or exc}") from None
    if not os.access(home, os.W_OK | os.X_OK):
        raise UsageError(
            f"{what}: {home} is not writable by this user: point it at a directory you own"
        )
    return home


MAX_PARALLEL_ENV = "BODYWORK_MAX_PARALLEL"
MAX_PARALLEL_BOUND = 1024  # a stage is two processes at least: more is a typo


def default_max_parallel() -> int:
    """How many stages of a step `bodywork run` starts at once by default: the usable CPUs
    plus 4, at most 32 (ThreadPoolExecutor's rule for work that is partly waiting: a stage
    fetches and installs before it computes). Each stage is a bootstrapper and its module,
    so a 200-stage step no longer starts 400 processes at once."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return min(32, cpus + 4)


def max_parallel(args: argparse.Namespace, env: dict[str, str]) -> int:
    """--max-parallel, else BODYWORK_MAX_PARALLEL, else `default_max_parallel()`; a whole
    number from 1 to MAX_PARALLEL_BOUND (else a UsageError naming where it came from)."""
    chosen: int | None = getattr(args, "max_parallel", None)
    if chosen is not None:
        where, text = "--max-parallel", str(chosen)
    elif env.get(MAX_PARALLEL_ENV):
        where, text = MAX_PARALLEL_ENV, env[MAX_PARALLEL_ENV]
    else:
        return default_max_parallel()
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PARALLEL_BOUND:
        raise UsageError(
            f"{where} {text!r}: give how many stages of a step may run at once, a whole number "
            f"from 1 to {MAX_PARALLEL_BOUND} (default: {default_max_parallel()} here)"
        )
    return value


def default_namespace() -> str:
    """In a pod, its own namespace; elsewhere 'default'."""
    from bodywork.k8s import kube

    try:
        return Path(kube.SERVICE_ACCOUNT_FILE).read_text().strip()
    except OSError:
        return "default"


def controller_image(args: argparse.Namespace) -> str:
    """The controller image: --image, else BODYWORK_IMAGE, else this version's."""
    image: str | None = args.image or os.environ.get(envnames.IMAGE)
    return image or f"bodywork:{__version__}"


def configure_logging(args: argparse.Namespace, project_level: str | None = None) -> None:
    """Set up logging (to stderr) from --log-level and --log-format; without --log-level,
    LOG_LEVEL from bodywork.ini once the plan is read, else the command's `log_default`
    (info for commands that report progress, warning for the rest)."""
    from bodywork.cli import logsetup
    from bodywork.logs import logger

    chosen: str | None = getattr(args, "log_level", None)
    default: str = getattr(args, "log_default", "warning")
    level = chosen or project_level or default
    # --log-format auto (also for commands without the flag): JSON unless stderr is a
    # terminal, so a pod's log, a pipe or a file gets one JSON object per line.
    log_format: str = getattr(args, "log_format", "auto")
    json = logsetup.wants_json(log_format, sys.stderr)
    # structlog is imported, and set up, by the first event at `level` or above (logs.logger).
    logger.configure_on_first_use(level, lambda: logsetup.configure_logging(level, json=json))


# ---------------------------------------------------------------------------- cluster
def api_client() -> client.ApiClient:
    from bodywork.k8s import kube

    return kube.api_client()


def core_api(api: client.ApiClient) -> client.CoreV1Api:
    from kubernetes import client

    return client.CoreV1Api(api)


def require_url(source: str, command: str) -> None:
    """Commands the cluster carries out need a URL it can reach, not a local path."""
    from bodywork.engine import gitsource

    if not gitsource.is_url(source):
        raise UsageError(
            f"`bodywork {command}` needs a git URL the cluster can reach, not a local path "
            f"('{source}'); push the project and pass its URL"
        )


# ---------------------------------------------------------------------------- the run
def git_auth_env(
    args: argparse.Namespace, environ: dict[str, str] | None = None
) -> dict[str, str] | None:
    """The environment for git with --ssh-key/--known-hosts/--git-token-env applied (paths
    and the token travel only in this dict, never os.environ); None when none is given."""
    from bodywork_bootstrap import gitfetch

    environ = dict(os.environ if environ is None else environ)
    key: str | None = getattr(args, "ssh_key", None)
    known: str | None = getattr(args, "known_hosts", None)
    token_var: str | None = getattr(args, "git_token_env", None)
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


def load_plan(
    args: argparse.Namespace, run_id: str | None = None, commit_cache: Path | None = None
) -> plan.Plan:
    """Pin args.source at --branch to one commit, validate the project there, plan a run.
    `commit_cache`: where a local run's stages find the commit (the planning fetch fills it)."""
    from bodywork.core import config
    from bodywork.engine import controller

    def apply_log_level(project: config.ProjectConfig) -> None:
        if getattr(args, "log_level", None) is None and project.log_level != "info":
            configure_logging(args, project.log_level)  # LOG_LEVEL in bodywork.ini

    check_local_source(args.source)
    return controller.load_plan(
        args.source,
        args.branch,
        args.project_dir,
        run_id=run_id,
        on_project=apply_log_level,
        git_env=git_auth_env(args),
        commit_cache=commit_cache,
    )


def controller_run(
    args: argparse.Namespace, the_plan: plan.Plan, scheduled: bool = False
) -> objects.ControllerRun:
    """What a controller Job (deploy, bootstrap, render) or CronJob (cronjob create,
    render --schedule) is asked to run. A Job runs exactly the commit just validated,
    never a branch that may move; a schedule follows --branch (default HEAD)."""
    from bodywork.core import objects
    from bodywork.engine import gitsource

    if scheduled:
        check_schedule(args.schedule)
    backend = artifacts_backend(args)
    return objects.ControllerRun(
        repo=args.source if gitsource.is_url(args.source) else the_plan.source.repo_url,
        branch=args.branch if scheduled else the_plan.source.commit,
        project_dir=the_plan.source.project_dir,
        run_id=None if scheduled else the_plan.run_id,
        resume=getattr(args, "resume", None),
        webhook_secret=the_plan.webhook_url_secret,
        git_ssh_secret=args.git_ssh_secret,
        git_token_secret=args.git_token_secret,
        # The deploy-time artifacts backend travels to the controller in its arguments.
        artifacts_url=backend.get("artifacts_url"),
        artifacts_s3_endpoint_url=backend.get("artifacts_s3_endpoint_url"),
        artifacts_s3_secret=backend.get("artifacts_s3_secret"),
        artifacts_pvc_access_mode=backend.get("artifacts_pvc_access_mode"),
    )


# ---------------------------------------------------------------------------- options
def add_source(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "source", metavar="PATH_OR_URL", help="project path in a git repo, or a git URL"
    )
    sub.add_argument(
        "--branch", "-b", default=None, help="branch, tag or full commit SHA (default: HEAD)"
    )
    sub.add_argument(
        "--project-dir", default="", help="project root inside the repo, if not the repo root"
    )
    add_local_git_auth(sub)


def add_logging(sub: argparse.ArgumentParser, default: str = "info") -> None:
    """--log-format/--log-level; `default` is the level when neither flag nor bodywork.ini
    sets one."""
    sub.add_argument(
        "--log-format",
        choices=("auto", "console", "json"),
        default="auto",
        help="auto (default): json, one object per line, unless stderr is a terminal, "
        "then console; or force console or json",
    )
    sub.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=None,
        help="default: LOG_LEVEL from bodywork.ini, else info",
    )
    sub.set_defaults(log_default=default)


def add_namespace(
    sub: argparse.ArgumentParser, from_project: bool = False
) -> argparse.ArgumentParser:
    """-n/--namespace. `from_project`: unset means the project's `namespace` (bodywork.yaml),
    resolved by `namespace_of` once the project is read, else the default."""
    if from_project:
        sub.add_argument(
            "-n",
            "--namespace",
            default=None,
            help=f"default: the project's namespace (bodywork.yaml), else {DEFAULT_NAMESPACE}",
        )
    else:
        sub.add_argument(
            "-n", "--namespace", default=DEFAULT_NAMESPACE, help=f"default: {DEFAULT_NAMESPACE}"
        )
    return sub


def check_namespace(args: argparse.Namespace) -> None:
    """A namespace given with -n/--namespace must be one the API server accepts (a DNS-1123
    label): say which rule it breaks, rather than sending it and relaying a 422."""
    namespace: str | None = getattr(args, "namespace", None)
    if namespace is None:
        return
    rule = names.namespace_problem(namespace)
    if rule is not None:
        raise UsageError(
            f"-n/--namespace '{namespace}' is not a namespace name: {rule} (a namespace is "
            "1-63 lower-case letters, digits and '-', starting and ending with a letter or digit)"
        )


def check_schedule(schedule: str) -> None:
    """A --schedule the CronJob API would refuse (core.cron has its rules) is a UsageError."""
    from bodywork.core import cron  # only a command given a schedule reads one

    problem = cron.schedule_problem(schedule)
    if problem is not None:
        raise UsageError(f"--schedule '{schedule}' is not a cron schedule: {problem}")


def check_local_source(source: str) -> None:
    """A local path that git cannot run from: a bare repository (no checked-out files)."""
    from bodywork.core import config
    from bodywork.engine import gitsource

    if gitsource.is_url(source):
        return
    path = Path(source)
    if config.is_bare_repository(path):
        raise UsageError(config.bare_repository_message(path))


def namespace_of(args: argparse.Namespace, the_plan: plan.Plan | None = None) -> str:
    """--namespace, else the project's own (bodywork.yaml `namespace`), else the default."""
    chosen: str | None = args.namespace or (the_plan.namespace if the_plan else None)
    return chosen or DEFAULT_NAMESPACE


def add_output(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")


# core.objects.conventions' values, repeated so that building the parser (every command,
# --help too) does not import the object builders; tests/unit/test_cli_startup.py keeps
# them equal.
DEFAULT_PULL_POLICY = "IfNotPresent"
PULL_POLICIES = (DEFAULT_PULL_POLICY, "Always", "Never")


def add_pull_policy(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--image-pull-policy", default=DEFAULT_PULL_POLICY, choices=PULL_POLICIES)


def add_image(sub: argparse.ArgumentParser) -> None:
    """The controller image and its pull policy."""
    sub.add_argument(
        "--image",
        default=None,
        help=f"controller image (env BODYWORK_IMAGE; default bodywork:{__version__})",
    )
    add_pull_policy(sub)


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


# The artifacts backend chosen at deploy time (a flag wins over the project's key):
# (flag, RunSettings field, the schema key that checks it, only meaningful in a cluster).
ARTIFACTS_FLAGS = (
    ("--artifacts-url", "artifacts_url", "ARTIFACTS_URL", False),
    (
        "--artifacts-s3-endpoint-url",
        "artifacts_s3_endpoint_url",
        "ARTIFACTS_S3_ENDPOINT_URL",
        False,
    ),
    ("--artifacts-s3-secret", "artifacts_s3_secret", "ARTIFACTS_S3_SECRET", True),
    ("--artifacts-pvc-access-mode", "artifacts_pvc_access_mode", "ARTIFACTS_PVC_ACCESS_MODE", True),
)
_ARTIFACTS_HELP = {
    "artifacts_url": "s3://bucket[/prefix]: keep artifacts in S3, under <prefix>/<project>/ "
    "(overrides ARTIFACTS_URL)",
    "artifacts_s3_endpoint_url": "S3 API endpoint for MinIO, Ceph, GCS (overrides "
    "ARTIFACTS_S3_ENDPOINT_URL; default: AWS)",
    "artifacts_s3_secret": "Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the "
    "bucket (overrides ARTIFACTS_S3_SECRET)",
    "artifacts_pvc_access_mode": "ReadWriteOnce (RWO) or ReadWriteMany (RWX) for the "
    "artifacts claim (overrides ARTIFACTS_PVC_ACCESS_MODE)",
}


def add_artifacts_backend(sub: argparse.ArgumentParser, local: bool = False) -> None:
    """--artifacts-url and its endpoint; in a cluster also the Secret and the access mode."""
    for flag, dest, _, cluster_only in ARTIFACTS_FLAGS:
        if not (local and cluster_only):
            sub.add_argument(flag, dest=dest, default=None, help=_ARTIFACTS_HELP[dest])


def artifacts_backend(args: argparse.Namespace) -> dict[str, str | None]:
    """The artifacts flags given, checked by the project keys' own rules: RunSettings
    fields (or LocalExecutor arguments) by name."""
    from bodywork.core.config import schema

    chosen: dict[str, str | None] = {}
    for flag, dest, key, _ in ARTIFACTS_FLAGS:
        if not hasattr(args, dest):
            continue
        raw = getattr(args, dest)
        if raw is None:
            chosen[dest] = None
            continue
        try:
            chosen[dest] = getattr(schema, key).parse(raw)
        except ValueError as exc:
            raise UsageError(f"{flag}: {exc}") from None
    return chosen


def with_artifacts_backend(
    run_settings: objects.RunSettings, args: argparse.Namespace
) -> objects.RunSettings:
    """`run_settings` with the artifacts flags given (objects.with_project_storage later
    lets each win over the project's own key)."""
    from bodywork_bootstrap.recordclass import replace

    chosen = {k: v for k, v in artifacts_backend(args).items() if v is not None}
    return replace(run_settings, **chosen)
