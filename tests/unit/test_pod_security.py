"""Every pod Bodywork builds meets the Pod Security Standards' *restricted* profile.

Each rule of the profile (which includes every baseline rule), as the Kubernetes docs state
it (concepts/security/pod-security-standards), is a check below, applied to every pod spec
Bodywork can produce: stage Jobs and Deployments on the single-container path and on the
init-container hand-off path (with and without Git credentials), the controller Job, the
CronJob, and the pods in manifests/. The lab runs Kubernetes 1.20, which has no Pod Security
admission, so this is proved against the documented rules, not live (docs/kubernetes.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bodywork.core import objects
from tests.builders import make_plan, run_settings, stage_config

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
Pod = dict[str, Any]

ALLOWED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def containers(pod: Pod) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"], *pod.get("ephemeralContainers", [])]


def _sc(container: dict[str, Any]) -> dict[str, Any]:
    sc: dict[str, Any] = container.get("securityContext") or {}
    return sc


# ------------------------------------------------------------------ the rules, one per check
def host_process(pod: Pod) -> list[str]:
    contexts = [pod.get("securityContext") or {}, *map(_sc, containers(pod))]
    return [
        "windowsOptions.hostProcess"
        for c in contexts
        if (c.get("windowsOptions") or {}).get("hostProcess")
    ]


def host_namespaces(pod: Pod) -> list[str]:
    return [f for f in ("hostNetwork", "hostPID", "hostIPC") if pod.get(f)]


def privileged(pod: Pod) -> list[str]:
    return [f"{c['name']}: privileged" for c in containers(pod) if _sc(c).get("privileged")]


def capabilities(pod: Pod) -> list[str]:
    found = []
    for c in containers(pod):
        caps = _sc(c).get("capabilities") or {}
        if "ALL" not in caps.get("drop", []):
            found.append(f"{c['name']}: capabilities must drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{c['name']}: adds {caps['add']}")
    return found


def host_path_and_volume_types(pod: Pod) -> list[str]:
    found = []
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if kinds - ALLOWED_VOLUMES:
            found.append(f"volume {volume['name']}: {sorted(kinds - ALLOWED_VOLUMES)}")
    return found


def host_ports(pod: Pod) -> list[str]:
    return [
        f"{c['name']}: hostPort {p['hostPort']}"
        for c in containers(pod)
        for p in c.get("ports", [])
        if p.get("hostPort")
    ]


def apparmor(pod: Pod) -> list[str]:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    found = [
        f"{k}: {v}"
        for k, v in annotations.items()
        if k.startswith("container.apparmor.security.beta.kubernetes.io/")
        and v not in ("runtime/default",)
        and not v.startswith("localhost/")
    ]
    for context in [pod.get("securityContext") or {}, *map(_sc, containers(pod))]:
        kind = (context.get("appArmorProfile") or {}).get("type")
        if kind not in (None, "RuntimeDefault", "Localhost"):
            found.append(f"appArmorProfile {kind}")
    return found


def selinux(pod: Pod) -> list[str]:
    found = []
    for context in [pod.get("securityContext") or {}, *map(_sc, containers(pod))]:
        options = context.get("seLinuxOptions") or {}
        if (
            options.get("type", "") not in SELINUX_TYPES
            or options.get("user")
            or options.get("role")
        ):
            found.append(f"seLinuxOptions {options}")
    return found


def proc_mount(pod: Pod) -> list[str]:
    return [
        f"{c['name']}: procMount {_sc(c)['procMount']}"
        for c in containers(pod)
        if _sc(c).get("procMount", "Default") != "Default"
    ]


def seccomp(pod: Pod) -> list[str]:
    pod_profile = ((pod.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
    found = []
    for c in containers(pod):
        profile = (_sc(c).get("seccompProfile") or {}).get("type") or pod_profile
        if profile not in ("RuntimeDefault", "Localhost"):
            found.append(f"{c['name']}: seccompProfile {profile}")
    return found


def sysctls(pod: Pod) -> list[str]:
    given = (pod.get("securityContext") or {}).get("sysctls") or []
    return [f"sysctl {s['name']}" for s in given if s["name"] not in SAFE_SYSCTLS]


def privilege_escalation(pod: Pod) -> list[str]:
    return [
        f"{c['name']}: allowPrivilegeEscalation must be false"
        for c in containers(pod)
        if _sc(c).get("allowPrivilegeEscalation") is not False
    ]


def non_root(pod: Pod) -> list[str]:
    pod_value = (pod.get("securityContext") or {}).get("runAsNonRoot")
    found = []
    for c in containers(pod):
        value = _sc(c).get("runAsNonRoot", pod_value)
        if value is not True:
            found.append(f"{c['name']}: runAsNonRoot must be true")
    return found


def non_root_user(pod: Pod) -> list[str]:
    contexts = [pod.get("securityContext") or {}, *map(_sc, containers(pod))]
    return [f"runAsUser {c['runAsUser']}" for c in contexts if c.get("runAsUser") == 0]


RULES: list[Callable[[Pod], list[str]]] = [
    host_process, host_namespaces, privileged, capabilities, host_path_and_volume_types,
    host_ports, apparmor, selinux, proc_mount, seccomp, sysctls, privilege_escalation,
    non_root, non_root_user,
]  # fmt: skip


def violations(pod: Pod) -> list[str]:
    return [problem for rule in RULES for problem in rule(pod)]


# ------------------------------------------------------------------ every pod Bodywork builds
def pod_templates(doc: dict[str, Any]) -> Iterator[Pod]:
    """The pod spec(s) in a Job, Deployment or CronJob, with the template's metadata."""
    kind = doc["kind"]
    if kind in ("Job", "Deployment"):
        template = doc["spec"]["template"]
    elif kind == "CronJob":
        template = doc["spec"]["jobTemplate"]["spec"]["template"]
    else:
        return
    yield {**template["spec"], "metadata": template.get("metadata", {})}


