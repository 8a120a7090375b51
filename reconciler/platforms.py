"""Platform comparison in the cycle (`compare: platform`), between observe and the rollout policy.

Observe (`observe_platforms`): for the workloads in platform mode only, the index bodies (one GET per
unique image, through the shared resolver) of the containers whose index digest moved or whose
platform record is missing or belongs to another index; the GET's answer replaces the HEAD's.
Plan (`compare_plans`, pure): a moved index whose node platforms' manifests are the recorded ones
becomes a record-only write (the digest record and the platform record, no restart); any other
move rolls out as in index mode, and every write in platform mode records the platform manifests.
Without node information platform mode is index mode, said once in the log and once per workload
in a Warning Event.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from autorollout.annotations import format_platforms, parse_platforms
from autorollout.policy.model import Compare, PolicyDefaults
from autorollout.policy.platforms import NodePlatform, compare_platforms
from autorollout.registry.manifests import ManifestDigest
from autorollout.registry.resolver import Lookup
from reconciler.events import EventRecorder
from reconciler.nodes import NodePlatforms
from reconciler.observe import Observation, Observer
from reconciler.plan import (
    Adoption,
    ContainerState,
    ContainerVerdict,
    Rollout,
    WorkloadPlan,
    recorded_digest,
)
from reconciler.workload import Workload, WorkloadKey, log_fields

log = logging.getLogger("kube_autorollout.reconciler")

REASON_PLATFORM_FALLBACK = "PlatformComparisonUnavailable"


def in_platform_mode(workloads: Sequence[Workload], defaults: PolicyDefaults) -> list[Workload]:
    """The workloads whose comparison (annotation, else the global default) is `platform`."""
    # Members in locals: an Enum member read through its class costs more than the rest of the test.
    index, platform = Compare.INDEX, Compare.PLATFORM
    if defaults.compare is platform:
        return [w for w in workloads if w.policy.compare is not index]
    return [w for w in workloads if w.policy.compare is platform]


# Platform records repeat across cycles (one per workload and container): parsed once each.
_parse_platforms = functools.lru_cache(maxsize=65_536)(parse_platforms)


def _record_of(workload: Workload, name: str) -> tuple[str, dict[str, str]] | None:
    raw = (workload.platforms or {}).get(name)
    return _parse_platforms(raw) if raw is not None else None


def _needs_index_body(workload: Workload, name: str, found: ManifestDigest) -> bool:
    """Whether comparing this container needs the index body: it moved, or its record is missing or
    belongs to another index. In a steady state (recorded, record of the recorded index) it does not."""
    if not found.is_index or found.platforms:
        return False
    record = _record_of(workload, name)
    if record is None or record[0] != found.digest:
        return True
    container = workload.container(name)
    return container is None or recorded_digest(workload, container) != found.digest


async def observe_platforms(
    observer: Observer,
    nodes: NodePlatforms,
    observation: Observation,
    defaults: PolicyDefaults,
    *,
    fresh_after: float | None,
) -> list[Workload]:
    """Fill `observation.nodes` and the index bodies platform mode needs (in place); returns the
    platform-mode workloads compared by index for want of node information."""
    platform = in_platform_mode(observation.workloads, defaults)
    if not platform:
        return []
    observation.nodes = await nodes.platforms()
    if observation.nodes is None:
        return platform
    wanted: dict[tuple[WorkloadKey, str], Lookup] = {}
    chosen = {w.key for w in platform}
    for w, lookups in zip(observation.workloads, observation.lookups, strict=True):
        if w.key not in chosen:
            continue
        for name, found in observation.resolutions.get(w.key, {}).items():
            lookup = lookups.get(name)
            if (
                isinstance(found, ManifestDigest)
                and isinstance(lookup, Lookup)
                and _needs_index_body(w, name, found)
            ):
                wanted[(w.key, name)] = lookup
    if not wanted:
        return []
    bodies = await observer.resolve_platforms(wanted.values(), fresh_after=fresh_after)
    for (key, name), lookup in wanted.items():
        observation.resolutions[key][name] = bodies[lookup]
    unique = len(set(wanted.values()))
    log.info(
        "index bodies looked up for platform comparison",
        extra={"fields": {"images": unique, "containers": len(wanted)}},
    )
    return []


def _recorded_after(plan: WorkloadPlan, action: Rollout | Adoption | None, name: str) -> str | None:
    """The digest recorded for a container once `action` is written."""
    if action is not None and name in action.records:
        return action.records[name].rpartition("@")[2]
    for verdict in plan.verdicts:
        if verdict.container.name == name:
            return verdict.recorded
    return None


def _record_only(action: Rollout, verdicts: Sequence[ContainerVerdict], moved: Collection[str]) -> Adoption:
    """A rollout none of whose moves changed a node platform: record, restart nothing. Containers that
    wait for pods are not recorded (without a restart, only a pod can say what they run)."""
    waiting = any(v.state is ContainerState.WAITING for v in verdicts)
    keep = {
        v.container.name
        for v in verdicts
        if v.container.name in moved or (v.state is ContainerState.UNRECORDED and not waiting)
    }
    records = {name: value for name, value in action.records.items() if name in keep}
    return Adoption(records, action.stale, action.marks)


def compare_plan(
    plan: WorkloadPlan, resolutions: Mapping[str, object], nodes: Collection[NodePlatform]
) -> WorkloadPlan:
    """One platform-mode plan after comparing the node platforms' manifests (see module doc)."""
    w = plan.workload
    # The steady state: no index body was read for this workload (nothing moved, records current).
    if plan.skipped or not any(isinstance(f, ManifestDigest) and f.platforms for f in resolutions.values()):
        return plan
    known = w.platforms or {}
    indexes: dict[str, tuple[str, dict[str, str]]] = {}  # container -> (index digest, its node manifests)
    unchanged: set[str] = set()
    verdicts: list[ContainerVerdict] = []
    for seen in plan.verdicts:
        verdict = seen
        name = verdict.container.name
        found = resolutions.get(name)
        if not isinstance(found, ManifestDigest) or not found.platforms or found.digest != verdict.current:
            verdicts.append(verdict)
            continue
        comparison = compare_platforms(_record_of(w, name), verdict.recorded, found.platforms, nodes)
        indexes[name] = (found.digest, comparison.manifests)
        if (
            verdict.state is ContainerState.WILL_ROLL
            and verdict.recorded is not None
            and comparison.unchanged
        ):
            unchanged.add(name)
            verdict = replace(verdict, state=ContainerState.RECORDED_ONLY, detail=comparison.text())
        verdicts.append(verdict)
    action = plan.action
    if isinstance(action, Rollout) and unchanged:
        changes = tuple(c for c in action.changes if c.container not in unchanged)
        action = replace(action, changes=changes) if changes else _record_only(action, verdicts, unchanged)
    records: dict[str, str | None] = {}
    for name, (index, manifests) in indexes.items():
        # Written with no manifest too: the record says this index was read (no GET every cycle).
        value = format_platforms(index, manifests)
        if _recorded_after(plan, action, name) == index and value != known.get(name):
            records[name] = value
    records.update((name, None) for name in (action.stale if action is not None else ()) if name in known)
    if not records and not unchanged:
        return plan
    action = Adoption({}, (), platforms=records) if action is None else replace(action, platforms=records)
    return replace(plan, verdicts=tuple(verdicts), action=action)


