"""Benchmark local mode: what the engine costs per step, and how fast a stage starts.

Run from the repository root:

    python bench/bench_local.py [--stages N] [--repeat R] [--quick]

It measures two things and prints each figure next to its target. It asserts nothing
about timings: a slow machine prints slow figures, it does not fail.

1. Orchestration overhead per step. A throw-away git repo holds a DAG of N sequential
   no-op batch stages (empty requirements.txt, script `pass`). It is run through the
   engine in-process exactly as `bodywork run` does (gitsource.resolve → config.load_project
   → plan.build_plan → workflow.run_workflow with a LocalExecutor), and, for comparison,
   the same N stage-bootstrap processes are run directly one after another with the very
   arguments the executor would give them (LocalExecutor._command). The difference divided
   by N is what the engine adds per step: resolving and reading the project, threads,
   polling, log pumping. Venvs are warm for both (one untimed run first). Target ≤ 0.1 s.

2. Stage start with the example's real requirements
   (examples/train-and-deploy/stage-2-serve-model/requirements.txt: scikit-learn, joblib,
   flask, from PyPI). The stage's script only prints a timestamp, so each figure is the
   time from launching the bootstrapper to the stage's module running:
     (a) uv, cold: a new, empty uv cache and a new venv root;
     (b) uv, warm cache: the cache from (a), a new venv root (uv links from its cache);
     (c) uv, warm venv: requirements unchanged, so the venv from (b) is reused;
     (d) for comparison, `python -m venv` + `pip install -r` (+ the same script), with
         `--no-cache-dir` (cold), into an empty pip cache (filling it), and with that
         cache warm. pip is pointed at PyPI alone, like uv (local pip.conf and
         PIP_FIND_LINKS are ignored), so both fetch the same files.
   The uv figures include the bootstrapper's git fetch; the pip figures do not.
   Targets: warm venv ≤ 1 s (plus the module's own time, ~0 here); uv ≥ 10× faster than
   pip. `--quick` skips the pip cold run.

Everything lives in a temporary directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bodywork.cli import logsetup
from bodywork.core import config, plan, results
from bodywork.engine import gitsource, workflow
from bodywork.engine.executors.local import LocalExecutor, LocalHandle

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_REQUIREMENTS = (
    REPO_ROOT / "examples" / "train-and-deploy" / "stage-2-serve-model" / "requirements.txt"
)
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}
OVERHEAD_TARGET_SECONDS = 0.1
WARM_START_TARGET_SECONDS = 1.0
UV_SPEEDUP_TARGET = 10.0
START_MARKER = "stage-started-at"
START_SCRIPT = f'import time\nprint(f"{START_MARKER} {{time.time():.6f}}", flush=True)\n'


# ---------------------------------------------------------------------------- helpers
def clean_env() -> dict[str, str]:
    """This process's environment without uv settings, so the benchmark picks its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith("UV_")}


