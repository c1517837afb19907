"""The original Bodywork's command lines (bodywork-ml/bodywork-core), read as today's.

Users' READMEs print the original's commands: the ini era's argparse forms (v0.x-v1, and
v2 with `--local-workflow-controller` and `validate --file`) and v3's typer forms
(`create deployment URL`, `get cronjobs`, `create secret NAME --group G`). `translate` turns
such a line into today's argv plus a one-line note of the new spelling, which `main` prints
to stderr once before running it; a form today's commands cannot express is refused with a
`UsageError` (exit 2) whose one line names the replacement. docs/migrating.md is the table.

A current command line is never changed: a line today's parser accepts is returned as it
is, and only a line it refuses *and* that carries a mark of the original (an option or an
action only the original had) is read as the original's. Pure: no I/O, nothing global.
"""

from __future__ import annotations

import argparse
import posixpath
import shlex
from collections.abc import Callable, Iterator
from typing import NoReturn

from bodywork.core.errors import UsageError
from bodywork_bootstrap.recordclass import field, record
from bodywork_bootstrap.redaction import redact

# First words only the original had (v1/v2 argparse, v3 typer).
LEGACY_COMMANDS = frozenset(
    {
        "setup-namespace",
        "deployment",
        "service",
        "debug",
        "configure-cluster",
        "version",
        "create",
        "update",
        "get",
        "delete",
    }
)
HELP_TOKENS = ("-h", "--help", "--version")
DOC = "docs/migrating.md"


class _Refused(Exception):
    """argparse's message for a line an original-form parser refuses."""


class _OldParser(argparse.ArgumentParser):
    """An original form's parser: never prints or exits, it raises `_Refused`."""

    def __init__(self, form: str, abbrev: bool) -> None:
        # v1/v2 were argparse (abbreviations allowed); v3 was typer/click (they are not).
        super().__init__(prog=f"bodywork {form}", add_help=False, allow_abbrev=abbrev)

    def error(self, message: str) -> NoReturn:
        raise _Refused(message)


@record
class _Today:
    """Today's argv for an original line, what changed in meaning, what the note hides."""

    argv: list[str]
    remarks: list[str] = field(default_factory=list)
    hidden: frozenset[str] = frozenset()  # secret KEY=VALUE pairs: never shown


Handler = Callable[[str, list[str]], _Today]


# ---------------------------------------------------------------------------- the entry
def translate(
    argv: list[str], parser: argparse.ArgumentParser | None = None
) -> tuple[list[str], str | None]:
    """Today's argv for `argv`, and a note when it was the original Bodywork's form.

    `parser` is today's parser with at least argv[0]'s command built (`main.parser_for`);
    default: a full one.

    The note is one line without the leading "note: ": "'bodywork OLD' is the original
    Bodywork's form; today: bodywork NEW" (shell-quoted; secret values and URL credentials
    hidden), then any remark on what the new form does differently. Raises `UsageError`
    for an original form with no equivalent, naming the replacement.
    """
    argv = list(argv)
    if not argv or argv[0].startswith("-"):
        return argv, None
    command, rest = argv[0], argv[1:]
    if command in LEGACY_COMMANDS:
        if command in _current_commands(parser or _current_parser()):
            return argv, None  # a current command of that name wins
        today = _LEGACY[command](command, rest)
    elif command in _SHARED:
        if _asks_for_help(rest) or _current_accepts(parser or _current_parser(), argv):
            return argv, None
        marked, handler = _SHARED[command]
        if not marked(rest):
            return argv, None  # today's parser reports it, as for any wrong line
        today = handler(command, rest)
    else:
        return argv, None
    return today.argv, _note(argv, today)


def _note(old: list[str], today: _Today) -> str:
    def shown(tokens: list[str]) -> str:
        return redact(" ".join(["bodywork", *(_shown(t, today.hidden) for t in tokens)]))

    note = f"'{shown(old)}' is the original Bodywork's form; today: {shown(today.argv)}"
    return "; ".join([note, *today.remarks]).replace("\n", " ")


