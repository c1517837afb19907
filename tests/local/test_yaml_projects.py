"""bodywork.yaml projects, schema 1.0 and 1.1, through the real engine and bootstrapper.

Modelled on the original's public yaml projects: stage names that are not folder names, two
modules in one shared folder importing a helper beside them, `args`, inline requirements
(from the offline wheelhouse), a notebook stage, `run_on_failure`, and the CLI's view of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest

from tests.conftest import free_port
from tests.local.projects import WHEEL_REQUIREMENT

pytestmark = pytest.mark.usefixtures("offline_env")

TRAIN = textwrap.dedent(
    """
    import os, pathlib, sys
    import bwtest_greeting
    from pipeline import common
    print("args", sys.argv[1:])
    print("cwd", os.path.basename(os.getcwd()))
    pathlib.Path(os.environ["BODYWORK_ARTIFACTS_DIR"], "model.txt").write_text(
        f"{common.NAME}:{bwtest_greeting.greet()}:{' '.join(sys.argv[1:])}"
    )
    """
)
SCORE = textwrap.dedent(
    """
    import os, pathlib
    from pipeline import common
    model = pathlib.Path(os.environ["BODYWORK_ARTIFACTS_DIR"], "model.txt")
    print("scored with", model.read_text())
    """
)


def yaml_project(version: str, section: str, extra_stage: str = "") -> str:
    return textwrap.dedent(
        f"""\
        version: "{version}"
        {section}:
          name: yaml-{version.replace(".", "-")}
          docker_image: bodyworkml/bodywork-core:latest
          DAG: train-model >> score-data
          usage_stats: false
        stages:
          train-model:
            executable_module_path: pipeline/train.py
            args: ["--alpha", "0.5", "-v"]
            requirements:
              - {WHEEL_REQUIREMENT}
            cpu_request: 0.5
            memory_request_mb: 100
            batch:
              max_completion_time_seconds: 30
              retries: 0
          score-data:
            executable_module_path: pipeline/score.py
            cpu_request: 0.5
            memory_request_mb: 100
            batch:
              max_completion_time_seconds: 30
              retries: 0
        {extra_stage}logging:
          log_level: INFO
        """
    )


FILES = {
    "pipeline/__init__.py": "",
    "pipeline/common.py": "NAME = 'iris'\n",
    "pipeline/train.py": TRAIN,
    "pipeline/score.py": SCORE,
}


@pytest.mark.parametrize(("version", "section"), [("1.0", "project"), ("1.1", "pipeline")])
def test_yaml_project_runs_modules_from_one_shared_folder_with_args_and_inline_requirements(
    make_repo, engine, version, section
):
    """Both schema versions: train gets its args (a '-v' too) in its own folder, imports
    the shared helper and the inline requirement; score reads what train wrote."""
    repo = make_repo({"bodywork.yaml": yaml_project(version, section), **FILES})
    run = engine(repo)
    assert run.outcome.succeeded, [(r.stage, r.reason) for r in run.outcome.results]
    train = run.sink.of("train-model")
    assert "args ['--alpha', '0.5', '-v']" in train
    assert "cwd pipeline" in train
    assert "scored with iris:hello:--alpha 0.5 -v" in run.sink.of("score-data")


def test_notebook_stage_runs_its_cells_and_a_raising_cell_fails_the_stage(make_repo, engine):
    """A .ipynb stage streams its cells' output; a later notebook that raises fails its stage
    naming the cell, and the run's on-failure stage is told."""

    def notebook(*cells: str) -> str:
        return json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 5,
                "metadata": {},
                "cells": [
                    {"cell_type": "code", "source": c, "metadata": {}, "outputs": []} for c in cells
                ],
            }
        )

    project = textwrap.dedent(
        """\
        version: "1.1"
        pipeline:
          name: notebooks
          docker_image: bodyworkml/bodywork-core:3.0
          DAG: explore >> broken
          run_on_failure: report
        stages:
          explore:
            executable_module_path: notebooks/explore.ipynb
            batch: {max_completion_time_seconds: 30, retries: 0}
          broken:
            executable_module_path: notebooks/broken.ipynb
            batch: {max_completion_time_seconds: 30, retries: 0}
          report:
            executable_module_path: notebooks/report.py
            batch: {max_completion_time_seconds: 30, retries: 0}
        logging:
          log_level: INFO
        """
    )
    repo = make_repo(
        {
            "bodywork.yaml": project,
            "notebooks/explore.ipynb": notebook("x = 6 * 7\nprint('x is', x)", "x + 1"),
            "notebooks/broken.ipynb": notebook("print('before')", "1 / 0"),
            "notebooks/report.py": (
                "import os\nprint('failure:', os.environ['EXCEPTION_MESSAGE'])\n"
            ),
        }
    )
    run = engine(repo)
    assert run.status("explore") == "succeeded"
    explore = run.sink.of("explore")
    assert "x is 42" in explore and "43" in explore
    assert run.status("broken") == "failed"
    broken = run.sink.of("broken")
    assert "before" in broken
    assert any("ZeroDivisionError" in line and "cell 2" in line for line in broken), broken
    assert run.outcome.on_failure is not None and run.outcome.on_failure.status == "succeeded"
    assert any("failure: stage 'broken'" in ln for ln in run.sink.of("report"))


