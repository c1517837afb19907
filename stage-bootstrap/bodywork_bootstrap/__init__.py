"""The stage bootstrapper: what runs inside every stage, locally and in every stage pod.

Given a repo URL, a commit SHA, a stage name and the module to run (a path relative to the
project root: a `.py` file, or a `.ipynb` notebook run by `notebook.py`), it fetches exactly
that commit (shallow), prepares the stage's virtualenv with uv (cached, reused while the
requirements and the Python version are unchanged), then runs the module and exits with its
code. Installing is bounded separately from running: MAX_COMPLETION_TIME_SECONDS and
MAX_STARTUP_TIME_SECONDS time the stage's own code only.

Deliberately light: stdlib plus the `git` and `uv` executables, so a stage pod starts
without importing the Kubernetes client or anything else the controller needs.
Installed from the repo's `stage-bootstrap/` folder (see ARCHITECTURE.md).
"""

# Exit codes for failures the bootstrapper detects, before or around the stage's own code.
# They sit outside the range a Python program normally uses so the controller can name the
# cause ("bootstrap failed: git") instead of reporting a bare exit status.
EXIT_FETCH_FAILED = 90
EXIT_INSTALL_FAILED = 91
EXIT_STAGE_INVALID = 92
EXIT_RUN_TIMED_OUT = 93
EXIT_NOT_READY = 94
BOOTSTRAP_EXIT_CODES = {
    EXIT_FETCH_FAILED: "fetching the code failed",
    EXIT_INSTALL_FAILED: "installing requirements failed",
    EXIT_STAGE_INVALID: "the stage's module is missing or outside the project",
    EXIT_RUN_TIMED_OUT: "the stage's code ran longer than MAX_COMPLETION_TIME_SECONDS",
    EXIT_NOT_READY: "the service did not listen on its port within MAX_STARTUP_TIME_SECONDS",
}
# The stage's own code was held to its time limit: a timeout, not a failure to bootstrap.
TIME_LIMIT_EXIT_CODES = frozenset({EXIT_RUN_TIMED_OUT, EXIT_NOT_READY})
# `python3 -m bodywork_bootstrap.artifacts pull|push` (the S3 backend's containers): their
# own codes, never a stage container's, so they are not in BOOTSTRAP_EXIT_CODES.
EXIT_ARTIFACTS_CONFIG = 95
EXIT_ARTIFACTS_S3 = 96
EXIT_ARTIFACTS_LOCAL = 97
EXIT_ARTIFACTS_NO_RESULT = 98
ARTIFACTS_EXIT_CODES = {
    EXIT_ARTIFACTS_CONFIG: "bad arguments, URL or project, or no S3 credentials in the env",
    EXIT_ARTIFACTS_S3: "the bucket refused, or could not be reached after retries",
    EXIT_ARTIFACTS_LOCAL: "reading or writing the artifacts directory or manifest failed",
    EXIT_ARTIFACTS_NO_RESULT: "push: the stage container ended without a result (no exit file)",
}
