"""The stage bootstrapper: what runs inside every stage, locally and in every stage pod.

Given a repo URL, a commit SHA and a stage, it fetches exactly that commit (shallow),
prepares the stage's virtualenv with uv (cached, reused while requirements.txt and the
Python version are unchanged), then runs the stage's module and exits with its code.

Deliberately light: stdlib plus the `git` and `uv` executables, so a stage pod starts
without importing the Kubernetes client or anything else the controller needs.
Installed from the repo's `stage-bootstrap/` folder (see ARCHITECTURE.md).
"""

# Exit codes for failures before the stage's own code runs. They sit outside the range a
# Python program normally uses so the controller can name the cause ("bootstrap failed:
# git") instead of reporting a bare exit status.
EXIT_FETCH_FAILED = 90
EXIT_INSTALL_FAILED = 91
EXIT_STAGE_INVALID = 92
BOOTSTRAP_EXIT_CODES = {
    EXIT_FETCH_FAILED: "fetching the code failed",
    EXIT_INSTALL_FAILED: "installing requirements failed",
    EXIT_STAGE_INVALID: "the stage's script is missing",
}
