"""The original Bodywork's command lines (cli/legacy.py): each maps to exactly today's argv,
which today's real parser reads as the intended command; today's own forms are never
changed; a form with no equivalent is a UsageError (exit 2) naming the replacement; and
docs/migrating.md's table agrees with the code row by row."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from bodywork.cli import legacy
from bodywork.cli.main import build_parser, parser_for
from bodywork.core import config
from bodywork.core.errors import UsageError

REPO = Path(__file__).resolve().parents[2]
CRON = "0 * * * *"

# (original line, today's argv, today's handler, values today's parser must read)
MAPPINGS: list[tuple[str, str, str, dict[str, Any]]] = [
    # ---- the ini era: v1 and v2 (argparse)
    (
        "workflow --namespace=NS URL master",
        "workflow -n NS URL --branch master",
        "cmd_workflow",
        {"namespace": "NS", "source": "URL", "branch": "master", "image": None},
    ),
    (
        "workflow --namespace NS URL master",
        "workflow -n NS URL --branch master",
        "cmd_workflow",
        {"namespace": "NS", "source": "URL", "branch": "master"},
    ),
    (
        "workflow URL master --ns=NS --bodywork-docker-image=img:1",
        "workflow -n NS URL --branch master --image img:1",
        "cmd_workflow",
        {"namespace": "NS", "source": "URL", "branch": "master", "image": "img:1"},
    ),
    (
        "deployment create --namespace=NS --name=X --git-repo-url=URL --git-repo-branch=B",
        "deploy -n NS URL --branch B",
        "cmd_deploy",
        {"namespace": "NS", "source": "URL", "branch": "B", "watch": False},
    ),
    (
        "deployment --ns NS create --git-repo-url URL --retries 3",
        "deploy -n NS URL",
        "cmd_deploy",
        {"namespace": "NS", "source": "URL", "branch": None},
    ),
    (
        "deployment create --namespace=NS --name=X --git-repo-url=URL --git-repo-branch=B "
        "--local-workflow-controller",
        "workflow -n NS URL --branch B",
        "cmd_workflow",
        {"namespace": "NS", "source": "URL", "branch": "B"},
    ),
    (
        "deployment create --namespace=NS --git-repo-url=URL --local",
        "workflow -n NS URL",
        "cmd_workflow",
        {"namespace": "NS", "source": "URL"},
    ),
    (
        "deployment create --namespace=NS --git-repo-url=URL -L",
        "workflow -n NS URL",
        "cmd_workflow",
        {"namespace": "NS"},
    ),
    ("deployment display --namespace NS", "status -n NS", "cmd_status", {"namespace": "NS"}),
    (
        "deployment display --namespace=NS --name=X",
        "status -n NS",
        "cmd_status",
        {"namespace": "NS", "run": None, "project": None},
    ),
    (
        f"cronjob create --namespace=NS --name=N --schedule={CRON!r} --git-repo-url=URL "
        "--git-repo-branch=B --retries=2 --history-limit=1",
        f"cronjob create -n NS URL --schedule {CRON!r} --name N --branch B",
        "cmd_cronjob",
        {
            "action": "create",
            "namespace": "NS",
            "source": "URL",
            "schedule": CRON,
            "name": "N",
            "branch": "B",
        },
    ),
    (
        f"cronjob create --namespace NS --schedule {CRON!r} --git-repo-url URL",
        f"cronjob create -n NS URL --schedule {CRON!r}",
        "cmd_cronjob",
        {"action": "create", "name": None, "branch": None},
    ),
    (
        "cronjob delete --namespace=NS --name=N",
        "cronjob delete -n NS N",
        "cmd_cronjob",
        {"action": "delete", "namespace": "NS", "name": "N"},
    ),
    (
        "cronjob display --namespace=NS",
        "cronjob list -n NS",
        "cmd_cronjob",
        {"action": "list", "namespace": "NS"},
    ),
    (
        "cronjob --ns NS history --name N",
        "cronjob history -n NS N",
        "cmd_cronjob",
        {"action": "history", "namespace": "NS", "name": "N"},
    ),
    ("service display --namespace=NS", "status -n NS", "cmd_status", {"namespace": "NS"}),
    ("service display --ns NS --name X", "status -n NS", "cmd_status", {"namespace": "NS"}),
    (
        "secret create --namespace=NS --name=X --data K=V K2=V2",
        "secret create -n NS X K=V K2=V2",
        "cmd_secret",
        {"action": "create", "namespace": "NS", "name": "X", "value": ["K=V", "K2=V2"]},
    ),
    (
        "secret create --ns NS --data=K=V --name X",
        "secret create -n NS X K=V",
        "cmd_secret",
        {"action": "create", "name": "X", "value": ["K=V"]},
    ),
    (
        "secret delete --namespace=NS --name=X",
        "secret delete -n NS X",
        "cmd_secret",
        {"action": "delete", "namespace": "NS", "name": "X"},
    ),
    (
        "secret display --namespace=NS",
        "secret list -n NS",
        "cmd_secret",
        {"action": "list", "namespace": "NS"},
    ),
    (
        "validate --file examples/train-and-deploy/bodywork.ini",
        "validate examples/train-and-deploy",
        "cmd_validate",
        {"source": "examples/train-and-deploy", "strict": False},
    ),
    (
        "validate --file=proj/bodywork.yaml --check-files",
        "validate proj",
        "cmd_validate",
        {"source": "proj"},
    ),
    ("validate --file bodywork.yaml", "validate .", "cmd_validate", {"source": "."}),
    ("validate --check-files", "validate .", "cmd_validate", {"source": "."}),
    ("validate", "validate .", "cmd_validate", {"source": "."}),
    # ---- v3 (typer)
    (
        "create deployment URL --branch B",
        "deploy URL --branch B --watch",
        "cmd_deploy",
        # no -n: deploy takes the project's namespace (bodywork.yaml), else the default
        {"namespace": None, "source": "URL", "branch": "B", "watch": True},
    ),
    (
        "create deployment URL --branch=B",
        "deploy URL --branch B --watch",
        "cmd_deploy",
        {"branch": "B", "watch": True},
    ),
    (
        "create deployment URL master",
        "deploy URL --branch master --watch",
        "cmd_deploy",
        {"branch": "master"},
    ),
    ("create deployment URL", "deploy URL --watch", "cmd_deploy", {"branch": None}),
    (
        "create deployment URL --branch B -n NS",
        "deploy -n NS URL --branch B --watch",
        "cmd_deploy",
        {"namespace": "NS"},
    ),
    (
        "create deployment URL --branch B --namespace=NS --async",
        "deploy -n NS URL --branch B",
        "cmd_deploy",
        {"namespace": "NS", "watch": False},
    ),
    (
        "create deployment URL --branch B --group G --retries 2 --async-job-name j",
        "deploy URL --branch B --watch",
        "cmd_deploy",
        {"branch": "B"},
    ),
    (
        "create deployment URL --secrets-group G",
        "deploy URL --watch",
        "cmd_deploy",
        {"source": "URL"},
    ),
    (
        "create deployment URL --bodywork-image img:2",
        "deploy URL --image img:2 --watch",
        "cmd_deploy",
        {"image": "img:2"},
    ),
    (
        "update deployment URL --branch B",
        "deploy URL --branch B --watch",
        "cmd_deploy",
        {"branch": "B"},
    ),
    ("get deployments", "status", "cmd_status", {"namespace": "bodywork", "project": None}),
    ("get deployment", "status", "cmd_status", {"project": None}),
    (
        "get deployment pipe serve --namespace NS",
        "status -n NS --project pipe",
        "cmd_status",
        {"namespace": "NS", "project": "pipe", "run": None},
    ),
    ("get deployments --async", "status", "cmd_status", {}),
    (
        f"create cronjob URL --name daily --schedule {CRON!r} --branch B --retries 2 "
        "--history-limit 1",
        f"cronjob create URL --schedule {CRON!r} --name daily --branch B",
        "cmd_cronjob",
        {"action": "create", "source": "URL", "schedule": CRON, "name": "daily", "branch": "B"},
    ),
    (
        f"create cronjob URL master --name daily --schedule={CRON!r}",
        f"cronjob create URL --schedule {CRON!r} --name daily --branch master",
        "cmd_cronjob",
        {"branch": "master"},
    ),
    (
        f"update cronjob URL --name daily --schedule {CRON!r} -n NS",
        f"cronjob create -n NS URL --schedule {CRON!r} --name daily",
        "cmd_cronjob",
        {"action": "create", "namespace": "NS", "branch": None},
    ),
    ("get cronjobs", "cronjob list", "cmd_cronjob", {"action": "list"}),
    ("get cronjob daily", "cronjob list", "cmd_cronjob", {"action": "list"}),
    (
        "get cronjob daily --history",
        "cronjob history daily",
        "cmd_cronjob",
        {"action": "history", "name": "daily"},
    ),
    (
        "delete cronjob daily",
        "cronjob delete daily",
        "cmd_cronjob",
        {"action": "delete", "name": "daily"},
    ),
    (
        "create secret creds --group dev --data USERNAME=a --data PASSWORD=b",
        "secret create dev-creds USERNAME=a PASSWORD=b",
        "cmd_secret",
        {"action": "create", "name": "dev-creds", "value": ["USERNAME=a", "PASSWORD=b"]},
    ),
    (
        "create secret --group dev --name cloud-storage-credentials "
        "--data USERNAME=bodywork PASSWORD=bodywork123!",
        "secret create dev-cloud-storage-credentials USERNAME=bodywork PASSWORD=bodywork123!",
        "cmd_secret",
        {"name": "dev-cloud-storage-credentials"},
    ),
    (
        "create secret Creds --group=Dev --data K=V -n NS",
        "secret create -n NS dev-creds K=V",
        "cmd_secret",
        {"namespace": "NS", "name": "dev-creds"},
    ),
    (
        "update secret creds --group dev --data K=V",
        "secret create dev-creds K=V",
        "cmd_secret",
        {"action": "create", "name": "dev-creds"},
    ),
    ("get secrets", "secret list", "cmd_secret", {"action": "list"}),
    ("get secret creds --group dev", "secret list", "cmd_secret", {"action": "list"}),
    (
        "delete secret creds --group dev",
        "secret delete dev-creds",
        "cmd_secret",
        {"action": "delete", "name": "dev-creds"},
    ),
]


@pytest.mark.parametrize(("old", "new", "handler", "values"), MAPPINGS)
def test_each_original_form_maps_to_todays_argv_and_todays_parser_reads_it(
    old: str, new: str, handler: str, values: dict[str, Any]
) -> None:
    original = shlex.split(old)
    argv, note = legacy.translate(original, parser_for(original))  # as main() calls it
    assert argv == shlex.split(new)
    assert note is not None and "\n" not in note
    assert note.startswith(f"'bodywork {shlex.split(old)[0]}")
    assert "is the original Bodywork's form; today: bodywork " in note
    args = parser_for(argv).parse_args(argv)
    assert args.handler.__name__ == handler
    for name, value in values.items():
        assert getattr(args, name) == value, name


def test_version_maps_to_the_version_option(capsys: pytest.CaptureFixture[str]) -> None:
    argv, note = legacy.translate(["version"])
    assert argv == ["--version"]
    assert note == "'bodywork version' is the original Bodywork's form; today: bodywork --version"
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(argv)
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("bodywork ")


def test_the_note_shows_the_new_spelling_shell_quoted() -> None:
    _, note = legacy.translate(shlex.split(f"cronjob display --ns=NS --schedule {CRON!r}"))
    assert note == (
        f"'bodywork cronjob display --ns=NS --schedule {shlex.quote(CRON)}' is the original "
        "Bodywork's form; today: bodywork cronjob list -n NS"
    )


def test_the_note_says_what_was_dropped_and_where_the_namespace_comes_from() -> None:
    _, note = legacy.translate(shlex.split("create deployment URL --group G --retries 2"))
    assert note is not None
    assert "today: bodywork deploy URL --watch; namespace: add -n NS" in note
    assert "--group dropped" in note and "--retries dropped" in note


def test_the_note_hides_secret_values_and_url_credentials() -> None:
    argv, note = legacy.translate(
        ["secret", "create", "--ns", "NS", "--name", "x", "--data", "PASSWORD=hunter2", "odd"]
    )
    assert argv[-2:] == ["PASSWORD=hunter2", "odd"]  # the Secret gets them, unchanged
    assert note is not None
    assert "hunter2" not in note and "odd" not in note
    assert "PASSWORD=***" in note
    _, note = legacy.translate(["create", "secret", "x", "--group", "g", "--data=TOKEN=s3cret"])
    assert note is not None and "s3cret" not in note and "--data=TOKEN=***" in note
    _, note = legacy.translate(["create", "deployment", "https://me:tok3n@git.example.com/r"])
    assert note is not None and "tok3n" not in note and "https://***@git.example.com/r" in note


def test_a_v3_secret_name_is_the_one_a_bodywork_yaml_with_secrets_group_reads(
    tmp_path: Path,
) -> None:
    """v3 named a group's secret GROUP-NAME; the yaml reader maps `secrets_group: G` and a
    stage's `secrets: {ENV: name}` to the Secret `G-name`: both must agree."""
    root = tmp_path / "project"
    shutil.copytree(REPO / "examples" / "yaml-pipeline", root)
    text = (root / "bodywork.yaml").read_text()
    text = text.replace("  name: yaml-pipeline\n", "  name: yaml-pipeline\n  secrets_group: Dev\n")
    text = text.replace(
        "    executable_module_path: pipeline/train.py\n",
        "    executable_module_path: pipeline/train.py\n    secrets:\n      DB_PASSWORD: Creds\n",
    )
    (root / "bodywork.yaml").write_text(text)
    project = config.load_project(root, "yaml-pipeline")
    stage = next(s for s in project.stages.values() if s.secrets)
    (_, read_by_the_stage), *_ = stage.secrets
    argv, _ = legacy.translate(["create", "secret", "Creds", "--group", "Dev", "--data", "K=V"])
    assert argv[2] == read_by_the_stage == "dev-creds"


