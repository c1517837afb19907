"""Every name and default the object bodies use, each declared once.

Label and annotation keys, service accounts, container, volume and port names, mount
paths, environment variable names (the `BODYWORK_*` ones come from the bootstrapper's
`envnames`, which reads them in the pod) and the defaults of a cluster run. The builders in
`stage` and `controller` use only these, so a name changes in one place. Pure constants.
"""

from __future__ import annotations

from bodywork_bootstrap import envnames

# ------------------------------------------------------------------------ labels, annotations
LABEL_PREFIX = "bodywork.dev"
MANAGED_BY = {"app.kubernetes.io/managed-by": "bodywork"}
PROJECT_LABEL = f"{LABEL_PREFIX}/project"
STAGE_LABEL = f"{LABEL_PREFIX}/stage"
RUN_LABEL = f"{LABEL_PREFIX}/run-id"
COMMIT_LABEL = f"{LABEL_PREFIX}/commit"
ROLE_LABEL = f"{LABEL_PREFIX}/role"
# On every pod that mounts a ReadWriteOnce artifacts claim: the claim's name (hashed past 63
# characters), which the pods' required podAffinity selects to keep them on its node.
CLAIM_LABEL = f"{LABEL_PREFIX}/artifacts-claim"
HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"  # the node, for affinity and spreading
CRONJOB_LABEL = f"{LABEL_PREFIX}/cronjob"
STAGE_ROLE = "stage"  # values of ROLE_LABEL
CONTROLLER_ROLE_VALUE = "controller"
REWRITE_TARGET_ANNOTATION = "nginx.ingress.kubernetes.io/rewrite-target"

# ------------------------------------------------------------------ accounts, names, the user
CONTROLLER_SERVICE_ACCOUNT = "bodywork-controller"
STAGE_SERVICE_ACCOUNT = "bodywork-stage"
CONTROLLER_ROLE = "bodywork-controller"  # the Role and its RoleBinding
WORKFLOW_JOB_PREFIX = "bodywork-workflow"  # controller Jobs: <prefix>-<run id>
STAGE_UID = 10001  # the image's non-root user (Dockerfile)
STAGE_CONTAINER = "stage"
FETCH_CONTAINER = "fetch"  # the init container of the hand-off path
# The S3 backend's containers, in Bodywork's image: the only ones given the S3 credentials.
ARTIFACTS_PULL_CONTAINER = "artifacts-pull"  # init container: bucket → artifacts emptyDir
ARTIFACTS_PUSH_CONTAINER = "artifacts-push"  # a batch pod's second container: uploads
ARTIFACTS_CONTAINERS = (ARTIFACTS_PULL_CONTAINER, ARTIFACTS_PUSH_CONTAINER)
ARTIFACTS_MODULE = "bodywork_bootstrap.artifacts"
CONTROLLER_CONTAINER = "controller"
HTTP_PORT_NAME = "http"

