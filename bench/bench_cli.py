"""Benchmark the CLI itself: how fast a command starts, and how validate and render scale.

Run from the repository root:

    python bench/bench_cli.py [--repeat R] [--sizes 200,1000,10000] [--forms ini,yaml]
                              [--max-stages N] [--timeout S] [--instructions]

Every figure is a whole `bodywork` process, started the way the console script starts it
(`from bodywork.cli.main import main`), by the python of a new venv where a wheel of the tree
measured is installed, as pip or the image installs it: this checkout, or `--tree DIR` for
"before" figures. (The developer's editable install adds an import hook that costs every
process, `python -c pass` included, some 20 ms; `--as-is` measures the running interpreter
and its PYTHONPATH instead.) The wheel's dependencies are read from the running
interpreter's site-packages. Each figure is printed as min / median / max over the runs,
next to its target, with a ratio measured in the same run. Nothing is asserted about
timings: a slow machine prints slow figures, it does not fail.

1. CLI start: `python -c pass`, `bodywork --help`, and `bodywork validate` / `bodywork
   render` / `bodywork run` of a one-stage project (a committed git repo). For `run`, the
   CLI's part: launch → the stage's bootstrapper started (its timeline's wall-clock start),
   and the whole run beside it. The ratio is to `python -c pass` measured in the same
   rounds. Target: each command (run: to its stage) ≤ 0.1 s. `--instructions` adds each
   command's instruction count (valgrind's callgrind, its git processes included): it
   repeats to ±0.2% where a busy machine's times move by a third, so a change of a few
   percent shows; it leaves out I/O and cache misses.
2. Scale: a generated project of N stages (10 per step; every fifth a service with its own
   port, the others batch stages with retries and a secret), as bodywork.ini + config.ini
   files and as one bodywork.yaml, committed to a git repo; `validate` and `render` of it.
   The ratio is the time per stage against the smallest size's, so 1.0 is linear and a
   quadratic step shows as a ratio that grows with N. Targets: 10,000 stages validate in
   < 2 s and render in < 10 s. `--max-stages` skips larger sizes, `--max-render-stages`
   larger renders (a slow "before" run).

Byte-compiled files are written to a temporary PYTHONPYCACHEPREFIX and warmed by one untimed
run, so the figures are those of an installed package, even where PYTHONDONTWRITEBYTECODE is
set. Everything lives in a temporary directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START_TARGET_SECONDS = 0.1
VALIDATE_TARGET_SECONDS = 2.0  # at 10,000 stages
RENDER_TARGET_SECONDS = 10.0  # at 10,000 stages
TARGET_STAGES = 10_000
STAGES_PER_STEP = 10
MAIN = "import sys\nfrom bodywork.cli.main import main\nsys.exit(main())\n"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


# ---------------------------------------------------------------------------- helpers
def bench_env(pycache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env["KUBECONFIG"] = str(pycache / "no-kubeconfig")  # never a developer's cluster
    return env


def timed_run(command: list[str], env: dict[str, str], timeout: float) -> float:
    """Seconds one process takes; stops the benchmark if it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-2000:]}")
    return seconds


PYTHON = sys.executable  # the interpreter measured: main() sets the installed venv's


def bodywork(*args: str) -> list[str]:
    return [PYTHON, "-c", MAIN, *args]


NOT_BUILT = (".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis")


def installed_python(tree: Path, tmp: Path) -> str:
    """The python of a new venv with a wheel of `tree` installed (no dependencies: a .pth
    names the running interpreter's site-packages, which has them)."""
    venv, wheels, copy = tmp / "installed", tmp / "wheels", tmp / "tree"
    quiet = {"check": True, "stdout": subprocess.DEVNULL}
    # Built from a copy: setuptools leaves build/ in the tree it builds, and reuses it.
    shutil.copytree(tree, copy, ignore=shutil.ignore_patterns(*NOT_BUILT))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], **quiet)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(wheels), str(copy)], **quiet)  # fmt: skip
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", *map(str, wheels.glob("*.whl"))], **quiet)  # fmt: skip
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "zz-bench-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return str(python)