def _shown(token: str, hidden: frozenset[str]) -> str:
    """A token shell-quoted, with a secret pair's value (KEY=VALUE, --data=KEY=VALUE) hidden."""
    for prefix in ("", "--data="):
        pair = token[len(prefix) :]
        if token.startswith(prefix) and pair in hidden:
            key, sep, _ = pair.partition("=")
            return shlex.quote(f"{prefix}{key}") + "=***" if sep else f"{prefix}***"
    return shlex.quote(token)


# ---------------------------------------------------------------------------- today's parser
class _Rejected(Exception):
    pass


def _reject(message: str) -> NoReturn:
    raise _Rejected(message)


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def _current_parser() -> argparse.ArgumentParser:
    from bodywork.cli.main import build_parser  # main imports this module

    return build_parser()


def _current_commands(parser: argparse.ArgumentParser) -> set[str]:
    return {
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    }


def _current_accepts(parser: argparse.ArgumentParser, argv: list[str]) -> bool:
    """Whether today's parser takes `argv`, asked without printing or exiting: each parser's
    `error` raises for the time of the question (on the instance; the class's is left)."""
    parsers = list(_parsers(parser))
    for each in parsers:
        vars(each)["error"] = _reject
    try:
        parser.parse_args(argv)
    except _Rejected:
        return False
    finally:
        for each in parsers:
            del vars(each)["error"]
    return True


def _asks_for_help(tokens: list[str]) -> bool:
    """-h/--help/--version (today's parser would print): always left to it."""
    return any(t in HELP_TOKENS or (len(t) > 3 and "--help".startswith(t)) for t in tokens)


def _has_option(tokens: list[str], names: set[str]) -> bool:
    return any(t.split("=", 1)[0] in names for t in tokens if t.startswith("-"))


# ---------------------------------------------------------------------------- helpers
def _usage(form: str, problem: str, hint: str) -> UsageError:
    return UsageError(
        f"'bodywork {form}' is the original Bodywork's form: {problem}; today: {hint} (see {DOC})"
    )


def _refuse(form: str, why: str, hint: str) -> UsageError:
    return UsageError(
        f"'bodywork {form}' is the original Bodywork's form and has no equivalent: {why}; "
        f"today: {hint}"
    )


def _refuse_ssh(form: str, namespace: str | None) -> UsageError:
    """v3's --ssh read a key file here; today every pod mounts the key from a Secret."""
    return _refuse(
        f"{form} --ssh",
        "the key is not read from this machine: every pod mounts it from a Secret",
        SSH_HINT.replace("NS", namespace or "bodywork"),
    )


def _shown_extras(extras: list[str]) -> str:
    """Unknown arguments, named without any value they carry."""
    return " ".join(t.split("=", 1)[0] + ("=..." if "=" in t else "") for t in extras)


def _parse(parser: _OldParser, form: str, tokens: list[str], hint: str) -> argparse.Namespace:
    try:
        args, extras = parser.parse_known_args(tokens)
    except _Refused as exc:
        raise _usage(form, str(exc), hint) from None
    if extras:
        noun = "argument" if len(extras) == 1 else "arguments"
        raise _usage(form, f"unknown {noun} {_shown_extras(extras)}", hint)
    return args


def _ns(namespace: str | None) -> list[str]:
    return ["-n", namespace] if namespace else []


def _branch(branch: str | None) -> list[str]:
    return ["--branch", branch] if branch else []


def _ns_text(namespace: str | None) -> str:
    return f" -n {shlex.quote(namespace)}" if namespace else ""


def _dropped(flag: str, why: str) -> str:
    return f"{flag} dropped: {why}"


