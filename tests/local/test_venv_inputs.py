"""What a stage's venv depends on, for real: included `-r`/`-c` files, local path packages,
the resolution kept as a lock and installed offline, and bytecode. Real bootstrappers, real
uv, the offline wheelhouse, real git repos."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bodywork.core import results
from bodywork_bootstrap import venv
from tests.conftest import build_wheel, commit_all, git, write_files
from tests.local.projects import WHEEL_REQUIREMENT
from tests.local.test_bootstrap import in_folder, local_package

pytestmark = pytest.mark.usefixtures("offline_env")


def run_stage(
    repo: Path, tmp_path: Path, work: str, stage: str = "job", env: dict[str, str] | None = None
) -> str:
    sha = git(repo, "rev-parse", "HEAD")
    done = subprocess.run(
        [sys.executable, "-m", "bodywork_bootstrap", "--repo", repo.as_uri(), "--commit", sha,
         "--stage", stage, "--module", "job/main.py",
         "--requirements-file", "job/requirements.txt",
         "--workdir", str(tmp_path / work), "--venv-root", str(tmp_path / "venvs")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    return done.stdout


def venv_of(output: str) -> str:
    """The venv the stage ran in (what its module printed)."""
    return next(ln.split(" ", 1)[1] for ln in output.splitlines() if ln.startswith("prefix "))


def venv_from(output: str) -> str:
    timings = results.stage_timings(output.splitlines())
    assert timings is not None, output
    return str(timings["venv_from"])


PRINT_PREFIX = "import sys\nprint('prefix', sys.prefix)\n"


def test_a_changed_included_requirements_file_builds_a_new_venv(make_repo, tmp_path):
    """requirements.txt only says `-r common/base.txt`; a commit that changes base.txt (and
    nothing else) gets a new venv, one that changes an unrelated file reuses it."""
    repo = make_repo(
        {
            "job/main.py": PRINT_PREFIX,
            "job/requirements.txt": "-r ../common/base.txt\n",
            "common/base.txt": "-r more.txt\n",  # nested: relative to base.txt's folder
            "common/more.txt": f"{WHEEL_REQUIREMENT}\n",
            "README.md": "one\n",
        }
    )
    first = run_stage(repo, tmp_path, "w1")
    write_files(repo, {"README.md": "two\n"})
    commit_all(repo, "unrelated")
    same = run_stage(repo, tmp_path, "w2")
    assert venv_of(same) == venv_of(first) and venv_from(same) == "reused"
    write_files(repo, {"common/more.txt": f"{WHEEL_REQUIREMENT}\n# bumped\n"})
    commit_all(repo, "nested include changed")
    changed = run_stage(repo, tmp_path, "w3")
    assert venv_of(changed) != venv_of(first)
    assert venv_from(changed) != "reused"


def test_a_changed_constraints_file_builds_a_new_venv(make_repo, tmp_path, wheelhouse):
    """`-c constraints.txt` pins the version: changing the pin gives a new venv with it."""
    build_wheel(wheelhouse, "bwtest-greeting", "2.0", "def greet():\n    return 'hi two'\n")
    code = "import sys, bwtest_greeting\nprint('prefix', sys.prefix)\n"
    code += "print('greeting', bwtest_greeting.greet())\n"
    repo = make_repo(
        {
            "job/main.py": code,
            "job/requirements.txt": "bwtest-greeting\n-c constraints.txt\n",
            "job/constraints.txt": "bwtest-greeting==1.0\n",
        }
    )
    first = run_stage(repo, tmp_path, "w1")
    assert "greeting hello" in first
    write_files(repo, {"job/constraints.txt": "bwtest-greeting==2.0\n"})
    commit_all(repo, "constraint moved")
    second = run_stage(repo, tmp_path, "w2")
    assert "greeting hi two" in second
    assert venv_of(second) != venv_of(first)


@pytest.mark.parametrize("line", ["./mylib", "file:./mylib", "mylib @ file:./mylib"])
def test_a_changed_local_package_builds_a_new_venv_with_its_new_code(make_repo, tmp_path, line):
    """A path package inside the checkout is keyed by its git tree: a commit changing its
    code gives a new venv running the new code; the same tree reuses the venv."""
    code = "import sys, mylib\nprint('prefix', sys.prefix)\nprint('mylib says', mylib.WHERE)\n"
    repo = make_repo(
        {
            "job/main.py": code,
            "job/requirements.txt": f"{line}\n",
            **in_folder("job", local_package("first")),
        }
    )
    first = run_stage(repo, tmp_path, "w1")
    assert "mylib says first" in first
    again = run_stage(repo, tmp_path, "w2")
    assert venv_of(again) == venv_of(first)
    write_files(repo, in_folder("job", local_package("second")))
    commit_all(repo, "mylib changed")
    second = run_stage(repo, tmp_path, "w3")
    assert "mylib says second" in second
    assert venv_of(second) != venv_of(first)


def test_requirement_inputs_name_what_the_text_refers_to(tmp_path):
    """The key material itself: included files' text, and each local path's content hash
    (outside a git checkout), changing when a file of the package changes."""
    write_files(
        tmp_path,
        {
            "req.txt": "-r inc.txt\n--constraint=cons.txt\n./pkg\n"
            "file:wheels/x-1.0-py3-none-any.whl\nrequests>=2\ngit+https://example.com/r.git\n",
            "inc.txt": "six\n",
            "cons.txt": "six<2\n",
            "pkg/a.py": "A = 1\n",
            "wheels/x-1.0-py3-none-any.whl": "zip",
        },
    )
    req = tmp_path / "req.txt"
    before = venv.requirement_inputs(req, req.read_text(), tmp_path)
    assert "-r inc.txt:\nsix" in before and "--constraint cons.txt:\nsix<2" in before
    assert "./pkg: dir " in before and "file:wheels/x-1.0-py3-none-any.whl: file " in before
    assert "requests" not in before and "git+" not in before
    (tmp_path / "pkg" / "a.py").write_text("A = 2\n")
    assert venv.requirement_inputs(req, req.read_text(), tmp_path) != before
    assert venv.requirement_inputs(req, "requests\n", tmp_path) == ""  # self-contained


# --------------------------------------------------------------------------- lock and offline
@pytest.fixture
def http_index(tmp_path: Path, wheelhouse: Path) -> Iterator[str]:
    """A real PEP 503 simple index over HTTP on 127.0.0.1, serving the wheelhouse."""
    root = tmp_path / "index"
    for wheel in wheelhouse.glob("*.whl"):
        project = wheel.name.split("-")[0].replace("_", "-")
        folder = root / "simple" / project
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(wheel, folder / wheel.name)
        (folder / "index.html").write_text(f'<a href="{wheel.name}">{wheel.name}</a>\n')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/simple"
    finally:
        server.shutdown()


def test_a_requirement_set_is_resolved_once_then_installed_offline_from_its_lock(
    make_repo, tmp_path, http_index
):
    """From a real index: stage one resolves and keeps the lock; stage two (same
    requirements, another venv) installs from the lock offline; with the uv cache emptied
    the offline install fails and the lock is installed online from the index instead."""
    env = {k: v for k, v in os.environ.items() if k not in ("UV_OFFLINE", "UV_FIND_LINKS")}
    env["UV_INDEX_URL"] = http_index
    repo = make_repo({"job/main.py": PRINT_PREFIX, "job/requirements.txt": WHEEL_REQUIREMENT})
    first = run_stage(repo, tmp_path, "w1", stage="one", env=env)
    assert venv_from(first) == "resolved"
    locks = list((tmp_path / "locks").glob("*.txt"))
    assert len(locks) == 1 and "bwtest-greeting==1.0" in locks[0].read_text()
    second = run_stage(repo, tmp_path, "w2", stage="two", env=env)
    assert venv_from(second) == "offline-from-the-lock"
    assert venv_of(second) != venv_of(first)
    shutil.rmtree(env["UV_CACHE_DIR"])
    third = run_stage(repo, tmp_path, "w3", stage="three", env=env)
    assert venv_from(third) == "online-from-the-lock"


def test_bytecode_is_compiled_at_build_when_the_stage_may_not_write_it(make_repo, tmp_path):
    """With PYTHONDONTWRITEBYTECODE=1 the stage's imports never write .pyc: the build
    compiles the venv. Without it the build leaves that to the first import, whatever the
    user's UV_COMPILE_BYTECODE says (the module here imports nothing of the venv)."""
    repo = make_repo({"job/main.py": PRINT_PREFIX, "job/requirements.txt": WHEEL_REQUIREMENT})

    def compiled(output: str) -> bool:
        package = next(Path(venv_of(output)).glob("lib/python*/site-packages/bwtest_greeting"))
        return any(package.glob("__pycache__/*.pyc"))

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    assert compiled(run_stage(repo, tmp_path, "w1", stage="nowrite", env=env))
    env.pop("PYTHONDONTWRITEBYTECODE")
    env["UV_COMPILE_BYTECODE"] = "1"
    assert not compiled(run_stage(repo, tmp_path, "w2", stage="lazy", env=env))