# ---------------------------------------------------------------------------- not accepted
REFUSED: list[tuple[str, list[str]]] = [
    ("setup-namespace ml", ["kubectl apply -k manifests/", "bodywork bootstrap -n ml URL"]),
    ("configure-cluster", ["kubectl apply -k manifests/", "bodywork bootstrap -n NS URL"]),
    ("debug 5", ["kubectl debug"]),
    ("debug", ["kubectl debug"]),
    (
        "deployment logs --namespace NS --name X",
        ["bodywork status -n NS", "bodywork logs -n NS RUN"],
    ),
    ("deployment delete_job --namespace NS --name X", ["bodywork cleanup -n NS"]),
    (
        "cronjob logs --namespace NS --name N",
        ["bodywork cronjob history -n NS N", "bodywork logs -n NS RUN"],
    ),
    ("service delete --namespace NS --name X", ["bodywork cleanup -n NS --services --project"]),
    (
        "create deployment URL --ssh /home/me/.ssh/id_rsa",
        ["--git-ssh-secret repo-ssh", "create secret generic repo-ssh"],
    ),
    ("create deployment URL --ssh-key-path k -n NS", ["kubectl -n NS create secret generic"]),
    (f"create cronjob URL --name d --schedule {CRON!r} --ssh k", ["--git-ssh-secret"]),
    ("get deployment pipe --logs job-1", ["bodywork logs RUN"]),
    ("delete deployment pipe", ["bodywork cleanup --project pipe --services"]),
    (
        "get cronjob daily --logs daily-1645398960",
        ["bodywork cronjob history daily", "bodywork logs RUN"],
    ),
    ("delete secret --group dev", ["bodywork secret list", "bodywork secret delete dev-NAME"]),
]


