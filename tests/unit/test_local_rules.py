"""The pure rules behind local runs' isolation and bounds (issue 12): which project dir is
inside the repository, a project's identity key, whose socket a /proc/net/tcp line is, how
a huge reason is cut for printing, what `cleanup --local` removes first, and the bounds of
--max-parallel, --older-than and --max-size."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from bodywork.cli import history, run, settings
from bodywork.core.errors import UsageError
from bodywork.engine import confinement, localcleanup, localproject
from bodywork.engine.executors import localports


# ------------------------------------------------------------------------- project dirs
@pytest.mark.parametrize(
    ("given", "normal"),
    [("", ""), ("ml", "ml"), ("/ml/", "ml"), ("ml//project/", "ml/project"), ("a/../b", "b"),
     ("./ml", "ml"), (".", "")],
)  # fmt: skip
def test_a_project_dir_inside_the_repo_is_normalised(given, normal):
    assert confinement.project_dir_in_url_repo(given) == normal


@pytest.mark.parametrize("given", ["..", "../x", "a/../../x", "ml/../..", "ml\\x", "C:/x"])
def test_a_project_dir_leaving_the_repo_is_refused(given):
    with pytest.raises(UsageError, match=rf"^--project-dir '{re.escape(given)}' leaves"):
        confinement.project_dir_in_url_repo(given)


# ----------------------------------------------------------------------------- identities
def test_a_projects_key_keeps_its_name_and_tells_repositories_apart():
    a = localproject.ProjectIdentity("demo", "file:///home/a/repo")
    b = localproject.ProjectIdentity("demo", "file:///home/b/repo")
    sub = localproject.ProjectIdentity("demo", "file:///home/a/repo", "ml")
    assert a.key.startswith("demo-") and len(a.key) == len("demo-") + localproject.HASH_CHARS
    assert len({a.key, b.key, sub.key}) == 3
    assert a.key == localproject.ProjectIdentity("demo", "file:///home/a/repo").key
    long = localproject.ProjectIdentity("x" * 63, "https://example.com/r")
    assert len(long.key) == localproject.MAX_KEY_CHARS and long.key.startswith("x" * 40)


# ------------------------------------------------------------------------ /proc/net/tcp
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0
   1: 0100007F:1F40 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 5151 1 0
   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6363 1 0
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue
   0: 00000000000000000000000000000000:1F40 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 7777 1 0
"""  # noqa: E501


def test_only_listening_sockets_on_the_port_are_found():
    """Port 0x1F40 = 8000: the listener's inode, not the established connection's."""
    assert localports.parse_listening_inodes(TCP, 8000) == {4242}
    assert localports.parse_listening_inodes(TCP, 80) == {6363}
    assert localports.parse_listening_inodes(TCP6, 8000) == {7777}
    assert localports.parse_listening_inodes(TCP, 9999) == set()
    assert localports.parse_listening_inodes("garbage\n1: x y z\n", 8000) == set()


# --------------------------------------------------------------------------- reasons cut
def test_a_long_line_keeps_its_start_and_end_and_says_how_much_was_cut():
    line = "a" * 1000 + "b" * 1000
    cut = run.cap_line(line)
    assert cut.startswith("a" * 300) and cut.endswith("b" * 100)
    assert f"[… {2000 - 300 - 100} characters cut …]" in cut
    assert run.cap_line("short") == "short"


def test_many_lines_keep_the_first_and_last_and_say_how_many_were_cut():
    reason = "\n".join(f"line {i}" for i in range(100))
    lines = run.cap_reason(reason).splitlines()
    assert lines[:6] == [f"line {i}" for i in range(6)]
    assert lines[6] == "[… 88 lines cut …]"
    assert lines[7:] == [f"line {i}" for i in range(94, 100)]
    assert run.cap_reason("one\ntwo") == "one\ntwo"


def test_a_table_detail_is_one_line():
    assert run.table_detail("head:\nmore\nmore") == "head: [+2 line(s)]"
    assert "\n" not in run.table_detail("x" * 5000) and len(run.table_detail("x" * 5000)) < 300
    assert run.table_detail("") == ""


# ----------------------------------------------------------------------- cleanup --local
NOW = 1_000_000_000.0  # a fixed "now", in seconds since the epoch


def item(name: str, days_ago: float, size: int = 10, in_use: str = "") -> localcleanup.Item:
    return localcleanup.Item("venv", Path(name), size, NOW - days_ago * 86400, in_use)


def test_cleanup_removes_what_is_older_than_the_bound_oldest_first():
    items = [item("new", 1), item("old", 30), item("older", 60), item("busy", 90, in_use="pid 1")]
    going, kept = localcleanup.choose(items, 7 * 86400, None, NOW)
    assert [str(i.path) for i in going] == ["older", "old"]
    assert [str(i.path) for i in kept] == ["busy"]


def test_a_size_bound_then_removes_the_oldest_until_under_it_but_never_what_is_in_use():
    items = [item("a", 1, 100), item("b", 2, 100), item("c", 3, 100), item("d", 4, 100, "live")]
    going, _ = localcleanup.choose(items, 365 * 86400, 250, NOW)
    assert [str(i.path) for i in going] == ["c", "b"]  # 400 → 200; d is in use
    going, _ = localcleanup.choose(items, 365 * 86400, 0, NOW)
    assert [str(i.path) for i in going] == ["c", "b", "a"]


def test_what_was_used_in_the_last_minutes_stays_whatever_the_bounds():
    recent = item("just-used", localcleanup.RECENT_SECONDS / 2 / 86400)
    going, _ = localcleanup.choose([recent], 0, 0, NOW)
    assert going == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 7 * 86400), ("12h", 12 * 3600), ("30m", 1800), ("45s", 45), ("2w", 14 * 86400),
     ("3", 3 * 86400), ("0", 0), ("1.5d", 1.5 * 86400)],
)  # fmt: skip
def test_ages(text, seconds):
    assert history.parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("5G", 5 * 1024**3), ("500M", 500 * 1024**2), ("1.5GiB", int(1.5 * 1024**3)),
     ("800k", 800 * 1024), ("1024", 1024), ("2TB", 2 * 1024**4)],
)  # fmt: skip
def test_sizes(text, size):
    assert history.parse_size(text) == size


@pytest.mark.parametrize("text", ["soon", "-1d", "7 days", ""])
def test_unusable_ages_are_usage_errors(text):
    with pytest.raises(UsageError, match="--older-than"):
        history.parse_duration(text)


# ------------------------------------------------------------------------- --max-parallel
def test_max_parallel_comes_from_the_flag_then_the_env_then_the_default():
    flag = argparse.Namespace(max_parallel=3)
    unset = argparse.Namespace(max_parallel=None)
    assert settings.max_parallel(flag, {settings.MAX_PARALLEL_ENV: "9"}) == 3
    assert settings.max_parallel(unset, {settings.MAX_PARALLEL_ENV: " 9 "}) == 9
    assert settings.max_parallel(unset, {}) == settings.default_max_parallel()
    assert 5 <= settings.default_max_parallel() <= 32


@pytest.mark.parametrize("value", [0, -1, settings.MAX_PARALLEL_BOUND + 1])
def test_a_max_parallel_out_of_bounds_is_a_usage_error(value):
    with pytest.raises(UsageError, match=r"^--max-parallel '.*': give how many stages"):
        settings.max_parallel(argparse.Namespace(max_parallel=value), {})
