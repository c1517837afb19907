"""The `bodywork` parser built for one command line (cli/main.parser_for): it builds only that
command's arguments, and what it prints and parses is the full parser's."""

from __future__ import annotations

import argparse

import pytest

from bodywork.cli import legacy
from bodywork.cli.main import COMMANDS, build_parser, parser_for

NAMES = [name for name, _, add_arguments in COMMANDS if add_arguments is not None]


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_the_top_level_help_lists_every_command_as_the_full_parser_does() -> None:
    lazy = parser_for(["--help"]).format_help()
    assert lazy == build_parser().format_help()
    for name, text, _ in COMMANDS:
        assert name in lazy and text in lazy


@pytest.mark.parametrize("name", NAMES)
def test_a_command_built_alone_is_the_full_parsers_command(name: str) -> None:
    alone = subparsers(parser_for([name]))[name]
    full = subparsers(build_parser())[name]
    assert alone.format_help() == full.format_help()
    assert len(alone._actions) == len(full._actions) > 1


def test_only_the_named_command_is_built() -> None:
    built = subparsers(parser_for(["validate", "."]))
    assert [name for name, sub in built.items() if sub._actions] == ["validate"]
    assert set(built) == {name for name, _, _ in COMMANDS}  # all listed, for "invalid choice"


def test_a_word_that_is_no_command_gets_argparses_invalid_choice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        parser_for(["valdate", "."]).parse_args(["valdate", "."])
    assert done.value.code == 2
    assert "invalid choice: 'valdate'" in capsys.readouterr().err


def test_asking_legacy_leaves_the_parser_printing_its_own_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """legacy asks the same parser whether today's form takes a line, with each `error`
    raising for the question only: afterwards a wrong line is argparse's exit 2 again."""
    parser = parser_for(["validate"])
    assert legacy.translate(["validate", ".", "-x"], parser) == (["validate", ".", "-x"], None)
    assert legacy.translate(["validate", "."], parser) == (["validate", "."], None)
    assert all("error" not in vars(each) for each in legacy._parsers(parser))
    with pytest.raises(SystemExit) as done:
        parser.parse_args(["validate", ".", "--bogus"])
    assert done.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
