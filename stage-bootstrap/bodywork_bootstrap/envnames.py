"""Names of the `BODYWORK_*` environment variables, declared once for both sides.

The bootstrapper reads and sets them in a stage pod; `bodywork.core.objects` writes them
into the pod and controller bodies. Stdlib-only (it imports nothing), so the bootstrapper
stays light and `core` may import it.
"""

# What a stage's code is told about its run (set by the bootstrapper, the controller's plan).
PROJECT = "BODYWORK_PROJECT"
STAGE = "BODYWORK_STAGE"
RUN_ID = "BODYWORK_RUN_ID"
GIT_COMMIT = "BODYWORK_GIT_COMMIT"
ARTIFACTS_DIR = "BODYWORK_ARTIFACTS_DIR"
FAILED_STAGE = "BODYWORK_FAILED_STAGE"  # for the on-failure stage
FAILURE_REASON = "BODYWORK_FAILURE_REASON"
# The same facts under the original Bodywork's names, which its users' stage code reads.
ORIGINAL_GIT_COMMIT = "GIT_COMMIT_HASH"
ORIGINAL_FAILURE_MESSAGE = "EXCEPTION_MESSAGE"  # for the on-failure stage

# Git credentials. The values are paths, except the token, which only travels in the env.
GIT_SSH_DIR = "BODYWORK_GIT_SSH_DIR"  # a directory with `ssh-privatekey` and `known_hosts`
GIT_SSH_KEY = "BODYWORK_GIT_SSH_KEY"  # a key file, overriding the directory's
GIT_KNOWN_HOSTS = "BODYWORK_GIT_KNOWN_HOSTS"  # a known_hosts file, overriding the directory's
GIT_TOKEN = "BODYWORK_GIT_TOKEN"
GIT_STALL_SECONDS = "BODYWORK_GIT_STALL_SECONDS"  # a git server silent this long is given up

# The S3 artifacts backend. Credentials use the AWS names every S3 tool knows, and reach only
# the containers (or, locally, the parent process) that sync: never the stage's code.
ARTIFACTS_URL = "BODYWORK_ARTIFACTS_URL"  # s3://bucket/prefix; objects: <prefix>/<project>/…
S3_ENDPOINT_URL = "BODYWORK_S3_ENDPOINT_URL"  # unset: AWS
AWS_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
AWS_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
AWS_SESSION_TOKEN = "AWS_SESSION_TOKEN"
AWS_REGION = "AWS_REGION"
S3_CREDENTIAL_ENV = (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)

# The controller's own: why it runs, which CronJob started it, where to report.
TRIGGER = "BODYWORK_TRIGGER"
CRONJOB = "BODYWORK_CRONJOB"
WEBHOOK_URL = "BODYWORK_WEBHOOK_URL"

# The init-container hand-off: a stage in another image runs the bootstrapper handed over in
# a shared volume, with the uv binary handed over beside it.
UV = "BODYWORK_UV"

# The CLI's own settings, read once in `bodywork.cli.settings`.
HOME = "BODYWORK_HOME"  # caches, venvs and local artifacts (default ~/.bodywork)
IMAGE = "BODYWORK_IMAGE"  # the controller image, when --image is not given
