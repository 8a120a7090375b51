"""Planning, pure: a workload, what its registries say now and (for adoption) what its pods run ->
one decision per workload.

A workload with a moved tag becomes a Rollout; one with unrecorded containers whose own Ready pods run
the current digest (or that is scaled to zero) becomes an Adoption; while it wants pods but none of its
own is Ready with an imageID, nothing is recorded (waiting-for-pods) and the next cycle decides.
Registry errors never make either.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from autorollout.annotations import format_recorded, parse_recorded
from autorollout.registry.errors import RegistryError
from autorollout.registry.manifests import ManifestDigest
from reconciler.pending import Pending
from reconciler.pods import PodReport
from reconciler.workload import ContainerSpec, Workload, WorkloadKey


@dataclass(frozen=True, slots=True)
class Unchecked:
    """A container that was not looked up: pinned by digest, or its image reference does not parse."""

    reason: str
    pinned: bool = False


Resolution = ManifestDigest | RegistryError | Unchecked


class ContainerState(StrEnum):
    UP_TO_DATE = "up-to-date"
    WILL_ROLL = "will-roll"
    UNRECORDED = "unrecorded"
    WAITING = "waiting-for-pods"
    ERROR = "error"
    PINNED = "pinned"
    # Platform comparison: the index moved, the node platforms' manifests did not (detail says which).
    RECORDED_ONLY = "recorded-only"


@dataclass(frozen=True, slots=True)
class ContainerVerdict:
    """What one container's recorded, registry and (for adoption) running digests add up to."""

    container: ContainerSpec
    state: ContainerState
    recorded: str | None = None
    current: str | None = None
    running: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DigestChange:
    """One container whose image moved: `old` is the recorded (or running) digest, `new` the registry's."""

    container: str
    image: str
    old: str | None
    new: str


@dataclass(frozen=True, slots=True)
class Rollout:
    """Restart the pod template and record `records`; `changes` name what moved."""

    changes: tuple[DigestChange, ...]
    records: dict[str, str]
    stale: tuple[str, ...] = ()
    # Settle marks to set (str) or remove (None) per container (see reconciler.gate).
    marks: Mapping[str, str | None] = field(default_factory=dict)
    # Platform records to set (str) or remove (None) per container (see reconciler.platforms).
    platforms: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Adoption:
    """Record digests of containers that have none (or settle marks), without restarting anything."""

    records: dict[str, str]
    stale: tuple[str, ...] = ()
    marks: Mapping[str, str | None] = field(default_factory=dict)
    platforms: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkloadPlan:
    workload: Workload
    verdicts: tuple[ContainerVerdict, ...] = ()
    action: Rollout | Adoption | None = None
    skipped: str | None = None
    errors: tuple[ContainerVerdict, ...] = field(default=())
    # Why a moved tag does not roll out yet (the rollout policy's waits); None: nothing held back.
    pending: Pending | None = None


# Recorded values repeat across workloads (one per image and digest) and across cycles.
_parse_recorded = functools.lru_cache(maxsize=65_536)(parse_recorded)


def recorded_digest(workload: Workload, container: ContainerSpec) -> str | None:
    """The digest recorded for this container, if the record is for the image the spec names now."""
    raw = workload.recorded.get(container.name)
    parsed = _parse_recorded(raw) if raw is not None else None
    if parsed is None:
        return None
    image, digest = parsed
    return digest if image == container.image else None


def scaled_to_zero(workload: Workload) -> bool:
    """No pod is wanted (replicas 0, a DaemonSet scheduling none): nothing runs to ask."""
    return workload.desired_pods == 0


def needs_running_digests(workload: Workload, resolutions: Mapping[str, Resolution]) -> bool:
    """Whether adoption of this workload should ask its pods what they run."""
    return not scaled_to_zero(workload) and any(
        isinstance(resolutions.get(c.name), ManifestDigest) and recorded_digest(workload, c) is None
        for c in workload.watched()
    )


def waiting_detail(pods: PodReport | None) -> str:
    """Why adoption waits, in a few words: what the workload's own pods showed."""
    if pods is None:
        return "pods not read"
    if pods.pods == 0:
        return "no pod yet"
    if pods.ready == 0:
        return f"{pods.pods} pod(s), none Ready"
    return f"{pods.ready} Ready pod(s), no imageID reported"