def spread(runs: Sequence[float]) -> str:
    return f"{min(runs):7.3f} / {statistics.median(runs):7.3f} / {max(runs):7.3f} s"


def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def git(path: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args],
        cwd=path,
        env={**os.environ, **GIT_IDENTITY},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def write_repo(path: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        target = path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "bench")
    return path


# ---------------------------------------------------------------------------- projects
def stage_names(stages: int) -> list[str]:
    return [f"stage-{number:05d}" for number in range(stages)]


def dag_of(names: list[str]) -> str:
    steps = [names[i : i + STAGES_PER_STEP] for i in range(0, len(names), STAGES_PER_STEP)]
    return " >> ".join(", ".join(step) for step in steps)


def is_service(number: int) -> bool:
    return number % 5 == 4


def ini_project(stages: int) -> dict[str, str]:
    names = stage_names(stages)
    files = {
        "bodywork.ini": f'[default]\nPROJECT_NAME = "bench"\n\n[workflow]\nDAG = {dag_of(names)}\n'
    }
    for number, name in enumerate(names):
        common = "EXECUTABLE_SCRIPT = main.py\nCPU_REQUEST = 0.5\nMEMORY_REQUEST_MB = 100\n"
        if is_service(number):
            files[f"{name}/config.ini"] = (
                f"[default]\nSTAGE_TYPE = service\n{common}\n[service]\nPORT = {10000 + number}\n"
                "REPLICAS = 2\nMAX_STARTUP_TIME_SECONDS = 30\nINGRESS = true\n"
            )
        else:
            files[f"{name}/config.ini"] = (
                f"[default]\nSTAGE_TYPE = batch\n{common}\n[batch]\n"
                "MAX_COMPLETION_TIME_SECONDS = 60\nRETRIES = 2\n\n[secrets]\nUSERNAME = db-creds\n"
            )
        files[f"{name}/main.py"] = "print('hello')\n"
        files[f"{name}/requirements.txt"] = "numpy==1.26.0\n"
    return files


def yaml_project(stages: int) -> dict[str, str]:
    names = stage_names(stages)
    lines = ['version: "1.1"', "pipeline:", "  name: bench", f'  DAG: "{dag_of(names)}"', "stages:"]
    files: dict[str, str] = {}
    for number, name in enumerate(names):
        lines += [
            f"  {name}:",
            f"    executable_module_path: {name}/main.py",
            "    requirements:",
            "      - numpy==1.26.0",
            "    cpu_request: 0.5",
            "    memory_request_mb: 100",
        ]
        if is_service(number):
            lines += [
                "    service:",
                "      max_startup_time_seconds: 30",
                "      replicas: 2",
                f"      port: {10000 + number}",
                "      ingress: true",
            ]
        else:
            lines += [
                "    batch:",
                "      max_completion_time_seconds: 60",
                "      retries: 2",
                "    secrets:",
                "      USERNAME: db-creds",
            ]
        files[f"{name}/main.py"] = "print('hello')\n"
    files["bodywork.yaml"] = "\n".join([*lines, "logging:", "  log_level: INFO"]) + "\n"
    return files


FORMS = {"ini": ini_project, "yaml": yaml_project}


