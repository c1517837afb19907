"""Plan → the objects a run would apply → one YAML stream: what `bodywork render` prints.

`render` builds every object with the functions the executor uses (core.objects), so the
printed manifests are the submitted ones; it needs no cluster and never imports the
Kubernetes client. `to_yaml` dumps them exactly as PyYAML's pure-Python SafeDumper does
(`safe_dump_all(docs, sort_keys=False, width=100)`), only faster:

- libyaml's emitter (`yaml.CSafeDumper`) writes the stream, with a representer that builds
  the nodes of plain dicts, lists, strings, ints, bools and None directly (PyYAML's walks
  its type table for each value) and a resolver that remembers each string's implicit tag
  (core.yamltags);
- libyaml folds long double-quoted strings and places long or empty keys differently from
  the pure emitter, so a document holding a string outside printable ASCII (a newline, a
  tab, a control character, any non-ASCII letter), an empty key or a key over 100 characters
  is dumped by the pure dumper; the streams are joined as `dump_all` joins documents.

A 10,000-stage plan is about 14,000 documents and 40 MB: the pure dumper took 80% of
`render`'s time there. tests/unit/test_render_yaml.py compares both dumpers' bytes.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bodywork.core import names, objects, yamltags
from bodywork.core.plan import Plan

Manifest = dict[str, Any]
WIDTH = 100  # the line width `render` has always used
MAX_FAST_KEY = 100  # longer keys: the pure emitter may write them as `? key` (at 128)
_STR, _NULL, _BOOL, _INT, _SEQ, _MAP = (
    f"tag:yaml.org,2002:{kind}" for kind in ("str", "null", "bool", "int", "seq", "map")
)


def render(
    plan: Plan,
    settings: objects.RunSettings,
    controller: objects.ControllerRun | None = None,
    schedule: str | None = None,
    cronjob_api_version: str = "batch/v1",
) -> list[Manifest]:
    """Every object a run would apply (the controller Job or CronJob first, when given),
    built by the same functions the executor uses."""
    docs: list[Manifest] = []
    if controller is not None:
        if schedule:
            name = names.cronjob_name(plan.project)
            docs.append(
                objects.build_cronjob(
                    name,
                    schedule,
                    controller,
                    settings.namespace,
                    settings.image,
                    cronjob_api_version,
                    pull_policy=settings.image_pull_policy,
                )
            )
        else:
            docs.append(
                objects.build_controller_job(
                    controller,
                    settings.namespace,
                    settings.image,
                    pull_policy=settings.image_pull_policy,
                )
            )
    settings = objects.with_project_storage(settings, plan)
    docs += objects.build_stage_objects(plan, settings)
    return docs


def pure_yaml(docs: list[Any]) -> str:
    """The reference: PyYAML's pure-Python SafeDumper, as `render` always dumped."""
    return yaml.dump_all(docs, Dumper=yaml.SafeDumper, sort_keys=False, width=WIDTH)


HAVE_LIBYAML = hasattr(yaml, "CSafeDumper")  # PyYAML built without libyaml has no C emitter
if TYPE_CHECKING:
    _Emitting = yaml.CSafeDumper
else:
    _Emitting = yaml.CSafeDumper if HAVE_LIBYAML else yaml.SafeDumper


class _FastDumper(yamltags.MemoisedTags, _Emitting):
    """libyaml's emitter; nodes built directly; each scalar's tag resolved once per text
    (core.yamltags); `unsafe` set by a document it would not write as the pure dumper does
    (see the module's docstring)."""

    def __init__(self, stream: io.StringIO) -> None:
        super().__init__(stream, sort_keys=False, width=WIDTH)
        self.skip_path_hooks()
        self.unsafe = False
        self.unsafe_docs: list[int] = []
        self.count = 0

    def represent(self, data: Any) -> None:
        self.unsafe = False
        super().represent(data)
        if self.unsafe:
            self.unsafe_docs.append(self.count)
        self.count += 1

    def scalar(self, data: Any) -> ScalarNode | None:
        kind = type(data)
        if kind is str:
            if not (data.isascii() and data.isprintable()):
                self.unsafe = True
            return ScalarNode(_STR, data)
        if kind is bool:
            return ScalarNode(_BOOL, "true" if data else "false")
        if kind is int:
            return ScalarNode(_INT, str(data))
        if data is None:
            return ScalarNode(_NULL, "null")
        return None

    def represent_data(self, data: Any) -> Node:
        kind = type(data)
        if kind is dict or kind is list:
            # As SafeRepresenter: a dict or list met twice is one node (an anchor).
            known = self.represented_objects
            node: Node | None = known.get(id(data))
            if node is not None:
                return node
            self.object_keeper.append(data)
            value: list[Any] = []
            scalar, represent = self.scalar, self.represent_data
            if kind is dict:
                node = known[id(data)] = MappingNode(_MAP, value, flow_style=False)
                for key, item in data.items():
                    # Strings inline (most keys and values are): one call fewer for each.
                    if type(key) is str and 0 < len(key) <= MAX_FAST_KEY and key.isascii():
                        if not key.isprintable():
                            self.unsafe = True
                        key_node: Node = ScalarNode(_STR, key)
                    else:
                        self.unsafe = True
                        key_node = scalar(key) or represent(key)
                    if type(item) is str:
                        if not (item.isascii() and item.isprintable()):
                            self.unsafe = True
                        value.append((key_node, ScalarNode(_STR, item)))
                    else:
                        value.append((key_node, scalar(item) or represent(item)))
            else:
                node = known[id(data)] = SequenceNode(_SEQ, value, flow_style=False)
                for item in data:
                    if type(item) is str:
                        if not (item.isascii() and item.isprintable()):
                            self.unsafe = True
                        value.append(ScalarNode(_STR, item))
                    else:
                        value.append(scalar(item) or represent(item))
            return node
        node = self.scalar(data)
        if node is not None:
            return node
        if kind is not float:  # floats: PyYAML's own text, written alike by both
            self.unsafe = True
        found: Node = super().represent_data(data)
        return found


def _fast_yaml(docs: list[Any]) -> tuple[str, list[int]]:
    """The stream from libyaml, and the documents it may have written otherwise."""
    stream = io.StringIO()
    dumper = _FastDumper(stream)
    try:
        dumper.open()
        for doc in docs:
            dumper.represent(doc)
        dumper.close()
    finally:
        dumper.dispose()
    return stream.getvalue(), dumper.unsafe_docs


def to_yaml(docs: list[Any]) -> str:
    """`docs` as one YAML stream, byte for byte what `pure_yaml` writes."""
    if not HAVE_LIBYAML or not all(isinstance(doc, dict) and doc for doc in docs):
        return pure_yaml(docs)  # no libyaml, or a document dump_all would join otherwise
    text, unsafe = _fast_yaml(docs)
    if not unsafe:
        return text
    # Runs of documents, each through the dumper that writes it as the pure one does,
    # joined as dump_all joins two documents whose roots are mappings.
    parts: list[str] = []
    start = 0
    for index in [*unsafe, len(docs)]:
        if index > start:
            parts.append(_fast_yaml(docs[start:index])[0])
        if index < len(docs):
            parts.append(pure_yaml([docs[index]]))
        start = index + 1
    return "---\n".join(parts)
