"""The chart's PrometheusRule and Grafana dashboard as `helm template` renders them, the PromQL they
hold (metric names, label matchers, grouping labels), and the cached `promtool` that checks them."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.harness.helm import REPO_ROOT, Manifest, only, render

VALUES_FILE = "notifications-alerts.yaml"
RELEASE = "kar"
NAMESPACE = "autorollout"
JOB = "kar-kube-autorollout"  # the release's fullname: the job its ServiceMonitor gives the series
# Labels the scrape adds to every series (or that a histogram has): not the product's to export.
TARGET_LABELS = frozenset({"job", "namespace", "instance", "pod", "service", "endpoint", "container", "le"})

_METRIC = re.compile(r"\b(kube_autorollout_[a-z0-9_]+)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)")
_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


@functools.cache
def promtool() -> Path:
    """scripts/install-promtool.sh's binary (built once, minutes the first time; then cached)."""
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "install-promtool.sh")],
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    return Path(result.stdout.strip().splitlines()[-1]) / "promtool"


def rendered() -> list[Manifest]:
    return render([VALUES_FILE], release=RELEASE, namespace=NAMESPACE)


def rule_groups(objects: Sequence[Manifest]) -> dict[str, Any]:
    """The PrometheusRule's spec: a rules file as Prometheus and promtool read it (`groups:`)."""
    spec: dict[str, Any] = only(objects, "PrometheusRule")["spec"]
    return spec


def dashboard(objects: Sequence[Manifest]) -> dict[str, Any]:
    configmap = only(objects, "ConfigMap", f"{JOB}-dashboard")
    board: dict[str, Any] = json.loads(configmap["data"]["kube-autorollout.json"])
    return board


def alert_rules(objects: Sequence[Manifest]) -> list[dict[str, Any]]:
    return [rule for group in rule_groups(objects)["groups"] for rule in group["rules"]]


def dashboard_targets(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [target for panel in board["panels"] for target in panel.get("targets", [])]


def expressions(objects: Sequence[Manifest]) -> list[str]:
    """Every PromQL expression of the alerts and of the dashboard's panels."""
    rules = [rule["expr"] for rule in alert_rules(objects)]
    return rules + [target["expr"] for target in dashboard_targets(dashboard(objects))]


def family(name: str) -> str:
    """`kube_autorollout_cycles_total` -> `kube_autorollout_cycles` (what the exposition's family is)."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names its matchers use) for each series selector in `expr`."""
    return [
        (match.group(1), {m.group(1) for m in _MATCHER.finditer(match.group(2) or "")})
        for match in _METRIC.finditer(expr)
    ]


def grouping_labels(expr: str) -> set[str]:
    """The labels of every `by (...)`, `on (...)`, `without (...)` and `ignoring (...)` in `expr`."""
    return {
        label.strip()
        for match in _GROUPING.finditer(expr)
        for label in match.group(1).split(",")
        if label.strip()
    }
