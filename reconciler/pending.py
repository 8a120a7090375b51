"""Why a workload's moved tag has not rolled out yet: the rollout policy's waits, as status shows them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from autorollout.policy.decide import Wait, WaitReason


@dataclass(frozen=True, slots=True)
class Pending:
    """The waits that hold a rollout back at `now`; the first names the metric's reason."""

    waits: tuple[Wait, ...]
    now: datetime

    @property
    def reason(self) -> WaitReason:
        return self.waits[0].reason

    def text(self) -> str:
        """`settling for 4m more; outside window until 2026-12-01T02:00:00Z`."""
        return "; ".join(w.text(self.now) for w in self.waits)
