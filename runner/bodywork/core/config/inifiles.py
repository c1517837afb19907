"""The ini format: `bodywork.ini` at the root and a `config.ini` in each stage's directory.

`read_ini` parses one file with case-insensitive sections and keys and their line numbers
(in time linear in its length, however many lines are malformed: see `_scan`);
`parse_keys` turns its values into typed ones with the `schema`, reporting every unknown
(a warning, an error under strict), missing or bad key with a did-you-mean; `read` builds a
`Draft` of the project from a `ProjectFiles` snapshot. A stage is the directory named in the
DAG; its module is `EXECUTABLE_SCRIPT` in that directory, beside its requirements.txt.
"""

from __future__ import annotations

import configparser
import re
import sys
from typing import Any

from bodywork.core import dag
from bodywork.core.config import checks
from bodywork.core.config import schema as s
from bodywork.core.config.draft import Draft, severity
from bodywork.core.config.model import ProjectFiles, StageConfig, StageDir
from bodywork.core.config.schema import Key
from bodywork.core.errors import Problem
from bodywork_bootstrap.recordclass import record

_NO_DEFAULT_SECTION = "\0none"  # stop configparser treating [DEFAULT] specially
_COMMENT_PREFIXES = ("#", ";")  # configparser's full-line ones, and our inline ones
_INLINE_COMMENT = re.compile(r"(?:^|(?<=\s))[#;]")
_NONSPACE = re.compile(r"\S")
_BOM = "\ufeff"


# ---------------------------------------------------------------------------- ini text
@record
class Ini:
    """A parsed ini file with case-insensitive sections and keys and their line numbers."""

    sections: dict[str, dict[str, str]]
    key_lines: dict[tuple[str, str], int]
    section_lines: dict[str, int]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1].strip()
    return value


def _inline_cut_by_rounds(line: str) -> int | None:
    """Where configparser (3.12 and before) cuts an inline comment: it looks for each prefix's
    next occurrence in rounds and stops in the first round that finds one after a space."""
    start: int | None = None
    positions = {prefix: -1 for prefix in _COMMENT_PREFIXES}
    while start is None and positions:
        found = {}
        for prefix, index in positions.items():
            index = line.find(prefix, index + 1)
            if index == -1:
                continue
            found[prefix] = index
            if index == 0 or line[index - 1].isspace():
                start = index if start is None else min(start, index)
        positions = found
    return start


def _inline_cut_earliest(line: str) -> int | None:
    """Where configparser (3.13 on) cuts an inline comment: the earliest prefix after a space."""
    match = _INLINE_COMMENT.search(line)
    return match.start() if match else None


_inline_cut = _inline_cut_earliest if sys.version_info >= (3, 13) else _inline_cut_by_rounds


@record(frozen=True)
class _Fatal:
    """An error configparser stops at: a key before any section, a section or key twice."""

    line: int
    section: str | None = None  # the section given twice, or the key's section
    option: str | None = None  # the key given twice (lower-cased, as configparser keeps it)


_SECTION = configparser.ConfigParser.SECTCRE  # configparser's own patterns, this Python's
_OPTION = configparser.ConfigParser.OPTCRE
_KEY_LINE = re.compile(r"^[^\s#;][^=:]*[=:]")
_KEY_END = re.compile(r"[=:]")


@record
class _Read:
    """What configparser (strict, our comment prefixes, no interpolation, no [DEFAULT]) makes
    of a text: the unparsable lines, the fatal error it stops at, and each section's keys
    (lower-cased) with their raw values; plus our own line numbers (`lines`)."""

    bad: list[int]
    fatal: _Fatal | None
    sections: dict[str, dict[str, list[str]]]  # by the name written, as configparser keeps them
    defaults: dict[str, list[str]]  # a section named _NO_DEFAULT_SECTION: in every section
    lines: Ini  # section and key lines, case-folded (sections and values left empty)
    repeated: list[tuple[str, int]]  # a header line whose section (case-folded) came before


