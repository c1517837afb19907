"""Reading a project from the pinned commit's git objects (gitsource.read_commit) gives the
snapshot a checkout gives (config.read_project_files), and the same errors; what only a
checkout can show (symlinks, attributes) is left to the checkout."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bodywork.core import config
from bodywork.core.errors import ConfigError, GitSourceError
from bodywork.core.plan import Source
from bodywork.engine import controller, gitsource
from tests.conftest import commit_all, git, serve_bare

_dests = itertools.count()


def source_of(repo: Path, project_dir: str = "", commit: str | None = None) -> Source:
    sha = commit or git(repo, "rev-parse", "HEAD")
    return Source(repo.resolve().as_uri(), sha, "HEAD", project_dir)


def from_checkout(source: Source, tmp: Path, max_files: int | None = None) -> config.ProjectFiles:
    root = gitsource.checkout(source, tmp / f"checkout{next(_dests)}")
    return config.read_project_files(root, "fallback", max_files)


def from_objects(
    source: Source, tmp: Path, max_files: int | None = None
) -> config.ProjectFiles | None:
    return gitsource.read_commit(
        source, tmp / f"objects{next(_dests)}", None, "fallback", max_files
    )


def make(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    commit_all(root, "initial")
    return root


INI_PROJECT: dict[str, str | bytes] = {
    "bodywork.ini": "[default]\nPROJECT_NAME=demo\n[workflow]\nDAG=stage-a >> stage-b\n",
    "stage-a/config.ini": "[default]\nSTAGE_TYPE=batch\nEXECUTABLE_SCRIPT=main.py\n",
    "stage-a/main.py": "print(1)\n",
    "stage-a/deep/er/module.py": "",
    "stage-b/config.ini": b"[default]\nSTAGE_TYPE=batch\nEXECUTABLE_SCRIPT=m\xe9.py\n",
    "stage-b/requirements.txt": "",
    "stage-c/config.ini": "\ufeff[default]\nSTAGE_TYPE=batch\n".encode("utf-16"),
    "no-config/readme.txt": "",
    ".github/workflows/ci.yml": "",
    "venv/lib/x.py": "",
    "__pycache__/x.pyc": "",
    "node_modules/x/index.js": "",
    "README.md": "demo\n",
    "nämé/ünï.py": "",
}

YAML_PROJECT: dict[str, str | bytes] = {
    "bodywork.yaml": 'version: "1.1"\npipeline:\n  name: demo\n  DAG: a\nstages:\n  a: {}\n',
    **{f"pkg/sub{i}/mod{j}.py": "" for i in range(3) for j in range(3)},
    "pkg/__init__.py": "",
    ".tox/py/x.py": "",
    ".hidden/kept.py": "",
    "node_modules/deep/x.js": "",
    "docs/venv/skipped.py": "",
    "top.txt": b"\xff\xfe",
}


@pytest.mark.parametrize("files", [INI_PROJECT, YAML_PROJECT], ids=["ini", "yaml"])
def test_objects_equal_checkout(tmp_path, files):
    """Configuration texts (non-UTF-8, UTF-16), stage folders, skipped and hidden folders,
    nested paths and non-ASCII names: the same snapshot either way."""
    repo = make(tmp_path / "repo", files)
    source = source_of(repo)
    got = from_objects(source, tmp_path)
    assert got is not None
    assert got == from_checkout(source, tmp_path)


@pytest.mark.parametrize("cap", [1, 2, 5, 9, 12, 50])
def test_objects_equal_checkout_at_the_file_cap(tmp_path, cap):
    """The paths a capped snapshot keeps are the first ones of os.walk's order, and
    too_many_files is set alike."""
    repo = make(tmp_path / "repo", YAML_PROJECT)
    source = source_of(repo)
    expected = from_checkout(source, tmp_path, max_files=cap)
    assert from_objects(source, tmp_path, max_files=cap) == expected
    assert expected.too_many_files == (cap < 13)


def test_project_dir_and_submodule(tmp_path):
    """A project in a sub-folder, one of whose stage folders is a submodule (an empty
    folder in a checkout)."""
    repo = make(tmp_path / "repo", {f"ml/proj/{k}": v for k, v in INI_PROJECT.items()})
    other = make(tmp_path / "other", {"x": ""})
    sha = git(other, "rev-parse", "HEAD")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{sha},ml/proj/vendored")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{sha},ml/proj/stage-a/sub")
    git(repo, "commit", "-q", "-m", "submodules")
    source = source_of(repo, "ml/proj")
    got = from_objects(source, tmp_path)
    assert got is not None and "vendored" in got.dirs
    assert got == from_checkout(source, tmp_path)
    yaml = make(tmp_path / "yaml", YAML_PROJECT)
    git(yaml, "update-index", "--add", "--cacheinfo", f"160000,{sha},pkg/sub0/vendored")
    git(yaml, "commit", "-q", "-m", "submodule")
    assert from_objects(source_of(yaml), tmp_path) == from_checkout(source_of(yaml), tmp_path)


@pytest.mark.parametrize("project_dir", ["missing", "README.md", "stage-a/main.py/x"])
def test_missing_project_dir_is_the_same_error(tmp_path, project_dir):
    repo = make(tmp_path / "repo", INI_PROJECT)
    source = source_of(repo, project_dir)
    with pytest.raises(GitSourceError) as by_checkout:
        from_checkout(source, tmp_path)
    with pytest.raises(GitSourceError) as by_objects:
        from_objects(source, tmp_path)
    assert str(by_objects.value) == str(by_checkout.value)


def test_missing_commit_is_the_same_error(tmp_path):
    repo = make(tmp_path / "repo", INI_PROJECT)
    source = source_of(repo, commit="0" * 40)
    with pytest.raises(GitSourceError) as by_checkout:
        from_checkout(source, tmp_path)
    dest = tmp_path / "fetched"
    assert gitsource.read_commit(source, dest, None, "fallback") is None  # not a tree
    with pytest.raises(GitSourceError) as by_objects:
        gitsource.checkout(source, dest, fetched=True)
    assert str(by_objects.value) == str(by_checkout.value)


def test_checkout_after_objects_is_the_checkout(tmp_path):
    """When read_commit leaves the project to a checkout, the fetched folder is checked out
    (no second fetch) and the snapshot is the usual one."""
    repo = make(tmp_path / "repo", INI_PROJECT)
    (repo / "stage-d").symlink_to("stage-a")
    commit_all(repo)
    source = source_of(repo)
    dest = tmp_path / "fetched"
    assert gitsource.read_commit(source, dest, None, "fallback") is None
    root = gitsource.checkout(source, dest, fetched=True)
    got = config.read_project_files(root, "fallback")
    assert "stage-d" in got.dirs and got == from_checkout(source, tmp_path)


def test_what_only_a_checkout_shows_is_left_to_it(tmp_path):
    """A symlink in the project or on the way to it, or attributes: None (a checkout)."""
    linked = make(tmp_path / "linked", INI_PROJECT)
    (linked / "stage-d").symlink_to("stage-a")
    commit_all(linked)
    assert from_objects(source_of(linked), tmp_path) is None
    above = make(tmp_path / "above", {f"real/{k}": v for k, v in INI_PROJECT.items()})
    (above / "link").symlink_to("real")
    commit_all(above)
    assert from_objects(source_of(above, "link"), tmp_path) is None
    elsewhere = make(tmp_path / "elsewhere", {f"p/{k}": v for k, v in INI_PROJECT.items()})
    (elsewhere / "outside").symlink_to("/etc")
    commit_all(elsewhere)
    assert from_objects(source_of(elsewhere, "p"), tmp_path) is not None  # not the project's
    attributes = make(tmp_path / "attributes", {**INI_PROJECT, ".gitattributes": "* text\n"})
    assert from_objects(source_of(attributes), tmp_path) is None


def test_load_plan_reads_objects_and_still_refuses_a_link_leaving(tmp_path):
    """load_plan without a commit cache plans from the objects; a link leaving the repo is
    still refused, naming it (the checkout's rules)."""
    stage = "[default]\nSTAGE_TYPE=batch\nEXECUTABLE_SCRIPT=main.py\n"
    ini: dict[str, str | bytes] = {"bodywork.ini": INI_PROJECT["bodywork.ini"]}
    for name in ("stage-a", "stage-b"):
        ini |= {f"{name}/config.ini": stage, f"{name}/main.py": "", f"{name}/requirements.txt": ""}
    repo = make(tmp_path / "repo", ini)
    planned = controller.load_plan(str(repo), None)
    assert [s.name for step in planned.steps for s in step.stages] == ["stage-a", "stage-b"]
    (repo / "stage-a" / "data").symlink_to("/etc")
    commit_all(repo)
    with pytest.raises(ConfigError, match="stage-a/data"):
        controller.load_plan(str(repo), None)


def test_a_local_repository_is_read_in_place_with_nothing_fetched(tmp_path):
    """A path's repository holds the commit: it is read there, and `dest` stays untouched."""
    repo = make(tmp_path / "repo", INI_PROJECT)
    dest = tmp_path / "never-made"
    got = gitsource.read_commit(source_of(repo), dest, None, "fallback")
    assert got is not None and got == from_checkout(source_of(repo), tmp_path)
    assert not dest.exists()


def test_a_replacement_ref_in_the_local_repository_is_not_read(tmp_path):
    """`git replace` swaps an object for reads in that repository only; a fetch (what every
    stage does) never sees it, so the in-place read must not either."""
    repo = make(tmp_path / "repo", INI_PROJECT)
    original = git(repo, "rev-parse", "HEAD:bodywork.ini")
    (tmp_path / "other.ini").write_text("[default]\nPROJECT_NAME=swapped\n")
    swapped = git(repo, "hash-object", "-w", str(tmp_path / "other.ini"))
    git(repo, "replace", original, swapped)
    assert "swapped" in git(repo, "show", "HEAD:bodywork.ini")  # git itself reads the swap
    got = from_objects(source_of(repo), tmp_path)
    assert got is not None and got == from_checkout(source_of(repo), tmp_path)
    assert got.bodywork_ini is not None and "PROJECT_NAME=demo" in got.bodywork_ini


@pytest.mark.parametrize("files", [INI_PROJECT, YAML_PROJECT], ids=["ini", "yaml"])
def test_objects_fetched_from_a_server_equal_checkout(tmp_path, git_daemon, files):
    """A URL's commit is fetched into `dest` and read from there: the same snapshot."""
    base, url = git_daemon
    serve_bare(make(tmp_path / "repo", files), base)
    sha = git(tmp_path / "repo", "rev-parse", "HEAD")
    source = Source(f"{url}/project.git", sha, "HEAD", "")
    dest = tmp_path / "fetched"
    got = gitsource.read_commit(source, dest, None, "fallback")
    assert got is not None and (dest / ".git").is_dir()
    assert got == from_checkout(source_of(tmp_path / "repo"), tmp_path)
