"""Pure admission logic: which workloads to touch, what to resolve, and the JSON patch to answer.

`plan_admission` decides from the request alone; the caller resolves `plan.lookups` at the
registries; `decide` turns the plan and the digests found into patch operations, warnings or a
denial. No I/O here, so every branch is unit-tested on plain dicts.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

import jsonpatch

from autorollout.annotations import digest_annotation_key, format_recorded
from autorollout.patches import annotation_operations
from autorollout.policy.model import NO_POLICY, WorkloadPolicy, parse_policy, policy_annotations
from webhook.messages import MAX_WARNING, PREFIX, container_warning, printable, warning
from webhook.policy import PolicyOutcome, PullPolicyMode, enforce
from webhook.review import AdmissionRequest, JsonObject, ReviewError
from webhook.workload import (
    Container,
    TemplateChange,
    annotations_of,
    containers_of,
    digest_annotations,
    is_eligible,
    pull_secret_names,
    template_change,
)

# The name part of an annotation key (a qualified name); container names are DNS labels, a subset.
_ANNOTATION_NAME: Final = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", re.ASCII)


class Baseline(Enum):
    """What to do with the recorded digests of a request."""

    RESOLVE = "resolve"  # new pods will pull: record what each tag points to now
    KEEP = "keep"  # the reconciler's own rollout patch: its digests are fresh, keep them


@dataclass(frozen=True, slots=True)
class AdmissionPlan:
    """What a request about an opted-in workload needs, decided before any lookup."""

    containers: tuple[Container, ...]
    baseline: Baseline
    annotations: JsonObject | None
    has_metadata: bool
    pull_secret_names: tuple[str, ...]
    policy: WorkloadPolicy = NO_POLICY

    def records(self, container: Container) -> bool:
        """Whether the container's digest is recorded: a name that fits a key, watched by the policy."""
        return _recordable(container) and self.policy.watches(container.name)

    @property
    def lookups(self) -> list[Container]:
        """Containers whose digest to resolve: valid names and references, watched, not pinned."""
        if self.baseline is not Baseline.RESOLVE:
            return []
        return [c for c in self.containers if self.records(c) and c.reference and not c.reference.is_pinned]


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer: RFC 6902 operations and warnings, or a denial message."""

    operations: list[JsonObject] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    denial: str | None = None


def _recordable(container: Container) -> bool:
    return _fits_annotation_key(container.name)


@functools.lru_cache(maxsize=4096)
def _fits_annotation_key(name: str) -> bool:
    return _ANNOTATION_NAME.fullmatch(name) is not None


# The shapes of operation lists jsonpatch has accepted: (op, path, member names) per operation.
_CHECKED_SHAPES: set[tuple[tuple[object, object, tuple[str, ...]], ...]] = set()
_MAX_CHECKED_SHAPES: Final = 4096


def _check_rfc6902(operations: list[JsonObject]) -> None:
    """Check the operations against RFC 6902 with jsonpatch (raises its error if one is not valid).

    Whether a list is valid depends on its ops, paths and member names only, not on the values,
    and a webhook sends the same few shapes over and over: each one is checked by jsonpatch once
    (about a tenth of a warm review otherwise).
    """
    shape = tuple((op.get("op"), op.get("path"), tuple(sorted(op))) for op in operations)
    if shape in _CHECKED_SHAPES:
        return
    jsonpatch.JsonPatch(operations)
    if len(_CHECKED_SHAPES) >= _MAX_CHECKED_SHAPES:
        _CHECKED_SHAPES.clear()
    _CHECKED_SHAPES.add(shape)


def plan_admission(request: AdmissionRequest) -> AdmissionPlan | None:
    """The plan for a request, or None when the workload is to be admitted unchanged."""
    if not is_eligible(request):
        return None
    new = request.object
    assert new is not None  # is_eligible checked it
    baseline = Baseline.RESOLVE
    if request.operation == "UPDATE":
        old = request.old_object
        if old is None:
            raise ReviewError("request.oldObject is required for an UPDATE")
        change = template_change(old, new)
        if change is TemplateChange.NONE:
            return None  # same pods: the recorded digests still describe them
        if change is TemplateChange.RESTART_ONLY and digest_annotations(
            annotations_of(new, "request.object")
        ) != digest_annotations(annotations_of(old, "request.oldObject")):
            baseline = Baseline.KEEP
    metadata = new.get("metadata")
    annotations = annotations_of(new, "request.object")
    return AdmissionPlan(
        containers=containers_of(new, "request.object"),
        baseline=baseline,
        annotations=annotations,
        has_metadata=isinstance(metadata, dict),
        pull_secret_names=pull_secret_names(new, "request.object"),
        policy=rollout_policy(annotations),
    )


def rollout_policy(annotations: JsonObject | None) -> WorkloadPolicy:
    """The workload's rollout policy annotations, parsed (cached per distinct set of values)."""
    if not annotations:
        return NO_POLICY
    return parse_policy(policy_annotations(annotations.items()))


def policy_warnings(policy: WorkloadPolicy) -> list[str]:
    """One warning per invalid policy annotation, naming it and what is wrong (cut at the end)."""
    texts = []
    for problem in policy.problems:
        text = warning(f"{problem.key}: {problem.message}")
        if text.count("...") and len(text) >= MAX_WARNING:
            text = printable(f"{PREFIX}{problem.key}: {problem.message}")[: MAX_WARNING - 3] + "..."
        texts.append(text)
    return texts


def _digest_changes(
    plan: AdmissionPlan, digests: Mapping[str, str], failures: Mapping[str, str]
) -> tuple[dict[str, str | None], list[str]]:
    changes: dict[str, str | None] = {}
    warnings: list[str] = []
    recorded = digest_annotations(plan.annotations)
    present = {digest_annotation_key(c.name) for c in plan.containers if plan.records(c)}
    for key in recorded:
        if key not in present:
            changes[key] = None  # the container is gone
    if plan.baseline is Baseline.KEEP:
        return changes, warnings
    for container in plan.containers:
        if not plan.records(container):
            continue
        key = digest_annotation_key(container.name)
        digest = digests.get(container.name)
        if digest is not None:
            changes[key] = format_recorded(container.image, digest)
            continue
        changes[key] = None  # pinned, invalid or unresolved: nothing recorded for the new pods
        if container.reference is None:
            if container.image:
                warnings.append(container_warning(container, "invalid image reference, digest not recorded"))
        elif not container.reference.is_pinned:
            reason = failures.get(container.name, "not resolved")
            warnings.append(container_warning(container, f"digest not recorded ({reason})"))
    return changes, warnings


def decide(
    plan: AdmissionPlan,
    mode: PullPolicyMode,
    digests: Mapping[str, str] | None = None,
    failures: Mapping[str, str] | None = None,
    *,
    policy: PolicyOutcome | None = None,
) -> Decision:
    """Patch operations, warnings or denial for a plan, given digests found per container name.

    `failures` holds a short reason per container whose lookup failed; `policy` is what `enforce`
    said about the plan's containers when the caller already asked.
    """
    if policy is None:
        policy = enforce(plan.containers, mode)
    if policy.denial is not None:
        return Decision(denial=policy.denial)
    changes, warnings = _digest_changes(plan, digests or {}, failures or {})
    operations = policy.operations + annotation_operations(
        plan.annotations, changes, has_metadata=plan.has_metadata
    )
    if operations:
        _check_rfc6902(operations)
    if plan.policy.problems:
        warnings += policy_warnings(plan.policy)
    return Decision(operations=operations, warnings=policy.warnings + warnings)
