"""The reconciler composed: its workload cache, the cycle's observe/plan/act/report parts, and the
scheduled loop with its Lease, built once by the command line (`reconcile`, `status`, `run`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from autorollout.annotations import restarted_at_key
from autorollout.config import Config
from autorollout.credentials import CredentialStore
from autorollout.kube import KubeClient
from autorollout.kube.pull_secrets import PullSecretReader
from autorollout.notify import DISCARD, NoticeSink
from autorollout.policy.model import PolicyDefaults
from autorollout.registry.resolver import DigestResolver
from reconciler.act import Actuator
from reconciler.cache import WorkloadCache
from reconciler.cycle import Cycle
from reconciler.events import EventRecorder
from reconciler.health import HealthWatcher
from reconciler.leader import LeaderElector
from reconciler.loop import ScheduledLoop
from reconciler.nodes import NodePlatforms
from reconciler.observe import Observer
from reconciler.ratelimit import TokenBucket
from reconciler.schedule import CronSchedule

# Adoption patches only write metadata (no pods restart), so they may go faster than rollouts.
ADOPTION_RATE_FACTOR = 10.0


def scope_namespaces(config: Config, own_namespace: str) -> list[str] | None:
    """The namespaces in scope: all (None), the configured list, or the one it runs in (as upstream)."""
    if config.reconciler.all_namespaces:
        return None
    return list(config.reconciler.namespaces) or [own_namespace]


class Reconciler:
    """Everything the reconciler needs, wired once; `cycle.run` is the entry into a cycle."""

    def __init__(
        self,
        *,
        config: Config,
        kube: KubeClient,
        resolver: DigestResolver,
        credentials: CredentialStore,
        pull_secrets: PullSecretReader,
        identity: str,
        namespaces: Sequence[str] | None = (),
        notices: NoticeSink = DISCARD,
    ) -> None:
        """`namespaces=()` means: as configured (see `scope_namespaces`); None means all namespaces."""
        self.config = config
        self.kube = kube
        self.identity = identity
        self.namespaces = scope_namespaces(config, kube.namespace) if namespaces == () else namespaces
        self.schedule = CronSchedule.parse(config.cron_schedule)
        self.cache = WorkloadCache(
            kube, namespaces=self.namespaces, resync_seconds=config.reconciler.resync_seconds
        )
        self.events = EventRecorder(kube, instance=identity, notices=notices)
        rate = config.reconciler.max_patches_per_second
        actuator = Actuator(
            kube,
            self.events,
            restarted_key=restarted_at_key(config.feature_flags.enable_kubectl_annotation),
            rollouts=TokenBucket(rate, burst=1.0),
            adoptions=TokenBucket(rate * ADOPTION_RATE_FACTOR, burst=rate * ADOPTION_RATE_FACTOR),
        )
        observer = Observer(
            kube=kube,
            resolver=resolver,
            credentials=credentials,
            pull_secrets=pull_secrets,
            lookup_timeout=config.reconciler.cycle_timeout_seconds,
        )
        self.nodes = NodePlatforms(kube)
        self.health = HealthWatcher(
            kube,
            self.cache,
            self.events,
            default_deadline=config.rollout_policy.progress_deadline_seconds,
            recheck_seconds=config.reconciler.resync_seconds,
            active=lambda: self.elector is None or self.elector.is_leader,
        )
        self.cycle = Cycle(
            kube=kube,
            cache=self.cache,
            observer=observer,
            actuator=actuator,
            events=self.events,
            policy=PolicyDefaults.from_config(config.rollout_policy),
            nodes=self.nodes,
            health=self.health,
            hold_others=config.rollout_policy.hold_other_workloads,
        )
        self._started = False
        self.elector: LeaderElector | None = None
        self._elector_kube: KubeClient | None = None
        if config.leader_election.enabled:
            # Its own connection: lease renewals neither queue behind a cycle's requests nor show up
            # in a cycle's API request counts.
            self._elector_kube = KubeClient(kube.settings)
            self.elector = LeaderElector(
                self._elector_kube,
                namespace=kube.namespace,
                name=config.leader_election.lease_name,
                identity=identity,
                lease_duration=config.leader_election.lease_duration_seconds,
                renew_interval=config.leader_election.renew_seconds,
            )

    async def start(self, *, watch: bool = True) -> None:
        """Fill the workload cache (one LIST per kind and namespace), then follow it with watches."""
        self.nodes.follow = watch
        await self.cache.start(watch=watch)
        if watch:
            self.health.start()
        self._started = True

    def readiness(self) -> str | None:
        """None once the workload cache is filled, else why not (a readiness check for `run`)."""
        return None if self._started else "workload cache not filled yet"

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Cycles on the cron schedule until `stop` is set (see ScheduledLoop); closes everything after."""
        loop = ScheduledLoop(
            cycle=self.cycle,
            cache=self.cache,
            schedule=self.schedule,
            start=self.start,
            elector=self.elector,
            namespaces=self.namespaces,
        )
        try:
            await loop.run(stop)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        await self.health.aclose()
        await self.cache.aclose()
        await self.nodes.aclose()
        if self._elector_kube is not None:
            await self._elector_kube.aclose()
