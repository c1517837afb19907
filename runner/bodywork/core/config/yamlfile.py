"""The yaml format: one `bodywork.yaml` at the root, schema "1.1" (`pipeline:`) or "1.0".

Read with `yaml.compose` (PyYAML's SafeLoader, libyaml's parser where it reads the same: see
`compose_text`) so every key keeps its line; duplicate keys,
syntax errors, wrong types and bad values are all reported, each as a `Problem` naming the
file, the dotted key (`stages.train.batch.retries`), its line and the fix. Keys are declared
once, in `schema` (`Key.yaml`); unknown keys are warnings with a did-you-mean (errors under
strict). A stage is an entry of `stages:`; its module may be anywhere in the repository
(several stages may share a folder) and is checked against the snapshot's file paths. With
`pipeline.secrets_group: G`, a stage's `secrets: {ENV: name}` reads Secret `G-name`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bodywork.core import dag, names, yamltags
from bodywork.core.config import checks
from bodywork.core.config import schema as s
from bodywork.core.config.draft import Draft, severity
from bodywork.core.config.model import ProjectFiles, StageConfig
from bodywork.core.config.schema import Key
from bodywork.core.errors import Problem

_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_FILE = s.YAML_FILE
_EXAMPLES: dict[str, str] = {
    s.VERSION.name: '"1.1"',
    s.DAG.name: '"stage-1 >> stage-2"',
    s.PORT.name: "5000",
    s.EXECUTABLE_MODULE_PATH.name: "path/to/module.py",
    s.EXTENDED_RESOURCES.name: "{nvidia.com/gpu: 1}",
    s.NODE_SELECTOR.name: "{disktype: ssd}",
    s.TOLERATIONS.name: "[{key: gpu, operator: Exists, effect: NoSchedule}]",
}
_SUBSECTIONS = (s.BATCH, s.SERVICE)
# A stage's keys, at its top and under batch:/service:, the same tuples for every stage
# (section() keeps its lookup table per tuple).
_STAGE_TOP_KEYS = tuple(k for k in s.YAML_STAGE_KEYS if k.yaml and len(k.yaml) == 1)
_STAGE_KIND_KEYS = {
    kind: tuple(k for k in s.YAML_STAGE_KEYS if k.yaml and k.yaml[0] == kind)
    for kind in _SUBSECTIONS
}
Elsewhere = Callable[[], dict[str, str]]


class _Entry:
    """A key as written, its line (1-based) and its value. A plain class with its own
    __init__: a 10,000-stage project makes some 100,000 of them."""

    __slots__ = ("key", "line", "node")

    def __init__(self, key: str, line: int, node: Node) -> None:
        self.key, self.line, self.node = key, line, node


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _kind(node: Node) -> str:
    return "list" if isinstance(node, SequenceNode) else "mapping"


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


class _Reader:
    def __init__(self, files: ProjectFiles, problems: list[Problem], strict: bool):
        self.files = files
        self.problems = problems
        self.strict = strict
        self.lines: dict[tuple[str | None, str], int] = {}
        self.section_name = s.PIPELINE
        self.group: str | None = None
        self.missing_modules = 0  # modules not found so far: each search scans every path
        self.by_name: dict[tuple[int, int], tuple[tuple[Key[Any], ...], dict[str, Key[Any]]]] = {}

    # ------------------------------------------------------------------------ reporting
    def error(self, key: str | None, message: str, line: int | None) -> None:
        self.problems.append(Problem(_FILE, message, key=key or None, line=line))

    def warn(self, key: str, message: str, line: int | None) -> None:
        self.problems.append(Problem(_FILE, message, key=key, line=line, severity="warning"))

    def errors_since(self, mark: int) -> bool:
        return any(p.severity == "error" for p in self.problems[mark:])

    # ------------------------------------------------------------------------ nodes
    def _pairs(self, node: MappingNode, seen: frozenset[int]) -> list[tuple[Node, Node]]:
        """The node's key/value pairs with `<<` merge keys expanded (explicit keys win)."""
        pairs: list[tuple[Node, Node]] = node.value
        if all(key_node.tag != _MERGE for key_node, _ in pairs):
            return pairs  # no `<<`: the pairs as written (most mappings)
        own: list[tuple[Node, Node]] = []
        merged: list[tuple[Node, Node]] = []
        for key_node, value_node in pairs:
            if key_node.tag != _MERGE:
                own.append((key_node, value_node))
                continue
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if isinstance(source, MappingNode) and id(source) not in seen:
                    merged += self._pairs(source, seen | {id(source)})
        written = {k.value for k, _ in own if isinstance(k, ScalarNode)}
        inherited: list[tuple[Node, Node]] = []
        for key_node, value_node in merged:
            name = key_node.value if isinstance(key_node, ScalarNode) else None
            if name in written:
                continue
            written.add(name)
            inherited.append((key_node, value_node))
        return own + inherited

    def mapping(self, node: MappingNode, label: str, fold_case: bool) -> dict[str, _Entry]:
        """Entries by key (lower-cased when `fold_case`), reporting duplicate keys."""
        entries: dict[str, _Entry] = {}
        for key_node, value_node in self._pairs(node, frozenset({id(node)})):
            line = _line(key_node)
            if not isinstance(key_node, ScalarNode) or _is_null(key_node):
                self.error(label, "has a key that is not a plain name", line)
                continue
            name = str(key_node.value)
            lookup = name.lower() if fold_case else name
            if lookup in entries:
                where = f"{label}.{name}" if label else name
                first = entries[lookup].line
                self.error(where, f"appears twice (first on line {first}): keep one", line)
                continue
            entries[lookup] = _Entry(name, line, value_node)
        return entries

    def sub_mapping(self, entry: _Entry, label: str, fold_case: bool) -> dict[str, _Entry] | None:
        """A section's entries; empty for `key:` with no value; None (reported) otherwise."""
        if _is_null(entry.node):
            return {}
        if isinstance(entry.node, MappingNode):
            return self.mapping(entry.node, label, fold_case)
        self.error(label, "must be a mapping of key: value lines, indented under it", entry.line)
        return None

    def scalar(self, entry: _Entry, label: str) -> tuple[bool, str | None]:
        """(True, text as written, or None for no value), or (False, None) when not a scalar."""
        if isinstance(entry.node, ScalarNode):
            return True, None if _is_null(entry.node) else str(entry.node.value)
        self.error(label, f"must be a single value, not a {_kind(entry.node)}", entry.line)
        return False, None

    # ------------------------------------------------------------------------ values
    def value(self, key: Key[Any], entry: _Entry, label: str, stage: str | None) -> Any:
        """The entry's value for `key`; raises _Bad (reported) when it has none usable."""
        self.lines[(stage, key.name)] = entry.line
        if key.shape == "list":
            return self.list_value(key, entry, label)
        if key.shape == "pairs":
            return self.pairs_value(key, entry, label)
        if key.shape == "records":
            return self.records_value(key, entry, label)
        if key.shape == "mapping":
            return self.secrets_value(entry, label)
        ok, raw = self.scalar(entry, label)
        if not ok:
            raise _Bad
        if raw is None:
            if key.required:
                self.error(
                    label, f"has no value: give it one, e.g. {self.example(key)}", entry.line
                )
                raise _Bad
            return key.default
        try:
            return key.parse(raw)
        except ValueError as exc:
            self.error(label, str(exc), entry.line)
            raise _Bad from None

    def list_value(self, key: Key[Any], entry: _Entry, label: str) -> tuple[str, ...]:
        node = entry.node
        if _is_null(node):
            return ()
        if not isinstance(node, SequenceNode):
            shown = f"[{node.value}]" if isinstance(node, ScalarNode) else "[..., ...]"
            self.error(label, f"must be a list, e.g. {entry.key}: {shown}", entry.line)
            raise _Bad
        items = []
        bad = False
        for index, item in enumerate(node.value):
            where = f"{label}[{index}]"
            if not isinstance(item, ScalarNode):
                self.error(where, f"must be a single value, not a {_kind(item)}", _line(item))
                bad = True
            elif _is_null(item):
                self.error(where, "has no value: remove the '-' or give it one", _line(item))
                bad = True
            else:
                try:
                    items.append(key.parse(str(item.value)))
                except ValueError as exc:
                    self.error(where, str(exc), _line(item))
                    bad = True
        if bad:
            raise _Bad
        return tuple(items)

    def pairs_value(self, key: Key[Any], entry: _Entry, label: str) -> tuple[tuple[str, Any], ...]:
        """`name: value` lines (extended_resources, node_selector) → (name, value) pairs."""
        node = entry.node
        if _is_null(node):
            return ()
        if not isinstance(node, MappingNode):
            self.error(
                label,
                f"must be a mapping of name: value lines, e.g. {entry.key}: {self.example(key)}",
                entry.line,
            )
            raise _Bad
        assert key.pair is not None
        parse_name, parse_value = key.pair
        pairs = []
        bad = False
        for name, item in self.mapping(node, label, fold_case=False).items():
            where = f"{label}.{name}"
            ok, raw = self.scalar(item, where)
            if not ok:
                bad = True
                continue
            try:
                pairs.append((parse_name(name), parse_value(raw or "")))
            except ValueError as exc:
                self.error(where, str(exc), item.line)
                bad = True
        if bad:
            raise _Bad
        return tuple(pairs)

    def records_value(self, key: Key[Any], entry: _Entry, label: str) -> tuple[Any, ...]:
        """A list (tolerations) of mappings in Kubernetes' shape, or of the compact text."""
        node = entry.node
        if _is_null(node):
            return ()
        if not isinstance(node, SequenceNode):
            self.error(label, f"must be a list, e.g. {entry.key}: {self.example(key)}", entry.line)
            raise _Bad
        assert key.record is not None
        records = []
        bad = False
        for index, item in enumerate(node.value):
            where = f"{label}[{index}]"
            try:
                if isinstance(item, MappingNode):
                    records.append(key.record(self.record_fields(key, item, where)))
                elif isinstance(item, ScalarNode) and not _is_null(item):
                    records.append(key.parse(str(item.value)))
                else:
                    fields = ", ".join(f"{field}:" for field in key.fields)
                    compact = key.example.split(",")[0]
                    self.error(
                        where,
                        f"must be a mapping ({fields}) or one string, e.g. {compact}",
                        _line(item),
                    )
                    bad = True
            except ValueError as exc:
                self.error(where, str(exc), _line(item))
                bad = True
            except _Bad:
                bad = True
        if bad:
            raise _Bad
        return tuple(records)

    def record_fields(self, key: Key[Any], node: MappingNode, label: str) -> dict[str, str | None]:
        """A record's fields by lower-cased name; an unknown field or a non-scalar is an error
        (ignoring one would change what the record means)."""
        known = {field.lower(): field for field in key.fields}
        fields: dict[str, str | None] = {}
        bad = False
        for lookup, entry in self.mapping(node, label, fold_case=True).items():
            where = f"{label}.{entry.key}"
            if lookup not in known:
                close = checks.closest(entry.key, key.fields)
                hint = f"did you mean {close}? " if close else ""
                self.error(
                    where,
                    f"unknown field ({hint}it has {', '.join(key.fields)}; or write the whole "
                    f"item as one string, e.g. {key.example.split(',')[0]})",
                    entry.line,
                )
                bad = True
                continue
            ok, raw = self.scalar(entry, where)
            if not ok:
                bad = True
                continue
            fields[lookup] = raw
        if bad:
            raise _Bad
        return fields

    def secrets_value(self, entry: _Entry, label: str) -> tuple[tuple[str, str], ...]:
        """`secrets: {ENV_VAR: secret-name}` → (ENV_VAR, the Kubernetes Secret's name)."""
        node = entry.node
        if _is_null(node):
            return ()
        if not isinstance(node, MappingNode):
            self.error(label, "must be a mapping of ENV_VAR: secret-name lines", entry.line)
            raise _Bad
        pairs = []
        bad = False
        for env_var, secret_entry in self.mapping(node, label, fold_case=False).items():
            where = f"{label}.{env_var}"
            ok, raw = self.scalar(secret_entry, where)
            if not ok:
                bad = True
                continue
            if not raw or not raw.strip():
                self.error(
                    where,
                    f"has no value: give the name of the Kubernetes Secret holding key {env_var}",
                    secret_entry.line,
                )
                bad = True
                continue
            secret = raw.strip().lower()  # Kubernetes names are lower-case
            if self.group:
                secret = f"{self.group}-{secret}"
            problem = checks.secret(_FILE, env_var, secret, secret_entry.line, key=where)
            if problem is None:
                pairs.append((env_var, secret))
            else:
                self.problems.append(problem)
                bad = True
        if bad:
            raise _Bad
        return tuple(pairs)

    def example(self, key: Key[Any]) -> str:
        return _EXAMPLES.get(key.name, "...")

    # ------------------------------------------------------------------------ sections
    def section(
        self,
        entries: dict[str, _Entry],
        keys: tuple[Key[Any], ...],
        depth: int,
        prefix: str,
        stage: str | None,
        section_line: int | None,
        values: dict[str, Any],
        handled: tuple[str, ...] = (),
        elsewhere: Elsewhere | None = None,
    ) -> None:
        """Parse `keys` (their yaml path's part at `depth`) from `entries`, into `values`.

        `handled`: entries the caller reads itself. `elsewhere`: a key name → the section
        it belongs in, for the hint on a key written in the wrong place (built only then).
        """
        by_name = self.keys_by_name(keys, depth)
        for lookup, entry in entries.items():
            label = f"{prefix}.{entry.key}" if prefix else entry.key
            if lookup in handled:
                continue
            key = by_name.get(lookup)
            if key is None:
                self.unknown(label, entry, [*by_name_spelled(keys, depth), *handled], elsewhere)
                continue
            with contextlib.suppress(_Bad):
                values[key.name] = self.value(key, entry, label, stage)
        for lookup, key in by_name.items():
            if lookup in entries:
                continue
            if key.required:
                spelled = key.yaml[depth] if key.yaml is not None else key.name
                place = f"under {prefix}" if prefix else "at the top of the file"
                hint = f" ({key.doc})" if key.doc else ""
                self.error(
                    f"{prefix}.{spelled}" if prefix else spelled,
                    f"missing: add {spelled}: {self.example(key)} {place}{hint}",
                    section_line,
                )
            else:
                values[key.name] = key.default

    def keys_by_name(self, keys: tuple[Key[Any], ...], depth: int) -> dict[str, Key[Any]]:
        """`keys` by their lower-cased name at `depth`: built once per tuple (each stage
        reads the same ones)."""
        cached = self.by_name.get((id(keys), depth))
        if cached is not None and cached[0] is keys:
            return cached[1]
        assert all(k.yaml is not None for k in keys)
        by_name = {k.yaml[depth].lower(): k for k in keys if k.yaml is not None}
        self.by_name[(id(keys), depth)] = (keys, by_name)  # kept alive: its id is not reused
        return by_name

    def unknown(
        self, label: str, entry: _Entry, options: list[str], elsewhere: Elsewhere | None
    ) -> None:
        belongs = (elsewhere() if elsewhere else {}).get(entry.key.lower())
        if belongs:
            hint = f" ({entry.key} belongs under {belongs})"
        elif close := checks.closest(entry.key, options):
            hint = f" (did you mean {close}?)"
        else:
            hint = ""
        self.problems.append(
            Problem(
                _FILE,
                f"unknown key, ignored{hint}" if not self.strict else f"unknown key{hint}",
                key=label,
                line=entry.line,
                severity=severity(self.strict),
            )
        )

    # ------------------------------------------------------------------------ the file
    def read(self) -> Draft | None:
        root = self.compose(self.files.bodywork_yaml or "")
        if root is None:
            return None
        top = self.mapping(root, "", fold_case=True)
        values: dict[str, Any] = {}
        self.read_top_level(top, values)
        project = self.read_project_section(top, values)
        self.read_logging(top, values)
        steps = self.read_dag(values.pop(s.DAG.name, None))
        stage_entries = self.read_stage_entries(top)
        parsed: dict[str, StageConfig] = {}
        for name, entry in stage_entries.items():
            if (stage_config := self.read_stage(name, entry)) is not None:
                parsed[name] = stage_config

        in_dag = [stage for step in steps for stage in step]
        dag_stages = set(in_dag)  # membership per stage: a list would make this quadratic
        _, dag_label, dag_line = self.where(None, s.DAG)
        missing = 0
        for stage in in_dag:
            if stage not in stage_entries:
                close = None
                if missing < checks.MAX_SUGGESTIONS:  # each search scans every stage
                    close = checks.closest(stage, stage_entries)
                missing += 1
                hint = f" (did you mean '{close}'?)" if close else ""
                self.error(dag_label, f"stage '{stage}' is not under stages:{hint}", dag_line)
        on_failure = self.read_on_failure(values.get(s.ON_FAILURE.name), in_dag, stage_entries)
        if on_failure is not None and on_failure in parsed and parsed[on_failure].is_service:
            _, label, line = self.where(None, s.ON_FAILURE)
            self.error(
                label,
                f"'{on_failure}' is a service: the on-failure stage must be a batch stage",
                line,
            )
        for name, entry in stage_entries.items():
            if steps and name not in dag_stages and name != on_failure:
                self.warn(
                    f"stages.{entry.key}",
                    f"this stage is not in the DAG and will not run: add it to {dag_label} "
                    "if it should",
                    entry.line,
                )
        kept = {n: parsed[n] for n in [*in_dag, on_failure] if n is not None and n in parsed}
        for unused in (s.SECRETS_GROUP, s.USAGE_STATS, s.VERSION, s.ON_FAILURE):
            values.pop(unused.name, None)
        if project is None:
            return None
        return Draft(
            file=_FILE,
            values=values,
            steps=steps,
            stages=kept,
            on_failure=on_failure,
            where=self.where,
            stage_noun="stage",
        )

    def where(self, stage: str | None, key: Key[Any]) -> tuple[str, str, int | None]:
        """The file, dotted key and line of a project key (stage None) or a stage's key."""
        path = key.yaml or (key.name,)
        if stage is None:
            label = ".".join((self.section_name, *path[1:]) if path[0] == s.PIPELINE else path)
        else:
            label = ".".join(("stages", stage, *path))
        return _FILE, label, self.lines.get((stage, key.name))

    def compose(self, text: str) -> MappingNode | None:
        text = text.removeprefix("\ufeff")  # an editor's UTF-8 BOM, if the caller left it
        try:
            root = compose_text(text)
        except RecursionError:  # the pure loader recurses once per level
            self.error(None, f"is not valid YAML: {TOO_DEEP}", None)
            return None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            context = f" ({exc.context})" if exc.context else ""
            line = int(mark.line) + 1 if mark is not None else None
            self.error(None, f"is not valid YAML: {exc.problem}{context}", line)
            return None
        except yaml.YAMLError as exc:  # e.g. a control character the reader refuses
            position = getattr(exc, "position", None)
            line = text[:position].count("\n") + 1 if isinstance(position, int) else None
            reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
            self.error(None, f"is not valid YAML: {reason}", line)
            return None
        if root is None:
            self.error(
                None,
                'is empty: start it with version: "1.1", a pipeline: with DAG:, and stages:',
                1,
            )
            return None
        if not isinstance(root, MappingNode):
            found = "plain text" if isinstance(root, ScalarNode) else f"a {_kind(root)}"
            self.error(
                None, f"must be a mapping of version:, pipeline:, stages: ... (found {found})", 1
            )
            return None
        return root

    def read_top_level(self, top: dict[str, _Entry], values: dict[str, Any]) -> None:
        """version (and the original's top-level usage_stats); unknown keys are reported."""
        if "usage_stats" in top:  # a pipeline key that schema 1.0 also took up here
            with contextlib.suppress(_Bad):
                self.value(s.USAGE_STATS, top["usage_stats"], top["usage_stats"].key, None)
        if "pipeline" in top or "project" not in top:
            self.section_name = top[s.PIPELINE].key if s.PIPELINE in top else s.PIPELINE
        else:
            self.section_name = top["project"].key

        def elsewhere() -> dict[str, str]:
            places = _stage_keys_elsewhere()
            for key in s.YAML_PROJECT_KEYS:
                if key.yaml and len(key.yaml) > 1:
                    section = self.section_name if key.yaml[0] == s.PIPELINE else key.yaml[0]
                    places[key.yaml[-1].lower()] = section
            return places

        self.section(
            {k: e for k, e in top.items() if k != "usage_stats"},
            (s.VERSION,),
            0,
            "",
            None,
            1,
            values,
            handled=("project", s.PIPELINE, "stages", "logging"),
            elsewhere=elsewhere,
        )

    def read_project_section(
        self, top: dict[str, _Entry], values: dict[str, Any]
    ) -> dict[str, _Entry] | None:
        """pipeline: (schema 1.1) or project: (1.0): name, DAG and the project's settings."""
        version = values.get(s.VERSION.name)
        old, new = top.get("project"), top.get(s.PIPELINE)
        if old is not None and new is not None:
            later = max(old, new, key=lambda e: e.line)
            self.error(
                later.key,
                "project: and pipeline: are one section (schema 1.0's and 1.1's name for it): "
                "keep one",
                later.line,
            )
            return None
        entry = new or old
        expected = s.PROJECT_SECTION_BY_VERSION.get(version or "", None)
        if entry is None:
            name = expected or s.PIPELINE
            self.error(
                f"{name}.DAG",
                f'missing: add {name}: with name: and DAG: "stage-1 >> stage-2" under it',
                None,
            )
            return None
        self.section_name = entry.key
        if expected is not None and entry.key.lower() != expected:
            self.warn(
                entry.key,
                f'with version "{version}" this section is called {expected}: (read as such)',
                entry.line,
            )
        entries = self.sub_mapping(entry, entry.key, fold_case=True)
        if entries is None:
            return None
        keys = tuple(k for k in s.YAML_PROJECT_KEYS if k.yaml and k.yaml[0] == s.PIPELINE)

        def elsewhere() -> dict[str, str]:
            return {**_stage_keys_elsewhere(), "log_level": "logging"}

        self.section(entries, keys, 1, entry.key, None, entry.line, values, elsewhere=elsewhere)
        self.check_project_values(values)
        return entries

    def check_project_values(self, values: dict[str, Any]) -> None:
        group = values.get(s.SECRETS_GROUP.name)
        if group:
            group = group.strip().lower()
            if s.SECRET_NAME.match(group):
                self.group = group
            else:
                _, label, line = self.where(None, s.SECRETS_GROUP)
                self.error(
                    label,
                    f"'{group}' cannot start a Kubernetes Secret's name "
                    "(lower-case letters, digits, '-' and '.')",
                    line,
                )
        namespace = values.get(s.NAMESPACE.name)
        if namespace and not names.is_dns_label(namespace):
            _, label, line = self.where(None, s.NAMESPACE)
            self.error(
                label,
                f"'{s.shown(namespace)}' is not a namespace name (lower-case letters, digits "
                "and '-', at most 63)",
                line,
            )

    def read_logging(self, top: dict[str, _Entry], values: dict[str, Any]) -> None:
        entry = top.get("logging")
        keys = tuple(k for k in s.YAML_PROJECT_KEYS if k.yaml and k.yaml[0] == "logging")
        entries = self.sub_mapping(entry, entry.key, True) if entry is not None else {}
        self.section(
            entries or {},
            keys,
            1,
            entry.key if entry else "logging",
            None,
            entry.line if entry else None,
            values,
        )

    def read_dag(self, text: str | None) -> tuple[tuple[str, ...], ...]:
        if not text:
            return ()
        try:
            return dag.parse_dag(text)
        except dag.DagError as exc:
            _, label, line = self.where(None, s.DAG)
            for message in exc.problems:
                self.error(label, message.replace("stage directory name", "stage name"), line)
            return ()

    def read_stage_entries(self, top: dict[str, _Entry]) -> dict[str, _Entry]:
        entry = top.get("stages")
        if entry is None:
            self.error(
                "stages",
                "missing: add stages: with an entry (executable_module_path:, and batch: or "
                "service:) for each stage of the DAG",
                None,
            )
            return {}
        return self.sub_mapping(entry, entry.key, fold_case=False) or {}

    def read_stage(self, name: str, entry: _Entry) -> StageConfig | None:
        label = f"stages.{name}"
        mark = len(self.problems)
        if not isinstance(entry.node, MappingNode):
            self.error(
                label,
                "must be a mapping of the stage's settings (executable_module_path:, "
                "and batch: or service:)",
                entry.line,
            )
            return None
        entries = self.mapping(entry.node, label, fold_case=True)
        kinds = [kind for kind in _SUBSECTIONS if kind in entries]
        if len(kinds) == 2:
            later = max(entries[s.BATCH], entries[s.SERVICE], key=lambda e: e.line)
            self.error(
                f"{label}.{later.key}",
                "a stage has batch: (runs to completion) or service: (keeps serving), not both: "
                "keep one",
                later.line,
            )
        elif not kinds:
            self.error(
                label,
                "needs batch: (a job that runs to completion) or service: (keeps serving on "
                "port:), indented under it",
                entry.line,
            )
        values: dict[str, Any] = {}

        def top_elsewhere() -> dict[str, str]:
            return {
                k.yaml[1].lower(): f"{label}.{k.yaml[0]}"
                for k in s.YAML_STAGE_KEYS
                if k.yaml and len(k.yaml) == 2
            }

        self.section(
            entries,
            _STAGE_TOP_KEYS,
            0,
            label,
            name,
            entry.line,
            values,
            handled=_SUBSECTIONS,
            elsewhere=top_elsewhere,
        )
        stage_type = kinds[0] if len(kinds) == 1 else None
        if stage_type is not None:
            sub = entries[stage_type]
            sub_label = f"{label}.{sub.key}"
            sub_entries = self.sub_mapping(sub, sub_label, fold_case=True)
            kind = stage_type

            def kind_elsewhere() -> dict[str, str]:
                other = s.SERVICE if kind == s.BATCH else s.BATCH
                places = {
                    k.yaml[1].lower(): f"{label}.{other} (this stage is a {kind} stage)"
                    for k in _STAGE_KIND_KEYS[other]
                    if k.yaml
                }
                places.update({k.yaml[0].lower(): label for k in _STAGE_TOP_KEYS if k.yaml})
                return places

            if sub_entries is not None:
                self.section(
                    sub_entries,
                    _STAGE_KIND_KEYS[stage_type],
                    1,
                    sub_label,
                    name,
                    sub.line,
                    values,
                    elsewhere=kind_elsewhere,
                )

        raw_path = values.pop(s.EXECUTABLE_MODULE_PATH.name, None)
        module_path = ""
        if raw_path is not None:
            module_path, message = checks.module_path(
                raw_path,
                self.files.paths,
                self.files.too_many_files,
                suggest=self.missing_modules < checks.MAX_SUGGESTIONS,
            )
            if message is not None:
                self.missing_modules += 1
                _, key_label, line = self.where(name, s.EXECUTABLE_MODULE_PATH)
                self.error(key_label, message, line)
        if stage_type is None or self.errors_since(mark):
            return None
        return StageConfig(
            name=name,
            stage_type=stage_type,
            module_path=module_path,
            args=values.pop(s.ARGS.name, None) or (),
            requirements=values.pop(s.REQUIREMENTS.name, None) or (),
            secrets=values.pop(s.SECRETS.name, None) or (),
            **values,
        )

    def read_on_failure(
        self, name: str | None, in_dag: list[str], stage_entries: dict[str, _Entry]
    ) -> str | None:
        if not name:
            return None
        _, label, line = self.where(None, s.ON_FAILURE)
        if name in in_dag:
            message = f"'{name}' is in the DAG too: the on-failure stage must run only on failure"
        elif name not in stage_entries:
            close = checks.closest(name, stage_entries)
            hint = f" (did you mean '{close}'?)" if close else ""
            message = f"stage '{name}' is not under stages:{hint}"
        else:
            return name
        self.error(label, message, line)
        return None