RETRIES_DROPPED = _dropped("--retries", "the controller is not retried; each stage retries itself")
HISTORY_DROPPED = _dropped("--history-limit", "past runs are kept as run records")
GROUP_DROPPED = _dropped(
    "--group", "Secrets are read from the run's namespace, named GROUP-NAME (see bodywork.yaml)"
)
V3_NAMESPACE = (
    "namespace: add -n NS to choose it (v3 took it from bodywork.yaml's pipeline.namespace)"
)
SSH_HINT = (
    "kubectl -n NS create secret generic repo-ssh --from-file=ssh-privatekey=KEY "
    "--from-file=known_hosts=known_hosts, then --git-ssh-secret repo-ssh (docs/kubernetes.md)"
)
INSTALL_HINT = (
    "kubectl apply -k manifests/ (namespace: NS in manifests/kustomization.yaml) installs "
    "the service accounts and Role; bodywork bootstrap -n NS URL installs them and starts "
    "the first run"
)


# ---------------------------------------------------------------------------- ini era (v1/v2)
def _setup_namespace(form: str, rest: list[str]) -> _Today:
    names = [t for t in rest if not t.startswith("-")]
    hint = INSTALL_HINT.replace("NS", names[0]) if len(names) == 1 else INSTALL_HINT
    raise _refuse(form, "no command only installs a namespace", hint)


def _debug(form: str, rest: list[str]) -> _Today:
    raise _refuse(
        form,
        "it only slept, to keep a pod alive to exec into",
        "kubectl debug, or kubectl exec into a stage pod",
    )


def _workflow(form: str, rest: list[str]) -> _Today:
    hint = "bodywork workflow -n NS URL --branch B [--image IMG]"
    parser = _OldParser(form, abbrev=True)
    parser.add_argument("git_url")
    parser.add_argument("git_branch", nargs="?")
    parser.add_argument("--namespace", "--ns")
    parser.add_argument("--bodywork-docker-image")
    args = _parse(parser, form, rest, hint)
    image = ["--image", args.bodywork_docker_image] if args.bodywork_docker_image else []
    argv = ["workflow", *_ns(args.namespace), args.git_url, *_branch(args.git_branch), *image]
    return _Today(argv)


def _workflow_marked(rest: list[str]) -> bool:
    if _has_option(rest, {"--ns", "--bodywork-docker-image"}):
        return True
    # Two positionals: URL BRANCH (today's takes one, and --branch).
    try:
        parser = _OldParser("workflow", abbrev=True)
        parser.add_argument("git_url")
        parser.add_argument("git_branch")
        parser.add_argument("--namespace", "--ns")
        parser.parse_args(rest)
    except _Refused:
        return False
    return True


def _deployment(form: str, rest: list[str]) -> _Today:
    hint = "bodywork deploy -n NS URL --branch B, bodywork status -n NS"
    parser = _OldParser(form, abbrev=True)
    parser.add_argument("command", choices=["create", "display", "logs", "delete_job"])
    parser.add_argument("--namespace", "--ns")
    parser.add_argument("--name")
    parser.add_argument("--git-repo-url")
    parser.add_argument("--git-repo-branch")
    parser.add_argument("--retries", type=int)
    parser.add_argument("--local-workflow-controller", "--local", "-L", action="store_true")
    args = _parse(parser, form, rest, hint)
    form = f"deployment {args.command}"
    ns = args.namespace
    if args.command == "create":
        if not args.git_repo_url:
            raise _usage(form, "it needs --git-repo-url URL", "bodywork deploy -n NS URL")
        where = "workflow" if args.local_workflow_controller else "deploy"
        argv = [where, *_ns(ns), args.git_repo_url, *_branch(args.git_repo_branch)]
        remarks = []
        if args.name:
            remarks.append(_dropped("--name", "a run is named by its run id"))
        if args.retries is not None and where == "deploy":
            remarks.append(RETRIES_DROPPED)
        return _Today(argv, remarks)
    if args.command == "display":
        remarks = [_dropped("--name", "status lists every run")] if args.name else []
        return _Today(["status", *_ns(ns)], remarks)
    if args.command == "logs":
        raise _refuse(
            form,
            "logs belong to a run, named by its run id",
            f"bodywork status{_ns_text(ns)} to find the run, then bodywork logs{_ns_text(ns)} RUN",
        )
    raise _refuse(
        form,
        "a controller Job is removed by its TTL",
        f"bodywork cleanup{_ns_text(ns)} removes old runs' Jobs and records",
    )