def compare_plans(
    plans: Sequence[WorkloadPlan], observation: Observation, defaults: PolicyDefaults
) -> list[WorkloadPlan]:
    """The plans after platform comparison; unchanged where no node information was read."""
    nodes = observation.nodes
    if nodes is None:
        return list(plans)
    platform = {w.key for w in in_platform_mode([p.workload for p in plans], defaults)}
    return [
        compare_plan(p, observation.resolutions.get(p.workload.key, {}), nodes)
        if p.workload.key in platform
        else p
        for p in plans
    ]


async def warn_index_fallback(events: EventRecorder, workloads: Sequence[Workload], reason: str) -> None:
    """A Warning Event per platform-mode workload compared by index (rate limited by `warn_once`)."""
    for w in workloads:
        sent = await events.warn_once(
            w,
            "compare: platform",
            reason=REASON_PLATFORM_FALLBACK,
            message=f"platform comparison unavailable ({reason}); comparing the index digest",
        )
        if sent:
            log.info("compared by index digest", extra={"fields": log_fields(w, reason=reason)})


def log_platforms(plan: WorkloadPlan, *, dry_run: bool) -> None:
    """One line per container whose index moved without a change for the nodes' platforms."""
    for verdict in plan.verdicts:
        if verdict.state is ContainerState.RECORDED_ONLY:
            log.info(
                f"{'would ' if dry_run else ''}record without rollout: {verdict.detail}",
                extra={
                    "fields": log_fields(
                        plan.workload,
                        container=verdict.container.name,
                        old=verdict.recorded,
                        new=verdict.current,
                    )
                },
            )