def _verdict(
    workload: Workload, container: ContainerSpec, resolution: Resolution | None, pods: PodReport | None
) -> ContainerVerdict:
    recorded = recorded_digest(workload, container)
    if resolution is None:
        return ContainerVerdict(container, ContainerState.ERROR, recorded, detail="not looked up")
    if isinstance(resolution, Unchecked):
        state = ContainerState.PINNED if resolution.pinned else ContainerState.ERROR
        return ContainerVerdict(container, state, recorded, detail=resolution.reason)
    if isinstance(resolution, RegistryError):
        return ContainerVerdict(container, ContainerState.ERROR, recorded, detail=_one_line(resolution))
    current = resolution.digest
    if recorded is not None:
        state = ContainerState.UP_TO_DATE if recorded == current else ContainerState.WILL_ROLL
        return ContainerVerdict(container, state, recorded, current)
    if scaled_to_zero(workload):
        return ContainerVerdict(container, ContainerState.UNRECORDED, None, current, detail="scaled to zero")
    if pods is None or container.name not in pods.images:
        return ContainerVerdict(container, ContainerState.WAITING, None, current, detail=waiting_detail(pods))
    running = pods.images[container.name]
    if running is not None and running != current and running not in resolution.platform_digests:
        return ContainerVerdict(
            container, ContainerState.WILL_ROLL, None, current, running, detail="pods run another digest"
        )
    return ContainerVerdict(container, ContainerState.UNRECORDED, None, current, running)


def _one_line(error: RegistryError) -> str:
    text = " ".join((error.message or str(error)).split())
    return f"{type(error).__name__}: {text}"


def plan_workload(
    workload: Workload,
    resolutions: Mapping[str, Resolution],
    pods: PodReport | None = None,
) -> WorkloadPlan:
    """Decide for one workload; `resolutions` is keyed by container name, `pods` None when not read."""
    watched = workload.watched()  # unwatched containers: no verdict, and their records are stale
    verdicts = tuple(_verdict(workload, c, resolutions.get(c.name), pods) for c in watched)
    errors = tuple(v for v in verdicts if v.state is ContainerState.ERROR)
    if workload.paused:
        return WorkloadPlan(workload, verdicts, None, skipped="Deployment is paused", errors=errors)
    names = {c.name for c in watched}
    stale = tuple(sorted(name for name in workload.recorded if name not in names))
    # A rollout restarts every pod, so containers waiting for pods are recorded at the digest they pull.
    recordable = (ContainerState.WILL_ROLL, ContainerState.UNRECORDED, ContainerState.WAITING)
    records = {
        v.container.name: format_recorded(v.container.image, v.current)
        for v in verdicts
        if v.current is not None and v.state in recordable
    }
    changes = tuple(
        DigestChange(v.container.name, v.container.image, v.recorded or v.running, v.current)
        for v in verdicts
        if v.state is ContainerState.WILL_ROLL and v.current is not None
    )
    waiting = any(v.state is ContainerState.WAITING for v in verdicts)
    action: Rollout | Adoption | None = None
    if changes:
        action = Rollout(changes, records, stale)
    elif records and not waiting:  # while no pod of its own can tell what runs, record nothing
        action = Adoption(records, stale)
    return WorkloadPlan(workload, verdicts, action, errors=errors)


class PlanMemo:
    """The last plan with nothing to do of each workload, reused while its inputs are the same.

    A steady cycle plans every workload again to find that nothing changed. `plan_workload` is pure,
    so its plan holds while the record is the same object (the cache replaces a record whenever the
    watch delivers a change), no pods were read and the resolutions are equal. Only plans without
    an action or an error are kept: those are the steady ones, and they hold no mutable parts.
    """

    def __init__(self) -> None:
        self._plans: dict[WorkloadKey, tuple[Workload, Mapping[str, Resolution], WorkloadPlan]] = {}

    def plan(self, workload: Workload, resolutions: Mapping[str, Resolution]) -> WorkloadPlan:
        """`plan_workload(workload, resolutions)`, from the memo when its inputs did not change."""
        kept = self._plans.get(workload.key)
        if kept is not None and kept[0] is workload and kept[1] == resolutions:
            return kept[2]
        plan = plan_workload(workload, resolutions)
        if plan.action is None and not plan.errors:
            self._plans[workload.key] = (workload, resolutions, plan)
        elif kept is not None:
            del self._plans[workload.key]
        return plan

    def __len__(self) -> int:
        return len(self._plans)

    def retain(self, workloads: Sequence[Workload]) -> None:
        """Forget deleted workloads once the memo holds many more than `workloads`."""
        if len(self._plans) > 2 * len(workloads) + 1024:
            keys = {w.key for w in workloads}
            self._plans = {k: v for k, v in self._plans.items() if k in keys}


def plan_cycle(
    workloads: Sequence[Workload],
    resolutions: Mapping[WorkloadKey, Mapping[str, Resolution]],
    pods: Mapping[WorkloadKey, PodReport] | None = None,
    memo: PlanMemo | None = None,
) -> list[WorkloadPlan]:
    """Plan every workload; both mappings are keyed by `Workload.key`. With `memo`, the plans of
    workloads whose pods were not read come from it when their inputs did not change."""
    pods = pods or {}
    if memo is None:
        return [plan_workload(w, resolutions.get(w.key, {}), pods.get(w.key)) for w in workloads]
    memo.retain(workloads)
    return [
        plan_workload(w, resolutions.get(w.key, {}), pods[w.key])
        if w.key in pods
        else memo.plan(w, resolutions.get(w.key, {}))
        for w in workloads
    ]
