"""Platform comparison, pure: which platforms the cluster's nodes run, and whether an index move
changed any of their manifests.

A node's platform is its `status.nodeInfo` operating system and architecture (the kubelet's own
runtime values), else its `kubernetes.io/os` / `kubernetes.io/arch` labels. Kubernetes reports no
CPU variant, so an index entry matches a node platform on os and architecture whatever its variant
(containerd would pick one of them by the node's CPU): every variant of a node's os/architecture is
compared, and a move of any of them counts.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from autorollout.registry.manifests import PlatformManifest

OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"


class NodePlatform(NamedTuple):
    os: str
    architecture: str

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}"


def node_platform(node: Mapping[str, Any]) -> NodePlatform | None:
    """The platform a Node object reports (nodeInfo, else its labels), or None when it reports none."""
    info = (node.get("status") or {}).get("nodeInfo") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    os_name = info.get("operatingSystem") or labels.get(OS_LABEL)
    arch = info.get("architecture") or labels.get(ARCH_LABEL)
    if not isinstance(os_name, str) or not isinstance(arch, str) or not os_name or not arch:
        return None
    return NodePlatform(os_name.strip().lower(), arch.strip().lower())


def _matches(platform: str, nodes: Collection[NodePlatform]) -> bool:
    os_name, _, rest = platform.partition("/")
    return NodePlatform(os_name, rest.partition("/")[0]) in nodes


def node_manifests(entries: Sequence[PlatformManifest], nodes: Collection[NodePlatform]) -> dict[str, str]:
    """{platform (with variant): manifest digest} of the index entries the nodes can run."""
    found: dict[str, str] = {}
    for entry in entries:
        if NodePlatform(entry.os, entry.architecture) in nodes:
            found.setdefault(entry.platform, entry.digest)  # the first entry wins, as in containerd
    return found


@dataclass(frozen=True, slots=True)
class PlatformComparison:
    """The node platforms' manifests in the new index (`manifests`, what is recorded next) and
    whether they are the recorded ones."""

    manifests: dict[str, str]
    unchanged: bool

    def text(self) -> str:
        """`platforms linux/amd64, linux/arm64 unchanged`."""
        return f"platforms {', '.join(sorted(self.manifests))} unchanged"


def compare_platforms(
    record: tuple[str, Mapping[str, str]] | None,
    old_index: str | None,
    entries: Sequence[PlatformManifest],
    nodes: Collection[NodePlatform],
) -> PlatformComparison:
    """Compare the new index's node platform manifests with the record of the index `old_index`.

    Unchanged only when the record belongs to `old_index` (the recorded digest), the new index has a
    manifest for at least one node platform, and the node platforms' manifests, the set of them
    included, are exactly the recorded ones. Anything unknown counts as a change (it rolls out).
    """
    manifests = node_manifests(entries, nodes)
    if record is None or old_index is None or record[0] != old_index or not manifests:
        return PlatformComparison(manifests, unchanged=False)
    before = {p: d for p, d in record[1].items() if _matches(p, nodes)}
    return PlatformComparison(manifests, unchanged=before == manifests)
