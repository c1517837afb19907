"""How long each part of a stage may take, and the backstops the executors wait for.

The user's limits time the stage's own code: MAX_COMPLETION_TIME_SECONDS from the module's
start to its exit (per attempt), MAX_STARTUP_TIME_SECONDS from the module's start to its
PORT accepting connections. Fetching the commit and installing requirements has its own
bound, MAX_INSTALL_TIME_SECONDS. The bootstrapper enforces all three inside the stage (it
alone knows when installation ended) and exits with a code that names which one was hit.

The executors and the Kubernetes objects only need *backstops*: the longest a stage can take
when every part uses its whole bound, plus a grace for scheduling and pulling the image. A
backstop that fires means the bootstrapper itself could not act (a node died, a pod never
started), so it is reported as such rather than as the user's limit. Pure arithmetic.
"""

from __future__ import annotations

from bodywork.core.config import StageConfig

POD_START_GRACE_SECONDS = 60  # scheduling, image pull, container start, process exit


def attempt_seconds(config: StageConfig) -> int:
    """The longest one attempt of a batch stage can take: install, then the code."""
    return config.max_install_time_seconds + config.max_completion_time_seconds


def batch_backstop_seconds(config: StageConfig) -> int:
    """Every attempt at its full bound, plus the grace: a Job's activeDeadlineSeconds."""
    return (config.retries + 1) * attempt_seconds(config) + POD_START_GRACE_SECONDS


def service_startup_seconds(config: StageConfig) -> int:
    """The longest a service pod can take to listen: install, then the code's own startup."""
    return config.max_install_time_seconds + config.max_startup_time_seconds


def service_backstop_seconds(config: StageConfig) -> int:
    """How long the executor waits for a rollout before it gives up on its own."""
    return service_startup_seconds(config) + POD_START_GRACE_SECONDS
