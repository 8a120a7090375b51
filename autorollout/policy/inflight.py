"""Rollouts in flight: whether a workload's controller still rolls its newest revision out.

A Deployment is rolling until it reports the new revision fully updated and available (observed
generation, updated/available/total replicas), or until its own progress deadline passed
(condition Progressing=False, ProgressDeadlineExceeded). A StatefulSet is rolling until its current
revision is its update revision with every replica updated and ready; a DaemonSet until every
scheduled pod is updated and available. Those two have no deadline of their own: a rollout started
by a restart annotation frees its slot `progress_deadline_seconds` after it started.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class Progress:
    """The slim part of a workload's status the in-flight cap needs."""

    done: bool = True
    deadline_exceeded: bool = False


DONE = Progress()


def _int(mapping: dict[str, Any], key: str) -> int:
    value = mapping.get(key)
    return value if isinstance(value, int) else 0


def _deployment(spec: dict[str, Any], status: dict[str, Any], current: bool) -> Progress:
    replicas = spec.get("replicas", 1)
    replicas = replicas if isinstance(replicas, int) else 1
    exceeded = any(
        isinstance(c, dict)
        and c.get("type") == "Progressing"
        and c.get("reason") == "ProgressDeadlineExceeded"
        for c in status.get("conditions") or ()
    )
    done = (
        current
        and _int(status, "updatedReplicas") >= replicas
        and _int(status, "availableReplicas") >= replicas
        and _int(status, "replicas") <= replicas
    )
    return Progress(done, exceeded and not done)


def _statefulset(spec: dict[str, Any], status: dict[str, Any], current: bool) -> Progress:
    replicas = spec.get("replicas", 1)
    replicas = replicas if isinstance(replicas, int) else 1
    update = status.get("updateRevision")
    done = (
        current
        and (not update or status.get("currentRevision") == update or replicas == 0)
        and _int(status, "updatedReplicas") >= replicas
        and _int(status, "readyReplicas") >= replicas
    )
    return Progress(done)


def _daemonset(status: dict[str, Any], current: bool) -> Progress:
    desired = _int(status, "desiredNumberScheduled")
    done = (
        current
        and _int(status, "updatedNumberScheduled") >= desired
        and _int(status, "numberAvailable") >= desired
    )
    return Progress(done)


def rollout_progress(kind: str, obj: dict[str, Any]) -> Progress:
    """The Progress of a raw workload object (status as its controller last wrote it)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    current = _int(status, "observedGeneration") >= _int(meta, "generation")
    if kind == "Deployment":
        found = _deployment(spec, status, current)
    elif kind == "StatefulSet":
        found = _statefulset(spec, status, current)
    else:
        found = _daemonset(status, current)
    return DONE if found == DONE else found


def is_rolling(
    kind: str, progress: Progress, started: datetime | None, now: datetime, deadline_seconds: int
) -> bool:
    """Whether a workload holds a slot: rolling, and not past its (or our) progress deadline."""
    if progress.done or progress.deadline_exceeded:
        return False
    if kind == "Deployment":
        return True
    return started is not None and now < started + timedelta(seconds=deadline_seconds)
