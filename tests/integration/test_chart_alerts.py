"""The chart's alerts and dashboard: off by default; the PrometheusRule passes `promtool check rules`
and its unit tests (`promtool test rules`, tests/data/prometheus/alerts-test.yaml: each alert fires
and does not fire); the dashboard is well-formed and selects the release's series; the sinks' URLs
stay in their Secrets."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.harness import alerts
from tests.harness.helm import REPO_ROOT, find, render

pytestmark = pytest.mark.integration

ALERT_TESTS = REPO_ROOT / "tests" / "data" / "prometheus" / "alerts-test.yaml"


def rules_dir(tmp_path: Path) -> Path:
    """rules.yaml (the rendered PrometheusRule's spec) and a copy of the unit tests beside it."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(alerts.rule_groups(alerts.rendered())))
    shutil.copy(ALERT_TESTS, tmp_path / "alerts-test.yaml")
    return tmp_path


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(alerts.promtool()), *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


def test_alerts_dashboard_and_notifications_are_off_by_default() -> None:
    objects = render()
    assert not find(objects, "PrometheusRule")
    assert not [o for o in find(objects, "ConfigMap") if o["metadata"]["name"].endswith("-dashboard")]
    config = yaml.safe_load(find(objects, "ConfigMap")[0]["data"]["config.yaml"])
    assert "notifications" not in config


def test_promtool_checks_the_rendered_rules(tmp_path: Path) -> None:
    result = promtool("check", "rules", "rules.yaml", cwd=rules_dir(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout + result.stderr


def test_promtool_unit_tests_each_alert_fires_and_does_not_fire(tmp_path: Path) -> None:
    result = promtool("test", "rules", "alerts-test.yaml", cwd=rules_dir(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {
        t["alertname"] for g in yaml.safe_load(ALERT_TESTS.read_text())["tests"] for t in g["alert_rule_test"]
    }
    assert tested == {rule["alert"] for rule in alerts.alert_rules(alerts.rendered())}


def test_every_rule_selects_the_release_series_and_carries_its_labels() -> None:
    for rule in alerts.alert_rules(alerts.rendered()):
        for name, matchers in alerts.selectors(rule["expr"]):
            assert "job" in matchers, (rule["alert"], name)
        assert f'job="{alerts.JOB}"' in rule["expr"]
        assert rule["labels"]["team"] == "platform"  # alertLabels
        assert rule["labels"]["severity"] in {"warning", "info"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]


def test_the_dashboard_is_well_formed_and_selects_the_job_variable() -> None:
    objects = alerts.rendered()
    board = alerts.dashboard(objects)
    configmap = next(o for o in find(objects, "ConfigMap") if o["metadata"]["name"].endswith("-dashboard"))
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Platform"}
    assert board["uid"] == "kube-autorollout"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in board["templating"]["list"]}
    assert variables == {"datasource", "job"}
    targets = alerts.dashboard_targets(board)
    assert len(targets) >= 15
    for target in targets:
        assert 'job=~"$job"' in target["expr"], target["expr"]
        assert target["datasource"]["uid"] == "${datasource}"
    assert json.loads(json.dumps(board)) == board


def test_sink_urls_stay_in_their_secrets() -> None:
    objects = alerts.rendered()
    config = yaml.safe_load(
        next(o for o in find(objects, "ConfigMap") if o["metadata"]["name"].endswith("-config"))["data"][
            "config.yaml"
        ]
    )
    assert config["notifications"]["sinks"] == [
        {
            "name": "team-chat",
            "type": "slack",
            "urlEnv": "KAR_NOTIFY_TEAM_CHAT_URL",
            "outcomes": ["rolledOut", "failed", "held"],
        },
        {
            "name": "ops_teams",
            "type": "teams",
            "urlFile": "/etc/kube-autorollout/notifications/ops_teams/teams-url",
            "outcomes": ["failed", "held", "registryError"],
            "timeoutSeconds": 5,
        },
        {
            "name": "audit",
            "type": "webhook",
            "urlEnv": "KAR_NOTIFY_AUDIT_URL",
            "maxAttempts": 6,
            "queueSize": 5000,
        },
    ]
    deployment = find(objects, "Deployment")[0]
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("valueFrom") for e in pod["containers"][0]["env"]}
    assert env["KAR_NOTIFY_TEAM_CHAT_URL"] == {"secretKeyRef": {"name": "chat-hooks", "key": "slack-url"}}
    assert env["KAR_NOTIFY_AUDIT_URL"] == {"secretKeyRef": {"name": "audit-hook", "key": "url"}}
    assert "KAR_NOTIFY_OPS_TEAMS_URL" not in env
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["notify-ops-teams"]["mountPath"] == "/etc/kube-autorollout/notifications/ops_teams"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["notify-ops-teams"]["secret"] == {
        "secretName": "chat-hooks",
        "items": [{"key": "teams-url", "path": "teams-url"}],
    }
