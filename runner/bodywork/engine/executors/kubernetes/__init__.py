"""The Kubernetes executor, split by what each part owns.

- `executor`: the Executor protocol methods, the run's informers, the artifacts claim.
- `batch`: Jobs (create, wait for a Complete or Failed condition, delete).
- `service`: Deployments, Services and Ingresses (apply, rollout wait, rollback).
- `logs`: live pod logs through `streams.Stream`, and the Warning events of a failure.
- `volumes`: pods that exist but cannot start for their volumes or claim, named in seconds.
- `handle`: the per-stage `KubeHandle` and the shared timings.
Pod status reading (failure reasons, conditions, rollout state) is `bodywork.k8s.podstatus`.
"""

from bodywork.engine.executors.kubernetes.executor import KubernetesExecutor
from bodywork.engine.executors.kubernetes.handle import KubeHandle

__all__ = ["KubeHandle", "KubernetesExecutor"]
