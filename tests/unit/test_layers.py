"""Architectural contract: the layers of `bodywork` import in one direction only.

    core  →  logs  →  k8s  →  engine  →  cli        (an arrow: "may be imported by")

- `core` is pure: no Kubernetes client, no git, no subprocesses, sockets or HTTP, no
  threads, no logging set-up and no environment variables. It may use the stdlib-only
  `bodywork_bootstrap.redaction`, `.recordclass` and the bootstrapper's exit-code table.
- `logs` is the loggers every outer layer writes to: structlog, and nothing of git,
  Kubernetes or the network.
- `k8s` is the one API seam: it never runs git or subprocesses.
- `bodywork_bootstrap` (what a stage pod runs) imports only the standard library and
  itself: never `bodywork`, never a third-party package.

Every module of both source roots is walked, including imports inside functions, so a
lazy import cannot hide a wrong-way edge. The checker's own tests below show it fails.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "runner"
BOOTSTRAP = REPO / "stage-bootstrap"
LAYERS = ("core", "logs", "k8s", "engine", "cli")  # inner to outer

FORBIDDEN = {
    "core": {
        "kubernetes", "git", "subprocess", "socket", "http", "urllib", "urllib3",
        "threading", "tenacity", "structlog", "logging", "tempfile", "shutil", "signal",
    },
    "logs": {
        "kubernetes", "git", "subprocess", "socket", "http", "urllib", "urllib3", "tenacity",
    },
    "k8s": {"git", "subprocess"},
}  # fmt: skip
# The `uv` wheel's binary locator, imported with a fallback to PATH (venv.uv_executable).
BOOTSTRAP_MAY_TRY = {"uv"}
CORE_MAY_USE_BOOTSTRAP = {
    "bodywork_bootstrap",
    "bodywork_bootstrap.redaction",
    "bodywork_bootstrap.envnames",
    "bodywork_bootstrap.recordclass",
}
# Read by type checkers from their own stubs, under `if TYPE_CHECKING:`: never run in a pod.
BOOTSTRAP_MAY_TYPE_CHECK = {"typing_extensions"}
ENVIRON = {"environ", "environb", "getenv", "getenvb", "putenv", "system", "popen"}


@dataclass(frozen=True)
class Edge:
    module: str  # dotted name of the importing module
    imported: str  # dotted name it imports (for `from a import b`: a.b when b is a module)
    line: int
    typing_only: bool = False  # under `if TYPE_CHECKING:`: read by type checkers, never run


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "bodywork":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "root"


def imports_of(source: str, module: str, is_package: bool) -> list[Edge]:
    """Every import in the module, anywhere in its body, resolved to absolute names."""
    edges: list[Edge] = []
    package = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(source)
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If)
        and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for statement in node.body
        for inner in ast.walk(statement)
    }
    for node in ast.walk(tree):
        only = id(node) in typing_only
        if isinstance(node, ast.Import):
            edges += [Edge(module, alias.name, node.lineno, only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            edges.append(Edge(module, base, node.lineno, only))
            edges += [Edge(module, f"{base}.{a.name}", node.lineno, only) for a in node.names]
        elif isinstance(node, ast.Call) and (
            (isinstance(node.func, ast.Name) and node.func.id == "__import__")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
        ):
            edges.append(Edge(module, "<dynamic import>", node.lineno))
    return edges


def environ_uses(source: str) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in ENVIRON
        ):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            lines += [node.lineno for a in node.names if a.name in ENVIRON]
    return lines


def violations(root: Path) -> list[str]:
    """Each broken rule in the tree under `root`, as `module:line: what`."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        source = path.read_text()
        layer = layer_of(module)
        for edge in imports_of(source, module, path.name == "__init__.py"):
            where = f"{module}:{edge.line}"
            top = edge.imported.split(".")[0]
            if edge.imported == "<dynamic import>":
                found.append(f"{where}: dynamic import (the contract cannot follow it)")
            elif module.startswith("bodywork_bootstrap"):
                allowed = {"bodywork_bootstrap", *BOOTSTRAP_MAY_TRY, *sys.stdlib_module_names}
                if edge.typing_only:
                    allowed |= BOOTSTRAP_MAY_TYPE_CHECK
                if top not in allowed:
                    found.append(f"{where}: the bootstrapper imports {edge.imported}")
            elif layer is None:
                continue
            elif top == "bodywork" and (target := layer_of(edge.imported)) in LAYERS:
                if layer == "root" or LAYERS.index(target) > LAYERS.index(layer):
                    found.append(f"{where}: {layer} imports the outer layer {edge.imported}")
            elif layer == "core" and top == "bodywork_bootstrap":
                parent = edge.imported.rpartition(".")[0]  # a name from an allowed module
                if edge.imported not in CORE_MAY_USE_BOOTSTRAP and (
                    parent == "bodywork_bootstrap" or parent not in CORE_MAY_USE_BOOTSTRAP
                ):
                    found.append(f"{where}: core imports {edge.imported}")
            elif top in FORBIDDEN.get(layer, set()):
                found.append(f"{where}: {layer} imports {edge.imported}")
        if layer == "core":
            found += [f"{module}:{n}: core reads the environment" for n in environ_uses(source)]
    return found


