"""names: mapping stage and project names onto Kubernetes DNS-1123 labels."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bodywork.core import names


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train", "train"),
        ("Train_Model", "train-model"),
        ("stage 1", "stage-1"),
        ("a..b__c", "a-b-c"),
        ("--x--", "x"),
        ("serve.v2", "serve-v2"),
        ("MiXeD-123", "mixed-123"),
        ("café", "caf"),
    ],
)
def test_k8s_name_lower_cases_and_replaces_other_characters_with_one_dash(text, expected):
    """Upper case is lowered; runs of anything outside [a-z0-9-] become one '-', trimmed."""
    assert names.k8s_name(text) == expected


@pytest.mark.parametrize("text", ["", "!!!", "___", "日本語", "ÄÖÜ", "-_-"])
def test_k8s_name_is_empty_when_nothing_usable_is_left(text):
    """Names of only symbols or non-ASCII letters map to '' for config to report."""
    assert names.k8s_name(text) == ""


@given(st.text(max_size=60))
def test_k8s_name_is_always_a_dns_label_or_empty(text):
    """Whatever the input, a short result is a valid DNS label (or '')."""
    name = names.k8s_name(text)
    assert name == "" or names.is_dns_label(name)
    assert names.k8s_name(name) == name


@pytest.mark.parametrize("text", ["a", "0", "a-b", "a--b", "x" * 63, "1abc"])
def test_is_dns_label_accepts_valid_labels(text):
    """Lower-case alphanumerics and inner dashes up to 63 characters are labels."""
    assert names.is_dns_label(text)


@pytest.mark.parametrize("text", ["", "-a", "a-", "A", "a_b", "a.b", "x" * 64, "abc\n", "é"])
def test_is_dns_label_rejects_invalid_labels(text):
    """Empty, edge dashes, upper case, symbols, > 63 characters and a trailing newline fail."""
    assert not names.is_dns_label(text)


def test_object_name_joins_parts_with_double_dash():
    """Parts are made Kubernetes-safe and joined with '--', as the original Bodywork did."""
    assert names.object_name("My Project", "Train_A") == "my-project--train-a"


def test_object_name_keeps_a_name_of_exactly_the_limit():
    """A 63-character result is not cut or hashed."""
    stage = "s" * (63 - len("proj--"))
    assert names.object_name("proj", stage) == f"proj--{stage}"


def test_object_name_cuts_long_names_and_appends_a_hash_of_the_whole():
    """Too-long names are cut to fit 63 with '-' and 8 hex chars of sha256 of the full name."""
    stage = "s" * 100
    full = f"proj--{stage}"
    name = names.object_name("proj", stage)
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    assert len(name) == 63
    assert name == f"{full[:54]}-{digest}"
    assert names.is_dns_label(name)


def test_object_name_cut_does_not_leave_a_double_dash_before_the_hash():
    """A cut landing on a '-' drops it, so the label never ends its head with a dash run."""
    name = names.object_name("p" * 53, "stage" * 20)
    assert not name[:-9].endswith("-")
    assert names.is_dns_label(name)


def test_object_name_respects_a_smaller_max_length():
    """max_length caps the result for objects with tighter limits."""
    name = names.object_name("project", "stage-name", max_length=15)
    assert len(name) <= 15
    assert names.is_dns_label(name)


def test_object_name_is_deterministic():
    """The same parts always give the same name, so redeploys update the same objects."""
    assert names.object_name("p", "x" * 80) == names.object_name("p", "x" * 80)


def test_long_names_sharing_a_prefix_do_not_collide():
    """Names identical for their first 63 characters still get distinct object names."""
    a = names.object_name("proj", "x" * 70 + "-a")
    b = names.object_name("proj", "x" * 70 + "-b")
    assert a != b
    assert a[:54] == b[:54]


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,100}[a-z0-9])?", fullmatch=True).filter(
    lambda s: "--" not in s
)


@given(_label, st.lists(_label, min_size=1, max_size=3))
def test_object_name_is_always_a_dns_label(project, stages):
    """Any non-empty parts give a valid label of at most 63 characters."""
    name = names.object_name(project, *stages)
    assert len(name) <= names.MAX_NAME_LENGTH
    assert names.is_dns_label(name)


@given(_label, _label, _label)
def test_distinct_stage_names_never_collide(project, first, second):
    """Two different (already Kubernetes-safe) stage names give different object names."""
    if first != second:
        assert names.object_name(project, first) != names.object_name(project, second)


def test_the_default_cronjob_name_fits_the_apis_52_characters() -> None:
    """The CronJob controller adds an 11-character suffix to its Jobs: 52 is the limit."""
    from bodywork.core import names

    long_project = "p" * 63
    name = names.cronjob_name(long_project)
    assert len(name) <= 52 and name.startswith("ppp")
    assert names.cronjob_name("iris") == "iris--retrain"
    assert names.cronjob_name(long_project) != names.cronjob_name("q" * 63)
