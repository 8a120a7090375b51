"""The imagePullPolicy policy: every container of an opted-in workload should pull `Always`.

Without `Always` a node that already has the tag cached starts the old image again, so a rollout
after the tag moved would change nothing. Digest-pinned images are exempt: they cannot move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from webhook.messages import container_warning
from webhook.review import JsonObject
from webhook.workload import Container

ALWAYS = "Always"


class PullPolicyMode(StrEnum):
    """`webhook.imagePullPolicy`: what to do about a container that does not pull `Always`."""

    MUTATE = "mutate"
    WARN = "warn"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    """Patch operations and warnings to apply, or a denial message."""

    operations: list[JsonObject] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    denial: str | None = None


def effective_pull_policy(container: Container) -> str:
    """The policy as written, else Kubernetes' default: `Always` for `:latest` or no tag."""
    if container.pull_policy:
        return container.pull_policy
    ref = container.reference
    if ref is not None and ref.digest is None and ref.tag in (None, "latest"):
        return ALWAYS
    return "IfNotPresent"


def offenders(containers: Sequence[Container]) -> list[tuple[Container, str]]:
    """Containers (not digest-pinned) whose effective pull policy is not `Always`, with that policy."""
    found = []
    for container in containers:
        if container.reference is not None and container.reference.is_pinned:
            continue
        policy = effective_pull_policy(container)
        if policy != ALWAYS:
            found.append((container, policy))
    return found


def denial_message(found: Sequence[tuple[Container, str]]) -> str:
    """One message naming every offending container and its pull policy."""
    listed = ", ".join(f"{container.label} ({policy})" for container, policy in found)
    return f"kube-autorollout requires imagePullPolicy: Always on opted-in workloads: {listed}"


def enforce(containers: Sequence[Container], mode: PullPolicyMode) -> PolicyOutcome:
    """Apply the policy mode to the containers of a created or changed pod template."""
    found = offenders(containers)
    if not found:
        return PolicyOutcome()
    if mode is PullPolicyMode.DENY:
        return PolicyOutcome(denial=denial_message(found))
    if mode is PullPolicyMode.WARN:
        return PolicyOutcome(
            warnings=[container_warning(c, f"imagePullPolicy {policy}, not {ALWAYS}") for c, policy in found]
        )
    operations: list[JsonObject] = []
    warnings = []
    for container, policy in found:
        op = "replace" if container.pull_policy is not None else "add"
        operations.append({"op": op, "path": f"{container.path}/imagePullPolicy", "value": ALWAYS})
        warnings.append(container_warning(container, f"imagePullPolicy {policy} set to {ALWAYS}"))
    return PolicyOutcome(operations=operations, warnings=warnings)
