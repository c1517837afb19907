"""`bodywork stage`: fetch, install, run one stage; exit with the stage's own exit code.

    bodywork stage --repo URL --commit SHA --stage NAME --module PATH [options] [-- ARGS...]

PATH is relative to the project root (the checkout, or --project-dir inside it), such as
`pipeline/train.py` or `stage_1/main.py`; a `.ipynb` module runs as a notebook. Everything
after a literal `--` is passed on to the module. `--script FILE` is the older form: the
module is `<stage>/<FILE>` and its requirements `<stage>/requirements.txt`.

Time limits count from the moment the module's process starts, so installing requirements
never uses up MAX_COMPLETION_TIME_SECONDS or MAX_STARTUP_TIME_SECONDS; fetching and
installing together have their own bound (--max-install-seconds).

The code comes from the commit cache (--commit-cache, default beside the venv root) when it
holds the commit, and is fetched into it once otherwise (gitfetch.checkout_commit). Before
the module starts, and again when it exits 0 (or a service listens), one line gives the
stage's timeline: `[bodywork] timing start=<epoch> checkout=+s venv=+s module=+s
exited=+s`, the start being the container's first process (or this one), then offsets in
seconds, and how the code and the venv were had (`checkout_from=`, `venv_from=`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import NoReturn

from bodywork_bootstrap import (
    EXIT_FETCH_FAILED,
    EXIT_INSTALL_FAILED,
    EXIT_NOT_READY,
    EXIT_RUN_TIMED_OUT,
    EXIT_STAGE_INVALID,
    envnames,
    gitfetch,
    redaction,
    supervise,
    venv,
)
from bodywork_bootstrap import status as status_dir
from bodywork_bootstrap.supervise import FORWARDED_SIGNALS, run_child

__all__ = ["FORWARDED_SIGNALS", "build_parser", "main", "run_child"]

MODULE_ARGS_SEPARATOR = "--"  # what follows it on the command line goes to the module
NOTEBOOK_SUFFIX = ".ipynb"
NOTEBOOK_RUNNER = Path(__file__).resolve().with_name("notebook.py")  # run by the venv's python
INLINE_REQUIREMENTS_FILE = "stage-requirements.txt"  # in the workdir, never in the checkout
HANDOFF_UV = "bin/uv"  # inside the --handoff directory


def _say(message: str) -> None:
    # The bootstrapper's own lines are marked so they stand out from the stage's output.
    print(f"[bodywork] {message}", file=sys.stderr, flush=True)


def _fail(code: int, message: str, termination_log: str | None) -> int:
    _say(message)
    if termination_log:
        # Kubernetes shows this file's text as the container's termination message,
        # which is how the controller names a bootstrap failure without reading logs.
        with contextlib.suppress(OSError):
            Path(termination_log).write_text(message[:4000])
    return code


def seconds_argument(text: str) -> float:
    """An argparse type: a number of seconds above 0 (also the artifacts command's)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"not a port number (1-65535): {text!r}")
    return value


def _n(seconds: float) -> str:
    return f"{seconds:g}"  # 30.0 → "30", as the user wrote it in the config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bodywork stage",
        description="Run one stage of a Bodywork project at a pinned commit.",
        epilog="Arguments after a literal `--` are passed to the module.",
        allow_abbrev=False,
    )
    parser.add_argument("--repo", required=True, help="git URL of the project")
    parser.add_argument("--commit", required=True, help="full commit SHA to run")
    parser.add_argument(
        "--stage", required=True, help=f"the stage's name ({envnames.STAGE}, venv naming)"
    )
    module = parser.add_mutually_exclusive_group(required=True)
    module.add_argument(
        "--module", default=None, help="module to run, relative to the project root (POSIX)"
    )
    module.add_argument(
        "--script",
        default=None,
        help="older form: the module <stage>/SCRIPT, requirements <stage>/requirements.txt",
    )
    requirements = parser.add_mutually_exclusive_group()
    requirements.add_argument(
        "--requirements-file",
        default=None,
        help="requirements file relative to the project root (missing: no requirements)",
    )
    requirements.add_argument(
        "--requirement",
        action="append",
        default=None,
        metavar="SPEC",
        help="one requirement of the stage's inline list (repeatable)",
    )
    parser.add_argument("--project", default="", help=f"project name ({envnames.PROJECT})")
    parser.add_argument("--run-id", default="", help=f"run id ({envnames.RUN_ID})")
    parser.add_argument("--project-dir", default="", help="project root inside the repo")
    parser.add_argument("--workdir", default=None, help="where to check out (default: temp)")
    parser.add_argument("--venv-root", default=None, help="where venvs are kept")
    parser.add_argument("--cache-dir", default=None, help="uv cache shared by stages")
    parser.add_argument(
        "--commit-cache",
        default=None,
        metavar="DIR",
        help="checkouts kept by commit, shared by stages (default: VENV_ROOT/../commits)",
    )
    parser.add_argument("--artifacts-dir", default=None, help=envnames.ARTIFACTS_DIR)
    parser.add_argument("--termination-log", default=None, help="file for the failure reason")
    parser.add_argument(
        "--max-install-seconds",
        type=seconds_argument,
        default=None,
        metavar="N",
        help="bound on fetching and installing together (MAX_INSTALL_TIME_SECONDS)",
    )
    parser.add_argument(
        "--max-run-seconds",
        type=seconds_argument,
        default=None,
        metavar="N",
        help="batch: stop the module N s after it starts (MAX_COMPLETION_TIME_SECONDS)",
    )
    parser.add_argument(
        "--port", type=_port, default=None, metavar="P", help="service: the port it listens on"
    )
    parser.add_argument(
        "--max-startup-seconds",
        type=seconds_argument,
        default=None,
        metavar="N",
        help="service: stop it unless it listens on --port within N s of starting "
        "(MAX_STARTUP_TIME_SECONDS)",
    )
    handoff = parser.add_argument_group(
        "init-container hand-off (a stage in an image without Bodywork)"
    )
    handoff.add_argument(
        "--fetch-only",
        action="store_true",
        help="fetch and check the commit into WORKDIR/src, then exit (the init container)",
    )
    handoff.add_argument(
        "--handoff",
        default=None,
        metavar="DIR",
        help="with --fetch-only: copy this bootstrapper and uv into DIR for the stage's image",
    )
    handoff.add_argument(FETCH_SECONDS_FLAG, type=float, default=0.0, help=argparse.SUPPRESS)
    handoff.add_argument(TIMELINE_FLAG, default="", help=argparse.SUPPRESS)
    parser.add_argument(
        STATUS_DIR_FLAG,
        default=None,
        metavar="DIR",
        help="touch DIR/heartbeat every 2 s while this runs, and write the exit code to "
        "DIR/exit however it ends (read by `artifacts push` in the pod; see status.py)",
    )
    parser.add_argument(
        "--lifeline-fd",
        type=int,
        default=None,
        metavar="FD",
        help="read end of a pipe only the parent holds: at its EOF (the parent died, even by "
        "SIGKILL) end the stage and everything it started",
    )
    handoff.add_argument(
        "--checkout-ready",
        action="store_true",
        help="use the checkout already in WORKDIR/src (verified to be --commit); no fetch",
    )
    return parser


