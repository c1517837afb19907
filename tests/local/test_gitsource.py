"""Pinning a run to one commit: gitsource.resolve and gitsource.checkout against real local
repos and a real `git daemon`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bodywork.core.errors import GitSourceError, UsageError
from bodywork.core.plan import Source
from bodywork.engine import gitsource
from tests.conftest import commit_all, free_port, git, serve_bare, write_files


def head(repo: Path, ref: str = "HEAD") -> str:
    return git(repo, "rev-parse", ref)


def no_warnings(message: str) -> None:
    raise AssertionError(f"unexpected warning: {message}")


# ------------------------------------------------------------------------- local paths
def test_local_path_resolves_to_head_sha(make_repo):
    """A clean local repo resolves to its HEAD commit, with the repo root as the URL."""
    repo = make_repo({"bodywork.ini": "x"})
    source = gitsource.resolve(str(repo), None, warn=no_warnings)
    assert source.commit == head(repo)
    assert source.repo_url == repo.resolve().as_uri()
    assert source.project_dir == ""
    assert source.ref == "HEAD"


def test_local_subdirectory_becomes_project_dir(make_repo):
    """A path inside the repo, or project_dir=, pins the repo and records the sub-path."""
    repo = make_repo({"projects/ml/bodywork.ini": "x", "README": "root"})
    by_path = gitsource.resolve(str(repo / "projects" / "ml"), None, warn=no_warnings)
    assert by_path.project_dir == "projects/ml"
    assert by_path.repo_url == repo.resolve().as_uri()
    assert by_path.commit == head(repo)
    by_option = gitsource.resolve(str(repo), None, warn=no_warnings, project_dir="projects/ml")
    assert by_option == by_path


def test_uncommitted_changes_warn_and_committed_sha_is_used(make_repo):
    """Edits not yet committed trigger one warning and the run uses the last commit."""
    repo = make_repo({"stage/main.py": "print(1)\n"})
    committed = head(repo)
    write_files(repo, {"stage/main.py": "print(2)\n", "stage/new.py": ""})
    warnings: list[str] = []
    source = gitsource.resolve(str(repo), None, warn=warnings.append)
    assert source.commit == committed
    assert len(warnings) == 1
    assert "2 uncommitted change(s)" in warnings[0]
    assert committed[:12] in warnings[0]


def test_uncommitted_changes_outside_project_dir_do_not_warn(make_repo):
    """Only changes inside the project directory are worth a warning."""
    repo = make_repo({"proj/bodywork.ini": "x", "other/file.txt": "a"})
    write_files(repo, {"other/file.txt": "b"})
    source = gitsource.resolve(str(repo / "proj"), None, warn=no_warnings)
    assert source.commit == head(repo)


def test_a_project_folder_named_like_a_glob_is_that_folder_only(make_repo):
    """`ml[1]` is a folder, not a pattern matching `ml1`: a change beside it does not warn,
    one inside it does (the status is asked for with literal pathspecs)."""
    repo = make_repo({"ml[1]/bodywork.ini": "x", "ml1/file.txt": "a"})
    write_files(repo, {"ml1/file.txt": "b"})
    gitsource.resolve(str(repo / "ml[1]"), None, warn=no_warnings)
    write_files(repo, {"ml[1]/bodywork.ini": "y"})
    warnings: list[str] = []
    gitsource.resolve(str(repo / "ml[1]"), None, warn=warnings.append)
    assert len(warnings) == 1 and "1 uncommitted change(s)" in warnings[0]


def test_not_a_git_repo_is_a_helpful_error(tmp_path):
    """A directory outside any repo fails with a message telling how to make it one."""
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GitSourceError) as caught:
        gitsource.resolve(str(plain), None, warn=no_warnings)
    message = str(caught.value)
    assert "is not inside a git repository" in message
    assert "git init" in message and "git commit" in message


def test_missing_path_is_an_error(tmp_path):
    """A path that does not exist is reported as such, not as a git failure."""
    with pytest.raises(GitSourceError, match="does not exist"):
        gitsource.resolve(str(tmp_path / "nowhere"), None, warn=no_warnings)


def test_empty_repo_is_a_helpful_error(tmp_path):
    """A repository without commits fails saying it has no commits."""
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "main")
    with pytest.raises(GitSourceError, match="the repository has no commits"):
        gitsource.resolve(str(empty), None, warn=no_warnings)


# ------------------------------------------------------------------------- remote URLs
@pytest.fixture
def served(make_repo, git_daemon):
    """A repo with main (2 commits), branch `feature`, annotated tag v1 on main's first commit,
    served by the git daemon. Returns (working repo, bare repo, URL, commits)."""
    base, daemon_url = git_daemon
    repo = make_repo({"data.txt": "one\n"})
    first = head(repo)
    git(repo, "tag", "-a", "v1", "-m", "release one")
    git(repo, "checkout", "-q", "-b", "feature")
    write_files(repo, {"data.txt": "feature\n"})
    feature = commit_all(repo, "feature work")
    git(repo, "checkout", "-q", "main")
    write_files(repo, {"data.txt": "two\n"})
    main = commit_all(repo, "second")
    bare = serve_bare(repo, base)
    git(bare, "fetch", "-q", str(repo), "feature:feature")  # a bare clone copies only main
    commits = {"first": first, "feature": feature, "main": main}
    return repo, bare, f"{daemon_url}/project.git", commits


def test_remote_default_branch(served):
    """No ref resolves to the commit the remote's HEAD (main) points at."""
    _, _, url, commits = served
    source = gitsource.resolve(url, None, warn=no_warnings)
    assert source == Source(url, commits["main"], "HEAD", "")


