"""`bodywork render --branch B` pins the commit B resolves to, exactly like `deploy`.

`render` runs as a real subprocess against a real repo served by a real `git daemon`;
the branch moves after the first commit, so a Job that named the branch would run other
code than the one validated. What `deploy` would submit is built by the same code path
(`settings.load_plan` + `settings.controller_run` + `objects.build_controller_job`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from bodywork.cli import main, settings
from bodywork.core import objects
from tests.conftest import commit_all, git, serve_bare, write_files
from tests.local.projects import batch_stage, project_ini

RUN_ID = "20261201-120000-pin1"


def render(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bodywork", "render", *args], capture_output=True, text=True, timeout=60, env=env
    )


def controller_args(job: dict[str, object]) -> list[str]:
    spec = job["spec"]
    assert isinstance(spec, dict)
    args: list[str] = spec["template"]["spec"]["containers"][0]["args"]
    return args


def test_render_with_a_branch_pins_the_full_sha_like_deploy(make_repo, git_daemon, tmp_path: Path):
    base, daemon_url = git_daemon
    repo = make_repo({"bodywork.ini": project_ini("train"), **batch_stage("train", "pass\n")})
    write_files(repo, {"train/main.py": "print('second commit')\n"})
    sha = commit_all(repo, "second")  # main now points here, one commit after the first
    serve_bare(repo, base)
    url = f"{daemon_url}/project.git"
    assert git(repo, "rev-parse", "main") == sha and len(sha) == 40

    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    env["KUBECONFIG"] = str(tmp_path / "no-such-kubeconfig")  # render needs no cluster
    done = render(env, url, "--branch", "main", "-n", "ml", "--run-id", RUN_ID)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    docs = list(yaml.safe_load_all(done.stdout))
    job = docs[0]
    assert (job["kind"], job["metadata"]["name"]) == ("Job", f"bodywork-workflow--{RUN_ID}")
    args = controller_args(job)
    assert args[args.index("--branch") + 1] == sha  # the full commit SHA ...
    assert "main" not in args  # ... and never the branch name, which can move
    assert args[-1] == url

    # The Job `deploy` would submit for the same command line: the same object.
    parsed = main.build_parser().parse_args(["deploy", url, "--branch", "main", "-n", "ml"])
    the_plan = settings.load_plan(parsed, run_id=RUN_ID)
    assert the_plan.source.commit == sha
    run = settings.controller_run(parsed, the_plan)
    image = settings.controller_image(parsed)
    deployed = objects.build_controller_job(run, "ml", image, parsed.image_pull_policy)
    assert deployed == job
