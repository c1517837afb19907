"""Architectural contract: configuration, DAG, naming and planning are pure functions.

They must not reach Kubernetes, Git, subprocesses or the environment, directly or through
another bodywork module they import. Checked on the source's AST, so it is fast and cheap.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[2] / "runner"
PURE_MODULES = ["config", "dag", "names", "plan"]
FORBIDDEN_IMPORTS = {"kubernetes", "git", "subprocess"}
FORBIDDEN_OS = {"environ", "environb", "getenv", "getenvb", "putenv", "system", "popen"}


def violations(source: str) -> tuple[list[str], set[str]]:
    """(forbidden uses found, bodywork modules imported) in one module's source."""
    found: list[str] = []
    internal: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root in FORBIDDEN_IMPORTS:
                    found.append(f"import {alias.name}")
                if alias.name.startswith("bodywork."):
                    internal.add(alias.name.split(".")[1])
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            root = module.split(".")[0]
            if root in FORBIDDEN_IMPORTS:
                found.append(f"from {module} import ...")
            if root == "os":
                found += [f"from os import {a.name}" for a in node.names if a.name in FORBIDDEN_OS]
            if root == "bodywork" or node.level:
                rest = module.split(".")[1:] if root == "bodywork" else module.split(".")
                rest = [part for part in rest if part]
                internal.update(rest[:1] or [a.name for a in node.names])
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in FORBIDDEN_OS
        ):
            found.append(f"os.{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
        ):
            found.append("__import__(...)")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
        ):
            found.append("importlib.import_module(...)")
    return found, internal


def module_closure(start: str) -> list[str]:
    """`start` and every bodywork module it imports, transitively."""
    seen: list[str] = []
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or not (RUNNER / f"{name}.py").is_file():
            continue
        seen.append(name)
        todo += sorted(violations((RUNNER / f"{name}.py").read_text())[1])
    return seen


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_and_its_bodywork_imports_touch_no_cluster_git_process_or_env(module):
    """config, dag, names and plan (and what they import) use no kubernetes/git/subprocess/env."""
    closure = module_closure(module)
    assert closure[0] == module
    problems = {
        name: found
        for name in closure
        if (found := violations((RUNNER / f"{name}.py").read_text())[0])
    }
    assert problems == {}


def test_checker_sees_the_imports_that_would_break_purity():
    """The checker itself flags each forbidden form, so a passing contract means something."""
    source = (
        "import subprocess\nimport kubernetes.client\nfrom git import Repo\n"
        "from os import environ\nimport os\nx = os.environ['A']\ny = os.getenv('B')\n"
        "z = __import__('git')\nimport importlib\nw = importlib.import_module('git')\n"
        "from bodywork import gitsource\nfrom bodywork.executors import local\n"
    )
    found, internal = violations(source)
    assert found.count("os.environ") == 1
    assert set(found) == {
        "import subprocess",
        "import kubernetes.client",
        "from git import ...",
        "from os import environ",
        "os.environ",
        "os.getenv",
        "__import__(...)",
        "importlib.import_module(...)",
    }
    assert internal == {"gitsource", "executors"}


def test_closure_follows_bodywork_imports():
    """plan's closure includes config and what config imports, so indirect leaks are caught."""
    assert {"plan", "config", "dag", "names", "errors"} <= set(module_closure("plan"))