@pytest.mark.parametrize(("old", "named"), REFUSED)
def test_a_form_with_no_equivalent_is_a_usage_error_naming_the_replacement(
    old: str, named: list[str]
) -> None:
    with pytest.raises(UsageError) as refused:
        legacy.translate(shlex.split(old))
    message = str(refused.value)
    assert refused.value.exit_code == 2
    assert "\n" not in message
    assert message.startswith("'bodywork ") and "the original Bodywork's form" in message
    assert "today: " in message
    for replacement in named:
        assert replacement in message


WRONG: list[tuple[str, str]] = [
    ("deployment create --namespace NS --git-repo-url URL --bogus=1", "unknown argument --bogus"),
    ("deployment create --namespace NS", "it needs --git-repo-url URL"),
    ("deployment destroy --namespace NS", "invalid choice: 'destroy'"),
    ("deployment create --git-repo-url URL --retries many", "invalid int value: 'many'"),
    ("cronjob create --ns NS --git-repo-url URL", "it needs --schedule CRON"),
    ("cronjob history --ns NS", "it needs --name NAME"),
    ("secret create --ns NS --name X", "it needs --data KEY=VALUE"),
    ("secret delete --ns NS", "it needs --name NAME"),
    ("workflow --ns NS URL B --colour red", "unknown arguments --colour red"),
    ("validate --file config.yml", "not 'config.yml'"),
    ("version --short", "unknown arguments --short"),
    ("create", "the kind is deployment, cronjob or secret"),
    ("get pods", "the kind is deployment, cronjob or secret"),
    ("create deployment", "the following arguments are required: git_url"),
    ("create deployment URL main --branch dev", "two branches, 'main' and 'dev'"),
    ("create deployment URL --verbose", "unknown argument --verbose"),
    ("create cronjob URL --name d", "the following arguments are required: --schedule"),
    ("get cronjob d --history --logs r", "--logs and --history together"),
    ("create secret x --data K=V", "it needs --group GROUP"),
    ("create secret --group g --data K=V", "it needs NAME"),
    ("create secret x --group g", "it needs --data KEY=VALUE"),
    ("create secret x --group g --name y --data K=V", "two names, 'x' and 'y'"),
    ("delete secret x", "it needs NAME and --group GROUP"),
    ("delete secret", "it needs NAME and --group GROUP"),
]


