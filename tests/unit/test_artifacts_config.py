"""The artifacts backend's keys: the S3 URL, its endpoint and Secret, the claim's access mode,
read from both formats into the plan, and a deploy-time flag winning over the project's."""

from __future__ import annotations

import pytest

from bodywork.core import config, objects
from bodywork.core.config import schema
from bodywork.core.errors import ConfigError
from bodywork.core.plan import Source, build_plan

PATHS = frozenset({"pipeline/train_model.py"})


def yaml_project(pipeline_lines: str) -> str:
    extra = "".join(f"  {line}\n" for line in pipeline_lines.splitlines())
    return (
        'version: "1.1"\npipeline:\n  DAG: train\n'
        + extra
        + "stages:\n  train:\n    executable_module_path: pipeline/train_model.py\n    batch:\n"
    )


def parse_yaml(pipeline_lines: str) -> config.ProjectConfig:
    files = config.ProjectFiles(bodywork_yaml=yaml_project(pipeline_lines), paths=PATHS)
    return config.parse_project(files)


def yaml_errors(pipeline_lines: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_yaml(pipeline_lines)
    return [p.message for p in info.value.problems if p.severity == "error"]


def test_defaults_are_the_claim_read_write_once():
    project = parse_yaml("")
    assert project.artifacts_url is None
    assert project.artifacts_s3_endpoint_url is None and project.artifacts_s3_secret is None
    assert project.artifacts_pvc_access_mode == "ReadWriteOnce"


def test_s3_backend_keys_are_read_normalised_and_reach_the_plan():
    project = parse_yaml(
        "artifacts_url: s3://my-bucket/team/models/\n"
        "artifacts_s3_endpoint_url: http://10.0.0.5:9000/\n"
        "artifacts_s3_secret: S3-Creds\n"
        "artifacts_pvc_access_mode: rwx\n"
    )
    assert project.artifacts_url == "s3://my-bucket/team/models"
    assert project.artifacts_s3_endpoint_url == "http://10.0.0.5:9000"
    assert project.artifacts_s3_secret == "s3-creds"
    assert project.artifacts_pvc_access_mode == "ReadWriteMany"
    plan = build_plan(project, Source("https://example.com/r.git", "a" * 40), "run-1")
    assert plan.artifacts_url == "s3://my-bucket/team/models"
    assert plan.artifacts_s3_endpoint_url == "http://10.0.0.5:9000"
    assert plan.artifacts_s3_secret == "s3-creds"
    assert plan.artifacts_pvc_access_mode == "ReadWriteMany"


def test_ini_projects_take_the_same_keys():
    files = config.ProjectFiles(
        bodywork_ini=(
            "[default]\nPROJECT_NAME = p\nARTIFACTS_URL = s3://bucket-1\n"
            "ARTIFACTS_S3_SECRET = creds\n[workflow]\nDAG = train\n"
        ),
        dirs={
            "train": config.StageDir(
                "[default]\nSTAGE_TYPE = batch\nEXECUTABLE_SCRIPT = train.py\n",
                frozenset({"train.py", "requirements.txt"}),
            )
        },
    )
    project = config.parse_project(files)
    assert (project.artifacts_url, project.artifacts_s3_secret) == ("s3://bucket-1", "creds")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("artifacts_url: https://bucket/x", "must be s3://bucket"),
        ("artifacts_url: s3://", "is not an S3 bucket name"),
        ("artifacts_url: s3://UPPER/x", "is not an S3 bucket name"),
        ("artifacts_url: s3://bucket/../../etc", "'.'/'..' parts"),
        ("artifacts_url: 's3://bucket/a b'", "may not hold spaces"),
        ("artifacts_s3_endpoint_url: ftp://host", "must be an http:// or https:// URL"),
        ("artifacts_s3_endpoint_url: https://user:pw@host", "may not hold credentials"),
        ("artifacts_s3_secret: not_a_name!", "is not a Kubernetes Secret's name"),
        ("artifacts_pvc_access_mode: ReadOnlyMany", "must be ReadWriteOnce or ReadWriteMany"),
    ],
)
def test_bad_values_are_refused_naming_the_rule(line, says):
    messages = yaml_errors(line)
    assert any(says in message for message in messages), messages


def test_credentials_in_an_endpoint_never_reach_the_message():
    messages = yaml_errors("artifacts_s3_endpoint_url: https://AKIAXYZ:topsecret@host")
    assert messages and not any("topsecret" in m for m in messages)


def test_a_deploy_time_flag_wins_over_the_project():
    project = parse_yaml("artifacts_url: s3://from-project\nartifacts_pvc_access_mode: RWX\n")
    plan = build_plan(project, Source("https://example.com/r.git", "b" * 40), "run-1")
    base = objects.RunSettings(namespace="ns", image="img")
    assert objects.with_project_storage(base, plan).artifacts_url == "s3://from-project"
    flagged = objects.RunSettings(namespace="ns", image="img", artifacts_url="s3://from-flag")
    chosen = objects.with_project_storage(flagged, plan)
    assert chosen.artifacts_url == "s3://from-flag"
    assert chosen.artifacts_pvc_access_mode == "ReadWriteMany"  # the project's, no flag given


def test_access_mode_parser_accepts_any_case_and_the_short_names():
    parse = schema.ARTIFACTS_PVC_ACCESS_MODE.parse
    assert [parse(t) for t in ("readwriteonce", "RWX", "ReadWriteMany")] == [
        "ReadWriteOnce",
        "ReadWriteMany",
        "ReadWriteMany",
    ]


def test_a_deploy_time_backend_travels_to_the_controller_in_its_arguments():
    run = objects.ControllerRun(
        repo="https://example.com/r.git",
        artifacts_url="s3://bucket/p",
        artifacts_s3_endpoint_url="http://minio:9000",
        artifacts_s3_secret="s3-creds",
        artifacts_pvc_access_mode="ReadWriteMany",
    )
    job = objects.build_controller_job(run, "ns", "img")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    pairs = dict(zip(args, args[1:], strict=False))
    assert pairs["--artifacts-url"] == "s3://bucket/p"
    assert pairs["--artifacts-s3-endpoint-url"] == "http://minio:9000"
    assert pairs["--artifacts-s3-secret"] == "s3-creds"
    assert pairs["--artifacts-pvc-access-mode"] == "ReadWriteMany"
    assert args[-1] == "https://example.com/r.git"  # the repo stays the last argument
    plain = objects.build_controller_job(objects.ControllerRun(repo="r"), "ns", "img")
    plain_args = plain["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any(a.startswith("--artifacts") for a in plain_args)


def test_validate_refuses_s3_with_a_read_write_once_claim_naming_the_fix():
    backend = "artifacts_url: s3://b-1\nartifacts_s3_secret: c\n"
    messages = yaml_errors(backend + "artifacts_pvc: cache\n")
    assert any("would pin every pod of the project to one node" in m for m in messages), messages
    rwx = parse_yaml(
        "artifacts_url: s3://b-1\nartifacts_s3_secret: c\nartifacts_pvc: cache\n"
        "artifacts_pvc_access_mode: ReadWriteMany\n"
    )
    assert rwx.artifacts_pvc == "cache" and not rwx.warnings


def test_validate_warns_when_a_cluster_run_would_lack_the_s3_secret():
    project = parse_yaml("artifacts_url: s3://b-1\n")
    [warning] = [w for w in project.warnings if "ARTIFACTS_S3_SECRET" in w.message]
    assert warning.severity == "warning" and "--artifacts-s3-secret" in warning.message
    assert warning.line == 4  # the artifacts_url line of the generated file
