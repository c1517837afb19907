"""The schema is the one place a setting and its default are declared.

README.md's configuration table and the config dataclasses' field defaults are both
checked against `bodywork.core.config.schema`, so neither can drift from it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from bodywork.core import config
from bodywork.core.config import schema
from bodywork_bootstrap import recordclass
from tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
TABLE_INTRO = "Each stage's `config.ini`"
REQUIRED, UNSET = "—", "none"  # how the table's default column says "required" and "unset"


def readme_stage_rows() -> list[tuple[str, str, str]]:
    """(section, key cell, default cell) for each body row of the stage config table."""
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(TABLE_INTRO))
    rows = []
    for line in lines[start + 1 :]:
        if rows and not line.startswith("|"):
            break
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header, rule, *body = rows
    assert header == ["section", "key", "default", "meaning"]
    assert set("".join(rule)) <= {"-"}
    found, section = [], ""
    for cells in body:
        section = cells[0].strip("`[]") or section  # an empty cell continues the section
        found.append((section, cells[1], cells[2].strip("`")))
    return found


def readme_stage_table() -> dict[tuple[str, str], str]:
    """(section, key) → the default cell, for each schema key row of the table."""
    table: dict[tuple[str, str], str] = {}
    for section, keys, default in readme_stage_rows():
        if section == "secrets":  # ENV_VAR = secret-name: free-form, not a schema key
            continue
        for key in re.findall(r"`([A-Z_]+)`", keys):
            assert (section, key.lower()) not in table, f"{key} is documented twice"
            table[(section, key.lower())] = default
    return table


def test_readme_table_documents_every_stage_key_and_no_other() -> None:
    documented = set(readme_stage_table())
    declared = {(key.section, key.name) for key in schema.STAGE_KEYS}
    assert documented - declared == set(), "README documents keys the schema does not have"
    assert declared - documented == set(), "README leaves out keys of the schema"


@pytest.mark.parametrize("key", schema.STAGE_KEYS, ids=lambda key: key.name.upper())
def test_readme_table_default_is_the_schema_default(key: schema.Key[Any]) -> None:
    cell = readme_stage_table()[(key.section, key.name)]
    if key.required:
        assert cell == REQUIRED, f"{key.name.upper()} is required: its default cell is {cell!r}"
    elif key.default is None or key.default == ():
        assert cell == UNSET, f"{key.name.upper()} is unset by default: README says {cell!r}"
    else:
        assert key.parse(cell) == key.default, f"README: {cell!r}, schema: {key.default!r}"
        assert type(key.parse(cell)) is type(key.default)


def test_readme_table_sections_are_the_schema_sections() -> None:
    assert {section for section, _, _ in readme_stage_rows()} == set(schema.STAGE_SECTIONS)


def test_readme_bodywork_ini_example_uses_only_schema_keys() -> None:
    """The bodywork.ini example block names only sections and keys the schema declares."""
    text = README.read_text()
    block = text.split("`bodywork.ini`:\n\n```ini\n", 1)[1].split("```", 1)[0]
    declared = {(key.section, key.name) for key in schema.PROJECT_KEYS}
    section = ""
    for line in block.splitlines():
        if match := re.match(r"^\[(\w+)\]", line):
            section = match[1].lower()
            assert section in schema.PROJECT_SECTIONS
        elif match := re.match(r"^(\w+)\s*=", line):
            assert (section, match[1].lower()) in declared, line


def field_defaults(cls: type) -> dict[str, Any]:
    return {
        f.name: f.default for f in recordclass.fields(cls) if f.default is not recordclass.MISSING
    }


@pytest.mark.parametrize(
    ("cls", "keys"),
    [(config.StageConfig, schema.STAGE_KEYS), (config.ProjectConfig, schema.PROJECT_KEYS)],
)
def test_dataclass_defaults_are_the_schema_defaults(cls: type, keys: tuple[Any, ...]) -> None:
    """A field that has a default has the schema's; every optional stage key has one."""
    defaults = field_defaults(cls)
    for key in keys:
        if key.name in defaults:
            assert defaults[key.name] == key.default, key.name
            assert type(defaults[key.name]) is type(key.default), key.name
        elif cls is config.StageConfig:
            assert key.required, f"{key.name.upper()} is optional but its field has no default"