def hand_over(directory: Path) -> None:
    """Copy this stdlib-only package and the uv binary into `directory`: all a stage needs
    to bootstrap in any image with a python3 (PYTHONPATH=DIR, BODYWORK_UV=DIR/bin/uv)."""
    package = Path(__file__).resolve().parent
    target = directory / package.name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__"))
    (directory / "bin").mkdir(parents=True, exist_ok=True)
    uv = directory / HANDOFF_UV
    shutil.copy2(venv.uv_executable(), uv)
    uv.chmod(0o755)


def _without_handoff(pythonpath: str | None) -> str | None:
    """PYTHONPATH minus the folder this bootstrapper was handed over in: not the stage's."""
    if not pythonpath:
        return pythonpath
    ours = str(Path(__file__).resolve().parent.parent)
    kept = [p for p in pythonpath.split(os.pathsep) if p and os.path.realpath(p) != ours]
    return os.pathsep.join(kept) or None


CREDENTIAL_ENV = (envnames.GIT_TOKEN, envnames.GIT_SSH_DIR, envnames.GIT_SSH_KEY)
FETCH_SECONDS_FLAG = "--fetched-in"  # set by the re-exec: the fetch's time, for the timing line
TIMELINE_FLAG = "--timeline"  # set by the re-exec: the timeline so far (Timeline.encode)
TIMING_PREFIX = "timing "  # of the timeline line (parsed by bodywork.core.results)
COMMITS_DIR = "commits"  # the default commit cache: beside the venv root
LOCKS_DIR = "locks"  # and the requirement sets' resolutions