def test_validate_and_render_read_a_yaml_project_through_the_cli(make_repo):
    """`validate` names bodywork.yaml and notes the original's image; `render` puts our
    image, the module path, the inline requirement and the args on the stage's Job."""
    repo = make_repo({"bodywork.yaml": yaml_project("1.1", "pipeline"), **FILES})
    env = {**os.environ, "BODYWORK_IMAGE": "bodywork:test"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bodywork", *args], capture_output=True, text=True, timeout=60, env=env
        )

    checked = cli("validate", str(repo))
    assert checked.returncode == 0, checked.stderr
    assert "bodywork.yaml OK: project 'yaml-1-1', 2 stage(s) in 2 step(s)" in checked.stdout
    assert "note:" in checked.stderr and "bodyworkml/bodywork-core" in checked.stderr
    rendered = cli("render", str(repo), "-n", "ml")
    assert rendered.returncode == 0, rendered.stderr
    import yaml

    jobs = [d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "Job"]
    train = next(j for j in jobs if "train-model" in j["metadata"]["name"])
    container = train["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "bodywork:test"
    args = container["args"]
    assert args[args.index("--module") + 1] == "pipeline/train.py"
    assert args[args.index("--requirement") + 1] == WHEEL_REQUIREMENT
    assert args[args.index("--") :] == ["--", "--alpha", "0.5", "-v"]


def test_bodywork_ini_and_bodywork_yaml_together_are_one_error_naming_both(make_repo):
    repo = make_repo(
        {
            "bodywork.yaml": yaml_project("1.1", "pipeline"),
            "bodywork.ini": "[workflow]\nDAG = a\n",
            **FILES,
        }
    )
    done = subprocess.run(
        ["bodywork", "validate", str(repo)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "bodywork.ini" in done.stderr and "bodywork.yaml" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_yaml_service_on_a_free_port_serves(make_repo, engine):
    """A `service:` stage from bodywork.yaml becomes ready on its port."""
    from tests.local.projects import http_service_code

    port = free_port()
    project = textwrap.dedent(
        f"""\
        version: "1.1"
        pipeline:
          name: svc
          DAG: api
        stages:
          api:
            executable_module_path: app/api.py
            service: {{max_startup_time_seconds: 20, replicas: 1, port: {port}, ingress: false}}
        logging:
          log_level: INFO
        """
    )
    repo = make_repo({"bodywork.yaml": project, "app/api.py": http_service_code(port)})
    run = engine(repo)
    assert run.status("api") == "succeeded", run.result("api").reason
    assert run.result("api").url == f"http://localhost:{port}"