def _cronjob(form: str, rest: list[str]) -> _Today:
    hint = "bodywork cronjob create|list|delete|history (bodywork cronjob -h)"
    parser = _OldParser(form, abbrev=True)
    parser.add_argument("command", choices=["create", "delete", "display", "history", "logs"])
    parser.add_argument("--namespace", "--ns")
    parser.add_argument("--name")
    parser.add_argument("--schedule")
    parser.add_argument("--git-repo-url")
    parser.add_argument("--git-repo-branch")
    parser.add_argument("--retries", type=int)
    parser.add_argument("--history-limit", type=int)
    args = _parse(parser, form, rest, hint)
    form = f"cronjob {args.command}"
    ns, name = args.namespace, args.name
    if args.command == "create":
        today = "bodywork cronjob create -n NS URL --schedule CRON --name NAME"
        if not args.git_repo_url:
            raise _usage(form, "it needs --git-repo-url URL", today)
        if not args.schedule:
            raise _usage(form, "it needs --schedule CRON", today)
        argv = ["cronjob", "create", *_ns(ns), args.git_repo_url, "--schedule", args.schedule]
        argv += ["--name", name] if name else []
        remarks = [RETRIES_DROPPED] if args.retries is not None else []
        remarks += [HISTORY_DROPPED] if args.history_limit is not None else []
        return _Today(argv + _branch(args.git_repo_branch), remarks)
    if args.command == "display":
        return _Today(["cronjob", "list", *_ns(ns)])
    if not name:
        raise _usage(form, "it needs --name NAME", f"bodywork cronjob {args.command} -n NS NAME")
    if args.command == "logs":
        raise _refuse(
            form,
            "logs belong to a run, named by its run id",
            f"bodywork cronjob history{_ns_text(ns)} {shlex.quote(name)} lists its runs, "
            f"then bodywork logs{_ns_text(ns)} RUN",
        )
    return _Today(["cronjob", args.command, *_ns(ns), name])


def _cronjob_marked(rest: list[str]) -> bool:
    old = {"--ns", "--git-repo-url", "--git-repo-branch", "--retries", "--history-limit"}
    action = rest[0] if rest else ""
    if action not in ("create", "list", "delete", "history"):
        return any(t in ("create", "delete", "display", "history", "logs") for t in rest)
    return _has_option(rest, old | ({"--name"} if action != "create" else set()))


def _service(form: str, rest: list[str]) -> _Today:
    hint = "bodywork status -n NS, bodywork cleanup -n NS --services"
    parser = _OldParser(form, abbrev=True)
    parser.add_argument("command", choices=["delete", "display"])
    parser.add_argument("--namespace", "--ns")
    parser.add_argument("--name")
    args = _parse(parser, form, rest, hint)
    ns = args.namespace
    if args.command == "display":
        remarks = [_dropped("--name", "status shows every service")] if args.name else []
        return _Today(["status", *_ns(ns)], remarks)
    raise _refuse(
        "service delete",
        "services are removed by project, not one by one",
        f"bodywork cleanup{_ns_text(ns)} --services --project PROJECT (try --dry-run first)",
    )


def _secret(form: str, rest: list[str]) -> _Today:
    hint = "bodywork secret create -n NS NAME KEY=VALUE..., bodywork secret list|delete"
    parser = _OldParser(form, abbrev=True)
    parser.add_argument("command", choices=["create", "delete", "display"])
    parser.add_argument("--namespace", "--ns")
    parser.add_argument("--name")
    parser.add_argument("--data", nargs="+", default=[])
    args = _parse(parser, form, rest, hint)
    form = f"secret {args.command}"
    ns, name, data = args.namespace, args.name, list(args.data)
    if args.command == "display":
        remarks = [_dropped("--name", "secret list shows every Secret's keys")] if name else []
        return _Today(["secret", "list", *_ns(ns)], remarks + ["values are never shown"])
    if not name:
        raise _usage(form, "it needs --name NAME", f"bodywork secret {args.command} -n NS NAME")
    if args.command == "delete":
        return _Today(["secret", "delete", *_ns(ns), name])
    if not data:
        raise _usage(form, "it needs --data KEY=VALUE...", "bodywork secret create -n NS NAME K=V")
    return _Today(["secret", "create", *_ns(ns), name, *data], hidden=frozenset(data))


