"""The slim part of a workload's status a verdict needs, parsed from the raw object (only for workloads
whose rollout is watched: steady-state records carry none)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autorollout.policy.inflight import rollout_progress


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """`current`: the controller has seen the latest spec (observedGeneration); `done`: the newest
    revision is fully updated and available (ready); `reason`/`message`: a Deployment's Progressing
    condition; `deadline_seconds`: a Deployment's own progressDeadlineSeconds."""

    current: bool
    done: bool
    reason: str = ""
    message: str = ""
    deadline_seconds: int | None = None

    @property
    def deadline_exceeded(self) -> bool:
        """The Deployment controller says the new revision stopped making progress in time."""
        return self.current and not self.done and self.reason == "ProgressDeadlineExceeded"


def _int(mapping: dict[str, Any], key: str) -> int:
    value = mapping.get(key)
    return value if isinstance(value, int) else 0


def health_status(kind: str, obj: dict[str, Any]) -> HealthStatus:
    """The HealthStatus of a raw Deployment, StatefulSet or DaemonSet object."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    current = _int(status, "observedGeneration") >= _int(meta, "generation") > 0
    done = current and rollout_progress(kind, obj).done
    if kind != "Deployment":
        return HealthStatus(current, done)
    deadline = spec.get("progressDeadlineSeconds")
    for condition in status.get("conditions") or ():
        if isinstance(condition, dict) and condition.get("type") == "Progressing":
            return HealthStatus(
                current,
                done,
                str(condition.get("reason") or ""),
                " ".join(str(condition.get("message") or "").split()),
                deadline if isinstance(deadline, int) else None,
            )
    return HealthStatus(current, done, deadline_seconds=deadline if isinstance(deadline, int) else None)
