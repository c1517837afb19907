"""Did-you-mean hints are capped per file, so many missing names stay linear to check.

Each hint scans every name there is; asked for each of 2,000 stages missing among 2,000
others, validation took 7 s (quadratic). Every missing name is still reported; only the
first `checks.MAX_SUGGESTIONS` carry a suggestion. (bench/bench_cli.py prints the times.)
"""

from __future__ import annotations

import pytest

from bodywork.core import config
from bodywork.core.config import checks
from bodywork.core.config.model import StageDir
from bodywork.core.errors import ConfigError

COUNT = checks.MAX_SUGGESTIONS + 5
HINT = "did you mean"


def messages(files: config.ProjectFiles, needle: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config.parse_project(files)
    return [p.message for p in info.value.problems if needle in p.message]


def test_stages_without_a_directory_are_all_reported_the_first_with_a_hint() -> None:
    dag = " >> ".join(f"stage-{i}x" for i in range(COUNT))
    dirs = {
        f"stage-{i}": StageDir(config_ini="[default]\n", files=frozenset({"main.py"}))
        for i in range(COUNT)
    }
    files = config.ProjectFiles(
        bodywork_ini=f"[default]\nPROJECT_NAME = x\n[workflow]\nDAG = {dag}\n", dirs=dirs
    )
    found = messages(files, "has no directory")
    assert len(found) == COUNT
    assert [HINT in m for m in found] == [True] * checks.MAX_SUGGESTIONS + [False] * 5


def test_yaml_stages_and_modules_missing_are_all_reported_the_first_with_a_hint() -> None:
    dag = " >> ".join(f"stage-{i}x" for i in range(COUNT))
    stages = "".join(
        f"  stage-{i}:\n    executable_module_path: m/mod{i}x.py\n    batch: {{}}\n"
        for i in range(COUNT)
    )
    text = f'version: "1.1"\npipeline:\n  name: x\n  DAG: "{dag}"\nstages:\n{stages}'
    files = config.ProjectFiles(
        bodywork_yaml=text, paths=frozenset(f"m/mod{i}.py" for i in range(COUNT))
    )
    for needle in ("is not under stages:", "does not exist in the project"):
        found = messages(files, needle)
        assert len(found) == COUNT, needle
        assert [HINT in m for m in found] == [True] * checks.MAX_SUGGESTIONS + [False] * 5
