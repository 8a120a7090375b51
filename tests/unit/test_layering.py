"""The dependency directions of the layout: the core never imports the halves, nor they each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def imported_packages(path: Path) -> set[str]:
    """Top-level package of every absolute import in a module (relative imports stay in their package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value.split(".")[0])
    return found


def modules(package: str, *, exclude: str | None = None) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    if exclude is not None:
        files = [f for f in files if not f.is_relative_to(ROOT / exclude)]
    return files


def violations(package: str, forbidden: set[str], *, exclude: str | None = None) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules(package, exclude=exclude)
        for name in sorted(imported_packages(path) & forbidden)
    ]


def test_core_never_imports_webhook_reconciler_or_certs() -> None:
    assert modules("autorollout", exclude="autorollout/cli"), "the core package has modules"
    assert violations("autorollout", {"webhook", "reconciler", "certs"}, exclude="autorollout/cli") == []


def test_webhook_never_imports_reconciler() -> None:
    assert violations("webhook", {"reconciler"}) == []


def test_reconciler_never_imports_webhook() -> None:
    assert violations("reconciler", {"webhook"}) == []


def test_the_checker_sees_every_import_form(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import webhook.app\n"
        "from reconciler import loop\n"
        "from . import sibling\n"
        "import importlib\n"
        "importlib.import_module('certs.mint')\n"
        "def f():\n    from autorollout.config import Config\n"
    )
    assert imported_packages(sample) == {"webhook", "reconciler", "importlib", "certs", "autorollout"}