@pytest.mark.parametrize(("old", "problem"), WRONG)
def test_a_wrong_original_line_is_one_usage_error_naming_the_problem(
    old: str, problem: str
) -> None:
    with pytest.raises(UsageError) as refused:
        legacy.translate(shlex.split(old))
    message = str(refused.value)
    assert refused.value.exit_code == 2
    assert "\n" not in message
    assert problem in message
    assert "today: " in message


def test_an_unknown_option_is_named_without_its_value() -> None:
    with pytest.raises(UsageError) as refused:
        legacy.translate(["secret", "create", "--ns", "n", "--name", "x", "--pass=hunter2"])
    assert "--pass=..." in str(refused.value) and "hunter2" not in str(refused.value)


def test_translate_does_no_io(capsys: pytest.CaptureFixture[str]) -> None:
    for old, *_ in MAPPINGS:
        legacy.translate(shlex.split(old))
    for old, *_ in REFUSED + WRONG:
        with pytest.raises(UsageError):
            legacy.translate(shlex.split(old))
    for argv in CURRENT:
        legacy.translate(shlex.split(argv))
    assert capsys.readouterr() == ("", "")


# ---------------------------------------------------------------------------- today's forms
CURRENT = [
    "--version",
    "-h",
    "validate .",
    "validate examples/yaml-pipeline --strict",
    "validate https://example.com/p.git --branch main --project-dir sub",
    "run examples/train-and-deploy",
    "run . --branch main --log-format json --secrets-file s.ini",
    "bootstrap -n NS https://example.com/p.git --secret db=PASSWORD=x",
    "deploy -n NS https://example.com/p.git --watch",
    "deploy -n NS https://example.com/p.git --resume 20261125-120000-abcd",
    "deploy -n bodywork ssh://git@git.example.com/org/repo.git --git-ssh-secret repo-ssh",
    f"render . --schedule {CRON!r} --dry-run server",
    f"cronjob create -n NS https://example.com/p.git --schedule {CRON!r} --name n -b main",
    f"cronjob create --namespace=NS URL --schedule={CRON!r}",
    "cronjob list -n NS -o json",
    "cronjob delete -n NS n",
    "cronjob history n -o yaml",
    "cronjob delete --name NS n",  # --name abbreviates today's --namespace
    "status",
    "status 20261125 -o json --project p",
    "logs 20261125-120000-abcd train -f",
    "secret create -n NS db PASSWORD=x USER=y",
    "secret create db --from-env-file .env",
    "secret list -n NS",
    "secret delete db",
    "cleanup --older-than-days 3 --services --dry-run",
    "workflow -n NS URL --branch main",
    "workflow --namespace=NS URL",
    "workflow -n bodywork --image bodywork:0.1.0 https://github.com/you/project.git --branch main",
    "stage --repo URL --commit abc --stage s --script x.py",
]


