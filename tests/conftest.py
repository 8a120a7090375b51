"""Shared pytest wiring: fixtures live in tests/fixtures/, process harnesses in tests/harness/."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.registry",
    "tests.fixtures.cluster",
    "tests.fixtures.kubelet",
    "tests.fixtures.node",
    "tests.fixtures.image",
    "tests.fixtures.webhook",
]

_SETS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test belongs to exactly one set, so `-m "unit or integration or e2e"` runs them all."""
    wrong = [
        item.nodeid
        for item in items
        if sum(1 for name in _SETS if item.get_closest_marker(name) is not None) != 1
    ]
    if wrong:
        listed = "\n  ".join(wrong[:20])
        raise pytest.UsageError(f"tests must be marked with exactly one of {_SETS}:\n  {listed}")
