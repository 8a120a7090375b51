"""One error hierarchy for the product: every public error class of the core, certs/ and the webhook's
server derives from AutorolloutError, and no two classes share a name."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from autorollout.errors import AutorolloutError, ConfigError, UsageError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("autorollout", "webhook", "reconciler", "certs")
# Inside one package, never raised out of it: the webhook's app turns them into HTTP answers, the
# reconciler its records and schedule into cycle reports.
ROOTED_PACKAGES = ("autorollout", "certs", "webhook", "reconciler")
ROOTED_MODULES: tuple[str, ...] = ()


def _classes(package: str) -> list[tuple[str, str]]:
    """(module, class name) of every class defined at the top level of the package's modules."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [(module, node.name) for node in tree.body if isinstance(node, ast.ClassDef)]
    return found


def _error_classes(modules: list[str]) -> list[type[BaseException]]:
    errors = []
    for name in modules:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == name
                and not value.__name__.startswith("_")
            ):
                errors.append(value)
    return errors


def test_no_two_classes_share_a_name() -> None:
    by_name: dict[str, list[str]] = {}
    for package in PACKAGES:
        for module, name in _classes(package):
            by_name.setdefault(name, []).append(module)
    assert {name: where for name, where in by_name.items() if len(where) > 1} == {}


def test_every_public_error_of_the_product_is_an_autorollout_error() -> None:
    modules = sorted(
        {module for package in ROOTED_PACKAGES for module, _ in _classes(package)} | set(ROOTED_MODULES)
    )
    errors = _error_classes(modules)
    names = {error.__name__ for error in errors}
    assert {"RegistryError", "KubeError", "ConfigError", "UsageError", "CertificateError"} <= names
    assert [e.__qualname__ for e in errors if not issubclass(e, AutorolloutError)] == []


def test_configuration_and_usage_are_separate_boundaries() -> None:
    assert not issubclass(ConfigError, UsageError)
    assert not issubclass(UsageError, ConfigError)
    assert ConfigError(["a: bad", "b: worse"]).problems == ["a: bad", "b: worse"]
