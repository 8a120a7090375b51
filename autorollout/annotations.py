"""The labels and annotations of the contract: their keys, and the values recorded in them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

__all__ = [
    "DIGEST_PREFIX",
    "ENABLED_LABEL",
    "ENABLED_SELECTOR",
    "HOLD_PREFIX",
    "KUBECTL_RESTARTED_AT",
    "MIXED_PREFIX",
    "PLATFORMS_PREFIX",
    "POLICY_COMPARE",
    "POLICY_CONTAINERS",
    "POLICY_COOLDOWN",
    "POLICY_EXCLUDE_CONTAINERS",
    "POLICY_KEYS",
    "POLICY_PREFIX",
    "POLICY_SCHEDULE",
    "POLICY_SETTLE",
    "POLICY_WINDOWS",
    "RESTARTED_AT",
    "SEEN_PREFIX",
    "VERDICT",
    "WATCH",
    "digest_annotation_key",
    "format_platforms",
    "format_recorded",
    "format_restarted_at",
    "format_seen",
    "hold_annotation_key",
    "is_enabled",
    "mixed_annotation_key",
    "parse_platforms",
    "parse_recorded",
    "parse_seen",
    "parse_timestamp",
    "platforms_annotation_key",
    "restarted_at_key",
    "seen_annotation_key",
]

#: Workload label that opts a Deployment, StatefulSet or DaemonSet in (value "true").
ENABLED_LABEL = "kube-autorollout/enabled"
#: Label selector for the opted-in workloads.
ENABLED_SELECTOR = f"{ENABLED_LABEL}=true"
#: Prefix of the workload annotations recording each container's running digest.
DIGEST_PREFIX = "digest.kube-autorollout/"
#: Pod template annotation written to trigger a rollout.
RESTARTED_AT = "kube-autorollout/restartedAt"
#: Used instead with `featureFlags.enableKubectlAnnotation`: `kubectl rollout restart`'s, which
#: GitOps tools ignore.
KUBECTL_RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

#: Prefix of the per-workload rollout policy annotations (docs/rollout-policy.md).
POLICY_PREFIX = "policy.kube-autorollout/"
#: Comma-separated container names (init containers included) to watch; the others are not.
POLICY_CONTAINERS = POLICY_PREFIX + "containers"
#: Comma-separated container names not to watch.
POLICY_EXCLUDE_CONTAINERS = POLICY_PREFIX + "exclude-containers"
#: This workload's own cron schedule (as `cronSchedule`), instead of the global one.
POLICY_SCHEDULE = POLICY_PREFIX + "schedule"
#: Rollout windows: `<5-field cron> <duration> <IANA zone>`, several separated by `;`.
POLICY_WINDOWS = POLICY_PREFIX + "windows"
#: How long the tag must have pointed at the new digest before it rolls out.
POLICY_SETTLE = POLICY_PREFIX + "settle"
#: The least time between two rollouts of the workload.
POLICY_COOLDOWN = POLICY_PREFIX + "cooldown"
#: What a moved tag is compared by: `index` (the digest the tag points to) or `platform` (only the
#: manifests of the platforms the cluster's nodes run).
POLICY_COMPARE = POLICY_PREFIX + "compare"
POLICY_KEYS = (
    POLICY_CONTAINERS,
    POLICY_EXCLUDE_CONTAINERS,
    POLICY_SCHEDULE,
    POLICY_WINDOWS,
    POLICY_SETTLE,
    POLICY_COOLDOWN,
    POLICY_COMPARE,
)
#: Prefix of the settle marks the reconciler writes: `seen.kube-autorollout/<container>` holds
#: `<digest> <RFC 3339 UTC>`, the new digest and when a lookup first saw the tag point at it.
SEEN_PREFIX = "seen.kube-autorollout/"

_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-f0-9]{32,}", re.ASCII)


def is_enabled(labels: Mapping[str, str] | None) -> bool:
    """True if a workload's labels opt it in."""
    return labels is not None and labels.get(ENABLED_LABEL) == "true"


def digest_annotation_key(container: str) -> str:
    """`digest.kube-autorollout/<container>`: where a container's running digest is recorded."""
    return DIGEST_PREFIX + container


def seen_annotation_key(container: str) -> str:
    """`seen.kube-autorollout/<container>`: the settle mark of a container's new digest."""
    return SEEN_PREFIX + container


def format_recorded(image: str, digest: str) -> str:
    """The recorded value: the image exactly as in the spec, "@", the digest ("sha256:<hex>")."""
    if not _DIGEST_RE.fullmatch(digest):
        raise ValueError(f"not a digest: {digest!r} (expected algorithm:hex, e.g. sha256:<64 hex>)")
    return f"{image}@{digest}"


