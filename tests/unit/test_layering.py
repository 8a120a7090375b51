"""The dependency directions of the layout (the layering): the core never imports the halves, nor they
each other, certs/ neither; only the command line composes both halves; pure modules load no I/O stack."""

from __future__ import annotations

import ast
import subprocess
import sys
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


def test_certs_never_imports_webhook_or_reconciler() -> None:
    assert modules("certs"), "certs/ has modules"
    assert violations("certs", {"webhook", "reconciler"}) == []


PRODUCT = ("autorollout", "webhook", "reconciler", "certs")


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _direct_imports(path: Path, known: set[str]) -> set[str]:
    """Product modules `path` imports: `import a.b`, `from a import b` (b a module or a name in a)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        for name in names:
            parts = name.split(".")
            # a module imports every package above it too
            found.update(
                ".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in known
            )
    return found


def composing_modules() -> list[str]:
    """Product modules whose imports reach both webhook/ and reconciler/, directly or not."""
    paths = {_module_name(path): path for package in PRODUCT for path in modules(package)}
    direct = {name: _direct_imports(path, set(paths)) for name, path in paths.items()}
    reaching: list[str] = []
    for name, path in paths.items():
        seen, todo = {name}, [name]
        while todo:
            for imported in direct[todo.pop()] - seen:
                seen.add(imported)
                todo.append(imported)
        halves = {module.split(".")[0] for module in seen} & {"webhook", "reconciler"}
        if halves == {"webhook", "reconciler"}:
            reaching.append(str(path.relative_to(ROOT)))
    return sorted(reaching)


def test_only_the_command_line_composes_both_halves() -> None:
    composing = composing_modules()
    assert "autorollout/cli/run.py" in composing
    assert [path for path in composing if not path.startswith("autorollout/cli/")] == []


# Plain functions on plain data: importing them must not load an HTTP client, server or the
# official Kubernetes client (pure planners import the manifest types, the webhook its mutation).
PURE_MODULES = (
    "autorollout.references",
    "autorollout.patterns",
    "autorollout.config.cron",
    "autorollout.registry.manifests",
    "autorollout.registry.challenges",
    "autorollout.retry_after",
    "webhook.policy",
    "webhook.mutation",
    "webhook.review",
)
IO_STACKS = ("httpx", "httpcore", "uvicorn", "starlette", "kubernetes")


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_load_no_io_stack(module: str) -> None:
    script = (
        f"import sys, {module}; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({IO_STACKS!r})))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


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