SERVICE = stage_config(name="serve", stage_type="service", port=8000, replicas=2)
CREDENTIALS = {"git_ssh_secret": "repo-ssh", "git_token_secret": "repo-token"}
S3 = {"artifacts_url": "s3://models/team", "artifacts_s3_secret": "s3-creds"}
RWX = {"artifacts_pvc_access_mode": "ReadWriteMany"}
STORAGE = {  # the storage modes (objects.storage): each with its own volumes and containers
    "claim RWO": {},
    "claim RWX": RWX,
    "S3": S3,
    "S3, RWX cache claim": {**S3, **RWX, "artifacts_pvc": "nfs-cache"},
}


def built_pods() -> list[tuple[str, Pod]]:
    found: list[tuple[str, Pod]] = []
    cases = {
        f"{label}, {mode}": (image, run_settings(**storage, **credentials))
        for label, image, credentials in (
            ("own image", None, {}),
            ("own image, credentials", None, CREDENTIALS),
            ("another image", "python:3.11-slim", {}),
            ("another image, credentials", "python:3.11-slim", CREDENTIALS),
        )
        for mode, storage in STORAGE.items()
    }
    for label, (image, settings) in cases.items():
        the_plan = make_plan(stage_config(), SERVICE, docker_image=image)
        for doc in objects.build_stage_objects(the_plan, settings):
            found += [(f"{label}: {doc['kind']}", pod) for pod in pod_templates(doc)]
    run = objects.ControllerRun(repo="https://git.example.com/p.git", **CREDENTIALS)
    for doc in (
        objects.build_controller_job(run, "ml", "bodywork:test"),
        objects.build_cronjob("retrain", "0 3 * * *", run, "ml", "bodywork:test"),
    ):
        found += [(f"controller {doc['kind']}", pod) for pod in pod_templates(doc)]
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found += [(f"manifests/{path.name}", pod) for pod in pod_templates(doc)]
    return found


PODS = built_pods()


def test_every_kind_of_pod_is_covered() -> None:
    labels = {label for label, _ in PODS}
    assert len(PODS) >= 10
    assert {"manifests/workflow-job.yaml", "manifests/cronjob.yaml"} <= labels
    assert any(pod.get("initContainers") for _, pod in PODS), "the hand-off path is covered"
    names = {c["name"] for _, pod in PODS for c in containers(pod)}
    assert {"artifacts-pull", "artifacts-push", "fetch", "stage"} <= names  # S3 covered
    volumes = [v for _, pod in PODS for v in pod.get("volumes", [])]
    assert any("persistentVolumeClaim" in v for v in volumes)
    assert any(v["name"] == "data" and "emptyDir" in v for v in volumes)  # per-pod caches
    assert any("affinity" in pod for _, pod in PODS)
    assert any("topologySpreadConstraints" in pod for _, pod in PODS)


@pytest.mark.parametrize(("label", "pod"), PODS, ids=[label for label, _ in PODS])
def test_pod_meets_the_restricted_profile(label: str, pod: Pod) -> None:
    assert violations(pod) == [], label


@pytest.mark.parametrize(
    ("breach", "rule"),
    [
        (lambda p: p.update(hostNetwork=True), host_namespaces),
        (lambda p: p["containers"][0]["securityContext"].update(privileged=True), privileged),
        (lambda p: p["containers"][0]["securityContext"].pop("capabilities"), capabilities),
        (
            lambda p: p["containers"][0]["securityContext"].update(
                capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]}
            ),
            capabilities,
        ),
        (
            lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
            host_path_and_volume_types,
        ),
        (lambda p: p["containers"][0].update(ports=[{"hostPort": 80}]), host_ports),
        (lambda p: p["securityContext"].pop("seccompProfile"), seccomp),
        (
            lambda p: p["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
            privilege_escalation,
        ),
        (lambda p: p["securityContext"].update(runAsNonRoot=False), non_root),
        (lambda p: p["securityContext"].update(runAsUser=0), non_root_user),
        (
            lambda p: p["securityContext"].update(
                sysctls=[{"name": "kernel.msgmax", "value": "1"}]
            ),
            sysctls,
        ),
        (
            lambda p: p["containers"][0]["securityContext"].update(procMount="Unmasked"),
            proc_mount,
        ),
        (
            lambda p: p["securityContext"].update(seLinuxOptions={"type": "spc_t"}),
            selinux,
        ),
        (
            lambda p: p["initContainers"][0]["securityContext"].update(
                allowPrivilegeEscalation=True
            ),
            privilege_escalation,
        ),
        (
            lambda p: p["volumes"][0].update(hostPath={"path": "/var/cache/uv"}),
            host_path_and_volume_types,
        ),
    ],
)
def test_each_rule_catches_its_breach(breach: Callable[[Pod], None], rule: Callable) -> None:
    """The checks are real: a hand-off pod broken in one way fails that rule, and only then."""
    import copy

    pod = copy.deepcopy(next(p for _, p in PODS if p.get("initContainers")))
    assert rule(pod) == []
    breach(pod)
    assert rule(pod) != []
