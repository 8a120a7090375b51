"""The chart's registry-event receiver: off by default (no port, no Ingress, no `events` in the
config); on, its config is what the program loads, each source's Secret is mounted where the config
reads it, the Service and optional Ingress reach it, and NOTES.txt says where to point each registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from autorollout.config import load_config_text
from tests.harness.helm import CHART_DIR, VALUES_DIR, Manifest, find, only, render, run_helm

pytestmark = pytest.mark.integration

FULLNAME = "kar-kube-autorollout"


def _config_text(objects: list[Manifest]) -> str:
    return str(only(objects, "ConfigMap", f"{FULLNAME}-config")["data"]["config.yaml"])


def _notes(tmp_path: Path, values: str) -> str:
    """NOTES.txt as `helm install` prints it (rendered through a copy of the chart: `helm template`
    leaves NOTES out)."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART_DIR, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.txt")
    (chart / "templates" / "notes-probe.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes-probe}\n"
        'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}\n'
    )
    result = run_helm(
        "template", "kar", str(chart), "--namespace", "autorollout", "-f", str(VALUES_DIR / values),
        "--show-only", "templates/notes-probe.yaml",
    )  # fmt: skip
    return str(yaml.safe_load(result.stdout)["data"]["notes"])


def test_off_by_default_nothing_of_the_receiver_is_rendered() -> None:
    objects = render()
    assert "events" not in yaml.safe_load(_config_text(objects))
    assert not find(objects, "Ingress")
    ports = [p["name"] for p in only(objects, "Service")["spec"]["ports"]]
    assert "events" not in ports
    [container] = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "events" not in [p["name"] for p in container["ports"]]


def test_on_the_config_loads_and_reads_each_secret_where_it_is_mounted() -> None:
    objects = render(["events.yaml"])
    config = load_config_text(_config_text(objects), {})
    events = config.events
    assert events.enabled
    assert events.port == 8090
    sources = events.sources.configured()
    assert sorted(sources) == ["artifactory", "distribution", "generic", "github"]
    assert sources["generic"].allow_unauthenticated
    assert sources["github"].requests_per_second == 5
    assert sources["artifactory"].registry_host == "docker.acme.example"
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for name, secret, key in [
        ("distribution", "registry-events", "token"),
        ("github", "github-webhook", "secret"),
        ("artifactory", "jfrog-events", "token"),
    ]:
        assert sources[name].secret_file == f"{mounts[f'events-{name}']}/{key}"  # type: ignore[index]
        assert volumes[f"events-{name}"]["secret"] == {
            "secretName": secret,
            "items": [{"key": key, "path": key}],
        }
    assert "events-generic" not in volumes
    assert {"name": "events", "containerPort": 8090, "protocol": "TCP"} in container["ports"]
    text = _config_text(objects)
    assert "registry-events" not in text  # Secret references, never the values, reach the config


def test_on_the_service_and_the_ingress_reach_the_receiver() -> None:
    objects = render(["events.yaml"])
    service = only(objects, "Service")
    assert {"name": "events", "port": 8090, "targetPort": "events", "protocol": "TCP"} in service["spec"][
        "ports"
    ]
    ingress = only(objects, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "events.acme.example"
    [path] = rule["http"]["paths"]
    assert path["path"] == "/events/"
    assert path["backend"]["service"] == {"name": FULLNAME, "port": {"name": "events"}}
    assert ingress["spec"]["tls"] == [{"secretName": "events-tls", "hosts": ["events.acme.example"]}]


def test_receiver_tls_from_a_secret() -> None:
    objects = render(["events.yaml"], {"events.tlsSecretName": "receiver-tls"})
    events = load_config_text(_config_text(objects), {}).events
    assert events.tls_cert_file == "/etc/kube-autorollout/events/tls/tls.crt"
    assert events.tls_key_file == "/etc/kube-autorollout/events/tls/tls.key"
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "events-tls", "secret": {"secretName": "receiver-tls"}} in pod["volumes"]


def test_a_source_without_a_secret_or_an_explicit_opt_out_is_refused_by_the_chart() -> None:
    result = run_helm(
        "template", "kar", str(CHART_DIR), "--set", "events.enabled=true",
        "--set", "events.sources.harbor.header=x-auth", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "events.sources.harbor needs secretRef {name, key} or allowUnauthenticated: true" in result.stderr


def test_notes_say_where_to_point_each_registry(tmp_path: Path) -> None:
    notes = _notes(tmp_path, "events.yaml")
    assert "https://events.acme.example/events/distribution" in notes
    assert "https://events.acme.example/events/github" in notes
    assert "notifications.endpoints" in notes
    assert "WARNING: generic accepts unauthenticated events" in notes
    assert "Registry events are on" not in _notes(tmp_path / "off", "webhook-disabled.yaml")