def test_the_source_tree_keeps_the_layer_contract():
    """No module of runner/ or stage-bootstrap/ imports against the layer direction."""
    assert violations(RUNNER) + violations(BOOTSTRAP) == []


def test_every_layer_exists_and_holds_modules():
    """The contract covers real code: each layer is a package with modules in it."""
    for layer in LAYERS:
        modules = [p for p in (RUNNER / "bodywork" / layer).rglob("*.py") if p.stem != "__init__"]
        assert modules, f"layer {layer} has no modules"
    flat = [p.name for p in (RUNNER / "bodywork").glob("*.py")]
    assert flat == ["__init__.py"], "modules belong in a layer, not at the package top"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (  # an inner layer importing an outer one, hidden inside a function
            {"bodywork/core/plan.py": "def f():\n    from bodywork.engine import workflow\n"},
            "bodywork.core.plan:2: core imports the outer layer bodywork.engine",
        ),
        (
            {"bodywork/k8s/kube.py": "from bodywork.cli import main\n"},
            "bodywork.k8s.kube:1: k8s imports the outer layer bodywork.cli",
        ),
        (  # relative imports resolve to the same names
            {"bodywork/engine/x.py": "from ..cli import main\n"},
            "bodywork.engine.x:1: engine imports the outer layer bodywork.cli",
        ),
        (
            {"bodywork/core/config.py": "import subprocess\n"},
            "bodywork.core.config:1: core imports subprocess",
        ),
        (
            {"bodywork/core/config.py": "import os\nX = os.environ['HOME']\n"},
            "bodywork.core.config:2: core reads the environment",
        ),
        (
            {"bodywork/core/records.py": "from bodywork_bootstrap import gitfetch\n"},
            "bodywork.core.records:1: core imports bodywork_bootstrap.gitfetch",
        ),
        (
            {"bodywork/logs/logger.py": "from bodywork.k8s import kube\n"},
            "bodywork.logs.logger:1: logs imports the outer layer bodywork.k8s",
        ),
        (
            {"bodywork/logs/logger.py": "import subprocess\n"},
            "bodywork.logs.logger:1: logs imports subprocess",
        ),
        (
            {"bodywork/k8s/lease.py": "import git\n"},
            "bodywork.k8s.lease:1: k8s imports git",
        ),
        (
            {"bodywork_bootstrap/stage.py": "import structlog\n"},
            "bodywork_bootstrap.stage:1: the bootstrapper imports structlog",
        ),
        (
            {"bodywork_bootstrap/stage.py": "from bodywork.core import plan\n"},
            "bodywork_bootstrap.stage:1: the bootstrapper imports bodywork.core",
        ),
        (  # type checkers' stubs only where they are read by type checkers alone
            {"bodywork_bootstrap/stage.py": "from typing_extensions import Self\n"},
            "bodywork_bootstrap.stage:1: the bootstrapper imports typing_extensions",
        ),
        (
            {"bodywork/core/a.py": "import importlib\nm = importlib.import_module('git')\n"},
            "bodywork.core.a:2: dynamic import (the contract cannot follow it)",
        ),
    ],
)
def test_checker_reports_each_broken_rule(tmp_path, files, expected):
    """The checker flags each way of breaking the contract, so passing means something."""
    assert expected in violations(write(tmp_path, files))


def test_checker_allows_inward_and_same_layer_imports(tmp_path):
    """Outer layers may import inner ones, and a layer its own modules."""
    root = write(
        tmp_path,
        {
            "bodywork/cli/main.py": "from bodywork.engine import workflow\n"
            "from bodywork import core\n",
            "bodywork/engine/workflow.py": "from bodywork.k8s import kube\nimport subprocess\n",
            "bodywork/k8s/kube.py": "from bodywork.core import errors\nimport threading\n",
            "bodywork/core/records.py": "from bodywork.core import names\n"
            "from bodywork_bootstrap.redaction import redact\n",
            "bodywork_bootstrap/stage.py": "import subprocess\n"
            "from bodywork_bootstrap import venv\n"
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from typing_extensions import Self\n",
        },
    )
    assert violations(root) == []
