"""`bodywork stage`: fetch, install, run one stage; exit with the stage's own exit code."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bodywork_bootstrap import (
    EXIT_FETCH_FAILED,
    EXIT_INSTALL_FAILED,
    EXIT_STAGE_INVALID,
    envnames,
    gitfetch,
    redaction,
    venv,
)

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bodywork stage",
        description="Run one stage of a Bodywork project at a pinned commit.",
    )
    parser.add_argument("--repo", required=True, help="git URL of the project")
    parser.add_argument("--commit", required=True, help="full commit SHA to run")
    parser.add_argument("--stage", required=True, help="stage directory name")
    parser.add_argument("--script", required=True, help="module inside the stage directory")
    parser.add_argument("--project", default="", help=f"project name ({envnames.PROJECT})")
    parser.add_argument("--run-id", default="", help=f"run id ({envnames.RUN_ID})")
    parser.add_argument("--project-dir", default="", help="project root inside the repo")
    parser.add_argument("--workdir", default=None, help="where to check out (default: temp)")
    parser.add_argument("--venv-root", default=None, help="where venvs are kept")
    parser.add_argument("--cache-dir", default=None, help="uv cache shared by stages")
    parser.add_argument("--artifacts-dir", default=None, help=envnames.ARTIFACTS_DIR)
    parser.add_argument("--termination-log", default=None, help="file for the failure reason")
    return parser


def run_child(command: list[str], cwd: Path, env: dict[str, str]) -> int:
    """Run the stage's module, forwarding termination signals; return its exit status."""
    received: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    # Handlers go in before the child starts, so a signal in between is not lost.
    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        child = subprocess.Popen(command, cwd=cwd, env=env)
        for signum in received:  # arrived while the child was being started
            child.send_signal(signum)
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code  # killed by signal N → 128+N, as shells do


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bodywork-stage-"))
    checkout = workdir / "src"
    _say(f"fetching {redaction.redact(args.repo)} at {args.commit[:12]}")
    try:
        gitfetch.fetch_commit(args.repo, args.commit, checkout)
    except gitfetch.FetchError as exc:
        return _fail(EXIT_FETCH_FAILED, str(exc), args.termination_log)
    finally:
        gitfetch.forget_private_keys()  # the stage's code never finds a copy of the key

    project_root = (checkout / args.project_dir).resolve()
    stage_dir = project_root / args.stage
    script = stage_dir / args.script
    if not script.is_file():
        return _fail(
            EXIT_STAGE_INVALID,
            f"{args.stage}/{args.script} does not exist at commit {args.commit[:12]}",
            args.termination_log,
        )

    venv_root = Path(args.venv_root) if args.venv_root else workdir / "venvs"
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    try:
        python = venv.ensure_venv(
            stage_dir / "requirements.txt", venv_root, args.stage, cache_dir, _say
        )
    except venv.InstallError as exc:
        return _fail(
            EXIT_INSTALL_FAILED,
            f"cannot install requirements for stage '{args.stage}': {exc}",
            args.termination_log,
        )

    artifacts = Path(args.artifacts_dir or workdir / "artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop(envnames.GIT_TOKEN, None)  # the Git token was for fetching, not for stage code
    bin_dir = str(python.parent)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(project_root), env.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",  # stage output must stream live, not arrive at exit
        VIRTUAL_ENV=str(python.parent.parent),
        PATH=os.pathsep.join(filter(None, [bin_dir, env.get("PATH")])),
    )
    env.update(
        {
            envnames.PROJECT: args.project,
            envnames.STAGE: args.stage,
            envnames.RUN_ID: args.run_id,
            envnames.GIT_COMMIT: args.commit,
            envnames.ARTIFACTS_DIR: str(artifacts),
        }
    )
    _say(f"ready in {time.monotonic() - started:.2f}s; running {args.stage}/{args.script}")
    return run_child([str(python), "-u", str(script)], stage_dir, env)