def _read(text: str) -> _Read:
    """One pass over `text` by configparser's own rules (its SECTCRE and OPTCRE, continuation
    by indentation, blank lines kept inside a value, this Python's way of finding an inline
    comment, where it stops), so configparser itself is never run.

    configparser collects unparsable lines by growing one message string a line at a time,
    which takes time quadratic in their number (80,000 such lines took 40 s), and costs a
    10,000-stage project a third of its validation; tests/unit/test_ini_parity.py checks this
    reads every text as configparser does."""
    read = _Read([], None, {}, {}, Ini({}, {}, {}), [])
    section: str | None = None  # configparser's current section name
    values: dict[str, list[str]] | None = None  # ... and its keys
    option: str | None = None  # the key a continuation line would extend
    indent_level = 0
    seen: set[str | tuple[str, str]] = set()  # sections and (section, key)s, as strict sees
    current: str | None = None  # the section our line numbers are filed under
    for number, line in enumerate(text.split("\n"), 1):  # configparser splits on \n only
        stripped = line.strip()
        if stripped.startswith("[") and "]" in stripped:
            current = stripped[1 : stripped.index("]")].strip().lower()
            if current in read.lines.section_lines:
                read.repeated.append((current, number))
            read.lines.section_lines.setdefault(current, number)
        elif current and _KEY_LINE.match(line):
            key = _KEY_END.split(line, maxsplit=1)[0].strip().lower()
            read.lines.key_lines.setdefault((current, key), number)
        if stripped.startswith(_COMMENT_PREFIXES):
            continue  # a comment: configparser's state does not change
        cut = _inline_cut(line) if "#" in line or ";" in line else None
        value = line[:cut].strip()
        if not value:
            # configparser keeps a blank line inside a value (joined, then right-stripped)
            if cut is None and values is not None and option:
                values[option].append("")
            continue
        match = _NONSPACE.search(line)
        indent = match.start() if match else 0
        if values is not None and option and indent > indent_level:
            values[option].append(value)  # a continuation of the value above
            continue
        indent_level = indent
        if (header := _SECTION.match(value)) is not None:
            name = header.group("header")
            if name == _NO_DEFAULT_SECTION:
                values = read.defaults  # configparser's default section: never "twice"
            elif name in seen:
                read.fatal = _Fatal(number, section=name)
                return read
            else:
                seen.add(name)
                values = read.sections.setdefault(name, {})
            section, option = name, None
            continue
        if values is None:
            read.fatal = _Fatal(number)  # "needs a section header"
            return read
        found = _OPTION.match(value)
        if found is None:
            read.bad.append(number)  # the key above, if any, is still the one continued
            continue
        key = found.group("option").rstrip().lower()
        if not key:
            read.bad.append(number)
        if (section, key) in seen:
            assert section is not None
            read.fatal = _Fatal(number, section=section, option=key)
            return read
        seen.add((section, key))  # type: ignore[arg-type]
        values[key] = [found.group("value").strip()]
        option = key
    return read


def _scan(text: str) -> tuple[list[int], _Fatal | None]:
    """What configparser would reject in `text`: the lines that are neither a section, a key
    nor a continuation, and the first fatal error (a key before any section, a section or
    key given twice), if any."""
    read = _read(text)
    return read.bad, read.fatal


def _joined(raw: list[str]) -> str:
    return "\n".join(raw).rstrip()  # as configparser joins a value's lines


def read_ini(text: str, file: str, problems: list[Problem]) -> Ini | None:
    text = text.removeprefix(_BOM)  # an editor's UTF-8 BOM, if the caller left it

    def cannot_parse(lineno: int) -> Problem:
        line = s.shown(source_lines[lineno - 1].strip(), 80)  # the line, not configparser's repr
        return Problem(file, f"cannot parse {line!r}: expected KEY = value", line=lineno)

    def fatal(line: int, section: str | None, option: str | None) -> Problem:
        if option is not None:
            return Problem(
                file, f"key appears twice in [{section}]: keep one", key=option.upper(), line=line
            )
        if section is not None:
            return Problem(file, f"section [{section}] appears twice: merge them", line=line)
        return Problem(file, "needs a section header such as [default] first", line=line)

    read = _read(text)
    if read.bad or read.fatal is not None:
        # Where configparser stops, so do we; what it would have gathered before, we report.
        source_lines = text.split("\n")
        problems += [cannot_parse(lineno) for lineno in read.bad]
        stop = read.fatal
        if stop is not None and stop.line not in read.bad[-1:]:  # "= x" twice: reported already
            problems.append(fatal(stop.line, stop.section, stop.option))
        return None
    ini = read.lines
    for name, line in read.repeated:  # e.g. [Default] and [default]: configparser keeps both
        problems.append(Problem(file, f"section [{name}] appears twice: merge them", line=line))
    for name, keys in read.sections.items():
        merged = ini.sections.setdefault(name.strip().lower(), {})
        # configparser's items(): the default section's keys first, then the section's own
        for key, raw in {**read.defaults, **keys}.items():
            merged[key] = _unquote(_joined(raw))
    return ini


