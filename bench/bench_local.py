"""Benchmark local mode: what the engine costs per step, how fast a stage starts and installs,
what bytecode does to the first import, and how fast the code is fetched.

Run from the repository root:

    python bench/bench_local.py [--stages N] [--repeat R] [--quick]

PYTHONPATH picks the code measured (point it at another checkout's `runner:stage-bootstrap`
for "before" figures). Each figure is min / median / max over R runs, printed next to its
target, and each comparison is a ratio of medians measured in the same run. Nothing is
asserted about timings: a slow machine prints slow figures, it does not fail.

1. Orchestration overhead per step: N sequential no-op batch stages through the engine
   in-process (resolve → config → plan → run_workflow with a LocalExecutor), against the
   same bootstrap processes run directly one after another; the difference ÷ N is what the
   engine adds per step. Venvs warm for both. Target ≤ 0.1 s.

2. Stage start with the example's real requirements (examples/train-and-deploy, from PyPI):
   launch of the bootstrapper → its module running, and the bootstrapper's own install
   figure, for (a) uv cold (empty cache, new venv root), (b) uv warm cache, new venv (the
   requirement set was resolved before), (c) the venv reused, and for comparison `python -m
   venv` + `pip install` (d) with --no-cache-dir, (e) with a warm pip cache, and `uv pip
   install --offline` into a new venv over the same cache (the floor for b). pip reads PyPI
   alone, like uv. Targets: (b) install ≤ 0.2 s, (c) to module ≤ 1 s, pip --no-cache-dir ÷
   uv cold ≥ 10×. The download itself is shown (uv's own sizes and its "Prepared" time) to
   tell what of the cold time is the network. `--quick` skips (d).

3. First import with and without compiled bytecode, where it matters (the stage runs with
   PYTHONDONTWRITEBYTECODE=1, so no run ever writes .pyc): install into a new venv from the
   warm cache with and without --compile-bytecode, then `import sklearn, flask, joblib`
   twice; "install + first run" for each, and the bootstrapper end to end (it decides).

4. Fetch: a packed source of 3,000 files and ~10 MB served by `git daemon`: the
   bootstrapper's fetch of a commit not cached, its copy from the commit cache, and `git
   clone --depth 1` of the same, interleaved (the order rotating, `sync` before each).
   Target: fetch ≤ 1.0× clone. `--data-mb 500` adds the case of a tree carrying 500 MiB of
   incompressible data (4b). `--only-fetch` runs section 4 alone.

Everything lives in a temporary directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bodywork.cli import logsetup
from bodywork.core import config, plan, results
from bodywork.engine import gitsource, workflow
from bodywork.engine.executors.local import LocalExecutor, LocalHandle
from bodywork_bootstrap import gitfetch

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
WARM_INSTALL_TARGET_SECONDS = 0.2
REUSED_START_TARGET_SECONDS = 1.0
UV_SPEEDUP_TARGET = 10.0
FETCH_RATIO_TARGET = 1.0
START_MARKER = "stage-started-at"
START_SCRIPT = f'import time\nprint(f"{START_MARKER} {{time.time():.6f}}", flush=True)\n'
IMPORTS = "import sklearn.linear_model, flask, joblib"
IMPORT_SCRIPT = (
    f"import time\nt = time.perf_counter()\n{IMPORTS}\n"
    'print(f"imported-in {time.perf_counter() - t:.3f}", flush=True)\n'
)
_PREPARED = re.compile(r"prepared in [0-9.]+s \(fetch ([0-9.]+)s, install ([0-9.]+)s\)")
_DOWNLOADING = re.compile(r"Downloading \S+ \(([0-9.]+)(KiB|MiB|GiB)\)")
_PREPARED_UV = re.compile(r"Prepared (\d+) packages? in ([0-9.]+)(ms|s)")


# ---------------------------------------------------------------------------- helpers
def clean_env(**extra: str) -> dict[str, str]:
    """This environment without uv settings or PYTHONDONTWRITEBYTECODE (set where wanted)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("UV_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    return {**env, **extra}


def run(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a command; on failure stop the benchmark with its output."""
    done = subprocess.run(
        command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"command failed ({done.returncode}): {' '.join(command)}\n{done.stdout}")
    return done.stdout


def make_repo(path: Path, files: dict[str, str | bytes]) -> str:
    """A committed git repo at `path` holding `files`; returns the commit SHA."""
    for relative, content in files.items():
        target = path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    env = {**os.environ, **GIT_IDENTITY}
    run(["git", "init", "-q", "-b", "main"], env, path)
    run(["git", "add", "-A"], env, path)
    run(["git", "commit", "-q", "-m", "bench"], env, path)
    return run(["git", "rev-parse", "HEAD"], env, path).strip()


def timed(action: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    action(*args)
    return time.perf_counter() - started


def spread(values: list[float]) -> str:
    return (
        f"{min(values):7.3f} / {statistics.median(values):7.3f} / {max(values):7.3f} s"
        if values
        else "n/a"
    )


def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def row(label: str, values: list[float], note: str = "") -> None:
    print(f"   {label:<48} {spread(values)}  {note}".rstrip())


def ratio_row(label: str, slow: list[float], fast: list[float], target: str = "") -> float:
    ratio = statistics.median(slow) / statistics.median(fast)
    print(f"   {label:<48} {ratio:8.2f}×  {target}".rstrip())
    return ratio


# ---------------------------------------------------------------------------- 1. overhead
def noop_project(stages: int) -> dict[str, str | bytes]:
    names = [f"step{i:02d}" for i in range(1, stages + 1)]
    files: dict[str, str | bytes] = {
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
    """What cli.settings.load_plan does: pin HEAD, read the config at that commit, plan."""
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
        read, write = os.pipe()  # the lifeline the executor would hold open
        try:
            command = executor._command(handle, read)  # type: ignore[call-arg]
        except TypeError:  # a version of the executor without the lifeline
            command = executor._command(handle)  # type: ignore[call-arg]
        os.close(read)
        os.close(write)
        command = [c for i, c in enumerate(command) if c != "--lifeline-fd" and (
            i == 0 or command[i - 1] != "--lifeline-fd")]  # fmt: skip
        commands.append((command, stage_env))
    return commands


def run_direct(commands: list[tuple[list[str], dict[str, str]]]) -> float:
    started = time.perf_counter()
    for command, env in commands:
        run(command, env)
    return time.perf_counter() - started


def bench_overhead(tmp: Path, stages: int, repeat: int) -> None:
    print(f"1. Orchestration overhead: {stages} sequential no-op batch stages, {repeat} runs")
    repo = tmp / "noop-repo"
    make_repo(repo, noop_project(stages))
    home = tmp / "noop-home"
    env = clean_env()
    run_engine(repo, home, env)  # warm-up: builds every stage's venv
    run_direct(direct_commands(repo, home, env, tmp / "direct-warmup"))
    engine_runs, plan_runs, direct_runs = [], [], []
    for attempt in range(repeat):
        total, planning = run_engine(repo, home, env)
        engine_runs.append(total)
        plan_runs.append(planning)
        direct_runs.append(run_direct(direct_commands(repo, home, env, tmp / f"direct-{attempt}")))
    per_step = [(e - d) / stages for e, d in zip(engine_runs, direct_runs, strict=True)]
    row("engine (bodywork run, in-process)", engine_runs)
    row("  of which resolve + config + plan (once)", plan_runs)
    row("bootstrap processes run directly", direct_runs)
    row("per step: a bootstrap process", [d / stages for d in direct_runs])
    overhead = statistics.median(per_step)
    row(
        "per step: engine overhead",
        per_step,
        f"target ≤ {OVERHEAD_TARGET_SECONDS} s  {mark(overhead <= OVERHEAD_TARGET_SECONDS)}",
    )
    print()


# ---------------------------------------------------------------------------- 2. stage start
def started_at(output: str) -> float:
    for line in output.splitlines():
        if line.startswith(START_MARKER):
            return float(line.split()[1])
    sys.exit(f"the stage never started:\n{output}")


def bootstrap(
    repo: Path,
    commit: str,
    root: Path,
    venv_root: Path,
    cache: Path,
    script: str = "start.py",
    env: dict[str, str] | None = None,
) -> tuple[float, float, str]:
    """(launch → module's first line, the bootstrapper's install seconds, its output)."""
    workdir = Path(tempfile.mkdtemp(prefix="stage-", dir=root))
    command = [
        sys.executable, "-m", "bodywork_bootstrap", "--repo", repo.as_uri(), "--commit", commit,
        "--stage", "serve", "--script", script, "--workdir", str(workdir),
        "--venv-root", str(venv_root), "--cache-dir", str(cache),
        "--artifacts-dir", str(root / "artifacts"),
    ]  # fmt: skip
    launched = time.time()
    output = run(command, env or clean_env())
    found = _PREPARED.search(output)
    install = float(found[2]) if found else float("nan")
    took = started_at(output) - launched if script == "start.py" else time.time() - launched
    return took, install, output


def pip_env(cache: Path | None) -> dict[str, str]:
    """pip reading PyPI only, like uv: no pip.conf, no find-links, no version check."""
    env = {k: v for k, v in clean_env().items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    if cache is not None:
        env["PIP_CACHE_DIR"] = str(cache)
    return env


def pip_start(tmp: Path, requirements: Path, cache: Path | None) -> float:
    """`python -m venv` + `pip install -r` + the same script: seconds to its first line."""
    venv = Path(tempfile.mkdtemp(prefix="pip-venv-", dir=tmp))
    script = tmp / "start.py"
    script.write_text(START_SCRIPT)
    env = pip_env(cache)
    flags = [] if cache is not None else ["--no-cache-dir"]
    launched = time.time()
    run([sys.executable, "-m", "venv", str(venv)], env)
    run([str(venv / "bin" / "pip"), "install", "-q", *flags, "-r", str(requirements)], env)
    output = run([str(venv / "bin" / "python"), "-u", str(script)], env)
    return started_at(output) - launched


def uv() -> str:
    from bodywork_bootstrap import venv

    return venv.uv_executable()


def uv_offline_floor(tmp: Path, requirements: Path, cache: Path) -> float:
    """`uv venv` + `uv pip install --offline -r` over a warm cache: no index round trip."""
    target = Path(tempfile.mkdtemp(prefix="uv-floor-", dir=tmp)) / "venv"
    env = clean_env(UV_CACHE_DIR=str(cache))
    return timed(
        lambda: (
            run([uv(), "venv", "-q", "--python", sys.executable, str(target)], env),
            run(
                [
                    uv(),
                    "pip",
                    "install",
                    "-q",
                    "--offline",
                    "--python",
                    str(target / "bin" / "python"),
                    "-r",
                    str(requirements),
                ],
                env,
            ),  # fmt: skip
        )
    )


def download_figures(tmp: Path, requirements: Path) -> str:
    """What uv downloads for the requirements into an empty cache: its own size lines and
    its "Prepared" time (download and unpack)."""
    target = tmp / "dl-venv"
    env = clean_env(UV_CACHE_DIR=str(tmp / "dl-cache"))
    run([uv(), "venv", "-q", "--python", sys.executable, str(target)], env)
    began = time.perf_counter()
    out = run([uv(), "pip", "install", "--python", str(target / "bin" / "python"),
               "-r", str(requirements)], env)  # fmt: skip
    total = time.perf_counter() - began
    units = {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0}
    listed = sum(float(n) * units[u] for n, u in _DOWNLOADING.findall(out))
    prepared = _PREPARED_UV.search(out)
    prep = "?"
    if prepared:
        prep = f"{float(prepared[2]) / (1000 if prepared[3] == 'ms' else 1):.2f} s"
    cache_mb = sum(f.stat().st_size for f in (tmp / "dl-cache").rglob("*") if f.is_file()) / 2**20
    return (
        f"uv's large downloads {listed:.1f} MiB (+ small wheels it does not list); "
        f"prepared (download + unpack) {prep} of {total:.2f} s; unpacked in the cache "
        f"{cache_mb:.0f} MiB; {listed / max(0.001, total):.1f} MiB/s overall"
    )


def bench_stage_start(tmp: Path, repeat: int, quick: bool) -> None:
    requirements = EXAMPLE_REQUIREMENTS.read_text()
    packages = ", ".join(line.strip() for line in requirements.splitlines() if line.strip())
    print(f"2. Stage start with the example's requirements ({packages}), {repeat} runs")
    repo = tmp / "start-repo"
    commit = make_repo(
        repo, {"serve/requirements.txt": requirements, "serve/start.py": START_SCRIPT}
    )
    cold, cold_install, warm, warm_install, reused, reused_install = [], [], [], [], [], []
    for n in range(repeat):  # each cold run: its own empty cache, venvs, locks and commits
        root = tmp / f"cold-{n}"
        root.mkdir()
        took, install, _ = bootstrap(repo, commit, root, root / "venvs", root / "uv-cache")
        cold.append(took)
        cold_install.append(install)
    shared = tmp / "cold-0"  # warm: its cache and resolution, a new venv root each time
    for n in range(repeat):
        took, install, _ = bootstrap(
            repo, commit, shared, shared / f"venvs-{n}", shared / "uv-cache"
        )
        warm.append(took)
        warm_install.append(install)
    for _ in range(repeat):
        took, install, _ = bootstrap(repo, commit, shared, shared / "venvs", shared / "uv-cache")
        reused.append(took)
        reused_install.append(install)
    floor = [
        uv_offline_floor(tmp, EXAMPLE_REQUIREMENTS, shared / "uv-cache") for _ in range(repeat)
    ]
    pip_cold = [] if quick else [pip_start(tmp, EXAMPLE_REQUIREMENTS, None) for _ in range(repeat)]
    pip_cache = tmp / "pip-cache"
    pip_start(tmp, EXAMPLE_REQUIREMENTS, pip_cache)  # fills it
    pip_warm = [pip_start(tmp, EXAMPLE_REQUIREMENTS, pip_cache) for _ in range(repeat)]

    print("   launch → module running (the bootstrapper's own install figure below each):")
    row("(a) uv, cold cache, new venv", cold)
    row("      install", cold_install)
    row("(b) uv, warm cache, new venv", warm)
    ok = statistics.median(warm_install) <= WARM_INSTALL_TARGET_SECONDS
    row("      install", warm_install, f"target ≤ {WARM_INSTALL_TARGET_SECONDS} s  {mark(ok)}")
    row("      floor: uv venv + uv pip install --offline", floor)
    ok = statistics.median(reused) <= REUSED_START_TARGET_SECONDS
    row("(c) uv, venv reused", reused, f"target ≤ {REUSED_START_TARGET_SECONDS:.0f} s  {mark(ok)}")
    row("      install", reused_install)
    if pip_cold:
        row("(d) pip, --no-cache-dir", pip_cold)
    else:
        print("   (d) pip, --no-cache-dir                          skipped (--quick)")
    row("(e) pip, warm cache", pip_warm)
    print("   ratios of medians:")
    target = f"target ≥ {UV_SPEEDUP_TARGET:.0f}×"
    if pip_cold:
        speedup = statistics.median(pip_cold) / statistics.median(cold)
        ratio_row(
            "pip --no-cache-dir ÷ uv cold",
            pip_cold,
            cold,
            f"{target}  {mark(speedup >= UV_SPEEDUP_TARGET)}",
        )
    speedup = statistics.median(pip_warm) / statistics.median(warm)
    ratio_row(
        "pip warm cache ÷ uv warm cache",
        pip_warm,
        warm,
        f"{target}  {mark(speedup >= UV_SPEEDUP_TARGET)}",
    )
    ratio_row("pip warm cache ÷ uv venv reused", pip_warm, reused)
    ratio_row("uv warm install ÷ its offline floor", warm_install, floor)
    print(f"   download: {download_figures(tmp, EXAMPLE_REQUIREMENTS)}")
    print()


# ---------------------------------------------------------------------------- 3. bytecode
def bench_bytecode(tmp: Path, repeat: int) -> None:
    print(f"3. First import ({IMPORTS}) with PYTHONDONTWRITEBYTECODE=1, {repeat} runs")
    cache = tmp / "cold-0" / "uv-cache"
    lock = tmp / "bytecode.lock"
    env = clean_env(UV_CACHE_DIR=str(cache))
    run([uv(), "pip", "compile", "-q", "--python", sys.executable, "-o", str(lock),
         str(EXAMPLE_REQUIREMENTS)], env)  # fmt: skip
    stage_env = {**env, "PYTHONDONTWRITEBYTECODE": "1"}
    figures: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        figures.setdefault(key, []).append(value)

    def first_import(python: Path) -> float:
        out = run([str(python), "-c", IMPORT_SCRIPT], stage_env)
        return float(out.split("imported-in ")[1].split()[0])

    for n in range(repeat):
        for compiled in (False, True):
            target = tmp / f"bc-{n}-{int(compiled)}"
            python = target / "bin" / "python"
            run([uv(), "venv", "-q", "--python", sys.executable, str(target)], env)
            flags = ["--compile-bytecode"] if compiled else []
            sync = [uv(), "pip", "sync", "-q", "--offline", *flags, "--python", str(python)]
            install = timed(run, [*sync, str(lock)], env)
            key = "compiled" if compiled else "not compiled"
            add(f"{key}: install (new venv, warm cache)", install)
            first = first_import(python)
            add(f"{key}: first import", first)
            add(f"{key}: install + first import", install + first)
            add(f"{key}: second import", first_import(python))
    for key, values in figures.items():
        row(key, values)
    ratio_row(
        "install + first: compiled ÷ not compiled",
        figures["compiled: install + first import"],
        figures["not compiled: install + first import"],
    )
    ratio_row(
        "each later import: compiled ÷ not compiled",
        figures["compiled: second import"],
        figures["not compiled: second import"],
    )
    # The bootstrapper end to end, deciding for itself from the stage's environment.
    repo = tmp / "import-repo"
    commit = make_repo(
        repo,
        {"serve/requirements.txt": EXAMPLE_REQUIREMENTS.read_text(), "serve/imp.py": IMPORT_SCRIPT},
    )
    for label, extra in (
        ("PYTHONDONTWRITEBYTECODE=1", {"PYTHONDONTWRITEBYTECODE": "1"}),
        ("default env", {}),
    ):
        total, first, install = [], [], []
        for n in range(repeat):
            root = tmp / "cold-0"
            took, built, out = bootstrap(
                repo,
                commit,
                root,
                root / f"imp-{label[:3]}-{n}",
                root / "uv-cache",
                "imp.py",
                clean_env(**extra),
            )
            total.append(took)
            install.append(built)
            first.append(float(out.split("imported-in ")[1].split()[0]))
        row(f"bootstrapper, {label}: install", install)
        row(f"bootstrapper, {label}: first import", first)
        row(f"bootstrapper, {label}: launch → module done", total)
    print()


# ---------------------------------------------------------------------------- 4. fetch
def realistic_tree(files: int = 3000) -> dict[str, str | bytes]:
    """~3,000 small source files in nested folders and three 1 MiB binaries (~10 MB)."""
    rng = random.Random(13)
    words = [f"w{i}" for i in range(500)]
    tree: dict[str, str | bytes] = {}
    for i in range(files):
        lines = (" ".join(rng.choices(words, k=12)) for _ in range(40))
        tree[f"pkg{i % 40}/sub{i % 7}/mod{i}.py"] = "\n".join(lines) + "\n"
    for j in range(3):
        tree[f"data/blob{j}.bin"] = rng.randbytes(1 << 20)
    return tree


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def data_tree(megabytes: int) -> dict[str, str | bytes]:
    """`megabytes` MiB of incompressible data in 10 MiB files (a model, a dataset)."""
    rng = random.Random(17)
    count = max(1, megabytes // 10)
    size = (megabytes << 20) // count
    return {f"data/big/part{j:03d}.bin": rng.randbytes(size) for j in range(count)}


def bench_fetch(tmp: Path, repeat: int, data_mb: int = 0) -> None:
    fetch_case(tmp / "fetch-source", repeat, realistic_tree(), "4. Fetch of a packed source")
    if data_mb:
        tree = {**realistic_tree(), **data_tree(data_mb)}
        fetch_case(tmp / "fetch-data", repeat, tree, f"4b. The same with {data_mb} MiB of data")


def fetch_case(tmp: Path, repeat: int, tree: dict[str, str | bytes], title: str) -> None:
    tmp.mkdir()
    repo = tmp / "big-repo"
    commit = make_repo(repo, tree)
    del tree
    run(["git", "gc", "-q"], None, repo)
    served = tmp / "served"
    served.mkdir()
    run(["git", "clone", "-q", "--bare", str(repo), str(served / "big.git")])
    port = free_port()
    daemon = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={served}",
         "--listen=127.0.0.1", f"--port={port}", str(served)],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)
    url = f"git://127.0.0.1:{port}/big.git"
    files = sum(1 for _ in repo.rglob("*") if ".git" not in _.parts and _.is_file())
    size = sum(f.stat().st_size for f in repo.rglob("*") if ".git" not in f.parts and f.is_file())
    print(f"{title} ({files} files, {size / 2**20:.1f} MiB) over git://, {repeat} runs")
    figures: dict[str, list[float]] = {"clone": [], "fetch": [], "cache": []}
    cache_root = tmp / "fetch-commits"
    checkout_commit = getattr(gitfetch, "checkout_commit", None)
    try:
        if checkout_commit is not None:
            checkout_commit(url, commit, tmp / "fill", cache_root)
        for n in range(repeat):
            dest = tmp / f"fetch-{n}"
            clone = ["git", "clone", "-q", "--depth", "1", url, str(dest / "clone")]
            jobs: list[tuple[str, Callable[..., object], tuple[object, ...]]] = [
                ("clone", run, (clone,)),
                ("fetch", gitfetch.fetch_commit, (url, commit, dest / "ours")),
            ]
            if checkout_commit is not None:
                jobs.append(("cache", checkout_commit, (url, commit, dest / "copy", cache_root)))
            for key, action, args in jobs[n % len(jobs) :] + jobs[: n % len(jobs)]:
                subprocess.run(["sync"], check=False)  # the last one's writes are not billed
                figures[key].append(timed(action, *args))
            shutil.rmtree(dest, ignore_errors=True)
    finally:
        daemon.terminate()
    row("git clone --depth 1", figures["clone"])
    row("the bootstrapper's fetch (commit not cached)", figures["fetch"])
    if figures["cache"]:
        row("the bootstrapper's copy from the commit cache", figures["cache"])
    else:
        print("   the bootstrapper's copy from the commit cache     n/a (no commit cache)")
    ratio = statistics.median(figures["fetch"]) / statistics.median(figures["clone"])
    ratio_row("fetch ÷ clone", figures["fetch"], figures["clone"],
              f"target ≤ {FETCH_RATIO_TARGET}×  {mark(ratio <= FETCH_RATIO_TARGET)}")  # fmt: skip
    if figures["cache"]:
        ratio_row("cache copy ÷ clone", figures["cache"], figures["clone"])
    print()


# ---------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=10, help="no-op stages in the DAG")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each figure")
    parser.add_argument("--quick", action="store_true", help="skip the pip --no-cache-dir runs")
    parser.add_argument(
        "--data-mb", type=int, default=0, help="also fetch a tree with this many MiB of data"
    )
    parser.add_argument("--only-fetch", action="store_true", help="section 4 alone")
    args = parser.parse_args()
    logsetup.configure_logging("error")  # the engine's log lines would drown the figures
    print(f"bodywork local-mode benchmark (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print()
    with tempfile.TemporaryDirectory(prefix="bodywork-bench-", ignore_cleanup_errors=True) as tmp:
        if not args.only_fetch:
            bench_overhead(Path(tmp), args.stages, args.repeat)
            bench_stage_start(Path(tmp), args.repeat, args.quick)
            bench_bytecode(Path(tmp), args.repeat)
        bench_fetch(Path(tmp), max(5, args.repeat), args.data_mb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