# ---------------------------------------------------------------------------- 1. start
def instructions(command: list[str], env: dict[str, str], timeout: float) -> int:
    """Instructions the command and its children execute, counted by callgrind."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--trace-children=yes", "--callgrind-out-file=/dev/null",
         *command],
        env=env, capture_output=True, text=True, timeout=timeout * 100, check=False,
    )  # fmt: skip
    counts = [int(n) for n in re.findall(r"Collected : (\d+)", done.stderr)]
    if done.returncode != 0 or not counts:
        raise SystemExit(f"valgrind failed on {command}: {done.stderr[-500:]}")
    return sum(counts)


def print_instructions(commands: dict[str, list[str]], env: dict[str, str], timeout: float) -> None:
    if shutil.which("valgrind") is None:
        print("   instructions: no valgrind on PATH (apt-get install valgrind)")
        return
    counts = {label: instructions(command, env, timeout) for label, command in commands.items()}
    print("   instructions (callgrind, one run each), ratio to `python -c pass`:")
    for label, count in counts.items():
        print(f"   {label:30s} {count / 1e6:9.1f} M   ×{count / counts['python -c pass']:5.1f}")


def bench_start(
    tmp: Path, env: dict[str, str], repeat: int, timeout: float, count: bool = False
) -> None:
    small = write_repo(tmp / "small", ini_project(1))
    commands = {
        "python -c pass": [PYTHON, "-c", "pass"],
        "bodywork --help": bodywork("--help"),
        "bodywork validate (1 stage)": bodywork("validate", str(small)),
        "bodywork render (1 stage)": bodywork("render", str(small)),
    }
    for command in commands.values():  # warm-up: byte-compile into the cache prefix
        timed_run(command, env, timeout)
    run_start(small, tmp / "home", env, timeout)  # and the stage's venv and commit cache
    labels = [*commands, "bodywork run: to its stage", "bodywork run: whole (1 stage)"]
    runs: dict[str, list[float]] = {label: [] for label in labels}
    for _ in range(repeat):  # interleaved, so a busy moment hits every command alike
        for label, command in commands.items():
            runs[label].append(timed_run(command, env, timeout))
        to_stage, whole = run_start(small, tmp / "home", env, timeout)
        runs["bodywork run: to its stage"].append(to_stage)
        runs["bodywork run: whole (1 stage)"].append(whole)
    baseline = statistics.median(runs["python -c pass"])
    print(f"1. CLI start, {repeat} runs each: min / median / max, ratio to `python -c pass`")
    for label, seconds in runs.items():
        median = statistics.median(seconds)
        line = f"   {label:30s} {spread(seconds)}   ×{median / baseline:5.1f}"
        if label not in ("python -c pass", "bodywork run: whole (1 stage)"):
            line += f"   target ≤ {START_TARGET_SECONDS} s  {mark(median <= START_TARGET_SECONDS)}"
        print(line)
    print(
        "   run: to its stage = launch → the stage's bootstrapper process started (its\n"
        "   `[bodywork] timing start=`), the CLI's own part; whole = the run of a `print`\n"
        "   stage whose venv exists, to the summary, the commit copied from the cache"
    )
    if count:
        print_instructions(commands, env, timeout)
    print()


_STAGE_START = re.compile(r"\[bodywork\] timing start=([0-9.]+)")


def run_start(repo: Path, home: Path, env: dict[str, str], timeout: float) -> tuple[float, float]:
    """One `bodywork run` of the 1-stage project: seconds from launch to its stage's
    bootstrapper starting (the timeline's wall-clock start), and to the end."""
    started_wall, started = time.time(), time.perf_counter()
    done = subprocess.run(
        bodywork("run", str(repo)),
        env={**env, "BODYWORK_HOME": str(home), "USERNAME": "bench"},  # its [secrets]
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    whole = time.perf_counter() - started
    found = _STAGE_START.search(done.stdout)
    if done.returncode != 0 or found is None:
        sys.exit(f"bodywork run failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr}")
    return float(found.group(1)) - started_wall, whole


# ---------------------------------------------------------------------------- 2. scale
def bench_scale(
    tmp: Path,
    env: dict[str, str],
    sizes: list[int],
    forms: list[str],
    max_stages: int | None,
    max_render: int | None,
    repeat: int,
    timeout: float,
) -> None:
    print(
        "2. Scale: min / median / max; per stage = (min - a 1-stage run's min) / stages, and\n"
        "   its ratio to the smallest size's (1.0: linear)"
    )
    for form in forms:
        one = write_repo(tmp / f"{form}-1", FORMS[form](1))
        base = {}
        for command in ("validate", "render"):
            timed_run(bodywork(command, str(one)), env, timeout)  # warm-up: byte-compile
            base[command] = min(
                timed_run(bodywork(command, str(one)), env, timeout) for _ in range(repeat)
            )
        first: dict[str, float] = {}
        for stages in sizes:
            if max_stages is not None and stages > max_stages:
                print(f"   {form:4s} {stages:6,d} stages: skipped (--max-stages {max_stages:,})")
                continue
            repo = write_repo(tmp / f"{form}-{stages}", FORMS[form](stages))
            rounds = repeat if stages < TARGET_STAGES else max(1, min(repeat, 3))
            for command in ("validate", "render"):
                if command == "render" and max_render is not None and stages > max_render:
                    print(
                        f"   {form:4s} {stages:6,d} stages render   skipped (--max-render-stages)"
                    )
                    continue
                seconds = [
                    timed_run(bodywork(command, str(repo)), env, timeout) for _ in range(rounds)
                ]
                median = statistics.median(seconds)
                per_stage = max(min(seconds) - base[command], 0.0) / stages
                reference = first.setdefault(command, per_stage)
                ratio = f"{per_stage / reference:5.2f}" if reference > 0 else "  n/a"
                line = (
                    f"   {form:4s} {stages:6,d} stages {command:8s} {spread(seconds)}   "
                    f"per stage {per_stage * 1000:6.3f} ms  ratio {ratio}"
                )
                if stages == TARGET_STAGES:
                    target = (
                        VALIDATE_TARGET_SECONDS if command == "validate" else RENDER_TARGET_SECONDS
                    )
                    line += f"   target < {target:g} s  {mark(median < target)}"
                print(line, flush=True)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=9, help="runs per start-up figure")
    parser.add_argument("--scale-repeat", type=int, default=3, help="runs per scale figure")
    parser.add_argument("--sizes", default="200,1000,10000")
    parser.add_argument("--forms", default="ini,yaml")
    parser.add_argument("--max-stages", type=int, default=None, help="skip larger sizes")
    parser.add_argument(
        "--max-render-stages", type=int, default=None, help="skip render above this size"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="per process, seconds")
    parser.add_argument("--skip-start", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument(
        "--instructions", action="store_true", help="also count start-up instructions (valgrind)"
    )
    parser.add_argument(
        "--tmpdir", default=None, help="TMPDIR for the bodywork processes (e.g. a tmpfs)"
    )
    parser.add_argument(
        "--tree", type=Path, default=ROOT, help="the checkout to measure (default: this one)"
    )
    parser.add_argument(
        "--as-is",
        action="store_true",
        help="measure the running interpreter and PYTHONPATH, not a wheel in a new venv",
    )
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    forms = [form for form in args.forms.split(",") if form]
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as name:
        tmp = Path(name)
        env = bench_env(tmp / "pycache")
        if args.tmpdir:
            env["TMPDIR"] = args.tmpdir
        global PYTHON
        if args.as_is:
            measured = f"as is, PYTHONPATH={os.environ.get('PYTHONPATH', '')}"
        else:
            PYTHON = installed_python(args.tree.resolve(), tmp)
            env.pop("PYTHONPATH", None)
            measured = f"a wheel of {args.tree.resolve()} in a new venv"
        print(
            f"python {sys.version.split()[0]}; {measured}; "
            f"TMPDIR={env.get('TMPDIR', tempfile.gettempdir())}; load {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} CPUs"
        )
        print()
        if not args.skip_start:
            bench_start(tmp, env, args.repeat, args.timeout, args.instructions)
        if not args.skip_scale:
            bench_scale(
                tmp,
                env,
                sizes,
                forms,
                args.max_stages,
                args.max_render_stages,
                args.scale_repeat,
                args.timeout,
            )


if __name__ == "__main__":
    main()
