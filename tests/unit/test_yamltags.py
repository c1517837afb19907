"""core.yamltags: the memoised resolver answers as PyYAML's own, for every flag pair."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from bodywork.core import yamltags

TEXTS = [
    "", "x", "yes", "No", "on", "OFF", "true", "~", "null", "Null", "1", "-1", "0x1F", "0o17",
    "1_000", "1.5", ".inf", "-.Inf", ".nan", "1e3", "1.0e+3", "12:30:00", "2026-12-03",
    "2026-12-03T10:00:00Z", "<<", "=", "8080", "a b", "'q'", "é",
]  # fmt: skip


class Memoised(yamltags.MemoisedTags, yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.skip_path_hooks()


@pytest.mark.parametrize("implicit", [(True, False), (False, True), (True, True), (False, False)])
def test_each_text_gets_the_tag_pyyaml_gives_it_asked_twice(implicit: tuple[bool, bool]) -> None:
    plain: Any = yaml.SafeLoader("")  # PyYAML's resolver is unannotated
    memoised = Memoised("")
    for text in TEXTS:
        expected = plain.resolve(ScalarNode, text, implicit)
        assert memoised.resolve(ScalarNode, text, implicit) == expected, text
        assert memoised.resolve(ScalarNode, text, implicit) == expected, text  # from the cache
    # A plain text's tag is cached; a quoted one is a string without asking.
    assert memoised.plain_tags.get("yes") == ("tag:yaml.org,2002:bool" if implicit[0] else None)


def test_collections_keep_their_default_tags() -> None:
    memoised = Memoised("")
    assert memoised.resolve(SequenceNode, None, True) == "tag:yaml.org,2002:seq"
    assert memoised.resolve(MappingNode, None, True) == "tag:yaml.org,2002:map"


def test_a_loader_with_path_resolvers_keeps_pyyaml_s_hooks_and_answers() -> None:
    class WithPaths(Memoised):
        pass

    WithPaths.add_path_resolver("!port", ["port"], ScalarNode)
    # A path resolver names the tag of a text no implicit resolver claims.
    text = "port: http\nother: http\ncount: 8080\n"
    node = yaml.compose(text, Loader=WithPaths)
    assert node is not None
    tags = [value.tag for _, value in node.value]
    assert tags == ["!port", "tag:yaml.org,2002:str", "tag:yaml.org,2002:int"]
    assert WithPaths("").descend_resolver.__func__ is yaml.SafeLoader.descend_resolver  # type: ignore[attr-defined]