def _secret_marked(rest: list[str]) -> bool:
    action = rest[0] if rest else ""
    if action not in ("create", "list", "delete"):
        return any(t in ("create", "delete", "display") for t in rest)
    return _has_option(rest, {"--ns", "--name", "--data"})


def _validate(form: str, rest: list[str]) -> _Today:
    hint = "bodywork validate DIR"
    parser = _OldParser(form, abbrev=True)
    parser.add_argument("--file", default="bodywork.yaml")
    parser.add_argument("--check-files", action="store_true")
    parser.add_argument("--no-check-files", action="store_true")
    args = _parse(parser, form, rest, hint)
    folder, name = posixpath.split(args.file)
    if name not in ("bodywork.yaml", "bodywork.ini"):
        raise _usage(
            form,
            f"today's validate reads bodywork.yaml or bodywork.ini in a directory, not '{name}'",
            "rename it and run bodywork validate DIR",
        )
    remarks = [_dropped("--check-files", "files are always checked")] if args.check_files else []
    return _Today(["validate", folder or "."], remarks)


def _validate_marked(rest: list[str]) -> bool:
    return not rest or _has_option(rest, {"--file", "--check-files", "--no-check-files"})


# ---------------------------------------------------------------------------- v3 (typer)
def _version(form: str, rest: list[str]) -> _Today:
    if rest:
        raise _usage(form, f"unknown arguments {_shown_extras(rest)}", "bodywork --version")
    return _Today(["--version"])


def _configure_cluster(form: str, rest: list[str]) -> _Today:
    raise _refuse(form, "no command only installs Bodywork in a cluster", INSTALL_HINT)


def _v3_parser(form: str) -> _OldParser:
    parser = _OldParser(form, abbrev=False)
    parser.add_argument("--namespace", "-n")  # not in v3: today's option, accepted
    return parser


def _one_branch(form: str, positional: str | None, option: str | None) -> str | None:
    if positional and option and positional != option:
        raise _usage(form, f"two branches, '{positional}' and '{option}'", "--branch B")
    return option or positional


def _v3_deployment(verb: str, form: str, rest: list[str]) -> _Today:
    if verb in ("create", "update"):
        hint = "bodywork deploy -n NS URL --branch B --watch"
        parser = _v3_parser(form)
        parser.add_argument("git_url")
        parser.add_argument("git_branch", nargs="?")
        parser.add_argument("--branch")
        parser.add_argument("--ssh", "--ssh-key-path")
        parser.add_argument("--group", "--secrets-group")
        parser.add_argument("--retries", type=int)
        parser.add_argument("--async", dest="asynchronous", action="store_true")
        parser.add_argument("--async-job-name")
        parser.add_argument("--bodywork-image")
        args = _parse(parser, form, rest, hint)
        if args.ssh:
            raise _refuse_ssh(form, args.namespace)
        branch = _one_branch(form, args.git_branch, args.branch)
        image = ["--image", args.bodywork_image] if args.bodywork_image else []
        watch = [] if args.asynchronous else ["--watch"]
        argv = ["deploy", *_ns(args.namespace), args.git_url, *_branch(branch), *image, *watch]
        remarks = [] if args.namespace else [V3_NAMESPACE]
        remarks += [GROUP_DROPPED] if args.group else []
        remarks += [RETRIES_DROPPED] if args.retries is not None else []
        remarks += [_dropped("--async-job-name", "runs are named")] if args.async_job_name else []
        return _Today(argv, remarks)
    if verb == "get":
        parser = _v3_parser(form)
        parser.add_argument("name", nargs="?")
        parser.add_argument("service_name", nargs="?")
        parser.add_argument("--logs")
        parser.add_argument("--async", dest="asynchronous", action="store_true")
        args = _parse(parser, form, rest, "bodywork status -n NS --project NAME")
        ns = args.namespace
        if args.logs:
            raise _refuse(
                f"{form} --logs",
                "logs belong to a run, named by its run id",
                f"bodywork status{_ns_text(ns)} to find the run, "
                f"then bodywork logs{_ns_text(ns)} RUN",
            )
        project = ["--project", args.name] if args.name else []
        remarks = [_dropped("SERVICE", "status shows every stage")] if args.service_name else []
        return _Today(["status", *_ns(ns), *project], remarks)
    parser = _v3_parser(form)
    parser.add_argument("name")
    parser.add_argument("--async", dest="asynchronous", action="store_true")
    args = _parse(parser, form, rest, "bodywork cleanup -n NS --project NAME --services")
    raise _refuse(
        form,
        "v3 deleted the whole namespace the pipeline ran in",
        f"bodywork cleanup{_ns_text(args.namespace)} --project {shlex.quote(args.name)} "
        "--services (try --dry-run first), or kubectl delete namespace NS",
    )


