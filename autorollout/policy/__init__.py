"""Rollout policy, pure: per-workload annotations (parsed, with one-line problems), rollout windows,
settle, cooldown, watched containers and the in-flight cap, decided from given instants.

Nothing here reads a clock or the network: the reconciler passes `now` and what it observed, and
writes back on the workload whatever has to be remembered (the settle marks), so a restart forgets
nothing.
"""

from autorollout.policy.durations import format_duration, parse_duration
from autorollout.policy.errors import PolicyError, PolicyProblem
from autorollout.policy.windows import Window, WindowState, parse_window, parse_windows, window_state

__all__ = [
    "PolicyError",
    "PolicyProblem",
    "Window",
    "WindowState",
    "format_duration",
    "parse_duration",
    "parse_window",
    "parse_windows",
    "window_state",
]
