"""Exit codes, and how a command reports the error that ends it: one line each, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from autorollout.errors import AutorolloutError, ConfigError, UsageError
from autorollout.registry.errors import RegistryConfigError
from autorollout.terminal import terminal_safe

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "print_error",
    "report",
    "run_reported",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
PROG = "kube-autorollout"


def print_error(message: str, *, prog: str = PROG) -> None:
    """`prog: message` on stderr, made safe for a terminal (texts may quote a registry's or an API
    server's answer)."""
    print(f"{prog}: {terminal_safe(message)}", file=sys.stderr)


def report(exc: Exception, *, failing: str = "") -> int | None:
    """Print `exc` and return its exit code, or None when it is not an error a command reports."""
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            print_error(problem)
        return EXIT_USAGE
    if isinstance(exc, UsageError | RegistryConfigError):
        print_error(str(exc))
        return EXIT_USAGE
    if isinstance(exc, AutorolloutError):
        print_error(f"{failing}{exc}")
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
