"""What a command imports before it can start: nothing it does not use.

Each command runs in a fresh interpreter (`bodywork.cli.main.main([...])` in-process there),
which then prints the modules it loaded. The Kubernetes client (0.2-0.4 s), GitPython (no
longer a dependency: the git executable answers what it did), asyncio (which structlog pulls
in), urllib.request (only a webhook needs it), tenacity (only a git URL is retried) and
dataclasses (it compiles each class's methods and imports `inspect`: the code's records are
bodywork_bootstrap.recordclass) are left out of the commands that do not need them.
bench/bench_cli.py prints the times.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from bodywork.cli import settings
from bodywork.core import objects
from tests.local.projects import batch_stage, project_ini

HEAVY = (
    "kubernetes", "git", "asyncio", "structlog", "urllib.request", "tenacity", "yaml",
    "bodywork_bootstrap.s3", "concurrent.futures", "dataclasses", "inspect",
)  # fmt: skip
# What a local `validate` does not use either: the plan (a validate pins nothing), OpenSSL's
# hashlib (only an over-long object name is hashed), json (only -o json) and the cron
# rules (only a command given --schedule).
NOT_FOR_VALIDATE = ("bodywork.core.plan", "hashlib", "json", "bodywork.core.cron", "shutil")
PROBE = textwrap.dedent(
    """
    import contextlib, io, sys
    from bodywork.cli.main import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(sys.argv[1:])
        except SystemExit as exc:  # --help
            code = exc.code
    heavy = sorted(m for m in {heavy!r} if m in sys.modules)
    lighter = sorted(m for m in {lighter!r} if m in sys.modules)
    found = {{"code": code, "loaded": heavy, "lighter": lighter, "out": out.getvalue(),
             "err": err.getvalue()}}
    import json  # after the check: the probe's own json is not the command's
    print(json.dumps(found))
    """
).format(heavy=HEAVY, lighter=NOT_FOR_VALIDATE)


def loaded_by(*argv: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.fixture
def project(make_repo: Callable[..., Path]) -> Path:
    return make_repo({"bodywork.ini": project_ini("train"), **batch_stage("train", "pass")})


def test_validate_imports_none_of_the_heavy_modules(project: Path) -> None:
    found = loaded_by("validate", str(project))
    assert found["code"] == 0, found
    assert "1 stage(s) in 1 step(s)" in str(found["out"])
    assert found["loaded"] == []
    assert found["lighter"] == []


def test_render_loads_what_validate_leaves_out(project: Path) -> None:
    """A check of the check above: render pins the commit into a plan, so the probe sees it."""
    found = loaded_by("render", str(project))
    assert found["code"] == 0, found
    assert "bodywork.core.plan" in found["lighter"]  # type: ignore[operator]


def test_render_without_a_server_dry_run_imports_only_yaml(project: Path) -> None:
    """render needs YAML (it prints it): not the Kubernetes client, GitPython, urllib.request
    or tenacity, and not structlog (nor its asyncio) while it writes no event."""
    found = loaded_by("render", str(project))
    assert found["code"] == 0, found
    assert "kind: Job" in str(found["out"])
    assert found["loaded"] == ["yaml"]  # the probe sees what is imported (a check of the check)
    assert found["err"] == ""


def test_the_first_event_written_loads_structlog_set_up_for_stderr(
    make_repo: Callable[..., Path],
) -> None:
    """A config warning is an event at render's level: structlog is loaded then, and set up
    before that first event, which goes to stderr, never into the YAML on stdout."""
    ini = project_ini("train").replace("[workflow]", "UNKNOWN_KEY = 1\n\n[workflow]")
    repo = make_repo({"bodywork.ini": ini, **batch_stage("train", "pass")})
    found = loaded_by("render", str(repo))
    assert found["code"] == 0, found
    assert "structlog" in found["loaded"]  # type: ignore[operator]
    events = [json.loads(line) for line in str(found["err"]).splitlines()]
    assert [(e["event"], e["level"]) for e in events] == [("config_warning", "warning")]
    assert "UNKNOWN_KEY" in events[0]["detail"]
    assert "config_warning" not in str(found["out"])
    assert "kind: Job" in str(found["out"])


def test_render_imports_neither_socket_nor_openssls_hashes(project: Path) -> None:
    """Only a stalled fetch probes a socket and only a service's port check opens one: some
    5 ms of imports (its enums) that a render never needs. hashlib (OpenSSL's libcrypto)
    and secrets (hmac) are another 4 ms: a run id takes os.urandom, and only an over-long
    name or a commit-cache entry is hashed."""
    probe = (
        "import sys\nfrom bodywork.cli.main import main\nmain(sys.argv[1:])\n"
        "print(sorted(m for m in ('socket', 'selectors', 'hashlib', 'secrets', 'hmac')"
        " if m in sys.modules), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "render", str(project)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "kind: Job" in done.stdout, done.stderr
    assert done.stderr.splitlines()[-1] == "['selectors']", done.stderr  # git runs: a check


def test_render_plans_without_the_workflow_engine(project: Path) -> None:
    """The engine's thread pool (concurrent.futures) is imported by a run, not a render."""
    found = loaded_by("render", str(project))
    assert "concurrent.futures" not in found["loaded"]  # type: ignore[operator]


def test_a_local_run_without_a_bucket_imports_neither_the_cluster_nor_the_s3_client(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It logs (structlog) and runs steps (concurrent.futures): no Kubernetes client, and no
    S3 client (http.client, ssl, email) when the project keeps its artifacts on disk."""
    monkeypatch.setenv("BODYWORK_HOME", str(tmp_path / "home"))
    found = loaded_by("run", str(project))
    assert found["code"] == 0, found
    loaded = set(found["loaded"])  # type: ignore[arg-type]
    assert {"structlog", "concurrent.futures"} <= loaded  # a check of the check
    assert not loaded & {"kubernetes", "git", "bodywork_bootstrap.s3", "tenacity"}, loaded


def test_help_builds_the_parser_without_the_object_builders() -> None:
    found = loaded_by("--help")
    assert found["code"] == 0, found
    assert "validate" in str(found["out"])
    assert found["loaded"] == []


def test_the_parser_offers_the_pull_policies_the_objects_know() -> None:
    """cli.settings repeats them so that building the parser imports no object builder."""
    assert settings.PULL_POLICIES == objects.PULL_POLICIES
    assert settings.DEFAULT_PULL_POLICY == objects.DEFAULT_PULL_POLICY


def test_a_bodywork_yaml_project_imports_yaml_and_still_no_cluster_client(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(
        {
            "bodywork.yaml": 'version: "1.1"\npipeline:\n  name: y\n  DAG: a\nstages:\n'
            "  a:\n    executable_module_path: a.py\n    batch: {}\n",
            "a.py": "",
        }
    )
    found = loaded_by("validate", str(repo))
    assert found["code"] == 0, found
    assert found["loaded"] == ["yaml"]