def parse_recorded(value: str | None) -> tuple[str, str] | None:
    """(image as in the spec, digest) from a recorded value, or None if it is not one."""
    if not value:
        return None
    image, at, digest = value.rpartition("@")
    if not at or not image or not _DIGEST_RE.fullmatch(digest):
        return None
    return image, digest


def restarted_at_key(kubectl: bool) -> str:
    """The pod template annotation that triggers a rollout (kubectl's when `kubectl` is true)."""
    return KUBECTL_RESTARTED_AT if kubectl else RESTARTED_AT


def format_restarted_at(moment: datetime | None = None) -> str:
    """RFC 3339 UTC timestamp for the restartedAt annotation: "2025-01-02T03:04:05.123456Z".

    Microseconds, so two rollouts within one second still change the pod template.
    """
    moment = datetime.now(UTC) if moment is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp (as `format_restarted_at` writes, or kubectl's) as an aware datetime."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def format_seen(digest: str, moment: datetime) -> str:
    """A settle mark: `<digest> <RFC 3339 UTC>`, the digest and when a lookup first saw it."""
    return f"{digest} {format_restarted_at(moment)}"


def parse_seen(value: str | None) -> tuple[str, datetime] | None:
    """(digest, first seen) from a settle mark, or None if it is not one."""
    digest, _, stamp = (value or "").partition(" ")
    moment = parse_timestamp(stamp)
    if moment is None or not _DIGEST_RE.fullmatch(digest):
        return None
    return digest, moment


#: Prefix of the platform records the reconciler writes in platform mode:
#: `platforms.kube-autorollout/<container>` holds `<index digest> <os>/<arch>[/<variant>]=<digest>,...`,
#: the index the record belongs to and the manifests of the node platforms in it. The digest record
#: (`digest.kube-autorollout/<container>`) stays the index digest, which the kubelet reports as imageID.
PLATFORMS_PREFIX = "platforms.kube-autorollout/"
_PLATFORM_RE = re.compile(r"[a-z0-9_.-]+/[a-z0-9_.-]+(?:/[a-z0-9_.-]+)?", re.ASCII)


def platforms_annotation_key(container: str) -> str:
    """`platforms.kube-autorollout/<container>`: the node platforms' manifests of the recorded index."""
    return PLATFORMS_PREFIX + container


def format_platforms(index: str, manifests: Mapping[str, str]) -> str:
    """A platform record: `<index digest> linux/amd64=sha256:...,linux/arm64=sha256:...` (sorted)."""
    entries = ",".join(f"{platform}={digest}" for platform, digest in sorted(manifests.items()))
    return f"{index} {entries}".rstrip()


def parse_platforms(value: str | None) -> tuple[str, dict[str, str]] | None:
    """(index digest, {platform: manifest digest}) from a platform record, or None if it is not one."""
    index, _, entries = (value or "").strip().partition(" ")
    if not _DIGEST_RE.fullmatch(index):
        return None
    manifests: dict[str, str] = {}
    for entry in filter(None, entries.strip().split(",")):
        platform, equals, digest = entry.strip().partition("=")
        if not equals or not _PLATFORM_RE.fullmatch(platform) or not _DIGEST_RE.fullmatch(digest):
            return None
        manifests[platform] = digest
    return index, manifests


# -- Health watch (docs/health.md) ------------------------------------------------------------------

#: The pending verdict, written in the rollout's own guarded patch: `<RFC 3339 UTC> <container>=<old>,<new>
#: ...` (old `-` when unrecorded), when the rollout started and which digests it rolled.
WATCH = "health.kube-autorollout/watch"
#: The last verdict: `succeeded <RFC 3339 UTC> <seconds>s` or `failed <RFC 3339 UTC>: <reason>`.
VERDICT = "health.kube-autorollout/verdict"
#: Prefix of the holds: `hold.kube-autorollout/<container>` holds the digest whose rollout failed; the
#: workload is not rolled to it again. `kubectl annotate <kind> <name> hold.kube-autorollout/<c>-` lifts it.
HOLD_PREFIX = "hold.kube-autorollout/"
#: Prefix of the mixed-digest marks: `mixed.kube-autorollout/<container>` holds `<digest> <n>/<ready>`,
#: a digest other than the recorded one that n of the ready pods ran when last read.
MIXED_PREFIX = "mixed.kube-autorollout/"


def hold_annotation_key(container: str) -> str:
    """`hold.kube-autorollout/<container>`: the digest a container is held at (not rolled to)."""
    return HOLD_PREFIX + container


def mixed_annotation_key(container: str) -> str:
    """`mixed.kube-autorollout/<container>`: the other digest some ready pods run."""
    return MIXED_PREFIX + container
