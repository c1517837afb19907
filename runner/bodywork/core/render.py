"""Plan → the objects a run would apply → one YAML stream: what `bodywork render` prints.

`render` builds every object with the functions the executor uses (core.objects), so the
printed manifests are the submitted ones; it needs no cluster and never imports the
Kubernetes client. `to_yaml` dumps them exactly as PyYAML's pure-Python SafeDumper does
(`safe_dump_all(docs, sort_keys=False, width=100)`), only faster:

- libyaml's emitter writes the stream from the events PyYAML's serializer would send it,
  made directly from plain dicts, lists, strings, ints, floats, bools and None: no node tree,
  no call back into Python per scalar for its tag, and one event per distinct text;
- libyaml folds long double-quoted strings and places long or empty keys differently from
  the pure emitter, so a document holding a string outside printable ASCII (a newline, a
  tab, a control character, any non-ASCII letter), an empty key or a key over 100 characters
  is dumped by the pure dumper; the streams are joined as `dump_all` joins documents.

A 10,000-stage plan is about 14,000 documents and 40 MB: the pure dumper took 80% of
`render`'s time there; libyaml fed PyYAML's node tree, half. tests/unit/test_render_yaml.py
compares the bytes with the pure dumper's.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import ScalarNode
from yaml.representer import SafeRepresenter
from yaml.resolver import Resolver as SafeResolver

from bodywork.core import names, objects
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
_MAP_END, _SEQ_END = MappingEndEvent(), SequenceEndEvent()
_FLOATS = SafeRepresenter()  # PyYAML's text for a float, as the pure dumper writes it


class _EventWriter:
    """Documents → the events PyYAML's serializer would send libyaml's emitter, sent
    directly: no node tree, and no call back into Python for each scalar's tag (the
    serializer asks the resolver twice per scalar: 5 million calls at 10,000 stages).

    The events are the serializer's: a scalar's implicit flags are (its plain text resolves
    to its tag, it is a string); a dict or list met twice in a document is anchored at its
    first place (`id001`, ... in the order they are met again, per document) and an alias
    after. A text's event is made once and sent again (the emitter only reads it). `unsafe`
    lists the documents libyaml would not write as the pure dumper does (see the module's
    docstring); a value PyYAML would not represent as a plain type marks its document so.
    """

    def __init__(self, emit: Callable[[Event], None]) -> None:
        self.emit = emit
        self.resolve: Any = SafeResolver().resolve  # PyYAML's resolver is unannotated
        self.texts: dict[str, ScalarEvent] = {}  # printable ASCII texts only
        self.keys: dict[str, ScalarEvent] = {}  # and of them, those libyaml places alike
        self.others: dict[tuple[type, Any], ScalarEvent] = {}  # bools, ints, None
        self.unsafe: list[int] = []

    def event(self, text: str, tag: str) -> ScalarEvent:
        implicit = (self.resolve(ScalarNode, text, (True, False)) == tag, tag == _STR)
        return ScalarEvent(None, tag, implicit, text)

    def text(self, value: str) -> tuple[ScalarEvent, bool]:
        """A string's event, and whether libyaml writes it as the pure dumper does."""
        event = self.texts.get(value)
        if event is not None:
            return event, True
        event = self.event(value, _STR)
        safe = value.isascii() and value.isprintable()
        if safe:
            self.texts[value] = event
            if 0 < len(value) <= MAX_FAST_KEY:
                self.keys[value] = event
        return event, safe

    def scalar(self, value: Any) -> ScalarEvent | None:
        """The event of a bool, int, float or None, or None for another type."""
        kind = type(value)
        if kind is float:  # not cached: 0.0 == -0.0, and NaN is no key
            node = _FLOATS.represent_float(value)
            return self.event(node.value, node.tag)
        event = self.others.get((kind, value))
        if event is None:
            if kind is bool:
                event = self.event("true" if value else "false", _BOOL)
            elif kind is int:
                event = self.event(str(value), _INT)
            elif value is None:
                event = self.event("null", _NULL)
            else:
                return None
            self.others[(kind, value)] = event
        return event

    def document(self, doc: Any, number: int) -> None:
        events: list[Event] = []
        add = events.append
        texts, keys = self.texts, self.keys
        # A container's id → its start event's index (`doc` keeps every container alive, so
        # no id is reused while the document is written).
        first: dict[int, int] = {}
        anchors: dict[int, str] = {}
        unsafe = False

        def value(data: Any) -> None:
            nonlocal unsafe
            kind = type(data)
            if kind is str:
                event = texts.get(data)
                if event is None:
                    event, safe = self.text(data)
                    unsafe = unsafe or not safe
                add(event)
            elif kind is dict or kind is list:
                container(data, kind is dict)
            else:
                found = self.scalar(data)
                if found is None:  # PyYAML's type table, in the pure dumper
                    unsafe = True
                    found = self.text("")[0]  # a placeholder: this text is not used
                add(found)

        def container(data: Any, is_dict: bool) -> None:
            nonlocal unsafe
            key = id(data)
            if key in first:  # met again: anchor its first place, alias it here
                anchor = anchors.get(key)
                if anchor is None:
                    anchor = anchors[key] = f"id{len(anchors) + 1:03d}"
                    start = MappingStartEvent if is_dict else SequenceStartEvent
                    tag = _MAP if is_dict else _SEQ
                    events[first[key]] = start(anchor, tag, True, flow_style=False)
                add(AliasEvent(anchor))
                return
            first[key] = len(events)
            if is_dict:
                add(MappingStartEvent(None, _MAP, True, flow_style=False))
                for name, item in data.items():
                    event = keys.get(name)
                    if event is None:
                        if type(name) is str:
                            event, safe = self.text(name)
                            # libyaml places an empty or long key otherwise
                            if not (safe and 0 < len(name) <= MAX_FAST_KEY):
                                unsafe = True
                            add(event)
                        else:
                            unsafe = True
                            value(name)
                    else:
                        add(event)
                    value(item)
                add(_MAP_END)
            else:
                add(SequenceStartEvent(None, _SEQ, True, flow_style=False))
                for item in data:
                    value(item)
                add(_SEQ_END)

        value(doc)
        if unsafe:
            self.unsafe.append(number)
        emit = self.emit
        emit(_DOC_START)
        for event in events:
            emit(event)
        emit(_DOC_END)


_DOC_START, _DOC_END = DocumentStartEvent(explicit=False), DocumentEndEvent(explicit=False)


def _fast_yaml(docs: list[Any]) -> tuple[str, list[int]]:
    """The stream from libyaml, and the documents it may have written otherwise."""
    stream = io.StringIO()
    from yaml._yaml import CEmitter  # libyaml's (HAVE_LIBYAML): yaml exports no name for it

    emitter = CEmitter(stream, width=WIDTH)
    writer = _EventWriter(emitter.emit)
    try:
        emitter.emit(StreamStartEvent())
        for number, doc in enumerate(docs):
            writer.document(doc, number)
        emitter.emit(StreamEndEvent())
    finally:
        emitter.dispose()
    return stream.getvalue(), writer.unsafe


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