def test_remote_named_branch(served):
    """A branch name resolves to that branch's tip."""
    _, _, url, commits = served
    assert gitsource.resolve(url, "feature", warn=no_warnings).commit == commits["feature"]
    assert gitsource.resolve(url, "main", warn=no_warnings).commit == commits["main"]


def test_remote_annotated_tag_resolves_to_its_commit(served):
    """An annotated tag resolves to the commit it tags, not to the tag object."""
    repo, _, url, commits = served
    tag_object = head(repo, "refs/tags/v1")
    assert tag_object != commits["first"]  # it really is an annotated tag
    source = gitsource.resolve(url, "v1", warn=no_warnings)
    assert source.commit == commits["first"]
    assert source.ref == "v1"


def test_remote_full_sha_is_taken_as_is(served):
    """A full 40-character SHA is the commit, without asking the server."""
    _, _, url, commits = served
    source = gitsource.resolve(url, commits["first"], warn=no_warnings)
    assert source.commit == commits["first"]


def test_remote_missing_branch_names_it(served):
    """A branch the remote lacks fails with a message naming it and how to list refs."""
    _, _, url, _ = served
    with pytest.raises(GitSourceError) as caught:
        gitsource.resolve(url, "no-such-branch", warn=no_warnings)
    assert "'no-such-branch'" in str(caught.value)
    assert f"git ls-remote {url}" in str(caught.value)


def test_remote_short_sha_is_a_clear_error(served):
    """A short SHA cannot be resolved remotely; the error says to give all 40 characters."""
    _, _, url, commits = served
    with pytest.raises(GitSourceError, match="short commit SHA.*40 characters"):
        gitsource.resolve(url, commits["first"][:8], warn=no_warnings)


def test_unreachable_server_fails_within_seconds():
    """A closed port fails with GitSourceError after brief retries, never hangs."""
    url = f"git://127.0.0.1:{free_port()}/project.git"
    started = time.monotonic()
    with pytest.raises(GitSourceError) as caught:
        gitsource.resolve(url, None, warn=no_warnings)
    assert time.monotonic() - started < 8
    assert str(caught.value).startswith(f"cannot read {url}: ")


