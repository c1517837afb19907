"""Where artifacts and caches live, as rendered: each backend and cache mode, the podAffinity
of a ReadWriteOnce claim, spreading, the S3 containers, and that the S3 credentials reach
only the containers that sync. Every body is checked against the current Kubernetes schema
(the Pod Security rules are checked on these modes in test_pod_security.py)."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest

from bodywork.core import objects, plan
from bodywork.core.objects import conventions as conv
from bodywork.core.objects import storage
from tests.builders import make_plan, run_settings, stage_config

KUBERNETES_VERSION = "1.37.0"
Body = dict[str, Any]

TRAIN = stage_config()
SERVE = stage_config(name="serve", stage_type="service", port=8000, replicas=2)
SINGLE = stage_config(name="single", stage_type="service", port=8001)
S3 = {
    "artifacts_url": "s3://models/team",
    "artifacts_s3_endpoint_url": "http://10.88.0.1:5900",
    "artifacts_s3_secret": "s3-creds",
}
RWX = {"artifacts_pvc_access_mode": "ReadWriteMany"}
MODES: dict[str, dict[str, Any]] = {
    "claim RWO (created)": {},
    "claim RWO (named)": {"artifacts_pvc": "shared"},
    "claim RWX (created)": RWX,
    "claim RWX (named)": {**RWX, "artifacts_pvc": "nfs-claim"},
    "S3, caches per pod": S3,
    "S3, caches on an RWX claim": {**S3, **RWX, "artifacts_pvc": "nfs-cache"},
}
IMAGES = {"own image": None, "another image": "python:3.11-slim"}
CREDENTIALS = {"git_ssh_secret": "repo-ssh", "git_token_secret": "repo-token"}
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def the_plan(*stages: Any, image: str | None = None) -> plan.Plan:
    return make_plan(*(stages or (TRAIN, SERVE, SINGLE)), docker_image=image)


def bodies(mode: dict[str, Any], image: str | None = None, **extra: Any) -> list[Body]:
    return objects.build_stage_objects(the_plan(image=image), run_settings(**mode, **extra))


def of_kind(docs: list[Body], kind: str) -> list[Body]:
    return [d for d in docs if d["kind"] == kind]


def pod_of(doc: Body) -> Body:
    spec: Body = doc["spec"]["template"]["spec"]
    return spec


def job(docs: list[Body]) -> Body:
    return of_kind(docs, "Job")[0]


def deployment(docs: list[Body], name: str = "demo--serve") -> Body:
    return next(d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == name)


def containers(pod: Body) -> list[Body]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def named(pod: Body, name: str) -> Body:
    return next(c for c in containers(pod) if c["name"] == name)


def volume(pod: Body, name: str) -> Body:
    return next(v for v in pod["volumes"] if v["name"] == name)


def env_of(container: Body) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def arg(container: Body, flag: str) -> str:
    args: list[str] = container["args"]
    return args[args.index(flag) + 1]


# ------------------------------------------------------------------ the modes, decided
@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ({}, ("claim", "demo--artifacts", True, "ReadWriteOnce", True, "claim")),
        ({"artifacts_pvc": "shared"}, ("claim", "shared", False, "ReadWriteOnce", True, "claim")),
        (RWX, ("claim", "demo--artifacts", True, "ReadWriteMany", False, "claim")),
        (S3, ("s3", None, False, "ReadWriteOnce", False, "emptyDir")),
        ({**S3, **RWX}, ("s3", None, False, "ReadWriteMany", False, "emptyDir")),
        (
            {**S3, **RWX, "artifacts_pvc": "nfs"},
            ("s3", "nfs", False, "ReadWriteMany", False, "claim"),
        ),
    ],
)
def test_storage_of_decides_backend_claim_and_placement(mode: dict[str, Any], expected) -> None:
    found = objects.storage_of("demo", run_settings(**mode))
    assert (
        found.backend,
        found.claim,
        found.create_claim,
        found.access_mode,
        found.pinned,
        found.caches,
    ) == expected


@pytest.mark.parametrize("access", [{}, {"artifacts_pvc_access_mode": "ReadWriteOnce"}])
def test_s3_with_a_read_write_once_claim_for_caches_is_refused(access: dict[str, str]) -> None:
    settings = run_settings(**S3, artifacts_pvc="block-claim", **access)
    with pytest.raises(objects.StorageError) as info:
        objects.build_stage_objects(the_plan(), settings)
    assert info.value.exit_code == 2
    (problem,) = info.value.problems
    assert problem.key == "ARTIFACTS_PVC"
    assert "would pin every pod of the project to one node for caches alone" in problem.message
    assert "ARTIFACTS_PVC_ACCESS_MODE = ReadWriteMany" in problem.message


def test_a_deploy_time_s3_flag_turns_a_claim_project_into_the_s3_backend() -> None:
    project_plan = make_plan(TRAIN, artifacts_pvc_access_mode="ReadWriteMany")
    chosen = objects.with_project_storage(run_settings(**S3), project_plan)
    found = objects.storage_of(project_plan.project, chosen)
    assert (found.backend, found.claim, found.access_mode) == ("s3", None, "ReadWriteMany")


# ------------------------------------------------------------------ claim, ReadWriteOnce
def test_read_write_once_pods_carry_the_claim_label_and_require_its_node() -> None:
    docs = bodies({})
    claim = of_kind(docs, "PersistentVolumeClaim")[0]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    templates = [d["spec"]["template"] for d in docs if d["kind"] in ("Job", "Deployment")]
    assert len(templates) == 3
    for template in templates:
        labels = template["metadata"]["labels"]
        assert labels[objects.CLAIM_LABEL] == "demo--artifacts"
        (term,) = template["spec"]["affinity"]["podAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert term["labelSelector"] == {"matchLabels": {objects.CLAIM_LABEL: "demo--artifacts"}}
        # the first pod may land anywhere: it matches its own term (the scheduler's rule)
        selected = term["labelSelector"]["matchLabels"].items()
        assert selected <= labels.items()
        assert "topologySpreadConstraints" not in template["spec"]  # pinned: nothing to spread
        assert volume(template["spec"], "data")["persistentVolumeClaim"] == {
            "claimName": "demo--artifacts"
        }


def test_a_service_selector_never_changes_with_the_claim_label() -> None:
    """The Deployment's selector is immutable: the claim label is on the template only."""
    rwo, s3 = deployment(bodies({})), deployment(bodies(S3))
    assert (
        rwo["spec"]["selector"]
        == s3["spec"]["selector"]
        == {"matchLabels": {objects.PROJECT_LABEL: "demo", objects.STAGE_LABEL: "serve"}}
    )
    assert objects.CLAIM_LABEL not in rwo["metadata"]["labels"]


