"""`render.to_yaml` writes byte for byte what PyYAML's pure SafeDumper writes.

The fast path is libyaml's emitter (with a direct representer); where libyaml would fold
or place a string otherwise, that document goes through the pure dumper. These tests
compare the two on a realistic rendered plan full of awkward strings, on documents built
to hit each difference seen between the two emitters, and on generated documents.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bodywork.core import objects, render
from tests.builders import make_plan, run_settings, stage_config

pytestmark = pytest.mark.skipif(not render.HAVE_LIBYAML, reason="PyYAML without libyaml")

AWKWARD_ARGS = (
    "plain",
    "multi\nline\nvalue",
    "trailing newline\n",
    "  leading and trailing  ",
    "Zürich café",  # unicode
    "日本語のテキスト",
    "emoji \U0001f600",
    "0123",  # leading zeros: a string, quoted
    "007",
    "yes",  # YAML 1.1 booleans: quoted
    "no",
    "on",
    "off",
    "~",
    "null",
    "1e3",
    "0x1F",
    "12:30:00",
    "2024-01-01",
    "--alpha=0.5",
    "key: value",
    "# not a comment",
    "a #b",
    "it's",
    'say "hi"',
    "back\\slash",
    "tab\there",
    "ümlaut " * 30,  # a long unicode line: libyaml and PyYAML fold it differently
    "word " * 40,  # a long ASCII line: folded the same by both
    "x" * 150,  # long, no space to fold at
    "-",
    "",
)


def awkward_plan() -> list[dict[str, Any]]:
    """A rendered plan (controller Job, PVC, Jobs, Deployment, Service, Ingress) whose stages
    take the awkward strings as args, in a project folder with a non-ASCII name."""
    stages = [
        stage_config(name="train", args=AWKWARD_ARGS, secrets=(("DB_PASSWORD", "db-creds"),)),
        stage_config(name="plain", args=("--epochs", "10")),
        stage_config(
            name="serve",
            stage_type="service",
            module_path="serve/serve.py",
            port=8000,
            ingress=True,
            args=("yes", "0123"),
        ),
        stage_config(name="unicode", module_path="données/étape.py", requirements=("numpy",)),
    ]
    the_plan = make_plan(*stages, project_dir="ml/projét")
    run = objects.ControllerRun(
        repo=the_plan.source.repo_url, branch=the_plan.source.commit, run_id=the_plan.run_id
    )
    return render.render(the_plan, run_settings(), run)


def test_a_rendered_plan_of_awkward_strings_is_byte_for_byte_the_pure_dumpers() -> None:
    docs = awkward_plan()
    text = render.to_yaml(docs)
    assert text == render.pure_yaml(docs)
    assert list(yaml.safe_load_all(text)) == docs


def test_the_fast_path_writes_the_plain_documents_and_leaves_the_awkward_ones() -> None:
    """A check of the check: most documents do go through libyaml, and exactly those
    holding a string outside printable ASCII do not."""
    docs = awkward_plan()
    _, unsafe = render._fast_yaml(docs)
    awkward = [i for i, doc in enumerate(docs) if any(not _printable(s) for s in _strings(doc))]
    assert unsafe == awkward
    assert 0 < len(awkward) < len(docs)


def _printable(value: Any) -> bool:
    return not isinstance(value, str) or (value.isascii() and value.isprintable())


def _strings(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [*value, *(s for v in value.values() for s in _strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value]


# Each of these was written differently by libyaml and by the pure emitter.
@pytest.mark.parametrize(
    "doc",
    [
        {"": None},  # an empty key
        {"\r": None},  # a key needing escapes
        {"k" * 125: 1},  # a long key: `? key` from the pure emitter
        {"name": "é" * 120},  # a long escaped string: folded differently
        {"name": "x" * 120 + "\tword"},  # an escape in a long double-quoted string
        {"name": {"name": "word" * 7 + "  \n" + "x" * 60 + "  "}},  # spaces before a break
    ],
)
def test_documents_libyaml_writes_differently_go_through_the_pure_dumper(doc: dict) -> None:
    pure = render.pure_yaml([doc])
    assert yaml.dump_all([doc], Dumper=yaml.CSafeDumper, sort_keys=False, width=100) != pure
    assert render.to_yaml([doc]) == pure
    assert render.to_yaml([{"a": 1}, doc, {"b": 2}, doc]) == render.pure_yaml(
        [{"a": 1}, doc, {"b": 2}, doc]
    )


def test_a_dict_met_twice_is_an_anchor_as_the_pure_dumper_writes_it() -> None:
    shared = {"cpu": "500m"}
    docs = [{"requests": shared, "limits": shared}, {"list": [shared, shared]}]
    assert render.to_yaml(docs) == render.pure_yaml(docs)
    assert "&id001" in render.to_yaml(docs)


def test_anchors_are_numbered_per_document_in_the_order_their_objects_are_met_again() -> None:
    port, probe, args = {"port": 8080}, {"tcpSocket": None}, ["a", "b"]
    probe["tcpSocket"] = port
    loop: list[Any] = ["x"]
    loop.append(loop)  # a list holding itself
    docs = [
        {"args": args, "readiness": probe, "liveness": probe, "port": port, "again": args},
        {"first": port, "loop": loop, "second": port},
        {"a": [probe, [probe, port]]},
    ]
    text = render.to_yaml(docs)
    assert text == render.pure_yaml(docs)
    assert text.count("&id001") == 3 and "&id002" in text  # numbering restarts per document
    _, unsafe = render._fast_yaml(docs)
    assert unsafe == []  # written by libyaml, not left to the pure dumper


def test_documents_dump_all_would_not_join_as_mappings_take_the_pure_dumper() -> None:
    for docs in ([{}], [{"a": 1}, {}], [["a"]], ["text"], [None], []):
        assert render.to_yaml(docs) == render.pure_yaml(docs)


_PIECES = [
    "word", "a", " ", "  ", "\n", "x" * 60, "-", ": ", " #", "'", '"', "\\", "---", "...",
    "? ", "- ", "{", "[", "&a", "*a", "!t", "%", "@", "`", "|", ">", "0", "0x1", "1e3", "yes",
    "No", "~", "null", ".5", "1_0", "2024-01-01", "12:30:00", "=", "<<", "\t", "é", "日本",
    "\x85", "\u2028", "\ufeff", "\x00", "\x07", "\r",
]  # fmt: skip
_TEXT = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300),
    st.lists(st.sampled_from(_PIECES), max_size=100).map("".join),
)
_KEYS = st.one_of(st.sampled_from(["name", "value", "app.kubernetes.io/name", "k" * 63]), _TEXT)
_SCALARS = st.one_of(_TEXT, st.integers(), st.booleans(), st.none(), st.floats())
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=25,
)
_DOCS = st.lists(st.dictionaries(_KEYS, _VALUES, min_size=1, max_size=5), max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_DOCS)
def test_any_documents_are_written_as_the_pure_dumper_writes_them(docs: list[dict]) -> None:
    assert render.to_yaml(docs) == render.pure_yaml(docs)
