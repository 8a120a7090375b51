"""Exit codes, and how a command reports the error that ends it: one line each, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from autorollout.config import ConfigError
from autorollout.kube import KubeError
from autorollout.registry.errors import RegistryConfigError, RegistryError
from autorollout.terminal import terminal_safe
from reconciler.schedule import ScheduleError
from webhook.server import WebhookServerError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
PROG = "kube-autorollout"


class UsageError(Exception):
    """Bad usage or a configuration the command cannot work with (exit 2)."""


def _print(message: str) -> None:
    # Error texts may quote a registry's or an API server's answer.
    print(f"{PROG}: {terminal_safe(message)}", file=sys.stderr)


def report(exc: Exception, *, failing: str = "") -> int | None:
    """Print `exc` and return its exit code, or None when it is not an error a command reports."""
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            _print(problem)
        return EXIT_USAGE
    if isinstance(exc, ScheduleError):
        _print(f"cronSchedule: {exc}")
        return EXIT_USAGE
    if isinstance(exc, UsageError | RegistryConfigError):
        _print(str(exc))
        return EXIT_USAGE
    if isinstance(exc, KubeError | RegistryError | WebhookServerError):
        _print(f"{failing}{exc}")
        return EXIT_FAILURE
    return None


def run_reported(body: Callable[[], int], *, failing: str = "") -> int:
    """`body()`, with the errors a command ends on printed and turned into exit codes."""
    try:
        return body()
    except Exception as exc:
        code = report(exc, failing=failing)
        if code is None:
            raise
        return code
