"""Prometheus metrics of both halves; names are prefixed `kube_autorollout_`."""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CYCLES = Counter("kube_autorollout_cycles", "Reconcile cycles run, by outcome.", ["outcome"])
CYCLE_DURATION = Histogram(
    "kube_autorollout_cycle_duration_seconds",
    "Wall time of one reconcile cycle.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
CYCLES_SKIPPED = Counter(
    "kube_autorollout_cycles_skipped", "Scheduled ticks skipped because a cycle was still running."
)
WORKLOADS_IN_SCOPE = Gauge("kube_autorollout_workloads_in_scope", "Labeled workloads in scope.")
ROLLOUTS = Counter("kube_autorollout_rollouts", "Rollouts triggered, by workload kind.", ["kind"])
PENDING_ROLLOUTS = Gauge(
    "kube_autorollout_pending_rollouts",
    "Workloads whose moved tag the rollout policy holds back, by the first reason they wait for.",
    ["reason"],
)
ADOPTIONS = Counter(
    "kube_autorollout_adoptions", "Workloads whose digests were recorded without a rollout.", ["kind"]
)
REGISTRY_REQUESTS = Counter(
    "kube_autorollout_registry_requests",
    "HTTP requests sent to registries, by registry host, method and outcome.",
    ["registry", "method", "outcome"],
)
REGISTRY_LOOKUP_SECONDS = Histogram(
    "kube_autorollout_registry_lookup_seconds",
    "Time to resolve one image reference at its registry (cache misses only).",
    ["registry"],
    buckets=_LATENCY_BUCKETS,
)
DIGEST_CACHE = Counter("kube_autorollout_digest_cache", "Digest cache lookups, by result.", ["result"])
ADMISSION_REQUESTS = Counter(
    "kube_autorollout_admission_requests", "Admission reviews answered, by outcome.", ["outcome"]
)
ADMISSION_SECONDS = Histogram(
    "kube_autorollout_admission_duration_seconds",
    "Time to answer one admission review.",
    buckets=_LATENCY_BUCKETS,
)
LEADER = Gauge("kube_autorollout_leader", "1 while this replica holds the reconciler lease.")


# Failed image lookups of reconcile cycles (one per image and cycle), by registry and the kind of
# failure: unauthorized, forbidden, locked_out (credentials refused recently: nothing sent),
# unreachable, tls, timeout, rate_limited, server_error, not_found, bad_response, ...
REGISTRY_LOOKUP_FAILURES = Counter(
    "kube_autorollout_registry_lookup_failures",
    "Image lookups of reconcile cycles that failed, by registry host and reason.",
    ["registry", "reason"],
)


def count_lookup_failure(registry: str, reason: str) -> None:
    """One failed image lookup of a cycle (`reason` is the error's `RegistryError.reason`)."""
    REGISTRY_LOOKUP_FAILURES.labels(registry=registry, reason=reason).inc()


def observe_registry_request(registry: str, method: str, outcome: str) -> None:
    """Hook for `RegistryClient(on_request=...)`."""
    REGISTRY_REQUESTS.labels(registry=registry, method=method, outcome=outcome).inc()


def observe_lookup(registry: str, seconds: float) -> None:
    """Hook for `DigestResolver(on_lookup=...)`."""
    REGISTRY_LOOKUP_SECONDS.labels(registry=registry).observe(seconds)


@functools.cache
def _digest_cache_child(result: str) -> Any:
    # labels() costs a lock and a tuple per call; the three children never change.
    return DIGEST_CACHE.labels(result=result)


def observe_cache(result: str) -> None:
    """Hook for `DigestResolver(on_cache=...)`: `hit`, `miss` or `shared` (joined an in-flight lookup)."""
    _digest_cache_child(result).inc()


# Registry events: outcomes are accepted, unauthenticated, malformed, ignored, rate_limited,
# unavailable (not the leader, or not ready: the sender retries) and, later, rolled_out.
EVENTS = Counter(
    "kube_autorollout_events", "Registry events received, by source and outcome.", ["source", "outcome"]
)
EVENT_TO_PATCH_SECONDS = Histogram(
    "kube_autorollout_event_to_patch_seconds",
    "Time from the receipt of a registry event to the end of the rollout PATCHes it led to.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)

# Health watch (docs/health.md): what became of the rollouts this product triggered.
ROLLOUT_VERDICTS = Counter(
    "kube_autorollout_rollout_verdicts",
    "Verdicts on rollouts this product triggered, by workload kind and verdict (succeeded, failed).",
    ["kind", "verdict"],
)
ROLLOUT_SECONDS = Histogram(
    "kube_autorollout_rollout_duration_seconds",
    "Time from a rollout's PATCH to its verdict, by verdict.",
    ["verdict"],
    buckets=(1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0),
)
ROLLOUTS_WATCHED = Gauge("kube_autorollout_rollouts_watched", "Rollouts followed until their verdict.")
HELD_WORKLOADS = Gauge("kube_autorollout_held_workloads", "Workloads held at a digest whose rollout failed.")
MIXED_DIGEST_PODS = Gauge(
    "kube_autorollout_mixed_digest_pods",
    "Ready pods running, for one container, a digest other than the recorded one (a series per "
    "workload and container while there are any).",
    ["namespace", "kind", "name", "container"],
)
LAST_CYCLE_TIMESTAMP = Gauge(
    "kube_autorollout_last_cycle_timestamp_seconds",
    "Unix time at which the last reconcile cycle ended, by outcome (success, failure).",
    ["outcome"],
)
NOTIFICATIONS = Counter(
    "kube_autorollout_notifications",
    "Notifications by sink name and outcome (delivered, retried, dropped).",
    ["sink", "outcome"],
)