def _started(pid: int) -> float | None:
    """Wall-clock time process `pid` started, from /proc (Linux); None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # starttime: clock ticks after boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return time.time() - max(0.0, age)


def process_started() -> float:
    """When this stage began: the container's first process when that is this one's parent
    (PID 1, tini in Bodywork's image), else this process (kept across the re-exec)."""
    if os.getppid() == 1:
        first = _started(1)
        if first is not None:
            return first
    return _started(os.getpid()) or time.time()


class Timeline:
    """When each phase of the stage ended: a wall-clock start, then offsets (seconds), and a
    few words on how (`checkout_from`, `venv_from`)."""

    def __init__(self, start: float):
        self.start = start
        self.marks: dict[str, float] = {}
        self.notes: dict[str, str] = {}

    def mark(self, phase: str, at: float | None = None) -> None:
        self.marks[phase] = max(0.0, (time.time() if at is None else at) - self.start)

    def note(self, name: str, value: str) -> None:
        self.notes[name] = re.sub(r"\W+", "-", value).strip("-")

    def line(self) -> str:
        marks = " ".join(f"{k}=+{v:.3f}" for k, v in self.marks.items())
        notes = " ".join(f"{k}={v}" for k, v in self.notes.items())
        return " ".join(filter(None, [f"{TIMING_PREFIX}start={self.start:.3f}", marks, notes]))

    def encode(self) -> str:
        parts = [f"start={self.start:.3f}", *(f"{k}=+{v:.3f}" for k, v in self.marks.items())]
        return ",".join([*parts, *(f"{k}={v}" for k, v in self.notes.items())])

    @classmethod
    def decode(cls, text: str, default_start: float) -> Timeline:
        pairs = dict(p.split("=", 1) for p in text.split(",") if "=" in p)
        try:
            timeline = cls(float(pairs.pop("start")))
        except (KeyError, ValueError):
            return cls(default_start)
        for key, value in pairs.items():
            if value.startswith("+"):
                with contextlib.suppress(ValueError):
                    timeline.marks[key] = float(value[1:])
            else:
                timeline.notes[key] = value
        return timeline


def holds_credentials(environ: dict[str, str] | os._Environ[str]) -> bool:
    return any(environ.get(name) for name in CREDENTIAL_ENV)


def _reexec_without_credentials(
    own: list[str],
    module_args: list[str],
    fetch_seconds: float,
    deadline: float | None,
    lifeline_fd: int | None,
    timeline: Timeline,
) -> NoReturn:
    """Run the rest (install, the module) as a fresh process image of this bootstrapper, on
    the checkout just made, with an environment that holds no Git credentials."""
    argv = [sys.executable, "-m", "bodywork_bootstrap", *own, "--checkout-ready"]
    argv += [FETCH_SECONDS_FLAG, f"{fetch_seconds:.3f}", TIMELINE_FLAG, timeline.encode()]
    if deadline is not None:  # what is left of MAX_INSTALL_TIME_SECONDS after the fetch
        left = max(0.001, deadline - time.monotonic())
        at = argv.index("--max-install-seconds")
        argv[at + 1] = f"{left:.3f}"
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_ENV}
    if lifeline_fd is not None:  # the new image watches the same pipe (--lifeline-fd is in own)
        os.set_inheritable(lifeline_fd, True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [*argv, "--", *module_args] if module_args else argv, env)