def _v3_cronjob(verb: str, form: str, rest: list[str]) -> _Today:
    if verb in ("create", "update"):
        hint = "bodywork cronjob create -n NS URL --schedule CRON --name NAME --branch B"
        parser = _v3_parser(form)
        parser.add_argument("git_url")
        parser.add_argument("git_branch", nargs="?")
        parser.add_argument("--branch")
        parser.add_argument("--schedule", required=True)
        parser.add_argument("--name")
        parser.add_argument("--retries", type=int)
        parser.add_argument("--history-limit", type=int)
        parser.add_argument("--ssh", "--ssh-key-path")
        parser.add_argument("--group", "--secrets-group")
        args = _parse(parser, form, rest, hint)
        if args.ssh:
            raise _refuse_ssh(form, args.namespace)
        branch = _one_branch(form, args.git_branch, args.branch)
        argv = ["cronjob", "create", *_ns(args.namespace), args.git_url]
        argv += ["--schedule", args.schedule, *(["--name", args.name] if args.name else [])]
        remarks = [] if args.namespace else [V3_NAMESPACE]
        remarks += [GROUP_DROPPED] if args.group else []
        remarks += [RETRIES_DROPPED] if args.retries is not None else []
        remarks += [HISTORY_DROPPED] if args.history_limit is not None else []
        return _Today(argv + _branch(branch), remarks)
    if verb == "get":
        parser = _v3_parser(form)
        parser.add_argument("name", nargs="?")
        parser.add_argument("--history", action="store_true")
        parser.add_argument("--logs")
        args = _parse(parser, form, rest, "bodywork cronjob list|history -n NS")
        ns, name = args.namespace, args.name
        if args.history and args.logs:
            raise _usage(form, "--logs and --history together", "bodywork cronjob history NAME")
        if args.logs:
            raise _refuse(
                f"{form} --logs",
                "logs belong to a run, named by its run id",
                f"bodywork cronjob history{_ns_text(ns)} {shlex.quote(name or 'NAME')} lists "
                f"its runs, then bodywork logs{_ns_text(ns)} RUN",
            )
        if name and args.history:
            return _Today(["cronjob", "history", *_ns(ns), name])
        remarks = [_dropped("NAME", "cronjob list shows every schedule")] if name else []
        return _Today(["cronjob", "list", *_ns(ns)], remarks)
    parser = _v3_parser(form)
    parser.add_argument("name")
    args = _parse(parser, form, rest, "bodywork cronjob delete -n NS NAME")
    return _Today(["cronjob", "delete", *_ns(args.namespace), args.name])


