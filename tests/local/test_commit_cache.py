"""A run's commit is fetched once: real bootstrappers against a real `git daemon` that logs
every request, sharing a real commit cache; and the timeline each bootstrapper prints."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bodywork.core import results
from bodywork_bootstrap import gitfetch
from tests.conftest import commit_all, free_port, git, serve_bare, write_files
from tests.local.conftest import RunEngine
from tests.local.projects import batch_stage, project_ini

pytestmark = pytest.mark.usefixtures("offline_env")


@dataclass
class LoggingDaemon:
    base: Path
    url: str
    log: Path

    def requests(self) -> int:
        """How many times a client asked for the repository (a fetch or an ls-remote)."""
        return self.log.read_text().count("Request upload-pack")


@pytest.fixture
def logging_daemon(tmp_path: Path) -> Iterator[LoggingDaemon]:
    """A real `git daemon --verbose`, its log in a file: each fetch is one request line."""
    base, log = tmp_path / "served", tmp_path / "daemon.log"
    base.mkdir()
    port = free_port()
    with open(log, "w") as sink:
        process = subprocess.Popen(
            ["git", "daemon", "--verbose", "--reuseaddr", "--export-all",
             f"--base-path={base}", "--listen=127.0.0.1", f"--port={port}", str(base)],
            stdout=subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
    deadline = time.monotonic() + 10
    while "Ready to rumble" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield LoggingDaemon(base, f"git://127.0.0.1:{port}", log)
    finally:
        process.terminate()
        process.wait(timeout=10)


def bootstrap(
    url: str, commit: str, tmp_path: Path, name: str, *extra: str
) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "bodywork_bootstrap",
        "--repo", url, "--commit", commit, "--stage", "stage", "--module", "stage/main.py",
        "--workdir", str(tmp_path / f"work-{name}"), "--venv-root", str(tmp_path / "venvs"),
        "--artifacts-dir", str(tmp_path / "artifacts"), *extra,
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen[str]) -> str:
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 0, out
    return out


def served_repo(make_repo, daemon: LoggingDaemon, code: str = "print('stage code ran')\n"):
    repo = make_repo({"stage/main.py": code, "stage/requirements.txt": ""})
    serve_bare(repo, daemon.base)
    return repo, f"{daemon.url}/project.git", git(repo, "rev-parse", "HEAD")


def test_a_commit_already_in_the_cache_is_copied_not_fetched(make_repo, logging_daemon, tmp_path):
    """The second bootstrapper of a commit asks the server nothing, runs the same code, and
    its checkout is its own copy (a file it writes is not in the next one's)."""
    _, url, sha = served_repo(
        make_repo, logging_daemon, "import pathlib\npathlib.Path('scribble').write_text('x')\n"
    )
    first = finish(bootstrap(url, sha, tmp_path, "1"))
    assert logging_daemon.requests() == 1
    assert "fetching" in first
    second = finish(bootstrap(url, sha, tmp_path, "2"))
    assert logging_daemon.requests() == 1, "the second stage fetched again"
    assert f"code at {sha[:12]} copied from the commit cache (no fetch)" in second
    assert "fetching" not in second
    assert (tmp_path / "work-2" / "src" / "stage" / "scribble").is_file()
    entry = tmp_path / "commits" / gitfetch.cache_entry_name(url, sha)
    assert gitfetch.verified_entry(entry, sha), "a stage's writes never reach the cache"
    assert gitfetch.checked_out_commit(tmp_path / "work-2" / "src") == sha
    status = git(tmp_path / "work-2" / "src", "status", "--porcelain")
    assert status == "?? stage/scribble"  # the copy is a clean checkout plus what the code wrote


def test_stages_starting_together_on_a_cold_cache_fetch_once(make_repo, logging_daemon, tmp_path):
    """Three bootstrappers at once, nothing cached: one fetches, the others wait for its
    entry and copy it; all three run."""
    _, url, sha = served_repo(make_repo, logging_daemon)
    processes = [bootstrap(url, sha, tmp_path, str(i)) for i in range(3)]
    outputs = [finish(p) for p in processes]
    assert all("stage code ran" in out for out in outputs)
    assert logging_daemon.requests() == 1
    assert sum("fetching" in out for out in outputs) == 1
    leftovers = [p.name for p in (tmp_path / "commits").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temporary folder left behind


def test_a_changed_cache_entry_is_not_trusted_and_is_fetched_again(
    make_repo, logging_daemon, tmp_path
):
    """Someone edits the cached tree: the next stage sees `git status` dirty, fetches the
    commit anew and runs the committed code, not the edit."""
    _, url, sha = served_repo(make_repo, logging_daemon)
    finish(bootstrap(url, sha, tmp_path, "1"))
    entry = tmp_path / "commits" / gitfetch.cache_entry_name(url, sha)
    (entry / "stage" / "main.py").write_text("print('tampered')\n")
    out = finish(bootstrap(url, sha, tmp_path, "2"))
    assert "stage code ran" in out and "tampered" not in out
    assert logging_daemon.requests() == 2
    assert gitfetch.verified_entry(entry, sha)
    (entry / "stray.py").write_text("")  # an added file counts too
    assert not gitfetch.verified_entry(entry, sha)


def test_without_a_writable_cache_the_stage_fetches_as_before(make_repo, logging_daemon, tmp_path):
    """A commit cache that cannot be created (under a file; a read-only volume) is no
    error: the bootstrapper fetches straight into its workdir."""
    _, url, sha = served_repo(make_repo, logging_daemon)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    out = finish(bootstrap(url, sha, tmp_path, "1", "--commit-cache", str(blocker / "commits")))
    assert "stage code ran" in out and "fetching" in out
    assert "checkout_from=fetched" in out


def test_the_oldest_entries_beyond_the_limit_are_evicted(make_repo, logging_daemon, tmp_path):
    """CACHE_KEEP_COMMITS + 2 commits: the cache keeps the newest CACHE_KEEP_COMMITS."""
    repo, url, _ = served_repo(make_repo, logging_daemon)
    bare = logging_daemon.base / "project.git"
    shas = []
    for n in range(gitfetch.CACHE_KEEP_COMMITS + 2):
        write_files(repo, {"stage/main.py": f"print('version {n}')\n"})
        shas.append(commit_all(repo, f"v{n}"))
        git(repo, "push", "-q", str(bare), "main")
        finish(bootstrap(url, shas[-1], tmp_path, str(n)))
        time.sleep(0.02)  # distinct modification times
    kept = sorted(p.name for p in (tmp_path / "commits").iterdir() if p.is_dir())
    assert kept == sorted(gitfetch.cache_entry_name(url, s) for s in shas[2:])


def test_a_workflow_fetches_its_commit_once_for_all_its_stages(
    make_repo, logging_daemon, engine: RunEngine
):
    """Three steps through the real engine: the pin (ls-remote) and one fetch, not four."""
    code = "print('ran', __import__('os').environ['BODYWORK_STAGE'])\n"
    repo = make_repo(
        {
            "bodywork.ini": project_ini("a >> b >> c"),
            **batch_stage("a", code),
            **batch_stage("b", code),
            **batch_stage("c", code),
        }
    )
    serve_bare(repo, logging_daemon.base)
    run = engine(repo, location=f"{logging_daemon.url}/project.git")
    assert run.outcome.succeeded, results.format_summary(run.outcome)
    assert logging_daemon.requests() == 2  # resolve's ls-remote + the first stage's fetch
    froms = [run.result(s).timings["checkout_from"] for s in ("a", "b", "c")]  # type: ignore[index]
    assert froms == ["fetched", "cache", "cache"]


def test_bodywork_run_fetches_once_for_planning_and_every_stage(make_repo, logging_daemon):
    """`bodywork run URL`, a real subprocess: the pin (ls-remote) and the planning fetch are
    the only requests; the planning checkout filled the commit cache every stage copies."""
    code = "print('ran', __import__('os').environ['BODYWORK_STAGE'])\n"
    repo = make_repo(
        {
            "bodywork.ini": project_ini("a >> b,c"),
            **batch_stage("a", code),
            **batch_stage("b", code),
            **batch_stage("c", code),
        }
    )
    serve_bare(repo, logging_daemon.base)
    done = subprocess.run(
        ["bodywork", "run", f"{logging_daemon.url}/project.git"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert logging_daemon.requests() == 2, logging_daemon.log.read_text()
    timing_lines = [line for line in done.stdout.splitlines() if "timing " in line]
    assert len(timing_lines) >= 3 and all("checkout_from=cache" in t for t in timing_lines)


# ------------------------------------------------------------------------------ the timeline
def test_the_timeline_line_gives_each_phase_in_order(make_repo, logging_daemon, tmp_path):
    """Before the module starts and after it exits 0: start, checkout, venv, module, exited,
    each offset after the last, and how the code and the venv were had."""
    _, url, sha = served_repo(make_repo, logging_daemon, "import time\ntime.sleep(0.2)\n")
    began = time.time()
    out = finish(bootstrap(url, sha, tmp_path, "1"))
    lines = [ln for ln in out.splitlines() if ln.startswith("[bodywork] timing ")]
    assert len(lines) == 2, out
    timings = results.stage_timings(out.splitlines())
    assert timings is not None
    assert began - 5 < timings["started_at"] <= began + 5
    phases = [timings[p] for p in ("checkout", "venv", "module", "exited")]
    assert phases == sorted(phases)
    assert timings["exited"] - timings["module"] >= 0.2  # the module's own sleep
    assert timings["checkout_from"] == "fetched" and timings["venv_from"] == "empty"
    summary = results.timing_summary(timings)
    assert summary.startswith("checkout ") and "(fetched)" in summary and "exited " in summary


def test_a_failed_stage_keeps_its_reason_last_and_its_timeline_before(make_repo, tmp_path):
    """A module exiting 3 prints no timeline after it (its last line is the reason in a
    pod's termination message); a bootstrap failure prints the timeline before its reason."""
    repo = make_repo({"stage/main.py": "print('boom')\nraise SystemExit(3)\n"})
    sha = git(repo, "rev-parse", "HEAD")
    process = bootstrap(repo.as_uri(), sha, tmp_path, "1")
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 3
    assert out.splitlines()[-1] == "boom"
    missing = subprocess.run(
        [sys.executable, "-m", "bodywork_bootstrap", "--repo", repo.as_uri(), "--commit", sha,
         "--stage", "s", "--module", "nope.py", "--workdir", str(tmp_path / "w2"),
         "--venv-root", str(tmp_path / "venvs")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    said = missing.stderr.splitlines()
    assert said[-1] == f"[bodywork] nope.py does not exist at commit {sha[:12]}"
    assert said[-2].startswith("[bodywork] timing start=")


def test_the_git_daemon_fixture_counts_each_request(logging_daemon, make_repo):
    """The fixture's count is real: two ls-remotes are two requests."""
    repo = make_repo({"x": "1"})
    serve_bare(repo, logging_daemon.base)
    for _ in range(2):
        git(repo, "ls-remote", f"{logging_daemon.url}/project.git")
    assert logging_daemon.requests() == 2


def test_bodywork_run_at_debug_level_logs_each_stages_breakdown(make_repo):
    """`bodywork run --log-level debug`: one stage_timing event per stage with its phases."""
    code = "print('hello')\n"
    repo = make_repo(
        {"bodywork.ini": project_ini("a >> b"), **batch_stage("a", code), **batch_stage("b", code)}
    )
    done = subprocess.run(
        ["bodywork", "run", str(repo), "--log-level", "debug"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [ln for ln in done.stderr.splitlines() if "stage_timing" in ln]
    assert len(events) == 2, done.stderr
    assert all("checkout " in ln and "module " in ln and "exited " in ln for ln in events)
    # The plan was read in the repository itself (no fetch, no checkout); the first stage
    # fetched the commit from it into the commit cache, and the second copied it from there.
    assert ["(fetched)" in events[0], "(cache)" in events[1]] == [True, True], events