def test_parsing_fills_defaults_from_the_schema() -> None:
    """A minimal project parses to every schema default, batch and project alike."""
    files = config.ProjectFiles(
        bodywork_ini="[workflow]\nDAG = train\n",
        dirs={
            "train": config.StageDir(
                "[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = t.py\n",
                frozenset({"t.py", "requirements.txt"}),
            )
        },
    )
    project = config.parse_project(files)
    assert project.project_name == schema.FALLBACK_PROJECT_NAME
    assert project.log_level == schema.LOG_LEVEL.default
    train = project.stages["train"]
    for key in schema.STAGE_KEYS:
        if not key.required and key.section in ("default", "batch"):
            assert getattr(train, key.name) == key.default, key.name


def test_default_of_refuses_a_key_without_a_default() -> None:
    with pytest.raises(ValueError, match="PORT has no default"):
        schema.default_of(schema.PORT)


# ---------------------------------------------------------------------------- both formats
INI_ONLY = {schema.STAGE_TYPE.name, schema.EXECUTABLE_SCRIPT.name}  # bodywork.yaml says these
# differently: a stage's kind is its batch:/service: mapping, its module a path from the root


def test_every_ini_key_has_its_place_in_bodywork_yaml():
    """A key is declared once for both formats: each ini key also says where it is in yaml."""
    for key in (*schema.PROJECT_KEYS, *schema.STAGE_KEYS):
        if key.name not in INI_ONLY:
            assert key.yaml is not None, key.name
            assert key in (*schema.YAML_PROJECT_KEYS, *schema.YAML_STAGE_KEYS), key.name


def test_yaml_keys_have_one_place_each():
    for keys in (schema.YAML_PROJECT_KEYS, schema.YAML_STAGE_KEYS):
        paths = [key.yaml for key in keys]
        assert None not in paths
        assert len(set(paths)) == len(paths)


def test_yaml_only_keys_are_not_read_from_ini_files():
    for key in (*schema.YAML_PROJECT_KEYS, *schema.YAML_STAGE_KEYS):
        assert (key in (*schema.PROJECT_KEYS, *schema.STAGE_KEYS)) == key.ini, key.name


def test_project_section_is_named_by_the_schema_version():
    assert schema.yaml_path(schema.DAG, "1.1") == ("pipeline", "DAG")
    assert schema.yaml_path(schema.DAG, "1.0") == ("project", "DAG")
    assert schema.yaml_path(schema.LOG_LEVEL, "1.0") == ("logging", "log_level")
    with pytest.raises(ValueError, match="STAGE_TYPE is not a bodywork.yaml key"):
        schema.yaml_path(schema.STAGE_TYPE, "1.1")


@pytest.mark.parametrize(
    ("cls", "keys"),
    [
        (config.StageConfig, schema.YAML_STAGE_KEYS),
        (config.ProjectConfig, schema.YAML_PROJECT_KEYS),
    ],
)
def test_dataclass_defaults_are_the_yaml_keys_defaults(cls: type, keys: tuple[Any, ...]) -> None:
    defaults = field_defaults(cls)
    for key in keys:
        if key.name in defaults and key.shape == "value":
            assert defaults[key.name] == key.default, key.name


def test_yaml_parsing_fills_the_same_defaults() -> None:
    files = config.ProjectFiles(
        bodywork_yaml='version: "1.1"\npipeline: {DAG: train}\n'
        "stages: {train: {executable_module_path: t.py, batch: {}}}\n",
        paths=frozenset({"t.py"}),
    )
    project = config.parse_project(files)
    assert project.log_level == schema.LOG_LEVEL.default
    train = project.stages["train"]
    for key in schema.STAGE_KEYS:
        if not key.required and key.section in ("default", "batch"):
            assert getattr(train, key.name) == key.default, key.name


def test_readme_bodywork_yaml_example_parses_with_no_problem() -> None:
    """The bodywork.yaml block in README.md is a valid project, warning-free."""
    text = README.read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    files = config.ProjectFiles(
        bodywork_yaml=block,
        paths=frozenset({"pipeline/train.py", "pipeline/serve.py"}),
    )
    project = config.parse_project(files, strict=True)
    assert [s for step in project.dag for s in step] == ["train-model", "serve-model"]
    assert project.stages["train-model"].args == ("--max-iter", "1000")
    assert project.warnings == ()
