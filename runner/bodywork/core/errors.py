"""Every error Bodywork reports to a user, in one hierarchy.

`str(err)` is the message a user sees: it names the file, object or stage and says what
would fix it. Context travels as attributes so callers and tests need not parse text.
`exit_code` is what `bodywork` exits with (cli.main maps errors to codes in one place).

    BodyworkError                 1
    ├── ConfigError(problems)     2  every problem in the project at once
    ├── GitSourceError            3  cannot resolve or fetch the repo
    ├── ClusterError              4  the Kubernetes API refused or failed
    ├── StageFailed(results)      5  a workflow ran and a stage did not succeed
    ├── RunInProgress             6  another controller holds the project's lease (locally:
    │                                another `bodywork run` holds the project's lock)
    └── UsageError                2  the command line itself is wrong (or its environment:
                                     BODYWORK_HOME, a bare repository given as a path)

Outside the tree, cli.main's last resort: an OSError no layer translated (a full disk, a path
too long, standard output closed) is exit 1, naming the path and the errno; Ctrl-C is 130.
"""

from __future__ import annotations

from collections.abc import Sequence

from bodywork_bootstrap.recordclass import record


class BodyworkError(Exception):
    exit_code = 1


@record(frozen=True)
class Problem:
    """One thing wrong with a project's configuration."""

    file: str
    message: str
    key: str | None = None
    line: int | None = None
    severity: str = "error"  # "error" stops a run; "warning" is reported only

    def __str__(self) -> str:
        where = self.file if self.key is None else f"{self.file}: {self.key}"
        line = f" (line {self.line})" if self.line else ""
        return f"{where}: {self.message}{line}"


class ConfigError(BodyworkError):
    exit_code = 2

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        noun = "problem" if len(errors) == 1 else "problems"
        lines = [f"the project has {len(errors)} {noun}:"]
        lines += [f"  {p}" for p in errors]
        super().__init__("\n".join(lines))


class UsageError(BodyworkError):
    exit_code = 2


class GitSourceError(BodyworkError):
    exit_code = 3


class ClusterError(BodyworkError):
    exit_code = 4

    def __init__(self, message: str, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.status = status
        self.reason = reason


class StageFailed(BodyworkError):
    """A workflow ran to an end that was not success; `results` holds every stage's outcome."""

    exit_code = 5

    def __init__(self, message: str, results: Sequence[object] = ()):
        super().__init__(message)
        self.results = list(results)


class RunInProgress(BodyworkError):
    """Another controller is running this project in this namespace right now; locally,
    another `bodywork run` of the project (engine.locallock) holds its lock."""

    exit_code = 6
