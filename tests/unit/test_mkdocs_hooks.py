"""The docs site's hook: links written for reading the files on GitHub become links between site pages."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", REPO_ROOT / "scripts" / "mkdocs_hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _load_hook()


def relink(markdown: str, source: str) -> str:
    result: str = hooks._relink(markdown, source, REPO_ROOT)
    return result


def test_readme_links_become_site_links() -> None:
    text = (
        "[cfg](docs/configuration.md) [cp](docs/development.md#local-control-plane) "
        "[values](charts/kube-autorollout/README.md) [here](#install-with-helm)"
    )
    assert relink(text, "README.md") == (
        "[cfg](configuration.md) [cp](development.md#local-control-plane) "
        "[values](chart-readme.md) [here](#install-with-helm)"
    )


def test_docs_links_to_the_readme_and_between_pages() -> None:
    text = (
        "[Install](../README.md#install-with-helm) [chart](../charts/kube-autorollout/README.md) "
        "[s](security.md)"
    )
    assert relink(text, "docs/helm-chart.md") == (
        "[Install](index.md#install-with-helm) [chart](chart-readme.md) [s](security.md)"
    )


def test_source_files_become_text_and_missing_files_stay_links() -> None:
    text = "[`faultproxy.py`](../tests/harness/faultproxy.py) [gone](../tests/harness/no-such-file.py)"
    assert relink(text, "docs/reliability.md") == ("`faultproxy.py` [gone](../tests/harness/no-such-file.py)")


def test_images_and_external_links_are_left_alone() -> None:
    text = "![plot](img/reconcile-cycle.png) [Keel](https://keel.sh) [mail](mailto:a@example.org)"
    assert relink(text, "docs/benchmarks.md") == text
