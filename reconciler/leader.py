"""Leader election on a coordination.k8s.io/v1 Lease, the way client-go does it.

Several replicas run the webhook; only the holder of the Lease reconciles. A lease held by someone else
counts as expired only after it stayed unchanged for `leaseDurationSeconds` by *our* monotonic clock
(observed time), so clock skew between nodes cannot make two leaders. A leader that cannot renew
within the renew deadline (two thirds of the lease duration) steps down before anyone may take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from autorollout import metrics
from autorollout.kube import (
    JSON_PATCH,
    ConflictError,
    InvalidError,
    KubeClient,
    KubeError,
    KubeNotFoundError,
    lease_path,
)

log = logging.getLogger("kube_autorollout.leader")


def micro_time(now: datetime | None = None) -> str:
    """Kubernetes MicroTime: `2006-01-02T15:04:05.000000Z`."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    holder: str
    renew_time: str
    duration: int
    transitions: int
    resource_version: str

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> LeaseRecord:
        spec = obj.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            duration=int(spec.get("leaseDurationSeconds") or 0),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str((obj.get("metadata") or {}).get("resourceVersion") or ""),
        )


class LeaderElector:
    """Acquire, renew and release one Lease; `leading`/`not_leading` tell the loop where it stands."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_interval: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._path = lease_path(namespace, name)
        self._namespace = namespace
        self._name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_interval = max(0.2, min(renew_interval, lease_duration / 3))
        self.renew_deadline = lease_duration * 2 / 3
        self._monotonic = monotonic
        self._observed: tuple[str, str] | None = None
        self._observed_at = 0.0
        self._renewed_at = 0.0
        self.holder = ""
        self.leading = asyncio.Event()
        self.not_leading = asyncio.Event()
        self.not_leading.set()
        #: Set once the first round (acquire attempt) is over, whatever its outcome.
        self.decided = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set()

    def _lease_body(self, *, acquire: bool, previous: LeaseRecord | None) -> dict[str, Any]:
        now = micro_time()
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": round(self.lease_duration),
            "renewTime": now,
        }
        if acquire:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = previous.transitions + 1 if previous else 0
        return spec

    def expired(self, record: LeaseRecord) -> bool:
        """Whether someone else's lease may be taken over: free, or unchanged for its whole duration
        as measured by our own clock since we first saw this (holder, renewTime)."""
        if not record.holder:
            return True
        observed = (record.holder, record.renew_time)
        now = self._monotonic()
        if observed != self._observed:
            self._observed, self._observed_at = observed, now
            return False
        return now - self._observed_at > (record.duration or self.lease_duration)

    async def try_acquire_or_renew(self) -> bool:
        """One round: create the Lease, renew ours, or take over an expired one. True if we hold it."""
        try:
            obj = await self._kube.get(self._path)
        except KubeNotFoundError:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self._name, "namespace": self._namespace},
                "spec": self._lease_body(acquire=True, previous=None),
            }
            try:
                await self._kube.create(lease_path(self._namespace), body)
            except ConflictError:
                return False
            self.holder = self.identity
            return True
        record = LeaseRecord.from_object(obj)
        self.holder = record.holder
        ours = record.holder == self.identity
        if not ours and not self.expired(record):
            return False
        ops = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": record.resource_version},
            {
                "op": "add",
                "path": "/spec",
                "value": {**(obj.get("spec") or {}), **self._lease_body(acquire=not ours, previous=record)},
            },
        ]
        try:
            await self._kube.patch(self._path, ops, JSON_PATCH)
        except (ConflictError, InvalidError, KubeNotFoundError):
            return False
        self.holder = self.identity
        return True

    def _set_leading(self, leading: bool, *, stepping_down: bool = False) -> None:
        if leading == self.is_leader:
            return
        fields = {"fields": {"lease": self._path, "identity": self.identity}}
        if leading:
            self.not_leading.clear()
            self.leading.set()
            log.info("became leader", extra=fields)
        else:
            self.leading.clear()
            self.not_leading.set()
            if stepping_down:
                log.info("stepping down", extra=fields)
            else:
                log.warning("lost leadership", extra=fields)
        metrics.LEADER.set(1 if leading else 0)

    async def _round(self) -> None:
        try:
            held = await asyncio.wait_for(self.try_acquire_or_renew(), timeout=self.renew_deadline)
        except (KubeError, TimeoutError) as exc:
            log.warning("lease not renewed", extra={"fields": {"lease": self._path, "error": str(exc)}})
            held = False
        now = self._monotonic()
        if held:
            self._renewed_at = now
            self._set_leading(True)
        elif self.is_leader and (
            now - self._renewed_at >= self.renew_deadline or self.holder not in ("", self.identity)
        ):
            self._set_leading(False)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep trying to lead until `stop` is set, then release the Lease if we hold it."""
        try:
            while not stop.is_set():
                await self._round()
                self.decided.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.renew_interval)
        finally:
            if self.is_leader:
                await asyncio.shield(self.release())

    async def release(self) -> None:
        """Give the Lease up so a standby takes over at once instead of after the lease duration."""
        self._set_leading(False, stepping_down=True)
        try:
            obj = await self._kube.get(self._path)
            record = LeaseRecord.from_object(obj)
            if record.holder != self.identity:
                return
            spec = {**(obj.get("spec") or {}), "holderIdentity": "", "leaseDurationSeconds": 1}
            spec["renewTime"] = micro_time()
            await self._kube.patch(
                self._path,
                [
                    {"op": "test", "path": "/metadata/resourceVersion", "value": record.resource_version},
                    {"op": "add", "path": "/spec", "value": spec},
                ],
                JSON_PATCH,
            )
            log.info("lease released", extra={"fields": {"lease": self._path, "identity": self.identity}})
        except KubeError as exc:
            log.warning("lease not released", extra={"fields": {"lease": self._path, "error": str(exc)}})
