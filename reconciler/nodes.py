"""The platforms the cluster's nodes run, from one LIST of nodes and then a WATCH (never a LIST per
cycle). Started on first need: a cluster whose workloads all compare index digests never reads a node.

Without node information (no RBAC for nodes, no node reporting its platform) `platforms()` returns
None and `unavailable` says why, logged once per change; a failed LIST is tried again after
`retry_seconds`, not every cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from autorollout.kube import GoneError, KubeClient, KubeError
from autorollout.policy.platforms import NodePlatform, node_platform

log = logging.getLogger("kube_autorollout.reconciler.nodes")

NODES_PATH = "/api/v1/nodes"
_BACKOFF_MAX = 30.0


class NodePlatforms:
    """Node name -> platform, kept current by a watch once `platforms()` was first asked."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        follow: bool = True,
        retry_seconds: float = 300.0,
        watch_timeout: int = 300,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self.follow = follow  # False (`status`, `reconcile --once`): one LIST, no watch
        self._retry_seconds = retry_seconds
        self._watch_timeout = watch_timeout
        self._monotonic = monotonic
        self._nodes: dict[str, NodePlatform | None] = {}
        self._resource_version = ""
        self._listed = False
        self._failed_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.unavailable: str | None = None

    async def platforms(self) -> frozenset[NodePlatform] | None:
        """The nodes' platforms, or None (see `unavailable`) when there is no node information."""
        if not self._listed and self._may_list():
            try:
                await self._list()
            except KubeError as exc:
                self._failed_at = self._monotonic()
                self._note(f"nodes not readable: {exc}")
                return None
            if self.follow and not self._closed:
                self._task = asyncio.create_task(self._watch(), name="watch nodes")
        if not self._listed:
            return None
        found = frozenset(p for p in self._nodes.values() if p is not None)
        self._note(None if found else "no node reports its operating system and architecture")
        return found or None

    async def aclose(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _may_list(self) -> bool:
        return self._failed_at is None or self._monotonic() - self._failed_at >= self._retry_seconds

    def _note(self, reason: str | None) -> None:
        if reason == self.unavailable:
            return
        self.unavailable = reason
        if reason is None:
            log.info("node platforms known", extra={"fields": {"platforms": self.describe()}})
        else:
            log.warning(
                "platform comparison falls back to the index digest", extra={"fields": {"reason": reason}}
            )

    def describe(self) -> str:
        """`linux/amd64 (3 nodes), linux/arm64 (1 node)`."""
        counts: dict[str, int] = {}
        for platform in self._nodes.values():
            if platform is not None:
                counts[str(platform)] = counts.get(str(platform), 0) + 1
        return ", ".join(f"{p} ({n} node{'s' if n != 1 else ''})" for p, n in sorted(counts.items()))

    async def _list(self) -> None:
        page = await self._kube.list(NODES_PATH)
        self._nodes = {
            str((node.get("metadata") or {}).get("name")): node_platform(node) for node in page["items"]
        }
        self._resource_version = str((page.get("metadata") or {}).get("resourceVersion") or "")
        self._listed = True

    def apply_event(self, event_type: str, node: dict[str, Any]) -> None:
        """Apply one watch event (public for tests of the event handling)."""
        meta = node.get("metadata") or {}
        version = meta.get("resourceVersion")
        if isinstance(version, str) and version:
            self._resource_version = version
        if event_type == "BOOKMARK":
            return
        name = str(meta.get("name"))
        if event_type == "DELETED":
            self._nodes.pop(name, None)
        else:
            self._nodes[name] = node_platform(node)

    async def _watch(self) -> None:
        backoff = 0.5
        while True:
            try:
                async for event_type, node in self._kube.watch(
                    NODES_PATH, resource_version=self._resource_version, timeout_seconds=self._watch_timeout
                ):
                    backoff = 0.5
                    self.apply_event(event_type, node)
            except GoneError:
                try:
                    await self._list()
                except KubeError as exc:
                    log.warning("node relist failed", extra={"fields": {"error": str(exc)}})
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX)
            except (KubeError, ValueError) as exc:
                log.warning("node watch failed", extra={"fields": {"error": str(exc)}})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