def _unknown_key_hint(raw_key: str, section: str, keys: tuple[Key[Any], ...]) -> str:
    """'did you mean X?', or where the key belongs when it is another section's."""
    elsewhere = [k for k in keys if k.name == raw_key and k.section != section]
    if elsewhere:
        return f" ({raw_key.upper()} belongs in [{elsewhere[0].section}])"
    in_section = [k.name for k in keys if k.section == section]
    close = checks.closest(raw_key, in_section)
    if close:
        return f" (did you mean {close.upper()}?)"
    close = checks.closest(raw_key, [k.name for k in keys])  # misspelt and misplaced
    if close:
        section_of = next(k.section for k in keys if k.name == close)
        return f" (did you mean {close.upper()}, in [{section_of}]?)"
    yaml_only = [
        k for k in (*s.YAML_PROJECT_KEYS, *s.YAML_STAGE_KEYS) if k.name == raw_key and not k.ini
    ]
    if yaml_only:
        return f" ({raw_key.upper()} is a {s.YAML_FILE} key)"
    return ""


# ---------------------------------------------------------------------------- keys → values
def parse_keys(
    ini: Ini,
    file: str,
    keys: tuple[Key[Any], ...],
    active: set[str],
    problems: list[Problem],
    strict: bool = False,
) -> dict[str, Any]:
    """Parse the keys of the sections in `active`, reporting every problem."""
    values: dict[str, Any] = {}
    by_section: dict[str, dict[str, Key[Any]]] = {}
    for key in keys:
        by_section.setdefault(key.section, {})[key.name] = key
    for section, known in by_section.items():
        given = ini.sections.get(section, {})
        for raw_key, raw_value in given.items():
            line = ini.key_lines.get((section, raw_key))
            if raw_key not in known:
                hint = _unknown_key_hint(raw_key, section, keys)
                problems.append(
                    Problem(
                        file,
                        f"unknown key in [{section}]{hint}",
                        key=raw_key.upper(),
                        line=line,
                        severity=severity(strict),
                    )
                )
                continue
            if section not in active:
                continue
            try:
                values[raw_key] = known[raw_key].parse_text(raw_value)
            except s.ItemErrors as exc:
                problems += [Problem(file, m, key=raw_key.upper(), line=line) for m in exc.messages]
            except ValueError as exc:
                problems.append(Problem(file, str(exc), key=raw_key.upper(), line=line))
        if section not in active:
            continue
        for name, key in known.items():
            if name in given:
                continue
            if key.required:
                hint = f" ({key.doc})" if key.doc else ""
                problems.append(
                    Problem(
                        file,
                        f"missing: add {name.upper()} = ... under [{section}]{hint}",
                        key=name.upper(),
                        line=ini.section_lines.get(section),
                    )
                )
            else:
                values[name] = key.default
    return values


def _parse_project_ini(
    files: ProjectFiles, problems: list[Problem], strict: bool
) -> tuple[dict[str, Any], Ini] | None:
    assert files.bodywork_ini is not None
    ini = read_ini(files.bodywork_ini, s.PROJECT_FILE, problems)
    if ini is None:
        return None
    problems += checks.unknown_sections(
        s.PROJECT_FILE, ini.sections, ini.section_lines, s.PROJECT_SECTIONS, severity(strict)
    )
    values = parse_keys(
        ini, s.PROJECT_FILE, s.PROJECT_KEYS, set(s.PROJECT_SECTIONS), problems, strict
    )
    return values, ini


