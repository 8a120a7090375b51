"""A workload's rollout policy from its annotations, and the global defaults it falls back to."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from autorollout.annotations import (
    POLICY_COMPARE,
    POLICY_CONTAINERS,
    POLICY_COOLDOWN,
    POLICY_EXCLUDE_CONTAINERS,
    POLICY_KEYS,
    POLICY_PREFIX,
    POLICY_SCHEDULE,
    POLICY_SETTLE,
    POLICY_WINDOWS,
)
from autorollout.config.cron import CronSpec, parse_cron
from autorollout.config.models import RolloutPolicyConfig
from autorollout.policy.durations import parse_duration
from autorollout.policy.errors import PolicyError, PolicyProblem
from autorollout.policy.windows import Window, parse_windows

_CONTAINER_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)

# Raw policy annotations as the workload carries them: sorted (key, value) pairs.
RawPolicy = tuple[tuple[str, str], ...]


class Compare(StrEnum):
    """What a moved tag is compared by: the digest it points to, or the node platforms' manifests."""

    INDEX = "index"
    PLATFORM = "platform"


@dataclass(frozen=True, slots=True)
class PolicyDefaults:
    """The configuration's `rolloutPolicy`: what a workload without (or with an invalid) annotation gets."""

    settle_seconds: int = 0
    cooldown_seconds: int = 0
    windows: tuple[Window, ...] = ()  # (): always open
    max_in_flight: int = 0  # 0: no cap
    progress_deadline_seconds: int = 600
    compare: Compare = Compare.INDEX

    @classmethod
    def from_config(cls, config: RolloutPolicyConfig) -> PolicyDefaults:
        return cls(
            settle_seconds=config.settle_seconds,
            cooldown_seconds=config.cooldown_seconds,
            windows=parse_windows(";".join(config.windows)) if config.windows else (),
            max_in_flight=config.max_rollouts_in_flight,
            progress_deadline_seconds=config.progress_deadline_seconds,
            compare=Compare(config.compare),
        )


@dataclass(frozen=True, slots=True)
class WorkloadPolicy:
    """What the annotations say; None fields fall back to `PolicyDefaults`."""

    include: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()
    schedule: CronSpec | None = None
    windows: tuple[Window, ...] | None = None
    settle_seconds: int | None = None
    cooldown_seconds: int | None = None
    compare: Compare | None = None
    problems: tuple[PolicyProblem, ...] = ()

    def compares(self, defaults: PolicyDefaults) -> Compare:
        """This workload's comparison: its annotation's, else the global default."""
        return defaults.compare if self.compare is None else self.compare

    def watches(self, container: str) -> bool:
        """Whether a container (or init container) of this name is watched."""
        if self.include is not None:
            return container in self.include
        return container not in self.exclude


NO_POLICY = WorkloadPolicy()


def policy_annotations(annotations: Iterable[tuple[str, object]]) -> RawPolicy:
    """The policy annotations among a workload's, sorted (what the slim record carries)."""
    return tuple(sorted((k, v) for k, v in annotations if k.startswith(POLICY_PREFIX) and isinstance(v, str)))


def _names(value: str) -> frozenset[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise PolicyError("no container name given (comma-separated)")
    for name in names:
        if not _CONTAINER_NAME.fullmatch(name):
            raise PolicyError("not a comma-separated list of container names")
    return frozenset(names)


def _schedule(value: str) -> CronSpec:
    try:
        return parse_cron(value)
    except ValueError as exc:
        raise PolicyError(str(exc)) from None


def _compare(value: str) -> Compare:
    try:
        return Compare(value.strip().lower())
    except ValueError:
        raise PolicyError("expected index or platform") from None


@functools.lru_cache(maxsize=4096)
def parse_policy(raw: RawPolicy) -> WorkloadPolicy:
    """Parse the policy annotations; each invalid one becomes a problem and falls back to the default."""
    if not raw:
        return NO_POLICY
    fields: dict[str, object] = {}
    problems: list[PolicyProblem] = []
    parsers: dict[str, tuple[str, Callable[[str], object]]] = {
        POLICY_CONTAINERS: ("include", _names),
        POLICY_EXCLUDE_CONTAINERS: ("exclude", _names),
        POLICY_SCHEDULE: ("schedule", _schedule),
        POLICY_WINDOWS: ("windows", parse_windows),
        POLICY_SETTLE: ("settle_seconds", parse_duration),
        POLICY_COOLDOWN: ("cooldown_seconds", parse_duration),
        POLICY_COMPARE: ("compare", _compare),
    }
    for key, value in raw:
        if key not in parsers:
            known = ", ".join(k.removeprefix(POLICY_PREFIX) for k in POLICY_KEYS)
            problems.append(PolicyProblem(key, f"unknown policy annotation; expected {known}"))
            continue
        name, parse = parsers[key]
        try:
            fields[name] = parse(value)
        except PolicyError as exc:
            problems.append(PolicyProblem(key, str(exc)))
    if "include" in fields and "exclude" in fields:
        problems.append(
            PolicyProblem(POLICY_EXCLUDE_CONTAINERS, "ignored: the containers annotation is set too")
        )
        del fields["exclude"]
    return WorkloadPolicy(**fields, problems=tuple(problems))  # type: ignore[arg-type]
