"""Implicit tags, once per text: what libyaml's loader asks Python for each scalar.

libyaml parses in C, but asks the Python resolver for the tag of every scalar and calls
`descend_resolver`/`ascend_resolver` around every node: a 10,000-stage bodywork.yaml has
210,000 scalars. With no path resolvers (SafeLoader has none) the tag depends on the text
alone, so it is computed once per distinct text and the path hooks do nothing. (render's
writer sends libyaml events that carry their tags: core.render.)
"""

from __future__ import annotations

from typing import Any

from yaml.nodes import Node, ScalarNode
from yaml.resolver import BaseResolver


class MemoisedTags(BaseResolver):
    """Mixed in before a Safe loader: the same tags, each text resolved once."""

    def skip_path_hooks(self) -> None:
        """Call from `__init__`. Without path resolvers the path hooks do nothing: builtins
        that do nothing, taking the same arguments, replace them (their return value is
        ignored), saving as many Python calls as there are nodes."""
        self.plain_tags: dict[str, str] = {}  # per instance: never grows across runs
        if not self.yaml_path_resolvers:
            self.descend_resolver = {}.get  # type: ignore[method-assign, assignment]
            self.ascend_resolver = ().__len__  # type: ignore[method-assign, assignment]

    def resolve(self, kind: type[Node], value: Any, implicit: Any) -> str:
        # Asked with (plain, quoted): a plain text's tag comes from the implicit resolvers
        # (cached per text); a quoted one is a string.
        resolver: Any = super()  # PyYAML's resolver is unannotated
        if kind is ScalarNode and not self.yaml_path_resolvers:
            if implicit[0]:
                tag = self.plain_tags.get(value)
                if tag is None:
                    tag = self.plain_tags[value] = resolver.resolve(kind, value, implicit)
                return tag
            return str(self.DEFAULT_SCALAR_TAG)
        resolved: str = resolver.resolve(kind, value, implicit)
        return resolved