def test_two_projects_naming_one_claim_share_its_node() -> None:
    """The label is the claim's identity, not the project's: every pod that mounts it."""
    first = make_plan(TRAIN, project_name="one")
    second = make_plan(TRAIN, project_name="two")
    settings = run_settings(artifacts_pvc="team-claim")
    a, b = (objects.build_job(p.stages[0], "img", settings) for p in (first, second))
    labels = [j["spec"]["template"]["metadata"]["labels"][objects.CLAIM_LABEL] for j in (a, b)]
    assert labels == ["team-claim", "team-claim"]


def test_a_long_claim_name_becomes_a_valid_distinct_label_value() -> None:
    base = "c" * 60
    one, two = (storage.label_value(f"{base}-{n}.example") for n in ("one", "two"))
    assert one != two
    for value in (one, two):
        assert len(value) <= 63 and LABEL_VALUE.match(value), value
    assert storage.label_value("short-claim") == "short-claim"
    settings = run_settings(artifacts_pvc=f"{base}-one.example")
    docs = objects.build_stage_objects(the_plan(TRAIN), settings)
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


# ------------------------------------------------------------------ claim, ReadWriteMany
@pytest.mark.parametrize("name", [None, "nfs-claim"])
def test_read_write_many_claims_hold_everything_with_no_affinity(name: str | None) -> None:
    docs = bodies({**RWX, "artifacts_pvc": name})
    claims = of_kind(docs, "PersistentVolumeClaim")
    if name is None:  # created, asking for RWX
        assert [c["spec"]["accessModes"] for c in claims] == [["ReadWriteMany"]]
    else:  # named: trusted, never created
        assert claims == []
    for doc in of_kind(docs, "Job") + of_kind(docs, "Deployment"):
        pod = pod_of(doc)
        assert "affinity" not in pod
        assert objects.CLAIM_LABEL not in doc["spec"]["template"]["metadata"]["labels"]
        assert volume(pod, "data")["persistentVolumeClaim"]["claimName"] == (
            name or "demo--artifacts"
        )
        env = env_of(pod["containers"][0])
        assert env["BODYWORK_ARTIFACTS_DIR"] == "/bodywork/data/artifacts"


# ------------------------------------------------------------------ spreading
def test_a_service_with_replicas_spreads_softly_across_nodes_unless_pinned() -> None:
    for mode in (RWX, S3):
        docs = bodies(mode)
        (constraint,) = pod_of(deployment(docs))["topologySpreadConstraints"]
        assert constraint == {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": objects.selector(the_plan().stages[1])},
        }
        # one replica, or a Job: nothing to spread
        assert "topologySpreadConstraints" not in pod_of(deployment(docs, "demo--single"))
        assert "topologySpreadConstraints" not in pod_of(job(docs))
    assert "topologySpreadConstraints" not in pod_of(deployment(bodies({})))


