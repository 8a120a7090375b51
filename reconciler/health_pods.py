"""What a watched workload's own pods say, pure: why new pods fail (for a RolloutFailed Event) and which
ready pods run a digest other than the recorded one (mixed digests). Read only at a verdict, and for
a workload already marked mixed at most once per resync period (reconciler/health.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from autorollout.annotations import parse_timestamp
from reconciler.pods import digest_of_image_id, is_ready

# Waiting reasons of a container that will not get better by itself.
_STUCK = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


@dataclass(frozen=True, slots=True)
class MixedDigest:
    """`pods` of the `ready` pods run `digest` for one container, not the recorded one."""

    digest: str
    pods: int
    ready: int

    def value(self) -> str:
        """The `mixed.kube-autorollout/<container>` value: `<digest> <pods>/<ready>`."""
        return f"{self.digest} {self.pods}/{self.ready}"


def parse_mixed(value: str | None) -> MixedDigest | None:
    digest, _, counts = (value or "").partition(" ")
    pods, _, ready = counts.partition("/")
    if not digest or not pods.isdigit() or not ready.isdigit():
        return None
    return MixedDigest(digest, int(pods), int(ready))


def _newest_first(pods: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    def created(pod: dict[str, Any]) -> str:
        return str((pod.get("metadata") or {}).get("creationTimestamp") or "")

    return sorted(pods, key=created, reverse=True)


def _container_problem(entry: dict[str, Any]) -> str | None:
    state = entry.get("state") or {}
    waiting = state.get("waiting") or {}
    terminated = state.get("terminated") or {}
    last = (entry.get("lastState") or {}).get("terminated") or {}
    exit_code = terminated.get("exitCode", last.get("exitCode"))
    reason = waiting.get("reason")
    restarts = entry.get("restartCount")
    if reason in _STUCK:
        pass
    elif isinstance(terminated.get("exitCode"), int) and terminated["exitCode"] != 0:
        reason = str(terminated.get("reason") or "Error")
    elif isinstance(restarts, int) and restarts > 0:  # a new pod's container that restarted
        reason = f"restarted after {last.get('reason') or 'exit'}"
    else:
        return None
    more = [f"exit code {exit_code}"] if isinstance(exit_code, int) else []
    more += [f"{restarts} restarts"] if isinstance(restarts, int) and restarts else []
    return f"{reason} ({', '.join(more)})" if more else str(reason)


def _pod_problem(pod: dict[str, Any]) -> str | None:
    status = pod.get("status") or {}
    name = (pod.get("metadata") or {}).get("name")
    for key in ("initContainerStatuses", "containerStatuses"):
        for entry in status.get(key) or ():
            if isinstance(entry, dict) and (problem := _container_problem(entry)):
                return f"pod {name} container {entry.get('name')}: {problem}"
    for condition in status.get("conditions") or ():
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"pod {name}: {condition.get('reason') or 'not scheduled'}"
    return None


def pod_failure(pods: Iterable[dict[str, Any]]) -> str:
    """What the newest failing pod says (`pod x container app: CrashLoopBackOff (exit code 3, 4
    restarts)`) and how many of the pods fail; "" when none says anything."""
    ordered = _newest_first(p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp"))
    problems = [problem for pod in ordered if (problem := _pod_problem(pod))]
    if not problems:
        return ""
    return f"{problems[0]} ({len(problems)} of {len(ordered)} pods failing)"


def _running_since(pod: dict[str, Any]) -> list[datetime | None]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    return [parse_timestamp(((e.get("state") or {}).get("running") or {}).get("startedAt")) for e in statuses]


def pod_health(pods: Iterable[dict[str, Any]], now: datetime, stable_seconds: float) -> tuple[str, bool]:
    """(what a failing pod says, or ""; whether every live pod is Ready with each container running,
    unrestarted, for `stable_seconds`). No live pod (scaled to zero) is stable."""
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    problem = pod_failure(live)
    since = now - timedelta(seconds=stable_seconds)
    stable = all(is_ready(p) and all(t is not None and t <= since for t in _running_since(p)) for p in live)
    return problem, stable and not problem


def mixed_digests(pods: Iterable[dict[str, Any]], recorded: Mapping[str, str]) -> dict[str, MixedDigest]:
    """Per container with a recorded digest: the other digest most ready pods run, if any does."""
    ready = [p for p in pods if is_ready(p)]
    found: dict[str, MixedDigest] = {}
    for container, expected in recorded.items():
        others: Counter[str] = Counter()
        for pod in ready:
            for key in ("initContainerStatuses", "containerStatuses"):
                for entry in (pod.get("status") or {}).get(key) or ():
                    if entry.get("name") != container or not entry.get("imageID"):
                        continue
                    digest = digest_of_image_id(str(entry["imageID"]))
                    if digest is not None and digest != expected:
                        others[digest] += 1
        if others:
            digest, count = others.most_common(1)[0]
            found[container] = MixedDigest(digest, count, len(ready))
    return found