def _v3_secret(verb: str, form: str, rest: list[str]) -> _Today:
    parser = _v3_parser(form)
    parser.add_argument("name", nargs="?")
    parser.add_argument("--name", dest="name_option")  # the docs' form
    parser.add_argument("--group")
    if verb in ("create", "update"):
        hint = "bodywork secret create -n NS GROUP-NAME KEY=VALUE..."
        parser.add_argument("--data", nargs="+", action="extend", default=[])
        args = _parse(parser, form, rest, hint)
        name = _one_name(form, args.name, args.name_option, hint)
        if not name:
            raise _usage(form, "it needs NAME", hint)
        if not args.group:
            raise _usage(form, "it needs --group GROUP (v3 named the Secret GROUP-NAME)", hint)
        if not args.data:
            raise _usage(form, "it needs --data KEY=VALUE", hint)
        data = list(args.data)
        argv = ["secret", "create", *_ns(args.namespace), _grouped(args.group, name), *data]
        remarks = [] if args.namespace else ["add -n NS: the Secret must be in the run's namespace"]
        return _Today(argv, remarks, hidden=frozenset(data))
    if verb == "get":
        args = _parse(parser, form, rest, "bodywork secret list -n NS")
        narrowed = args.name or args.name_option or args.group
        remarks = [_dropped("NAME", "secret list shows every Secret's keys")] if narrowed else []
        return _Today(["secret", "list", *_ns(args.namespace)], remarks)
    hint = "bodywork secret delete -n NS GROUP-NAME"
    args = _parse(parser, form, rest, hint)
    name = _one_name(form, args.name, args.name_option, hint)
    if name and args.group:
        return _Today(["secret", "delete", *_ns(args.namespace), _grouped(args.group, name)])
    if args.group:
        raise _refuse(
            f"{form} --group",
            "Secrets have no groups today",
            f"bodywork secret list{_ns_text(args.namespace)}, then bodywork secret delete "
            f"{shlex.quote(args.group.strip().lower())}-NAME for each",
        )
    raise _usage(form, "it needs NAME and --group GROUP", hint)


def _grouped(group: str, name: str) -> str:
    """v3's Secret NAME of group GROUP, as a bodywork.yaml with `secrets_group` reads it."""
    return f"{group.strip().lower()}-{name.strip().lower()}"


def _one_name(form: str, positional: str | None, option: str | None, hint: str) -> str | None:
    if positional and option and positional != option:
        raise _usage(form, f"two names, '{positional}' and '{option}'", hint)
    return option or positional


V3Handler = Callable[[str, str, list[str]], _Today]
V3_KINDS: dict[str, V3Handler] = {
    "deployment": _v3_deployment,
    "deployments": _v3_deployment,
    "cronjob": _v3_cronjob,
    "cronjobs": _v3_cronjob,
    "secret": _v3_secret,
    "secrets": _v3_secret,
}


def _v3(verb: str, rest: list[str]) -> _Today:
    kind = rest[0] if rest else ""
    if kind not in V3_KINDS:
        shown = f" {_shown_extras([kind])}" if kind else ""
        raise _usage(
            f"{verb}{shown}",
            "the kind is deployment, cronjob or secret",
            "bodywork deploy|status|cronjob|secret",
        )
    return V3_KINDS[kind](verb, f"{verb} {kind}", rest[1:])


_LEGACY: dict[str, Handler] = {
    "setup-namespace": _setup_namespace,
    "deployment": _deployment,
    "service": _service,
    "debug": _debug,
    "configure-cluster": _configure_cluster,
    "version": _version,
    "create": _v3,
    "update": _v3,
    "get": _v3,
    "delete": _v3,
}
# Today's commands the original also had: (is this line marked as the original's?, handler).
_SHARED: dict[str, tuple[Callable[[list[str]], bool], Handler]] = {
    "workflow": (_workflow_marked, _workflow),
    "cronjob": (_cronjob_marked, _cronjob),
    "secret": (_secret_marked, _secret),
    "validate": (_validate_marked, _validate),
}