def run(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a command; on failure stop the benchmark with its output."""
    done = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"command failed ({done.returncode}): {' '.join(command)}\n{done.stdout}")
    return done.stdout


def make_repo(path: Path, files: dict[str, str]) -> str:
    """A committed git repo at `path` holding `files`; returns the commit SHA."""
    for relative, text in files.items():
        target = path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    env = {**os.environ, **GIT_IDENTITY}
    run(["git", "init", "-q", "-b", "main"], env, path)
    run(["git", "add", "-A"], env, path)
    run(["git", "commit", "-q", "-m", "bench"], env, path)
    return run(["git", "rev-parse", "HEAD"], env, path).strip()


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def target_mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


# ---------------------------------------------------------------------------- 1. overhead
def noop_project(stages: int) -> dict[str, str]:
    names = [f"step{i:02d}" for i in range(1, stages + 1)]
    files = {
        "bodywork.ini": (
            f'[default]\nPROJECT_NAME = "bench-noop"\n\n[workflow]\nDAG = {" >> ".join(names)}\n'
        )
    }
    for name in names:
        files[f"{name}/config.ini"] = (
            '[default]\nSTAGE_TYPE = "batch"\nEXECUTABLE_SCRIPT = "main.py"\n'
        )
        files[f"{name}/main.py"] = "pass\n"
        files[f"{name}/requirements.txt"] = ""
    return files


def load_plan(repo: Path) -> plan.Plan:
    """What cli.settings.load_plan does: pin HEAD, read the config at that commit, plan the run."""
    source = gitsource.resolve(str(repo), None, warn=lambda message: None)
    with tempfile.TemporaryDirectory(prefix="bench-config-") as tmp:
        root = gitsource.checkout(source, Path(tmp) / "src")
        project = config.load_project(root, gitsource.project_fallback_name(source))
    return plan.build_plan(project, source, plan.new_run_id())


def run_engine(repo: Path, home: Path, env: dict[str, str]) -> tuple[float, float]:
    """One in-process `bodywork run`; returns (total seconds, of which planning)."""
    started = time.perf_counter()
    the_plan = load_plan(repo)
    planned = time.perf_counter()
    executor = LocalExecutor(lambda stage, line: None, home, env)
    try:
        outcome = workflow.run_workflow(the_plan, executor)
    finally:
        executor.close()
    total = time.perf_counter() - started
    if not outcome.succeeded:
        sys.exit(f"engine run failed:\n{results.format_summary(outcome)}")
    return total, planned - started


def direct_commands(
    repo: Path, home: Path, env: dict[str, str], workdir: Path
) -> list[tuple[list[str], dict[str, str]]]:
    """The bootstrap command line and environment the executor would use for each stage."""
    the_plan = load_plan(repo)
    executor = LocalExecutor(lambda stage, line: None, home, env)
    executor.prepare(the_plan)
    commands = []
    for stage in the_plan.stages:
        handle = LocalHandle(stage=stage, workdir=workdir / stage.name, attempts=1)
        handle.workdir.mkdir(parents=True)
        stage_env = {**env, **stage.env(), "PYTHONUNBUFFERED": "1"}
        commands.append((executor._command(handle), stage_env))
    return commands


def run_direct(commands: list[tuple[list[str], dict[str, str]]]) -> float:
    """Run the bootstrap processes one after another, output piped as the executor does."""
    started = time.perf_counter()
    for command, env in commands:
        run(command, env)
    return time.perf_counter() - started


def bench_overhead(tmp: Path, stages: int, repeat: int) -> None:
    print(f"1. Orchestration overhead: {stages} sequential no-op batch stages, best of {repeat}")
    repo = tmp / "noop-repo"
    make_repo(repo, noop_project(stages))
    home = tmp / "noop-home"
    env = clean_env()  # no UV_CACHE_DIR: the executor passes --cache-dir under home

    run_engine(repo, home, env)  # warm-up: builds every stage's venv
    run_direct(direct_commands(repo, home, env, tmp / "direct-warmup"))

    engine_runs, plan_runs, direct_runs = [], [], []
    for attempt in range(repeat):
        total, planning = run_engine(repo, home, env)
        engine_runs.append(total)
        plan_runs.append(planning)
        commands = direct_commands(repo, home, env, tmp / f"direct-{attempt}")
        direct_runs.append(run_direct(commands))

    engine, direct = min(engine_runs), min(direct_runs)
    planning = statistics.median(plan_runs)
    overhead = (engine - direct) / stages
    print(f"   engine (bodywork run, in-process)   {engine:7.2f} s")
    print(f"     of which resolve+config+plan     {planning:7.2f} s  (once per run)")
    print(f"   bootstrap processes run directly    {direct:7.2f} s")
    print(f"   per step: direct                    {direct / stages:7.3f} s")
    print(
        f"   per step: engine overhead           {overhead:7.3f} s   "
        f"target ≤ {OVERHEAD_TARGET_SECONDS} s  {target_mark(overhead <= OVERHEAD_TARGET_SECONDS)}"
    )
    per_step_running = (engine - planning - direct) / stages
    print(f"   per step: overhead without planning {per_step_running:7.3f} s")
    print()


# ---------------------------------------------------------------------------- 2. stage start
@dataclass
class StartTime:
    label: str
    seconds: float
    ready_in: str = ""  # what the bootstrapper itself reports, when it ran


def started_at(output: str) -> float:
    for line in output.splitlines():
        if line.startswith(START_MARKER):
            return float(line.split()[1])
    sys.exit(f"the stage never started:\n{output}")


def bootstrap_start(
    label: str, repo: Path, commit: str, tmp: Path, venv_root: Path, cache: Path
) -> StartTime:
    """Time from launching the bootstrapper to the stage's script running."""
    workdir = Path(tempfile.mkdtemp(prefix="stage-", dir=tmp))
    command = [
        sys.executable,
        "-m",
        "bodywork_bootstrap",
        "--repo",
        repo.as_uri(),
        "--commit",
        commit,
        "--stage",
        "serve",
        "--script",
        "start.py",
        "--workdir",
        str(workdir),
        "--venv-root",
        str(venv_root),
        "--cache-dir",
        str(cache),
        "--artifacts-dir",
        str(tmp / "artifacts"),
    ]
    launched = time.time()
    output = run(command, clean_env())
    said = [ln for ln in output.splitlines() if "[bodywork] prepared in" in ln]
    ready_in = said[-1].split("prepared in ")[1].split(";")[0] if said else ""
    return StartTime(label, started_at(output) - launched, ready_in)


def pip_env(cache: Path | None) -> dict[str, str]:
    """pip reading PyPI only, like uv: no pip.conf, no find-links, no version check."""
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    if cache is not None:
        env["PIP_CACHE_DIR"] = str(cache)
    return env


def pip_start(label: str, tmp: Path, requirements: Path, cache: Path | None) -> StartTime:
    """Time for `python -m venv` + `pip install -r` + running the same script."""
    venv = Path(tempfile.mkdtemp(prefix="pip-venv-", dir=tmp))
    script = tmp / "start.py"
    script.write_text(START_SCRIPT)
    env = pip_env(cache)
    cache_flag = [] if cache is not None else ["--no-cache-dir"]
    launched = time.time()
    run([sys.executable, "-m", "venv", str(venv)], env)
    run([str(venv / "bin" / "pip"), "install", "-q", *cache_flag, "-r", str(requirements)], env)
    output = run([str(venv / "bin" / "python"), "-u", str(script)], env)
    return StartTime(label, started_at(output) - launched)


def print_start_table(rows: list[StartTime]) -> None:
    print(f"   {'how':<44} {'to module start':>15}  {'bootstrap says':>14}")
    for row in rows:
        note = ""
        if row.label.startswith("(c)"):
            ok = row.seconds <= WARM_START_TARGET_SECONDS
            note = f"  target ≤ {WARM_START_TARGET_SECONDS:.0f} s  {target_mark(ok)}"
        ready = f"ready in {row.ready_in}" if row.ready_in else ""
        print(f"   {row.label:<44} {row.seconds:13.2f} s  {ready:>14}{note}".rstrip())


def print_ratio(name: str, slow: StartTime | None, fast: StartTime, target: bool) -> None:
    if slow is None:
        print(f"   {name:<44} skipped (--quick)")
        return
    ratio = slow.seconds / fast.seconds
    note = f"  target ≥ {UV_SPEEDUP_TARGET:.0f}×  {target_mark(ratio >= UV_SPEEDUP_TARGET)}"
    print(f"   {name:<44} {ratio:8.1f}×{note if target else ''}")


def bench_stage_start(tmp: Path, quick: bool) -> None:
    requirements = EXAMPLE_REQUIREMENTS.read_text()
    packages = ", ".join(line.strip() for line in requirements.splitlines() if line.strip())
    print(f"2. Stage start with the example's requirements ({packages})")
    repo = tmp / "start-repo"
    commit = make_repo(
        repo, {"serve/requirements.txt": requirements, "serve/start.py": START_SCRIPT}
    )
    uv_cache = tmp / "uv-cache"

    cold = bootstrap_start("(a) uv, cold cache, new venv", repo, commit, tmp, tmp / "v1", uv_cache)
    warm_cache = bootstrap_start(
        "(b) uv, warm cache, new venv", repo, commit, tmp, tmp / "v2", uv_cache
    )
    warm_venv = bootstrap_start(
        "(c) uv, warm venv (reused)", repo, commit, tmp, tmp / "v2", uv_cache
    )

    pip_cold = None
    if not quick:
        pip_cold = pip_start("(d) pip, --no-cache-dir", tmp, EXAMPLE_REQUIREMENTS, None)
    pip_cache = tmp / "pip-cache"
    pip_filling = pip_start(
        "(d) pip, empty cache (filling it)", tmp, EXAMPLE_REQUIREMENTS, pip_cache
    )
    pip_warm = pip_start("(d) pip, warm cache", tmp, EXAMPLE_REQUIREMENTS, pip_cache)

    rows = [cold, warm_cache, warm_venv, *([pip_cold] if pip_cold else []), pip_filling, pip_warm]
    print_start_table(rows)
    print("   speed-up of uv over pip:")
    print_ratio("pip --no-cache-dir / uv cold cache", pip_cold, cold, target=True)
    print_ratio("pip warm cache / uv warm cache", pip_warm, warm_cache, target=True)
    print_ratio("pip warm cache / uv warm venv", pip_warm, warm_venv, target=False)
    print()


# ---------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=10, help="no-op stages in the DAG")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the best counts")
    parser.add_argument("--quick", action="store_true", help="skip the pip --no-cache-dir run")
    args = parser.parse_args()

    logsetup.configure_logging("error")  # the engine's log lines would drown the figures
    print(f"bodywork local-mode benchmark (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print()
    with tempfile.TemporaryDirectory(prefix="bodywork-bench-", ignore_cleanup_errors=True) as tmp:
        bench_overhead(Path(tmp), args.stages, args.repeat)
        bench_stage_start(Path(tmp), args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
