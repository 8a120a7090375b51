"""Observing, the cycle's only reads: per workload the registry lookups (through the shared resolver,
believing no cached digest older than the cycle), its pull secrets, and, for adoption only, what its
own pods run. The result is plain data for `plan`; nothing here decides or writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from autorollout.credentials import CredentialStore, RegistryCredentials
from autorollout.kube import KubeClient, KubeError, workload_path
from autorollout.kube.pull_secrets import PullSecretReader
from autorollout.policy.platforms import NodePlatform
from autorollout.references import ImageReference, InvalidReferenceError, parse_image_reference
from autorollout.registry.errors import RegistryError
from autorollout.registry.manifests import ManifestDigest
from autorollout.registry.resolver import DigestResolver, Lookup
from reconciler.plan import Resolution, Unchecked, needs_running_digests, recorded_digest
from reconciler.pods import PodReport, read_pods
from reconciler.workload import Workload, WorkloadKey, log_fields, parse_workload

log = logging.getLogger("kube_autorollout.reconciler")

_POD_LOOKUP_CONCURRENCY = 8
_REFERENCE_MEMO_MAX = 50_000


@dataclass
class Observation:
    """What a cycle saw of some workloads: the input of `plan.plan_cycle`."""

    workloads: list[Workload]
    resolutions: dict[WorkloadKey, dict[str, Resolution]] = field(default_factory=dict)
    pods: dict[WorkloadKey, PodReport] = field(default_factory=dict)
    # image -> (the error, how many workloads use the image)
    errors: dict[str, tuple[RegistryError, int]] = field(default_factory=dict)
    unique_images: int = 0
    # Per workload (in `workloads` order) and container the lookup made: platform comparison asks
    # for index bodies with it.
    lookups: list[dict[str, Lookup | Unchecked]] = field(default_factory=list)
    # The nodes' platforms, read only when a workload compares platforms (None: not read, unknown).
    nodes: frozenset[NodePlatform] | None = None


class Observer:
    """Reads what planning needs; one per reconciler (it memoizes parsed image references)."""

    def __init__(
        self,
        *,
        kube: KubeClient,
        resolver: DigestResolver,
        credentials: CredentialStore,
        pull_secrets: PullSecretReader,
        lookup_timeout: float,
    ) -> None:
        self._kube = kube
        self._resolver = resolver
        self._credentials = credentials
        self._pull_secrets = pull_secrets
        self._lookup_timeout = lookup_timeout
        self._references: dict[str, ImageReference | InvalidReferenceError] = {}

    def now(self) -> float:
        """The resolver's clock: a cycle's start on it is the `fresh_after` of its lookups."""
        return self._resolver.now()

    def reference(self, image: str) -> ImageReference | InvalidReferenceError:
        found = self._references.get(image)
        if found is None:
            if len(self._references) >= _REFERENCE_MEMO_MAX:
                self._references.clear()
            try:
                found = parse_image_reference(image)
            except InvalidReferenceError as exc:
                found = exc
            self._references[image] = found
        return found

    def using(self, workloads: Iterable[Workload], images: Collection[ImageReference]) -> list[Workload]:
        """The workloads with a container on one of `images` (same registry, repository and tag)."""
        wanted = {ref.repository_key for ref in images}
        return [
            w
            for w in workloads
            if any(
                isinstance(ref := self.reference(c.image), ImageReference)
                and not ref.is_pinned
                and ref.repository_key in wanted
                for c in w.watched()
            )
        ]

    async def observe(self, workloads: Sequence[Workload], *, fresh_after: float | None) -> Observation:
        """Look up every unique image of `workloads` once, and ask the pods of those being adopted."""
        # Workloads without pull secrets share one Lookup per image: built and hashed once per cycle.
        shared: dict[str, Lookup | Unchecked] = {}
        per_workload = [
            await self._lookups(w) if w.pull_secrets else self._shared_lookups(w, shared) for w in workloads
        ]
        distinct = {id(x): x for found in per_workload for x in found.values() if isinstance(x, Lookup)}
        lookups = set(distinct.values())
        results = await self._resolve(lookups, fresh_after=fresh_after)
        by_id = {i: results[x] for i, x in distinct.items()}
        resolutions: list[dict[str, Resolution]] = [
            {name: by_id[id(x)] if isinstance(x, Lookup) else x for name, x in found.items()}
            for found in per_workload
        ]
        # Adoption only: platform digests and what the newest pods run (never in a steady state).
        adopting = [
            i for i, w in enumerate(workloads) if not w.paused and needs_running_digests(w, resolutions[i])
        ]
        pods: dict[WorkloadKey, PodReport] = {}
        if adopting:
            pods = await self._adoption_facts(workloads, per_workload, resolutions, adopting, fresh_after)
        failed = {x: r for x, r in results.items() if isinstance(r, RegistryError)}
        users = (
            Counter(x for found in per_workload for x in set(found.values()) if x in failed)
            if failed
            else Counter()
        )
        return Observation(
            workloads=list(workloads),
            resolutions={w.key: resolutions[i] for i, w in enumerate(workloads)},
            pods=pods,
            errors={str(x.reference): (r, users[x]) for x, r in failed.items()},
            unique_images=len(lookups),
            lookups=per_workload,
        )

    async def reread(self, workload: Workload) -> Workload:
        """The workload as the API has it now (after a rejected guarded patch).

        Raises KubeNotFoundError when it is gone, KubeError or RecordError when it cannot be read.
        """
        path = workload_path(workload.kind, workload.namespace, workload.name)
        return parse_workload(workload.kind, await self._kube.get(path))

    async def _lookups(self, workload: Workload) -> dict[str, Lookup | Unchecked]:
        """Per container: the registry lookup to make, or why none is made."""
        pull: list[Mapping[str, RegistryCredentials]] = []
        if workload.pull_secrets:
            pull = list(await self._pull_secrets.read(workload.namespace, workload.pull_secrets))
        return {c.name: self._lookup(c.image, pull) for c in workload.watched()}

    def _shared_lookups(
        self, workload: Workload, shared: dict[str, Lookup | Unchecked]
    ) -> dict[str, Lookup | Unchecked]:
        """`_lookups` of a workload without pull secrets, from and into `shared` (image -> lookup)."""
        found: dict[str, Lookup | Unchecked] = {}
        for container in workload.watched():
            lookup = shared.get(container.image)
            if lookup is None:
                lookup = shared[container.image] = self._lookup(container.image, ())
            found[container.name] = lookup
        return found

    async def resolve_platforms(
        self, lookups: Iterable[Lookup], *, fresh_after: float | None
    ) -> dict[Lookup, ManifestDigest | RegistryError]:
        """The index bodies (platform entries) of `lookups`: a GET each, shared through the resolver."""
        return await self._resolve(lookups, fresh_after=fresh_after, platforms=True)

    def _lookup(self, image: str, pull: Sequence[Mapping[str, RegistryCredentials]]) -> Lookup | Unchecked:
        ref = self.reference(image)
        if isinstance(ref, InvalidReferenceError):
            return Unchecked(f"invalid image reference: {ref.reason}")
        if ref.is_pinned:
            return Unchecked("pinned by digest", pinned=True)
        return Lookup(ref, self._credentials.lookup(ref.registry, pull))

    async def _resolve(
        self, lookups: Iterable[Lookup], *, fresh_after: float | None, platforms: bool = False
    ) -> dict[Lookup, ManifestDigest | RegistryError]:
        unique = set(lookups)
        if not unique:
            return {}
        return await self._resolver.resolve_many(
            unique, timeout=self._lookup_timeout, platforms=platforms, fresh_after=fresh_after
        )

    async def _adoption_facts(
        self,
        workloads: Sequence[Workload],
        per_workload: list[dict[str, Lookup | Unchecked]],
        resolutions: list[dict[str, Resolution]],
        adopting: list[int],
        fresh_after: float | None,
    ) -> dict[WorkloadKey, PodReport]:
        """Platform digests into `resolutions` (in place), and the pod reports of the adopting."""
        unrecorded = {
            x
            for i in adopting
            for c in workloads[i].watched()
            if isinstance(x := per_workload[i].get(c.name), Lookup)
            and recorded_digest(workloads[i], c) is None
        }
        with_platforms = await self._resolve(unrecorded, fresh_after=fresh_after, platforms=True)
        for i in adopting:
            for name, x in per_workload[i].items():
                got = with_platforms.get(x) if isinstance(x, Lookup) else None
                if isinstance(got, ManifestDigest):
                    resolutions[i][name] = got
        gate = asyncio.Semaphore(_POD_LOOKUP_CONCURRENCY)

        async def pods_of(workload: Workload) -> tuple[WorkloadKey, PodReport | None]:
            async with gate:
                try:
                    return workload.key, await read_pods(self._kube, workload)
                except KubeError as exc:
                    log.warning("pods not read", extra={"fields": log_fields(workload, error=str(exc))})
                    return workload.key, None

        found = await asyncio.gather(*(pods_of(workloads[i]) for i in adopting))
        return {key: report for key, report in found if report is not None}
