"""The policy's verdict on a workload whose tag moved: roll now, or wait (why, and until when).

Pure: the caller passes the policy, the moved containers' new digests, the settle marks found on the
workload, when it last rolled out and `now`. Settle marks to write (or remove) come back with the
verdict; the caller writes them on the workload, which is all the state there is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from autorollout.annotations import format_seen, parse_seen
from autorollout.policy.durations import format_duration
from autorollout.policy.model import PolicyDefaults, WorkloadPolicy
from autorollout.policy.windows import Window, WindowState, window_state


class WaitReason(StrEnum):
    SETTLING = "settling"
    COOLDOWN = "cooldown"
    OUTSIDE_WINDOW = "outside-window"
    SLOT = "waiting-for-slot"
    HELD = "held"  # the health watch's hold: the digest's rollout failed (reconciler/holds.py)


@dataclass(frozen=True, slots=True)
class Wait:
    reason: WaitReason
    until: datetime | None = None
    detail: str = ""

    def text(self, now: datetime) -> str:
        """`settling for 4m10s more`, `cooldown until 2026-...Z`, `outside window until ...`."""
        when = self.until.strftime("%Y-%m-%dT%H:%M:%SZ") if self.until is not None else "never"
        if self.reason is WaitReason.SETTLING and self.until is not None:
            return f"settling for {format_duration((self.until - now).total_seconds())} more"
        if self.reason is WaitReason.COOLDOWN:
            return f"cooldown until {when}"
        if self.reason is WaitReason.OUTSIDE_WINDOW:
            return f"outside window until {when}"
        return f"{self.reason}{f' ({self.detail})' if self.detail else ''}"


@dataclass(frozen=True, slots=True)
class Gate:
    """`waits` empty: roll now (the rollout then clears every mark). `marks`: the settle marks to set
    (str) or remove (None) per container while the rollout waits, for any reason."""

    waits: tuple[Wait, ...] = ()
    marks: dict[str, str | None] = field(default_factory=dict)

    @property
    def rolls(self) -> bool:
        return not self.waits


class WindowMemo:
    """window_state per (windows, now): thousands of workloads share a few window annotations."""

    def __init__(self) -> None:
        self._known: dict[tuple[tuple[Window, ...], datetime], WindowState] = {}

    def state(self, windows: tuple[Window, ...], now: datetime) -> WindowState:
        key = (windows, now)
        found = self._known.get(key)
        if found is None:
            if len(self._known) > 1024:
                self._known.clear()
            found = self._known[key] = window_state(windows, now)
        return found


def settle_marks(
    moved: Mapping[str, str], seen: Mapping[str, str], settle_seconds: int, now: datetime
) -> tuple[datetime | None, dict[str, str | None]]:
    """When the last moved container has settled (None: all have), and the marks to write.

    A container's mark names the digest it was first seen at; a different digest (the tag moved again)
    starts its settle time again. Marks of containers that no longer differ are removed.
    """
    marks: dict[str, str | None] = {name: None for name in seen if name not in moved}
    if settle_seconds <= 0:
        marks.update((name, None) for name in moved if name in seen)
        return None, marks
    settled_at: datetime | None = None
    for name, digest in moved.items():
        mark = parse_seen(seen.get(name))
        if mark is not None and mark[0] == digest:
            since = mark[1]
        else:
            since = now
            marks[name] = format_seen(digest, now)
        ready = since + timedelta(seconds=settle_seconds)
        if ready > now and (settled_at is None or ready > settled_at):
            settled_at = ready
    return settled_at, marks


def decide(
    policy: WorkloadPolicy,
    defaults: PolicyDefaults,
    *,
    moved: Mapping[str, str],
    seen: Mapping[str, str],
    last_rollout: datetime | None,
    now: datetime,
    windows: WindowMemo | None = None,
) -> Gate:
    """Whether a workload whose watched containers `moved` (name -> new digest) may roll out at `now`."""
    settle = defaults.settle_seconds if policy.settle_seconds is None else policy.settle_seconds
    cooldown = defaults.cooldown_seconds if policy.cooldown_seconds is None else policy.cooldown_seconds
    allowed = defaults.windows if policy.windows is None else policy.windows
    waits: list[Wait] = []
    settled_at, marks = settle_marks(moved, seen, settle, now)
    if not moved:
        return Gate((), marks)
    if settled_at is not None:
        waits.append(Wait(WaitReason.SETTLING, settled_at))
    if cooldown > 0 and last_rollout is not None:
        free_at = last_rollout + timedelta(seconds=cooldown)
        if free_at > now:
            waits.append(Wait(WaitReason.COOLDOWN, free_at))
    if allowed:
        state = (windows or WindowMemo()).state(allowed, now)
        if not state.open:
            waits.append(Wait(WaitReason.OUTSIDE_WINDOW, state.change_at))
    return Gate(tuple(waits), marks)