@pytest.mark.parametrize("line", CURRENT)
def test_a_current_command_line_is_never_changed(line: str) -> None:
    assert legacy.translate(shlex.split(line)) == (shlex.split(line), None)


@pytest.mark.parametrize(
    "line",
    ["", "cronjob", "cronjob create", "secret create", "workflow", "workflow URL a b", "nosuch"],
)
def test_a_wrong_current_line_is_left_to_todays_parser(line: str) -> None:
    """No mark of the original: today's parser reports it, with today's usage."""
    assert legacy.translate(shlex.split(line)) == (shlex.split(line), None)


def _readme_forms() -> list[str]:
    """Every `bodywork ...` form in the READMEs and docs/kubernetes.md, placeholders filled and
    each [optional part] both left out and put in; A\\|B alternatives each."""
    placeholders = {
        "NS": "ns1",
        "URL": "https://example.com/p.git",
        "REPO_URL": "https://example.com/p.git",
        "PATH": ".",
        "PATH_OR_GIT_URL": ".",
        "RUN": "20261125-120000-abcd",
        "STAGE": "train",
        "N": "3",
        "CRON": CRON,
        "B": "main",
        "DIR": "sub",
        "IMAGE": "img:1",
        "NAME=KEY=VALUE": "db=PASSWORD=x",
    }
    files = [REPO / "README.md", REPO / "docs" / "kubernetes.md"]
    files += sorted((REPO / "examples").glob("*/README.md"))
    texts = [f.read_text() for f in files]
    spans = [m for text in texts for m in re.findall(r"`(bodywork [^`]+)`", text)]
    spans += [m for text in texts for m in re.findall(r"^(bodywork [^#\n]+)", text, re.M)]
    forms: set[str] = set()
    for span in spans:
        if "..." in span or "/" in span.split()[1]:
            continue
        span = span.replace("\\|", "|")
        for optional in (False, True):
            text = re.sub(r"\[([^\]]*)\]", r"\1" if optional else "", span)
            words = text.split()
            choices = [w.split("|") if w != "|" else [w] for w in words]
            for pick in range(max(len(c) for c in choices)):
                line = [c[min(pick, len(c) - 1)] for c in choices]
                forms.add(shlex.join(placeholders.get(w, w) for w in line[1:]))
    return sorted(forms)