class _Bad(Exception):
    """A value was reported as unusable; the caller leaves the key out."""


HAVE_LIBYAML = hasattr(yaml, "CSafeLoader")
TOO_DEEP = "it nests lists or mappings too deeply"
# Where libyaml and PyYAML's pure loader were seen to read a text differently (a tab, \r,
# a control character, U+0085/U+2028/U+2029 line breaks, a BOM past the start, a surrogate)
# or libyaml accepts what the pure one refuses (a block scalar's header with a comment
# and no space, `|#`): such a text is read by the pure loader alone.
_NOT_FOR_LIBYAML_PATTERN = (
    "[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
    "|[|>][-+0-9]*#"
)
# The same test for a text that is all ASCII (nearly every file): compiling the pattern's
# wide ranges takes some 5 ms, every start, so the full one is compiled only when needed.
_NOT_FOR_LIBYAML_ASCII = re.compile("[^\n\x20-\x7e]|[|>][-+0-9]*#")


def _libyaml_reads_alike(text: str) -> bool:
    """Does the text hold nothing libyaml and the pure loader were seen to read differently?"""
    if text.isascii():
        return _NOT_FOR_LIBYAML_ASCII.search(text) is None
    return re.search(_NOT_FOR_LIBYAML_PATTERN, text) is None


