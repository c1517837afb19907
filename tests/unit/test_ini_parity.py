"""`inifiles.read_ini` reads every text exactly as configparser does, without running it.

The reference below is the reader as it was before: configparser (strict, our comment
prefixes, no interpolation, no [DEFAULT]) for the values, then a walk of the lines for their
numbers. On generated texts, read_ini must give the same sections, values, line numbers and
problems; where configparser refuses a text, read_ini must refuse it too (which lines it
reports is tests/unit/test_hostile_config.py's linear-scan test).
"""

from __future__ import annotations

import configparser
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bodywork.core.config import inifiles
from bodywork.core.errors import Problem

FILE = "x/config.ini"


def reference(text: str) -> tuple[inifiles.Ini | None, list[Problem]]:
    """configparser and the line walk, as read_ini did before it parsed texts itself."""
    problems: list[Problem] = []
    text = text.removeprefix("\ufeff")
    parser = configparser.ConfigParser(
        interpolation=None,
        strict=True,
        default_section="\0none",
        inline_comment_prefixes=("#", ";"),
    )
    try:
        parser.read_string(text, source=FILE)
    except configparser.Error:
        return None, problems
    ini = inifiles.Ini({}, {}, {})
    current = None
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if stripped.startswith("[") and "]" in stripped:
            current = stripped[1 : stripped.index("]")].strip().lower()
            if current in ini.section_lines:
                problems.append(
                    Problem(FILE, f"section [{current}] appears twice: merge them", line=number)
                )
            ini.section_lines.setdefault(current, number)
        elif current and re.match(r"^[^\s#;][^=:]*[=:]", line):
            key = re.split(r"[=:]", line, maxsplit=1)[0].strip().lower()
            ini.key_lines.setdefault((current, key), number)
    for section in parser.sections():
        merged = ini.sections.setdefault(section.strip().lower(), {})
        for key, value in parser.items(section):
            merged[key] = inifiles._unquote(value or "")
    return ini, problems


_LINES = st.sampled_from(
    [
        "[default]", "[Default]", "[ default ]", "[batch]", "[a]b]", "[x] ; c", "[x]#c",
        "[\0none]", "  [indented]", "[open", "STAGE_TYPE = batch", "stage_type: service",
        "KEY=", "key = 'quoted'", 'key = "dq"', "k = a;b #c", "k2 = v ;c", "k3 = v#notc",
        "k4 : x = y", "K5 = multi", "  continued", "      deeper", "\tk6 = tab", "", "   ",
        "# comment", "; comment", "  # indented comment", "x ;c", "x #c = y", "= v", ": v",
        "garbage", "a;b", "\u3000x = y", "x\u3000#c = q", "k7 = v\r", "k8\t=\tv",
        "EXECUTABLE_SCRIPT = main.py", "PORT = 5000", "[secrets]", "USERNAME = db-creds",
        "k9 = ünïcode", "k10 = a = b", "k11 = [not a section]",
    ]
)  # fmt: skip


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINES, max_size=14), st.sampled_from(["", "[default]\n", "\ufeff[default]\n"]))
@example(["k = v", "", "  more", "", "[a]", "x = 1"], "[default]\n")
@example(["[\0none]", "shared = 1", "[a]", "x = 2", "[b]"], "")
@example(["[A]", "x = 1", "[a]", "y = 2"], "")
def test_read_ini_reads_a_text_as_configparser_does(lines: list[str], head: str) -> None:
    text = head + "\n".join(lines)
    expected, expected_problems = reference(text)
    problems: list[Problem] = []
    found = inifiles.read_ini(text, FILE, problems)
    if expected is None:
        assert found is None
        assert any(p.severity == "error" for p in problems)
    else:
        assert found == expected
        assert problems == expected_problems
