"""The health watch, pure: what a rollout we started rolled (the watch record), the slim status of its
workload, and the verdict on it at a given time (docs/health.md)."""

from autorollout.health.status import HealthStatus, health_status
from autorollout.health.verdict import STABLE_SECONDS, Judgement, Verdict, confirm, judge
from autorollout.health.watch import RolledDigest, WatchRecord, format_watch, parse_watch

__all__ = [
    "STABLE_SECONDS",
    "HealthStatus",
    "Judgement",
    "RolledDigest",
    "Verdict",
    "WatchRecord",
    "confirm",
    "format_watch",
    "health_status",
    "judge",
    "parse_watch",
]