# ------------------------------------------------------------------ S3
@pytest.mark.parametrize("image", IMAGES.values(), ids=IMAGES.keys())
def test_s3_batch_pod_pulls_runs_and_pushes_with_no_artifacts_claim(image: str | None) -> None:
    docs = bodies(S3, image)
    assert of_kind(docs, "PersistentVolumeClaim") == []
    pod = pod_of(job(docs))
    assert not [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    for name in ("data", "artifacts", "status", "s3-home"):
        assert volume(pod, name) == {"name": name, "emptyDir": {}}
    init = [c["name"] for c in pod["initContainers"]]
    assert init == (["artifacts-pull"] if image is None else ["artifacts-pull", "fetch"])
    assert [c["name"] for c in pod["containers"]] == ["stage", "artifacts-push"]
    stage = pod["containers"][0]
    assert env_of(stage)["BODYWORK_ARTIFACTS_DIR"] == "/bodywork/artifacts"
    assert arg(stage, "--artifacts-dir") == "/bodywork/artifacts"
    assert arg(stage, "--status-dir") == "/bodywork/status"
    assert arg(stage, "--venv-root") == "/bodywork/data/venvs"  # caches: the pod's emptyDir
    mounts = {m["name"]: m["mountPath"] for m in stage["volumeMounts"]}
    assert mounts["artifacts"] == "/bodywork/artifacts"
    assert mounts["status"] == "/bodywork/status"
    assert "s3-home" not in mounts
    assert "affinity" not in pod


def test_s3_pull_and_push_take_the_bootstrappers_flags() -> None:
    pod = pod_of(job(bodies(S3)))
    pull, push = named(pod, "artifacts-pull"), named(pod, "artifacts-push")
    common = [
        "--url", "s3://models/team", "--project", "demo", "--dir", "/bodywork/artifacts",
        "--endpoint-url", "http://10.88.0.1:5900", "--manifest", "/bodywork/status/pulled.json",
    ]  # fmt: skip
    assert pull["args"] == ["pull", *common, "--termination-log", "/dev/termination-log"]
    assert push["args"] == [
        "push", *common, "--status-dir", "/bodywork/status", "--stale-seconds", "30",
        "--termination-log", "/dev/termination-log",
    ]  # fmt: skip
    for container in (pull, push):
        assert container["image"] == "bodywork:test"  # Bodywork's, never the project's
        assert container["command"] == ["python3", "-m", "bodywork_bootstrap.artifacts"]
        assert container["securityContext"] == objects.stage.locked_down()
        assert container["resources"] == conv.ARTIFACTS_RESOURCES
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["artifacts"]["mountPath"] == "/bodywork/artifacts"
        assert mounts["status"]["mountPath"] == "/bodywork/status"
        assert env_of(container)["HOME"] == "/bodywork/s3-home"
        assert env_of(container)["BODYWORK_S3_ENDPOINT_URL"] == "http://10.88.0.1:5900"
    assert push["volumeMounts"][0] == {
        "name": "artifacts",
        "mountPath": "/bodywork/artifacts",
        "readOnly": True,
    }
    assert "readOnly" not in pull["volumeMounts"][0]


def test_s3_project_images_never_run_the_sync() -> None:
    pod = pod_of(job(bodies(S3, "python:3.11-slim")))
    assert named(pod, "stage")["image"] == "python:3.11-slim"
    assert {named(pod, n)["image"] for n in objects.ARTIFACTS_CONTAINERS} == {"bodywork:test"}


def test_s3_service_pulls_only_and_gets_no_status_dir() -> None:
    pod = pod_of(deployment(bodies(S3)))
    assert [c["name"] for c in pod["initContainers"]] == ["artifacts-pull"]
    assert [c["name"] for c in pod["containers"]] == ["stage"]
    stage = pod["containers"][0]
    assert "--status-dir" not in stage["args"]
    assert "status" not in {m["name"] for m in stage["volumeMounts"]}
    assert env_of(stage)["BODYWORK_ARTIFACTS_DIR"] == "/bodywork/artifacts"


def test_s3_with_a_read_write_many_claim_keeps_only_the_caches_there() -> None:
    docs = bodies({**S3, **RWX, "artifacts_pvc": "nfs-cache"})
    assert of_kind(docs, "PersistentVolumeClaim") == []  # named: never created
    for doc in (job(docs), deployment(docs)):
        pod = pod_of(doc)
        assert volume(pod, "data")["persistentVolumeClaim"] == {"claimName": "nfs-cache"}
        assert volume(pod, "artifacts") == {"name": "artifacts", "emptyDir": {}}
        assert "affinity" not in pod
        assert env_of(pod["containers"][0])["BODYWORK_ARTIFACTS_DIR"] == "/bodywork/artifacts"


def test_the_secret_keys_are_required_the_session_token_and_region_optional() -> None:
    pull = named(pod_of(job(bodies(S3))), "artifacts-pull")
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in pull["env"] if "valueFrom" in e}
    assert refs == {
        "AWS_ACCESS_KEY_ID": {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID"},
        "AWS_SECRET_ACCESS_KEY": {"name": "s3-creds", "key": "AWS_SECRET_ACCESS_KEY"},
        "AWS_SESSION_TOKEN": {"name": "s3-creds", "key": "AWS_SESSION_TOKEN", "optional": True},
        "AWS_REGION": {"name": "s3-creds", "key": "AWS_REGION", "optional": True},
    }


def test_s3_without_the_secret_of_its_credentials_is_refused() -> None:
    """The sync takes credentials only from the Secret's env (bodywork_bootstrap.s3)."""
    with pytest.raises(objects.StorageError) as info:
        bodies({"artifacts_url": "s3://models"})
    (problem,) = info.value.problems
    assert problem.key == "ARTIFACTS_S3_SECRET"
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in problem.message


def test_without_an_endpoint_the_sync_addresses_aws() -> None:
    pull = named(
        pod_of(job(bodies({"artifacts_url": "s3://models", "artifacts_s3_secret": "c"}))),
        "artifacts-pull",
    )
    assert "--endpoint-url" not in pull["args"]
    assert "BODYWORK_S3_ENDPOINT_URL" not in env_of(pull)


S3_SECRET_ENV = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "BODYWORK_S3_ENDPOINT_URL",
}


