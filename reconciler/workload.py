"""Slim projections of labeled workloads: only what planning, patching and events need.

Parsed from the API's raw JSON (dicts from orjson), never through typed client models: a cache of
10,000 of these stays small and is rebuilt from a LIST in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from autorollout.annotations import (
    DIGEST_PREFIX,
    HOLD_PREFIX,
    KUBECTL_RESTARTED_AT,
    MIXED_PREFIX,
    PLATFORMS_PREFIX,
    POLICY_PREFIX,
    RESTARTED_AT,
    SEEN_PREFIX,
    VERDICT,
    WATCH,
    parse_timestamp,
)
from autorollout.errors import AutorolloutError
from autorollout.health.status import HealthStatus, health_status
from autorollout.policy.inflight import DONE, Progress, rollout_progress
from autorollout.policy.model import NO_POLICY, RawPolicy, WorkloadPolicy, parse_policy
from autorollout.templates import TemplateError, template_containers


class WorkloadKey(NamedTuple):
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}"


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """One container or init container of a pod template."""

    name: str
    image: str
    pull_policy: str | None
    is_init: bool


@dataclass(frozen=True, slots=True)
class SelectorRequirement:
    key: str
    operator: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Workload:
    """A labeled Deployment, StatefulSet or DaemonSet as the reconciler sees it."""

    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    generation: int
    paused: bool
    containers: tuple[ContainerSpec, ...]
    pull_secrets: tuple[str, ...]
    # container name -> raw `digest.kube-autorollout/<container>` value
    recorded: dict[str, str]
    restarted_at: str | None
    kubectl_restarted_at: str | None
    match_labels: tuple[tuple[str, str], ...]
    match_expressions: tuple[SelectorRequirement, ...]
    # Whether the maps the patch writes into exist: JSON patch `add` needs the parent to exist.
    has_annotations: bool
    has_template_metadata: bool
    has_template_annotations: bool
    # Pods the workload wants: spec.replicas, or a DaemonSet's status.desiredNumberScheduled (None: not
    # reported yet). Zero means nothing runs, so adoption needs no pod to tell what runs.
    desired_pods: int | None = None
    # The rollout policy (parsed once per distinct set of annotation values, shared), the raw values
    # only when one is invalid (the Warning Event names it), the watched containers when not all,
    # the settle marks (container -> `seen.kube-autorollout/<container>` value), the rollout progress.
    policy: WorkloadPolicy = NO_POLICY
    policy_raw: RawPolicy = ()
    watching: tuple[ContainerSpec, ...] | None = None
    seen: dict[str, str] | None = None
    progress: Progress = DONE
    # container -> `platforms.kube-autorollout/<container>` value (platform comparison's record)
    platforms: dict[str, str] | None = None
    # The health watch (docs/health.md): the pending verdict's raw watch record and, only then, the
    # status it is judged on; the last verdict; container -> held digest; container -> mixed mark.
    watch: str | None = None
    health: HealthStatus | None = None
    verdict: str | None = None
    holds: dict[str, str] | None = None
    mixed: dict[str, str] | None = None
    # Derived once per record: a record lives across many cycles, and planning reads it often.
    key: WorkloadKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", WorkloadKey(self.kind, self.namespace, self.name))

    def container(self, name: str) -> ContainerSpec | None:
        for spec in self.containers:
            if spec.name == name:
                return spec
        return None

    def watched(self) -> tuple[ContainerSpec, ...]:
        """The containers (init containers included) the rollout policy watches: all unless limited."""
        return self.containers if self.watching is None else self.watching

    def last_rollout(self) -> datetime | None:
        """When the pod template was last restarted through a restartedAt annotation (ours or kubectl's)."""
        stamps = [t for t in map(parse_timestamp, (self.restarted_at, self.kubectl_restarted_at)) if t]
        return max(stamps) if stamps else None

    def label_selector(self) -> str:
        """The workload's pod selector in the API's `labelSelector` query syntax."""
        parts = [f"{key}={value}" for key, value in self.match_labels]
        for req in self.match_expressions:
            values = ",".join(req.values)
            if req.operator == "In":
                parts.append(f"{req.key} in ({values})")
            elif req.operator == "NotIn":
                parts.append(f"{req.key} notin ({values})")
            elif req.operator == "Exists":
                parts.append(req.key)
            elif req.operator == "DoesNotExist":
                parts.append(f"!{req.key}")
        return ",".join(parts)


class RecordError(AutorolloutError, ValueError):
    """The object is not a workload this reconciler can handle (missing name, template, ...)."""


def _container(name: str, image: str, pull_policy: str | None, is_init: bool, _index: int) -> ContainerSpec:
    return ContainerSpec(name, image, pull_policy, is_init)


def _containers(where: str, pod_spec: dict[str, Any]) -> tuple[ContainerSpec, ...]:
    try:
        found = template_containers(pod_spec, _container)
    except TemplateError as exc:
        raise RecordError(f"{where}: spec.template.spec.{exc}") from None
    return tuple(c for c in found if c.name and c.image)


def _selector(spec: dict[str, Any]) -> tuple[tuple[tuple[str, str], ...], tuple[SelectorRequirement, ...]]:
    selector = spec.get("selector") or {}
    labels = tuple(sorted((str(k), str(v)) for k, v in (selector.get("matchLabels") or {}).items()))
    expressions = tuple(
        SelectorRequirement(str(e.get("key")), str(e.get("operator")), tuple(map(str, e.get("values") or ())))
        for e in selector.get("matchExpressions") or ()
        if isinstance(e, dict)
    )
    return labels, expressions


def _desired_pods(kind: str, obj: dict[str, Any]) -> int | None:
    if kind == "DaemonSet":
        desired = (obj.get("status") or {}).get("desiredNumberScheduled")
        return desired if isinstance(desired, int) else None
    replicas = (obj.get("spec") or {}).get("replicas", 1)  # the API server defaults it to 1
    return replicas if isinstance(replicas, int) else None


def parse_workload(kind: str, obj: dict[str, Any]) -> Workload:
    """Project one raw workload object; raises RecordError when it lacks identity or a pod template."""
    meta = obj.get("metadata") or {}
    name, namespace = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str) or not isinstance(namespace, str):
        raise RecordError(f"{kind} without metadata.name/namespace")
    spec = obj.get("spec") or {}
    template = spec.get("template")
    if not isinstance(template, dict):
        raise RecordError(f"{kind} {namespace}/{name} has no spec.template")
    annotations = meta.get("annotations")
    recorded: dict[str, str] = {}
    seen: dict[str, str] | None = None
    platforms: dict[str, str] | None = None
    policy: list[tuple[str, str]] = []
    health: dict[str, str] | None = None
    for key, value in (annotations or {}).items():
        if not isinstance(value, str):
            continue
        if key.startswith(DIGEST_PREFIX):
            recorded[key[len(DIGEST_PREFIX) :]] = value
        elif key.startswith(POLICY_PREFIX):
            policy.append((key, value))
        elif key.startswith(SEEN_PREFIX):
            seen = seen or {}
            seen[key[len(SEEN_PREFIX) :]] = value
        elif key.startswith(PLATFORMS_PREFIX):
            platforms = platforms or {}
            platforms[key[len(PLATFORMS_PREFIX) :]] = value
        elif key.startswith((HOLD_PREFIX, MIXED_PREFIX, WATCH, VERDICT)):
            health = health or {}
            health[key] = value
    template_meta = template.get("metadata")
    template_annotations = (template_meta or {}).get("annotations")
    labels, expressions = _selector(spec)
    containers = _containers(f"{kind} {namespace}/{name}", template.get("spec") or {})
    raw = tuple(sorted(policy))
    rules = parse_policy(raw)
    watching = None
    if rules.include is not None or rules.exclude:
        watching = tuple(c for c in containers if rules.watches(c.name))
    return Workload(
        kind=kind,
        namespace=namespace,
        name=name,
        uid=str(meta.get("uid") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
        generation=int(meta.get("generation") or 0),
        paused=bool(spec.get("paused")) if kind == "Deployment" else False,
        containers=containers,
        pull_secrets=tuple(
            str(ref["name"])
            for ref in (template.get("spec") or {}).get("imagePullSecrets") or ()
            if isinstance(ref, dict) and ref.get("name")
        ),
        recorded=recorded,
        restarted_at=(template_annotations or {}).get(RESTARTED_AT),
        kubectl_restarted_at=(template_annotations or {}).get(KUBECTL_RESTARTED_AT),
        match_labels=labels,
        match_expressions=expressions,
        has_annotations=isinstance(annotations, dict),
        has_template_metadata=isinstance(template_meta, dict),
        has_template_annotations=isinstance(template_annotations, dict),
        desired_pods=_desired_pods(kind, obj),
        policy=rules,
        policy_raw=raw if rules.problems else (),
        watching=watching,
        seen=seen,
        progress=rollout_progress(kind, obj),
        platforms=platforms,
        **(_health_fields(kind, obj, health) if health else {}),
    )


def _prefixed(annotations: dict[str, str], prefix: str) -> dict[str, str] | None:
    found = {k[len(prefix) :]: v for k, v in annotations.items() if k.startswith(prefix)}
    return found or None


def _health_fields(kind: str, obj: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
    """The health watch's fields of a record (only workloads with one of its annotations have any)."""
    watch = annotations.get(WATCH)
    return {
        "watch": watch,
        "health": health_status(kind, obj) if watch else None,
        "verdict": annotations.get(VERDICT),
        "holds": _prefixed(annotations, HOLD_PREFIX),
        "mixed": _prefixed(annotations, MIXED_PREFIX),
    }


def log_fields(workload: Workload, **more: object) -> dict[str, object]:
    """The structured log fields naming a workload, plus `more`."""
    return {"workload": f"{workload.namespace}/{workload.name}", "kind": workload.kind, **more}
