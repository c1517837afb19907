"""dag.parse_dag / format_dag: the workflow string ↔ ordered steps of stage names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bodywork.core import dag

NOT_A_NAME = "(letters, digits, '-', '_' and '.' only)"


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("train", (("train",),)),
        ("train >> serve", (("train",), ("serve",))),
        (
            "prep >> train-a, train_b >> serve.v2",
            (("prep",), ("train-a", "train_b"), ("serve.v2",)),
        ),
        ("  a>>b ,c  ", (("a",), ("b", "c"))),
        ("a\n  >> b,\n c", (("a",), ("b", "c"))),
        ("Stage1, stage1", (("Stage1", "stage1"),)),
    ],
)
def test_parse_dag_orders_steps_and_keeps_stages_of_a_step_together(text, steps):
    """'>>' separates steps in order; ',' separates concurrent stages; whitespace is ignored."""
    assert dag.parse_dag(text) == steps


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("", ['is empty: name the stages to run, e.g. "train >> serve"']),
        (" \n ", ['is empty: name the stages to run, e.g. "train >> serve"']),
        ("a >> >> b", ["step 2 is empty: remove the extra '>>'"]),
        (">> a", ["step 1 is empty: remove the extra '>>'"]),
        ("a >>", ["step 2 is empty: remove the extra '>>'"]),
        ("a, >> b", ["step 1 has an empty stage name: remove the extra ','"]),
        ("a >> b,", ["step 2 has an empty stage name: remove the extra ','"]),
        ("a,,b", ["step 1 has an empty stage name: remove the extra ','"]),
        (
            "a > b",
            [
                "steps are separated by '>>' (found a lone '>')",
                f"'a > b' in step 1 is not a stage directory name {NOT_A_NAME}",
            ],
        ),
        ("a >> a", ["stage 'a' appears more than once: a stage runs in exactly one step"]),
        ("a, a", ["stage 'a' appears more than once: a stage runs in exactly one step"]),
        ("-a >> b", [f"'-a' in step 1 is not a stage directory name {NOT_A_NAME}"]),
        ("a >> b c", [f"'b c' in step 2 is not a stage directory name {NOT_A_NAME}"]),
        ("a >> 日本", [f"'日本' in step 2 is not a stage directory name {NOT_A_NAME}"]),
        ("a\0b", [f"'a\0b' in step 1 is not a stage directory name {NOT_A_NAME}"]),
        (
            "a >> >> a,",
            [
                "step 2 is empty: remove the extra '>>'",
                "step 3 has an empty stage name: remove the extra ','",
                "stage 'a' appears more than once: a stage runs in exactly one step",
            ],
        ),
    ],
)
def test_parse_dag_reports_every_problem_with_a_fix(text, problems):
    """Each malformed DAG raises one DagError listing all its problems, each saying what to fix."""
    with pytest.raises(dag.DagError) as info:
        dag.parse_dag(text)
    assert info.value.problems == problems
    assert str(info.value) == "; ".join(problems)


def test_dag_error_is_a_value_error():
    """Callers that catch ValueError also catch DAG problems."""
    with pytest.raises(ValueError, match="is empty"):
        dag.parse_dag("")


def test_format_dag_writes_the_canonical_spelling():
    """Steps are joined with ' >> ' and stages of a step with ', '."""
    assert dag.format_dag((("a",), ("b", "c"), ("d",))) == "a >> b, c >> d"
    assert dag.format_dag((("only",),)) == "only"


_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,12}", fullmatch=True)


@given(st.lists(_name, min_size=1, max_size=12, unique=True), st.data())
def test_format_then_parse_round_trips(stage_names, data):
    """Any steps of unique valid names survive format_dag → parse_dag unchanged."""
    cuts = sorted(
        data.draw(st.sets(st.integers(1, len(stage_names) - 1))) if len(stage_names) > 1 else []
    )
    bounds = [0, *cuts, len(stage_names)]
    steps = tuple(tuple(stage_names[a:b]) for a, b in zip(bounds, bounds[1:], strict=False))
    assert dag.parse_dag(dag.format_dag(steps)) == steps


@given(st.text(alphabet="ab>, \n", max_size=20))
def test_parse_is_idempotent_through_format(text):
    """Whatever parses, re-parses to the same steps from its canonical form."""
    try:
        steps = dag.parse_dag(text)
    except dag.DagError as err:
        assert err.problems
    else:
        assert dag.parse_dag(dag.format_dag(steps)) == steps