def _parse_stage(
    name: str,
    stage_dir: StageDir,
    problems: list[Problem],
    strict: bool,
    lines: dict[tuple[str | None, str], int],
) -> StageConfig | None:
    file = f"{name}/{s.STAGE_FILE}"
    if stage_dir.config_ini is None:
        problems.append(
            Problem(
                file,
                f"not found: stage '{name}' needs a {s.STAGE_FILE} with [default] STAGE_TYPE "
                "and EXECUTABLE_SCRIPT",
            )
        )
        return None
    before = len(problems)
    ini = read_ini(stage_dir.config_ini, file, problems)
    if ini is None:
        return None
    problems += checks.unknown_sections(
        file, ini.sections, ini.section_lines, s.STAGE_SECTIONS, severity(strict)
    )
    stage_type = ini.sections.get("default", {}).get("stage_type", "").lower()
    active = {"default"}
    if stage_type in (s.BATCH, s.SERVICE):
        active.add(stage_type)
        problems += checks.ignored_section(file, stage_type, ini.sections, ini.section_lines)
    values = parse_keys(ini, file, s.STAGE_KEYS, active, problems, strict)
    for key in s.STAGE_KEYS:
        if (line := ini.key_lines.get((key.section, key.name))) is not None:
            lines[(name, key.name)] = line

    secrets = []
    for env_var, secret in ini.sections.get("secrets", {}).items():
        line = ini.key_lines.get(("secrets", env_var))
        env_var = env_var.upper()  # configparser lower-cases keys; env vars are upper
        secret = secret.lower()  # as the original did: Kubernetes names are lower-case
        problem = checks.secret(file, env_var, secret, line)
        if problem is None:
            secrets.append((env_var, secret))
        else:
            problems.append(problem)

    script = values.pop("executable_script", None)
    script_line = ini.key_lines.get(("default", "executable_script"))
    problems += checks.stage_files(name, stage_dir, script, script_line)
    if len(problems) > before and any(p.severity == "error" for p in problems[before:]):
        return None
    return StageConfig(name=name, module_path=f"{name}/{script}", secrets=tuple(secrets), **values)


def _parse_on_failure(
    name: str | None,
    files: ProjectFiles,
    in_dag: list[str],
    line: int | None,
    problems: list[Problem],
    strict: bool,
    lines: dict[tuple[str | None, str], int],
) -> StageConfig | None:
    """[workflow] ON_FAILURE: a batch stage directory that is not also in the DAG."""
    if not name:
        return None
    if (target := checks.on_failure_target(name, in_dag, files.dirs, line)) is not None:
        problems.append(target)
        return None
    parsed = _parse_stage(name, files.dirs[name], problems, strict, lines)
    if parsed is not None and (service := checks.on_failure_stage(parsed, line)) is not None:
        problems.append(service)
        return None
    return parsed


# ---------------------------------------------------------------------------- the project
def read(files: ProjectFiles, problems: list[Problem], strict: bool) -> Draft | None:
    """bodywork.ini and the DAG's config.ini files → a Draft, every problem in `problems`."""
    parsed = _parse_project_ini(files, problems, strict)
    values, ini = parsed if parsed is not None else ({}, None)
    lines: dict[tuple[str | None, str], int] = {}
    if ini is not None:
        for key in s.PROJECT_KEYS:
            if (line := ini.key_lines.get((key.section, key.name))) is not None:
                lines[(None, key.name)] = line
    dag_line = lines.get((None, s.DAG.name))
    steps: tuple[tuple[str, ...], ...] = ()
    if values.get("dag"):
        try:
            steps = dag.parse_dag(values["dag"])
        except dag.DagError as exc:
            for message in exc.problems:
                problems.append(Problem(s.PROJECT_FILE, message, key="DAG", line=dag_line))

    in_dag = [stage for step in steps for stage in step]
    stages: dict[str, StageConfig] = {}
    missing_dirs = 0
    for stage in in_dag:
        suggest = missing_dirs < checks.MAX_SUGGESTIONS
        if (missing := checks.stage_dir(stage, files.dirs, dag_line, suggest)) is not None:
            problems.append(missing)
            missing_dirs += 1
            continue
        stage_config = _parse_stage(stage, files.dirs[stage], problems, strict, lines)
        if stage_config is not None:
            stages[stage] = stage_config
    on_failure = _parse_on_failure(
        values.get("on_failure"),
        files,
        in_dag,
        lines.get((None, s.ON_FAILURE.name)),
        problems,
        strict,
        lines,
    )
    if on_failure is not None:
        stages[on_failure.name] = on_failure
    if steps:
        problems += checks.unused_dirs(files.dirs, in_dag, on_failure.name if on_failure else None)
    if parsed is None:
        return None

    def where(stage: str | None, key: Key[Any]) -> tuple[str, str, int | None]:
        file = s.PROJECT_FILE if stage is None else f"{stage}/{s.STAGE_FILE}"
        return file, key.name.upper(), lines.get((stage, key.name))

    values.pop("dag", None)
    return Draft(
        file=s.PROJECT_FILE,
        values=values,
        steps=steps,
        stages=stages,
        on_failure=on_failure.name if on_failure else None,
        where=where,
        stage_noun="directory",
    )