README_FORMS = _readme_forms()


def test_the_readme_forms_were_found() -> None:
    assert len(README_FORMS) > 20
    assert "workflow -n ns1 https://example.com/p.git" in README_FORMS


# The README mentions `bodywork validate` in prose; on its own today's parser refuses it,
# while it is also v2/v3's form for ./bodywork.yaml, so it becomes `validate .` (docs table).
ORIGINAL_TOO = {"validate"}


@pytest.mark.parametrize("line", README_FORMS)
def test_every_readme_command_form_passes_through_unchanged(line: str) -> None:
    if line in ORIGINAL_TOO:
        with pytest.raises(SystemExit):  # not a complete form of today's
            build_parser().parse_args(shlex.split(line))
        return
    assert legacy.translate(shlex.split(line)) == (shlex.split(line), None)


# ---------------------------------------------------------------------------- the docs' table
def _doc_rows() -> list[tuple[str, str]]:
    rows = []
    for line in (REPO / "docs" / "migrating.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`bodywork "):
            rows.append((cells[0].strip("`"), cells[2]))
    return rows


DOC_ROWS = _doc_rows()


def test_the_docs_table_lists_every_form() -> None:
    assert len(DOC_ROWS) >= 45
    firsts = {shlex.split(old)[1] for old, _ in DOC_ROWS}
    assert firsts >= legacy.LEGACY_COMMANDS | {"workflow", "cronjob", "secret", "validate"}


@pytest.mark.parametrize(("old", "today"), DOC_ROWS)
def test_each_row_of_the_docs_table_is_what_translate_does(old: str, today: str) -> None:
    argv = shlex.split(old)[1:]
    if today.startswith("not accepted"):
        with pytest.raises(UsageError) as refused:
            legacy.translate(argv)
        for replacement in re.findall(r"`([^`]+)`", today):
            assert replacement in str(refused.value)
        return
    (new,) = re.findall(r"`bodywork ([^`]+)`", today)
    assert legacy.translate(argv)[0] == shlex.split(new)
