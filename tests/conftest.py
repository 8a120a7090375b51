"""Shared pytest wiring: fixtures live in tests/fixtures/, process harnesses in tests/harness/."""

pytest_plugins = [
    "tests.fixtures.registry",
    "tests.fixtures.cluster",
    "tests.fixtures.kubelet",
]