@pytest.mark.parametrize("image", IMAGES.values(), ids=IMAGES.keys())
@pytest.mark.parametrize("git", [{}, CREDENTIALS], ids=["no git credentials", "git credentials"])
def test_s3_credentials_reach_only_the_artifacts_containers(
    image: str | None, git: dict[str, str]
) -> None:
    docs = bodies(S3, image, **git)
    checked = 0
    for doc in of_kind(docs, "Job") + of_kind(docs, "Deployment"):
        pod = pod_of(doc)
        for container in containers(pod):
            refs = [
                e for e in container.get("env", []) if "s3-creds" in str(e.get("valueFrom", ""))
            ]
            aws = S3_SECRET_ENV & set(env_of(container))
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            if container["name"] in objects.ARTIFACTS_CONTAINERS:
                assert len(refs) == 4 and aws == S3_SECRET_ENV
                assert not mounts & {"git-ssh", "data", "work", "tmp"}  # nor git's, nor code
                assert objects.GIT_TOKEN_ENV not in env_of(container)
                checked += 1
            else:  # the stage's container, and fetch: none of it, nor the sync's HOME
                assert refs == [] and aws == set(), container["name"]
                assert "s3-home" not in mounts
    assert checked == 4  # the Job's pull and push, a pull for each of the two services


@pytest.mark.parametrize("image", IMAGES.values(), ids=IMAGES.keys())
@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_every_mode_renders_bodies_valid_for_current_kubernetes(
    mode: dict[str, Any], image: str | None
) -> None:
    for doc in bodies(mode, image, **CREDENTIALS):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_controller_pod_mounts_no_claim_in_any_mode() -> None:
    run = objects.ControllerRun(repo="https://git.example.com/p.git")
    pod = objects.build_controller_job(run, "ml", "bodywork:test")["spec"]["template"]["spec"]
    assert not [v for v in pod["volumes"] if "persistentVolumeClaim" in v]


@pytest.mark.parametrize("mode", [{}, RWX, S3], ids=["claim", "rwx", "s3"])
def test_the_hand_offs_fetch_finds_the_commit_cache_where_the_stage_keeps_its_venvs(
    mode: dict[str, Any],
) -> None:
    """Another image without Git credentials: the fetch init container mounts the data volume
    at the stage's path, so the commit cache beside --venv-root serves a later stage or a
    restarting replica with no fetch."""
    docs = bodies(mode, IMAGES["another image"])
    for pod in (pod_of(job(docs)), pod_of(deployment(docs))):
        fetch = next(c for c in pod["initContainers"] if c["name"] == "fetch")
        stage = pod["containers"][0]
        mounts = {m["name"]: m["mountPath"] for m in fetch["volumeMounts"]}
        assert mounts["data"] == {m["name"]: m["mountPath"] for m in stage["volumeMounts"]}["data"]
        assert arg(fetch, "--venv-root").startswith(mounts["data"] + "/")
        assert arg(fetch, "--venv-root") == arg(stage, "--venv-root")