if TYPE_CHECKING:
    _CLoader = yaml.CSafeLoader
else:
    _CLoader = yaml.CSafeLoader if HAVE_LIBYAML else yaml.SafeLoader


class _FastLoader(yamltags.MemoisedTags, _CLoader):
    """libyaml's parser, each scalar's tag resolved once per text (see core.yamltags)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.skip_path_hooks()


def compose_text(text: str) -> Node | None:
    """`yaml.compose` with SafeLoader's result, faster: libyaml's parser (CSafeLoader, some
    20 times faster; a 10,000-stage file took the pure loader 8 s) when the text holds
    nothing the two read differently, and PyYAML's pure loader otherwise and whenever
    libyaml finds an error, so every message, line and wording is the pure loader's.
    tests/unit/test_yaml_parity.py checks the trees are the same node for node."""
    if HAVE_LIBYAML and _libyaml_reads_alike(text):
        try:
            node: Node | None = yaml.compose(text, Loader=_FastLoader)
            return node
        except yaml.YAMLError:
            pass  # the pure loader says what is wrong, as it always has
    found: Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
    return found


def _stage_keys_elsewhere() -> dict[str, str]:
    """A stage key's name → where it goes, for one written among the project's keys."""
    return {
        k.yaml[-1].lower(): ".".join(("stages.<name>", *k.yaml[:-1]))
        for k in s.YAML_STAGE_KEYS
        if k.yaml
    }


def by_name_spelled(keys: tuple[Key[Any], ...], depth: int) -> list[str]:
    return [k.yaml[depth] for k in keys if k.yaml is not None and len(k.yaml) > depth]


def read(files: ProjectFiles, problems: list[Problem], strict: bool) -> Draft | None:
    """bodywork.yaml → a Draft, every problem in `problems`."""
    try:
        return _Reader(files, problems, strict).read()
    except RecursionError:  # anchors and merge keys nested past Python's stack
        problems.append(Problem(_FILE, f"is not valid YAML: {TOO_DEEP}"))
        return None
