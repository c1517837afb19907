"""`bodywork validate` and `bodywork render` on generated hostile project trees.

Hypothesis builds trees of random bodywork.ini / bodywork.yaml / config.ini contents, as
text and as raw bytes (binary, bad UTF-8, UTF-16, NULs, huge values, odd DAG strings,
unicode), with files where folders belong and the reverse, FIFOs and symlinks (dangling,
looping, leaving the tree). Each command runs in-process (`bodywork.cli.main.main`, output
captured), and must:

- exit 0 or 2, the configuration error's code (README: 0, 1, 2, 3, 4, 5, 6, 129, 130, 141);
- never let an exception out, nor print a traceback;
- finish: an alarm ends a run that hangs (`HANG_SECONDS`, a guard, not a timing test).

render needs a commit, so its trees are committed to a git repository first (without the
FIFOs, which git does not take).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bodywork.cli.main import main
from bodywork.core.errors import ConfigError
from tests.conftest import GIT_IDENTITY

DOCUMENTED_EXIT_CODES = {0, 1, 2, 3, 4, 5, 6, 129, 130, 141}
VALIDATE_EXIT_CODES = {0, ConfigError.exit_code}
HANG_SECONDS = 60


class Hung(Exception):
    """The alarm went off: the command did not finish within HANG_SECONDS."""


@contextlib.contextmanager
def hang_guard() -> Iterator[None]:
    def alarm(signum: int, frame: object) -> None:
        raise Hung(f"no answer in {HANG_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def bodywork(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with hang_guard(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def assert_clean(code: int, out: str, err: str) -> None:
    assert code in DOCUMENTED_EXIT_CODES
    assert code in VALIDATE_EXIT_CODES, (code, err[-2000:])
    assert "Traceback" not in out + err
    if code != 0:
        assert "error:" in err or "error" in err.lower(), err[-2000:]


# ---------------------------------------------------------------------------- contents
_PLAIN_NAMES = ["train", "serve", "stage-1", "Stage_2", "a.b", "score", "prep", "s3"]
_ODD_NAMES = ["x" * 80, "ünï", "日本", "-lead", "a b", "UPPER", "train\n", "x" * 250]
_NAMES = st.one_of(
    *[st.sampled_from(_PLAIN_NAMES)] * 6,
    st.sampled_from(_ODD_NAMES),
    st.text(
        alphabet=st.characters(blacklist_characters="/\0", blacklist_categories=["Cs"]),
        min_size=1,
        max_size=12,
    ).filter(lambda n: n not in (".", "..") and not n.startswith(".git")),
)
_DAG_JUNK = st.sampled_from(
    [">>", ">", ",", ",,", " >> >> ", "\t", "é", "\u2028", "\x00", '"', "'", "#", ";", "[", "="]
)


@st.composite
def dags(draw: st.DrawFn, names: list[str]) -> str:
    parts = draw(st.lists(st.one_of(st.sampled_from(names or ["x"]), _DAG_JUNK), max_size=12))
    return "".join(draw(st.sampled_from([" >> ", ", ", "", " "])) + p for p in parts)


_INI_LINES = st.sampled_from(
    [
        "[default]", "[workflow]", "[batch]", "[service]", "[secrets]", "[logging]", "[DEFAULT]",
        "[notify]", "PROJECT_NAME = demo", 'PROJECT_NAME = "ünï code"', "PROJECT_NAME = !!!",
        "STAGE_TYPE = batch", "STAGE_TYPE = service", "STAGE_TYPE = both", "EXECUTABLE_SCRIPT =",
        "EXECUTABLE_SCRIPT = main.py", "EXECUTABLE_SCRIPT = ../../etc/passwd",
        "PORT = 5000", "PORT = -1", "PORT = 99999999999999999999999", "PORT = 5e3",
        "RETRIES = 1", "RETRIES = nan", "MAX_COMPLETION_TIME_SECONDS = 0",
        "CPU_REQUEST = inf", "MEMORY_REQUEST_MB = 1e400", "REPLICAS = 0", "INGRESS = maybe",
        "USERNAME = db-creds", "BODYWORK_STAGE = x", "bad key = v", "no equals", "= v",
        "  continued", "# comment", "LOG_LEVEL = LOUD", "ON_FAILURE = train", "GPUS = 3",
        "NODE_SELECTOR = {a: b}", "TOLERATIONS = [", "x" * 5000 + " = y", "K = " + "v" * 100_000,
    ]
)  # fmt: skip
_YAML_PIECES = st.sampled_from(
    [
        'version: "1.1"\n', 'version: "1.0"\n', "version: 2\n", "pipeline:\n", "project:\n",
        "  name: demo\n", "  name: [a]\n", '  DAG: "train >> serve"\n', "  DAG: {}\n",
        "stages:\n", "  train:\n", "  serve:\n", "    executable_module_path: main.py\n",
        "    executable_module_path: /abs.py\n", "    batch:\n", "    service:\n",
        "      retries: 1\n", "      port: 70000\n", "      max_completion_time_seconds: -5\n",
        "    args: [1, 2, {a: b}]\n", "    requirements: [numpy]\n", "    secrets: {A: b}\n",
        "    cpu_request: .nan\n", "&a {x: *a}\n", "<<: *a\n", "? [a]\n: b\n", "---\n", "...\n",
        "\t\n", "- \n", "[" * 300 + "\n", "key: |-#c\n", "\ufeff", "\x00", "\x85", "é: ü\n",
        "a: " + "b" * 50_000 + "\n", "!!python/object:os.system x\n", "logging:\n  log_level: X\n",
    ]
)  # fmt: skip


def valid_text(kind: str, names: list[str], dag: str) -> list[str]:
    """The lines of a file that validates, before any mutation."""
    if kind == "project":
        return ["[default]", "PROJECT_NAME = demo", "", "[workflow]", f"DAG = {dag}"]
    if kind == "stage":
        return [
            "[default]", "STAGE_TYPE = batch", "EXECUTABLE_SCRIPT = main.py", "",
            "[batch]", "RETRIES = 1", "MAX_COMPLETION_TIME_SECONDS = 60",
        ]  # fmt: skip
    lines = ['version: "1.1"', "pipeline:", "  name: demo", f'  DAG: "{dag}"', "stages:"]
    for name in names:
        lines += [f"  {name}:", f"    executable_module_path: {name}/main.py", "    batch: {}"]
    return lines


HOSTILE = ["mutated", "mutated", "lines", "bytes", "utf16", ""]


@st.composite
def contents(draw: st.DrawFn, kind: str, names: list[str], hostility: int) -> bytes:
    """A file's bytes: a valid file of its kind, mutated or not; generated lines; or raw
    bytes, an encoding other than UTF-8, nothing. `hostility` 0: always valid; 1: one file
    in seven otherwise; 2: most files otherwise."""
    how = draw(st.sampled_from(["valid"] * [1, 6, 2][hostility] + HOSTILE * min(hostility, 1)))
    if how == "bytes":
        return draw(st.binary(max_size=400))
    if how == "":
        return b""
    if hostility == 0 or draw(st.sampled_from([True, True, False])):
        dag = " >> ".join(names)
    else:
        dag = draw(dags(names))
    pieces = _YAML_PIECES if kind == "yaml" else _INI_LINES
    if how == "lines":
        lines = draw(st.lists(pieces, max_size=14))
    else:
        lines = valid_text(kind, names, dag)
        if how == "mutated":
            for _ in range(draw(st.integers(1, 4))):
                at = draw(st.integers(0, len(lines)))
                if draw(st.booleans()) and at < len(lines):
                    lines[at] = draw(pieces).rstrip("\n")  # replaced
                else:
                    lines.insert(at, draw(pieces).rstrip("\n"))
    text = "\n".join(lines) + "\n"
    if how == "utf16":
        return text.encode("utf-16")
    return text.encode("utf-8", errors="surrogatepass")


@st.composite
def trees(draw: st.DrawFn, fifos: bool) -> dict[str, object]:
    """relative path → bytes (a file), "dir", "fifo", or ("link", target)."""
    hostility = draw(st.sampled_from([0, 0, 1, 1, 2]))
    some = st.sampled_from(_PLAIN_NAMES) if hostility < 2 else _NAMES
    names = draw(st.lists(some, min_size=1, max_size=4, unique_by=str.lower))
    tree: dict[str, object] = {}
    odd = ["absent", "dir", "link"] + (["fifo"] if fifos else [])
    shapes = ["file"] * [1, 20, 6][hostility] + odd * min(hostility, 1)
    links = st.sampled_from(["nowhere", "/etc", "../..", "loop", "main.py", "../bodywork.ini"])

    def place(path: str, kind: str) -> None:
        shape = draw(st.sampled_from(shapes))
        if shape == "file":
            tree[path] = draw(contents(kind, names, hostility))
        elif shape in ("dir", "fifo"):
            tree[path] = shape
        elif shape == "link":
            target = draw(links)
            tree[path] = ("link", path.rsplit("/", 1)[-1] if target == "loop" else target)

    form = draw(st.sampled_from(["ini"] * 4 + ["yaml"] * 3 + ["both"]))  # both: one error
    if form != "yaml":
        place("bodywork.ini", "project")
    if form != "ini":
        place("bodywork.yaml", "yaml")
    for name in names:
        folder = hostility == 0 or draw(st.sampled_from([True] * 9 + [False]))
        tree.setdefault(name, "dir" if folder else b"a file, not a folder")
        if tree[name] != "dir":
            continue
        place(f"{name}/config.ini", "stage")
        if hostility == 0 or draw(st.sampled_from([True] * 5 + [False])):
            tree[f"{name}/requirements.txt"] = b"numpy\n"
        tree[f"{name}/main.py"] = draw(st.sampled_from([b"pass\n", b"\xff\xfe\x00", b""]))
    return tree


def build(root: Path, tree: dict[str, object]) -> None:
    for relative, what in sorted(tree.items()):
        path = root / relative
        if path.parent != root and not path.parent.is_dir():
            continue  # its folder is a file or a link here
        if what == "dir":
            path.mkdir(exist_ok=True)
        elif what == "fifo":
            os.mkfifo(path)
        elif isinstance(what, tuple):
            os.symlink(what[1], path)
        else:
            assert isinstance(what, bytes)
            path.write_bytes(what)


def commit(root: Path) -> None:
    env = {**os.environ, **GIT_IDENTITY}
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["commit", "-qm", "x", "--allow-empty"],
    ):
        subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,  # the alarm guards against hangs; nothing here times anything
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@fuzz(300)
@given(trees(fifos=True), st.booleans())
def test_validate_of_a_hostile_tree_exits_cleanly(tree: dict[str, object], strict: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bw-fuzz-") as name:
        root = Path(name) / "project"
        root.mkdir()
        build(root, tree)
        assert_clean(*bodywork("validate", str(root), *(["--strict"] if strict else [])))


@fuzz(80)
@given(trees(fifos=False))
def test_render_of_a_hostile_committed_tree_exits_cleanly(tree: dict[str, object]) -> None:
    with tempfile.TemporaryDirectory(prefix="bw-fuzz-") as name:
        root = Path(name) / "project"
        root.mkdir()
        build(root, tree)
        commit(root)
        code, out, err = bodywork("render", str(root))
        assert_clean(code, out, err)
        if code == 0:
            assert "kind: Job" in out
