"""The policy's one error: a value that does not parse, and the annotation (or key) it came from."""

from __future__ import annotations

from dataclasses import dataclass

from autorollout.errors import AutorolloutError


class PolicyError(AutorolloutError, ValueError):
    """A policy value that cannot be used; the message is one line and never quotes a secret."""


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One invalid policy annotation: its key and what is wrong (the fallback is the global default)."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"annotation {self.key}: {self.message}"