def split_module_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the bootstrapper's own arguments, the module's: everything after the first `--`)."""
    if MODULE_ARGS_SEPARATOR in argv:
        at = argv.index(MODULE_ARGS_SEPARATOR)
        return argv[:at], argv[at + 1 :]
    return argv, []


def path_problem(path: str, what: str) -> str | None:
    """Why `path` cannot name a file of the project (before looking at the checkout)."""
    pure = PurePosixPath(path)
    if pure.is_absolute():
        return f"{what} '{path}' must be relative to the project root, not absolute"
    if ".." in pure.parts:
        return f"{what} '{path}' must not contain '..': it must stay inside the project"
    return None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


STATUS_DIR_FLAG = "--status-dir"


def main(argv: list[str] | None = None) -> int:
    """The stage, reporting to --status-dir DIR when given: a heartbeat while it runs and
    DIR/exit on every way out (bodywork_bootstrap.status); a re-exec reports afresh."""
    own = split_module_args(list(sys.argv[1:] if argv is None else argv))[0]
    found = [a.partition("=")[2] for a in own if a.startswith(f"{STATUS_DIR_FLAG}=")]
    found += [own[i + 1] for i, a in enumerate(own[:-1]) if a == STATUS_DIR_FLAG]
    if not found or not found[-1]:
        return _main(argv)
    reporter = status_dir.Reporter(Path(found[-1]))
    reporter.start()
    code = 1  # an exception on the way out
    try:
        code = _main(argv)
        return code
    except SystemExit as exc:  # argparse's errors and --help
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
        raise
    finally:
        reporter.finish(code)


def _main(argv: list[str] | None = None) -> int:
    own, module_args = split_module_args(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(own)
    if args.max_startup_seconds is not None and args.port is None:
        parser.error("--max-startup-seconds needs --port")
    if args.lifeline_fd is not None:
        supervise.watch_parent(args.lifeline_fd)
    if args.fetch_only and args.checkout_ready:
        parser.error("--fetch-only fetches; --checkout-ready uses a fetched checkout: pick one")
    if args.handoff and not args.fetch_only:
        parser.error("--handoff goes with --fetch-only")
    started = time.monotonic()
    timeline = Timeline.decode(args.timeline, process_started()) if args.timeline else None
    timeline = timeline or Timeline(process_started())
    log = args.termination_log
    stage = args.stage

    def fail(code: int, message: str) -> int:
        _say(timeline.line())  # before the reason: the last line is what names a failure
        return _fail(code, message, log)

    if args.module is not None:
        module = args.module
        requirements_file = args.requirements_file
    else:  # the older form: everything of the stage sits in the directory named after it
        module = f"{stage}/{args.script}"
        requirements_file = args.requirements_file
        if requirements_file is None and args.requirement is None:
            requirements_file = f"{stage}/requirements.txt"
    problem = path_problem(module, "module path")
    if problem is None and requirements_file is not None:
        problem = path_problem(requirements_file, "requirements file")
    if problem is None and args.requirement and any("\n" in r for r in args.requirement):
        problem = "a requirement of the stage's list spans lines: give one requirement each"
    if problem:
        return _fail(EXIT_STAGE_INVALID, problem, log)
    deadline = None if args.max_install_seconds is None else started + args.max_install_seconds

    # Absolute: the module runs in its own folder, where a relative path means another place.
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bodywork-stage-")).absolute()
    for name in ("venv_root", "cache_dir", "commit_cache", "artifacts_dir"):
        if getattr(args, name):
            setattr(args, name, os.path.abspath(getattr(args, name)))
    checkout = workdir / "src"
    if args.checkout_ready:  # an init container fetched it; trust nothing but the SHA
        found = gitfetch.checked_out_commit(checkout)
        if found != args.commit:
            return fail(
                EXIT_FETCH_FAILED,
                f"the checkout handed over in {checkout} is at {found or 'no commit'}, "
                f"not {args.commit[:12]}: the init container did not fetch this run's commit",
            )
        if "checkout" not in timeline.marks:  # not this bootstrapper's own re-exec
            timeline.mark("checkout")
            timeline.note("checkout_from", "handed over")
    else:
        try:
            how = gitfetch.checkout_commit(
                args.repo, args.commit, checkout, _commit_cache(args), deadline=deadline,
                announce=lambda: _say(
                    f"fetching {redaction.redact(args.repo)} at {args.commit[:12]}"
                ),
                confirm_access=holds_credentials(os.environ),
            )  # fmt: skip
        except gitfetch.FetchTimedOut:
            return fail(
                EXIT_FETCH_FAILED,
                f"fetching the code for stage '{stage}' took longer than "
                f"{_n(args.max_install_seconds)} s (MAX_INSTALL_TIME_SECONDS, which bounds "
                "fetching and installing together): raise it, or check the Git server",
            )
        except gitfetch.FetchError as exc:
            return fail(EXIT_FETCH_FAILED, str(exc))
        finally:
            gitfetch.forget_private_keys()  # the stage's code never finds a copy of the key
        if how == gitfetch.CACHED:
            _say(f"code at {args.commit[:12]} copied from the commit cache (no fetch)")
        timeline.mark("checkout")
        timeline.note("checkout_from", how)
    fetched = time.monotonic()
    if not args.fetch_only and not args.checkout_ready and holds_credentials(os.environ):
        # /proc/<pid>/environ keeps a process's first environment for its whole life, and the
        # stage's code can read its parent's: become a process that never had the credentials.
        _reexec_without_credentials(
            own, module_args, fetched - started, deadline, args.lifeline_fd, timeline
        )

    root = checkout.resolve()
    project_root = (checkout / args.project_dir).resolve()
    if not _inside(project_root, root):
        return fail(EXIT_STAGE_INVALID, f"project dir '{args.project_dir}' is outside the checkout")
    script = project_root / module
    if not _inside(script.resolve(), root):
        return fail(
            EXIT_STAGE_INVALID,
            f"module path '{module}' resolves outside the checkout (through a symlink)",
        )
    if not script.is_file():
        return fail(EXIT_STAGE_INVALID, f"{module} does not exist at commit {args.commit[:12]}")

    if args.fetch_only:  # the init container: the stage's own image does the rest
        if args.handoff:
            try:
                hand_over(Path(args.handoff))
            except (OSError, venv.InstallError) as exc:
                return fail(EXIT_FETCH_FAILED, f"cannot hand over the bootstrapper: {exc}")
        _say(f"fetched {module} at {args.commit[:12]} in {fetched - started:.2f}s; handing over")
        return 0

    if requirements_file is not None:
        requirements = project_root / requirements_file
        if not _inside(requirements.resolve(), root):
            return fail(
                EXIT_STAGE_INVALID,
                f"requirements file '{requirements_file}' resolves outside the checkout "
                "(through a symlink)",
            )
        install_cwd = requirements.parent  # `./mylib` is the checkout's, next to the file
        label = requirements.name
    else:  # the inline list (or none): written outside the checkout, the key is its text
        requirements = workdir / INLINE_REQUIREMENTS_FILE
        requirements.write_text("".join(f"{spec}\n" for spec in args.requirement or []))
        install_cwd = script.parent
        label = "the stage's requirements"
    venv_root = Path(args.venv_root) if args.venv_root else workdir / "venvs"
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    try:
        built = venv.ensure_venv(
            requirements,
            venv_root,
            stage,
            cache_dir,
            _say,
            install_cwd=install_cwd,
            deadline=deadline,
            label=label,
            listed=requirements_file is None,
            checkout_root=root,
            lock_root=venv_root.parent / LOCKS_DIR,
            compile_bytecode=compile_bytecode(os.environ),
        )
    except venv.InstallTimedOut:
        return fail(
            EXIT_INSTALL_FAILED,
            f"installing requirements for stage '{stage}' took longer than "
            f"{_n(args.max_install_seconds)} s (MAX_INSTALL_TIME_SECONDS): raise it, "
            "or trim requirements",
        )
    except venv.InstallError as exc:
        return fail(EXIT_INSTALL_FAILED, f"cannot install requirements for stage '{stage}': {exc}")
    installed = time.monotonic()
    python = built.python
    timeline.mark("venv")
    timeline.note("venv_from", built.how)

    artifacts = Path(args.artifacts_dir or workdir / "artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop(envnames.GIT_TOKEN, None)  # the Git token was for fetching, not for stage code
    env.pop(envnames.UV, None)
    bin_dir = str(python.parent)
    inherited = _without_handoff(env.get("PYTHONPATH"))
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(project_root), inherited])),
        PYTHONUNBUFFERED="1",  # stage output must stream live, not arrive at exit
        VIRTUAL_ENV=str(python.parent.parent),
        PATH=os.pathsep.join(filter(None, [bin_dir, env.get("PATH")])),
    )
    env.update(
        {
            envnames.PROJECT: args.project,
            envnames.STAGE: stage,
            envnames.RUN_ID: args.run_id,
            envnames.GIT_COMMIT: args.commit,
            envnames.ARTIFACTS_DIR: str(artifacts),
        }
    )
    command = [str(python), "-u", str(script), *module_args]
    if script.suffix == NOTEBOOK_SUFFIX:
        command = [str(python), "-u", str(NOTEBOOK_RUNNER), str(script), *module_args]
    limits = supervise.Limits(
        max_run_seconds=args.max_run_seconds,
        port=args.port,
        max_startup_seconds=args.max_startup_seconds,
    )
    fetch_seconds = args.fetched_in + (fetched - started)  # a re-exec carries the fetch's
    timeline.mark("module")  # the module's process starts next (run_child)
    _say(timeline.line())
    _say(
        f"prepared in {args.fetched_in + time.monotonic() - started:.2f}s "
        f"(fetch {fetch_seconds:.2f}s, install {installed - fetched:.2f}s); running {module}"
    )

    def ready(at: float) -> None:
        timeline.mark("ready", at)
        _say(timeline.line())

    outcome = run_child(command, script.parent, env, limits, _say, on_ready=ready)
    timeline.mark("exited", outcome.exited_at)
    if outcome.how == supervise.RUN_TIMED_OUT:
        return fail(
            EXIT_RUN_TIMED_OUT,
            f"stage code ran longer than {_n(args.max_run_seconds)} s "
            "(MAX_COMPLETION_TIME_SECONDS; installation is not counted)",
        )
    if outcome.how == supervise.NOT_READY:
        return fail(
            EXIT_NOT_READY,
            f"service did not listen on port {args.port} within "
            f"{_n(args.max_startup_seconds)} s of starting "
            "(MAX_STARTUP_TIME_SECONDS; installation is not counted)",
        )
    if outcome.code == 0:  # a failure's last line is its reason: the module's, not this
        _say(timeline.line())
    return outcome.code


def compile_bytecode(environ: Mapping[str, str]) -> bool:
    """Whether to compile a new venv's modules when it is built. Python writes bytecode for
    what a module imports on its first run (cheaper than compiling every file of every
    package), unless the stage runs with PYTHONDONTWRITEBYTECODE: then no run ever would, and
    every import would compile again, so the build compiles them all once."""
    return bool(environ.get("PYTHONDONTWRITEBYTECODE"))


def _commit_cache(args: argparse.Namespace) -> Path | None:
    """--commit-cache, else `commits` beside the venv root; None without either."""
    if args.commit_cache:
        return Path(args.commit_cache)
    return Path(args.venv_root).parent / COMMITS_DIR if args.venv_root else None