@pytest.mark.parametrize("userinfo", ["user:t0ps3cret@", "x-access-token:t0ps3cret@", "t0ps3cret@"])
def test_a_remote_url_with_credentials_is_refused_naming_the_secret_way(userinfo):
    """A token in a URL would sit in every Job's args and in `ps`: the URL is refused before
    anything is contacted, the message names --git-token-secret and never the token."""
    url = f"https://{userinfo}127.0.0.1:{free_port()}/project.git"
    with pytest.raises(UsageError) as caught:
        gitsource.resolve(url, "main", warn=no_warnings)
    message = str(caught.value)
    assert "t0ps3cret" not in message
    assert "***@127.0.0.1" in message
    assert "--git-token-secret" in message and "BODYWORK_GIT_TOKEN" in message
    assert caught.value.exit_code == 2


def test_an_ssh_url_with_a_user_name_is_not_refused():
    """ssh://git@host is how SSH names the account, not a credential."""
    gitsource.refuse_embedded_credentials("ssh://git@github.com/org/repo.git")
    gitsource.refuse_embedded_credentials("https://github.com/org/repo.git")


# ------------------------------------------------------------------------- checkout
def test_checkout_fetches_exactly_the_pinned_sha(make_repo, tmp_path):
    """checkout leaves HEAD at the pinned commit, fetched shallowly."""
    repo = make_repo({"data.txt": "one\n"})
    write_files(repo, {"data.txt": "two\n"})
    sha = commit_all(repo)
    source = gitsource.resolve(str(repo), None, warn=no_warnings)
    root = gitsource.checkout(source, tmp_path / "dest")
    assert root == tmp_path / "dest"
    assert head(root) == sha
    assert (root / "data.txt").read_text() == "two\n"
    assert git(root, "rev-list", "--count", "HEAD") == "1"


def test_checkout_of_non_tip_sha_from_daemon(served, tmp_path):
    """An older commit that is no branch tip is fetched from the daemon and checked out."""
    _, _, url, commits = served
    source = gitsource.resolve(url, commits["first"], warn=no_warnings)
    root = gitsource.checkout(source, tmp_path / "dest")
    assert head(root) == commits["first"]
    assert (root / "data.txt").read_text() == "one\n"


def test_checkout_of_branch_from_daemon(served, tmp_path):
    """A resolved branch is checked out at the commit resolution pinned."""
    _, _, url, commits = served
    root = gitsource.checkout(gitsource.resolve(url, "feature", warn=no_warnings), tmp_path / "d")
    assert head(root) == commits["feature"]
    assert (root / "data.txt").read_text() == "feature\n"


def test_checkout_returns_project_dir_inside_the_checkout(make_repo, tmp_path):
    """With a project_dir the returned root is that directory of the checkout."""
    repo = make_repo({"proj/bodywork.ini": "x"})
    source = gitsource.resolve(str(repo / "proj"), None, warn=no_warnings)
    root = gitsource.checkout(source, tmp_path / "dest")
    assert root == tmp_path / "dest" / "proj"
    assert (root / "bodywork.ini").read_text() == "x"


def test_checkout_of_missing_project_dir_is_an_error(make_repo, tmp_path):
    """A project_dir absent at the pinned commit fails naming it."""
    repo = make_repo({"bodywork.ini": "x"})
    source = Source(repo.as_uri(), head(repo), "HEAD", "not-here")
    with pytest.raises(GitSourceError, match="'not-here' does not exist"):
        gitsource.checkout(source, tmp_path / "dest")


def test_checkout_of_unknown_sha_is_an_error(make_repo, tmp_path):
    """A SHA the repo does not hold fails with GitSourceError naming the commit."""
    repo = make_repo({"bodywork.ini": "x"})
    missing = "f" * 40
    with pytest.raises(GitSourceError, match=missing):
        gitsource.checkout(Source(repo.as_uri(), missing), tmp_path / "dest")