# -------------------------------------------------------------------- volumes and mount paths
DATA_VOLUME = "data"
WORK_VOLUME = "work"
TMP_VOLUME = "tmp"
TOOLS_VOLUME = "tools"  # emptyDir: the bootstrapper and uv, handed over to another image
ARTIFACTS_VOLUME = "artifacts"  # S3 backend: each pod's emptyDir copy of the artifacts
STATUS_VOLUME = "status"  # S3 backend, batch: the stage's outcome, read by artifacts-push
S3_HOME_VOLUME = "s3-home"  # the artifacts containers' own HOME, never the stage's /tmp
# The claim (artifacts, uv cache, venvs), or in the S3 backend the caches alone: a
# ReadWriteMany claim, else an emptyDir.
DATA_MOUNT = "/bodywork/data"
WORK_MOUNT = "/bodywork/work"  # emptyDir: the checkout at the pinned commit
TMP_MOUNT = "/tmp"  # emptyDir: the root filesystem is read-only; also HOME
TOOLS_MOUNT = "/bodywork/tools"
VENV_ROOT = f"{DATA_MOUNT}/venvs"
UV_CACHE_DIR = f"{DATA_MOUNT}/uv-cache"
ARTIFACTS_DIR = f"{DATA_MOUNT}/artifacts"  # on the claim
S3_ARTIFACTS_DIR = "/bodywork/artifacts"  # the S3 backend's emptyDir
STATUS_MOUNT = "/bodywork/status"
S3_HOME_MOUNT = "/bodywork/s3-home"
PULLED_MANIFEST = f"{STATUS_MOUNT}/pulled.json"  # what artifacts-pull fetched (push's base)
PUSH_STALE_SECONDS = 30  # artifacts-push gives up on a stage that stopped reporting this long
# The artifacts containers run beside (push) or before (pull) the stage: small and bounded,
# limits as well as requests so a quota on limits.* still admits the pod.
ARTIFACTS_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}
TERMINATION_LOG = "/dev/termination-log"
# Private repos. The SSH Secret (keys `ssh-privatekey`, `known_hosts`) is a read-only volume,
# never env; the bootstrapper finds it through GIT_SSH_DIR_ENV. The token Secret's key `token`
# reaches the pod as GIT_TOKEN_ENV. Names match bodywork_bootstrap.gitfetch (checked in tests).
GIT_SSH_MOUNT = "/bodywork/git-ssh"
GIT_SSH_VOLUME = "git-ssh"
GIT_SSH_MODE = 0o400  # owner read only (with fsGroup the kubelet adds group read)
GIT_TOKEN_KEY = "token"

# ------------------------------------------------------------------ environment variable names
GIT_SSH_DIR_ENV = envnames.GIT_SSH_DIR
GIT_TOKEN_ENV = envnames.GIT_TOKEN
ARTIFACTS_DIR_ENV = envnames.ARTIFACTS_DIR
S3_ENDPOINT_URL_ENV = envnames.S3_ENDPOINT_URL
AWS_ACCESS_KEY_ID_ENV = envnames.AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY_ENV = envnames.AWS_SECRET_ACCESS_KEY
AWS_SESSION_TOKEN_ENV = envnames.AWS_SESSION_TOKEN
AWS_REGION_ENV = envnames.AWS_REGION
TRIGGER_ENV = envnames.TRIGGER
CRONJOB_ENV = envnames.CRONJOB
WEBHOOK_URL_ENV = envnames.WEBHOOK_URL
WEBHOOK_URL_KEY = "WEBHOOK_URL"  # its key in the webhook Secret
HOME_ENV = "HOME"
PYTHONUNBUFFERED_ENV = "PYTHONUNBUFFERED"
PYTHONPATH_ENV = "PYTHONPATH"
UV_ENV = envnames.UV
POD_NAME_ENV = "POD_NAME"
POD_NAMESPACE_ENV = "POD_NAMESPACE"

# ----------------------------------------------------------------------------------- defaults
DEFAULT_PULL_POLICY = "IfNotPresent"  # images loaded into kind/k3d/minikube work
PULL_POLICIES = (DEFAULT_PULL_POLICY, "Always", "Never")
DEFAULT_ARTIFACTS_SIZE = "1Gi"
READ_WRITE_ONCE = "ReadWriteOnce"
READ_WRITE_MANY = "ReadWriteMany"
DEFAULT_ACCESS_MODE = READ_WRITE_ONCE
DEFAULT_INGRESS_CLASS = "nginx"
DEFAULT_CRONJOB_API_VERSION = "batch/v1"
DEFAULT_TRIGGER = "manual"
CRON_TRIGGER = "cron"
JOB_TTL_SECONDS = 3600  # finished stage Jobs linger an hour for `kubectl logs`, then go
PROBE_PERIOD_SECONDS = 2  # startup probe period; failureThreshold stretches it to the limit
ROLLOUT_GRACE_SECONDS = 30  # progressDeadline beyond MAX_STARTUP_TIME_SECONDS
CONTROLLER_ACTIVE_DEADLINE_SECONDS = 6 * 3600  # no run may hang for more than 6 hours
CONTROLLER_TTL_SECONDS = 86400  # finished controller Jobs (and their logs) stay a day
