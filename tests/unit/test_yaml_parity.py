"""`yamlfile.compose_text` reads bodywork.yaml as PyYAML's pure SafeLoader does.

It uses libyaml's parser when the text holds nothing the two were seen to read differently,
and the pure loader otherwise and on every error. On generated texts both must give the same
tree, node for node: kind, tag, value and line (an empty mapping value's or document's line
aside: libyaml places those on the next line, and no message uses them), and the same error.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bodywork.core import config
from bodywork.core.config import yamlfile
from bodywork.core.errors import ConfigError

pytestmark = pytest.mark.skipif(not yamlfile.HAVE_LIBYAML, reason="PyYAML without libyaml")


def tree(node: Node | None, where: str = "root", seen: frozenset[int] = frozenset()) -> Any:
    if node is None:
        return None
    if id(node) in seen:
        return ("alias", node.tag)
    seen = seen | {id(node)}
    empty = isinstance(node, ScalarNode) and node.value == "" and node.tag.endswith(":null")
    line = None if empty and where in ("root", "value") else node.start_mark.line
    if isinstance(node, ScalarNode):
        return ("scalar", node.tag, line, node.value)
    if isinstance(node, SequenceNode):
        return ("seq", node.tag, line, tuple(tree(n, "item", seen) for n in node.value))
    assert isinstance(node, MappingNode)
    pairs = tuple((tree(k, "key", seen), tree(v, "value", seen)) for k, v in node.value)
    return ("map", node.tag, line, pairs)


def pure(text: str) -> Any:
    try:
        return tree(yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        return ("error", type(exc).__name__, str(exc))


def fast(text: str) -> Any:
    try:
        return tree(yamlfile.compose_text(text))
    except yaml.YAMLError as exc:
        return ("error", type(exc).__name__, str(exc))


_FRAGMENTS = st.sampled_from(
    [
        "a", "b: 1", "key: value", "- x", "  ", "    ", "\n", ": ", ":", "-", "- ", "? ", "#c",
        " #c", "'q'", '"dq"', '"\\x41"', "'it''s'", "[", "]", "{", "}", ",", "&a ", "*a",
        "!!str ", "!t ", "|", ">", "|-", ">+", "---", "...", "%YAML 1.1", "0123", "yes", "~",
        "null", "1e3", "0x1F", "<<: *a", "@", "`", "%", '"unterminated', "'un", "a: b: c",
        "stages:", "  train:", "    batch:", "      retries: 1", 'DAG: "a >> b"',
        'version: "1.1"', "é", "日本", "\U0001f600", "\xa0", "\u3000",
        # what the two read differently: these send the text to the pure loader
        "\t", "\r", "\r\n", "\x85", "\u2028", "\ufeff", "\x07", "|#c", ">-#c",
    ]
)  # fmt: skip


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_FRAGMENTS, max_size=25).map("".join))
@example("key: value\t\nother: 1\n")  # a tab libyaml accepts and the pure loader refuses
@example("a: |-#c\n  text\n")  # a block scalar's header with a comment and no space
@example("\n\ufeffa: 1\n")  # a BOM past the start: libyaml drops it, the pure one keeps it
@example("a: 1\r\nb: 2\r\n")
def test_a_text_is_read_as_the_pure_loader_reads_it(text: str) -> None:
    assert fast(text) == pure(text)


def test_a_plain_project_file_is_read_by_libyaml() -> None:
    """A check of the check: the fast path is the one an ordinary file takes."""
    text = 'version: "1.1"\npipeline:\n  name: ü\n  DAG: "a >> b"\nstages:\n  a: {}\n'
    assert yamlfile._libyaml_reads_alike(text)
    assert not yamlfile._libyaml_reads_alike(text.replace("\n", "\r\n"))
    ascii_text = text.replace("ü", "u")
    assert yamlfile._libyaml_reads_alike(ascii_text)
    assert not yamlfile._libyaml_reads_alike(ascii_text.replace("\n", "\r\n"))


@pytest.mark.parametrize("code", range(128))
def test_an_ascii_text_gets_the_answer_of_the_full_pattern(code: int) -> None:
    """The ASCII pattern (the full one costs 5 ms to compile) agrees on every character,
    alone and in a block scalar's header."""
    full = re.compile(yamlfile._NOT_FOR_LIBYAML_PATTERN)
    for text in (f"a: x{chr(code)}y\n", f"a: |{chr(code)}\n  b\n"):
        assert text.isascii()
        assert yamlfile._libyaml_reads_alike(text) == (full.search(text) is None), repr(text)


def test_a_file_nested_past_the_stack_is_one_problem_not_a_traceback() -> None:
    text = (
        'version: "1.1"\npipeline:\n  name: x\n  DAG: a\nstages:\n  a:\n'
        "    executable_module_path: a.py\n    batch: {}\n    args: "
        + "[" * 5000
        + "]" * 5000
        + "\n"
    )
    with pytest.raises(ConfigError) as info:
        config.parse_project(config.ProjectFiles(bodywork_yaml=text, paths=frozenset({"a.py"})))
    assert [p.message for p in info.value.problems] == [f"is not valid YAML: {yamlfile.TOO_DEEP}"]
