"""A watch-fed cache of the labeled workloads in scope, so a cycle reads memory instead of the API.

Per kind and namespace (or once per kind for all namespaces): one LIST, then a WATCH from the list's
resourceVersion with bookmarks; a 410 Gone relists. `resync` relists streams older than the resync
period; the loop calls it between cycles, so a cycle itself never LISTs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from autorollout.annotations import ENABLED_LABEL
from autorollout.kube import WORKLOAD_RESOURCES, GoneError, KubeClient, KubeError, workload_collection
from reconciler.workload import RecordError, Workload, WorkloadKey, parse_workload

log = logging.getLogger("kube_autorollout.reconciler.cache")

LABEL_SELECTOR = f"{ENABLED_LABEL}=true"
KINDS: tuple[str, ...] = tuple(WORKLOAD_RESOURCES)
_BACKOFF_MAX = 30.0
ChangeListener = Callable[[WorkloadKey, Workload | None], None]
_LIST_PAGE = 500


def parse_items(kind: str, items: Iterable[dict[str, Any]]) -> dict[tuple[str, str], Workload]:
    """Slim records of a LIST's items keyed by (namespace, name); unusable objects are logged and left out."""
    found: dict[tuple[str, str], Workload] = {}
    for obj in items:
        try:
            record = parse_workload(kind, obj)
        except RecordError as exc:
            log.warning("workload ignored", extra={"fields": {"kind": kind, "error": str(exc)}})
            continue
        found[(record.namespace, record.name)] = record
    return found


@dataclass
class _Stream:
    kind: str
    namespace: str | None
    items: dict[tuple[str, str], Workload] = field(default_factory=dict)
    resource_version: str = ""
    listed_at: float = 0.0
    task: asyncio.Task[None] | None = None

    @property
    def path(self) -> str:
        return workload_collection(self.kind, self.namespace)


class WorkloadCache:
    """Labeled workloads of the namespaces in scope (`namespaces=None`: all namespaces)."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        namespaces: Sequence[str] | None,
        kinds: Sequence[str] = KINDS,
        resync_seconds: float = 300.0,
        watch_timeout: int = 300,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        scopes: list[str | None] = [None] if namespaces is None else list(dict.fromkeys(namespaces))
        self._streams = [_Stream(kind, ns) for ns in scopes for kind in kinds]
        self._resync_seconds = resync_seconds
        self._watch_timeout = watch_timeout
        self._monotonic = monotonic
        self._closed = False
        self._listeners: list[ChangeListener] = []

    def subscribe(self, listener: ChangeListener) -> None:
        """Call `listener(key, record)` for every record that changes (None: gone), also on relists."""
        self._listeners.append(listener)

    def _tell(self, kind: str, key: tuple[str, str], record: Workload | None) -> None:
        for listener in self._listeners:
            listener(WorkloadKey(kind, *key), record)

    # -- reading ---------------------------------------------------------------------------------

    def workloads(self) -> list[Workload]:
        """Every cached workload (a snapshot; later watch events do not change the list)."""
        return [w for stream in self._streams for w in stream.items.values()]

    def get(self, key: WorkloadKey) -> Workload | None:
        for stream in self._streams:
            if stream.kind == key.kind and stream.namespace in (None, key.namespace):
                return stream.items.get((key.namespace, key.name))
        return None

    def __len__(self) -> int:
        return sum(len(stream.items) for stream in self._streams)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, *, watch: bool = True) -> None:
        """LIST every stream (raises KubeError if one fails), then keep them current with WATCHes."""
        await asyncio.gather(*(self._list(stream) for stream in self._streams))
        if watch:
            for stream in self._streams:
                self._start_watch(stream)

    async def resync(self, *, force: bool = False) -> int:
        """Relist the streams whose last LIST is older than the resync period; returns how many."""
        due = [s for s in self._streams if force or self._monotonic() - s.listed_at >= self._resync_seconds]
        for stream in due:
            await self._stop_watch(stream)
            try:
                await self._list(stream)
            except KubeError as exc:
                log.warning("resync failed", extra={"fields": {"path": stream.path, "error": str(exc)}})
            self._start_watch(stream)
        return len(due)

    async def aclose(self) -> None:
        self._closed = True
        for stream in self._streams:
            await self._stop_watch(stream)

    # -- internals -------------------------------------------------------------------------------

    async def _list(self, stream: _Stream) -> None:
        # Page by page, each projected to slim records before the next is read: holding a whole
        # LIST of 10,000 Deployments as dicts (managedFields and all) peaked at about 200 MB of RSS.
        query: dict[str, str | int] = {"labelSelector": LABEL_SELECTOR, "limit": _LIST_PAGE}
        items: dict[tuple[str, str], Workload] = {}
        while True:
            page = await self._kube.get(stream.path, query)
            items.update(parse_items(stream.kind, page.get("items") or ()))
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                break
            query["continue"] = token
            del page
        if self._listeners:
            for key in stream.items.keys() - items.keys():
                self._tell(stream.kind, key, None)
            for key, record in items.items():
                self._tell(stream.kind, key, record)
        stream.items = items
        stream.resource_version = str(meta.get("resourceVersion") or "")
        stream.listed_at = self._monotonic()

    def _start_watch(self, stream: _Stream) -> None:
        if not self._closed:
            stream.task = asyncio.create_task(self._watch(stream), name=f"watch {stream.path}")

    async def _stop_watch(self, stream: _Stream) -> None:
        task, stream.task = stream.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def apply_event(self, stream_kind: str, event_type: str, obj: dict[str, Any]) -> None:
        """Apply one watch event to the matching stream (public for tests of the event handling)."""
        for stream in self._streams:
            namespace = (obj.get("metadata") or {}).get("namespace")
            if stream.kind == stream_kind and stream.namespace in (None, namespace):
                self._apply(stream, event_type, obj)
                return

    def _apply(self, stream: _Stream, event_type: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        version = meta.get("resourceVersion")
        if isinstance(version, str) and version:
            stream.resource_version = version
        if event_type == "BOOKMARK":
            return
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        record: Workload | None = None
        if event_type == "DELETED":
            stream.items.pop(key, None)
        else:
            try:
                stream.items[key] = record = parse_workload(stream.kind, obj)
            except RecordError as exc:
                stream.items.pop(key, None)
                log.warning("workload ignored", extra={"fields": {"kind": stream.kind, "error": str(exc)}})
        if self._listeners:
            self._tell(stream.kind, key, record)

    async def _watch(self, stream: _Stream) -> None:
        backoff = 0.5
        while True:
            try:
                async for event_type, obj in self._kube.watch(
                    stream.path,
                    resource_version=stream.resource_version,
                    params={"labelSelector": LABEL_SELECTOR},
                    timeout_seconds=self._watch_timeout,
                ):
                    backoff = 0.5
                    self._apply(stream, event_type, obj)
            except GoneError:
                log.info("watch expired; relisting", extra={"fields": {"path": stream.path}})
                try:
                    await self._list(stream)
                except KubeError as exc:
                    log.warning("relist failed", extra={"fields": {"path": stream.path, "error": str(exc)}})
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX)
            except (KubeError, ValueError) as exc:
                log.warning("watch failed", extra={"fields": {"path": stream.path, "error": str(exc)}})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
