"""The effective configuration of the start-up line: all in effect, no credential, no `${VAR}` value."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from autorollout.config import WebhookConfig, read_config
from autorollout.config.view import FROM_ENVIRONMENT, REDACTED, effective_config

pytestmark = pytest.mark.unit

TOKEN = "tok-Canary-7f3a"
USERNAME = "robot-Canary-user"
HOST_FROM_ENV = "registry-Canary.example.com"


def test_credentials_and_environment_values_never_appear(tmp_path: Path) -> None:
    ca = tmp_path / "ca-Canary-dir" / "ca.crt"
    ca.parent.mkdir()
    ca.write_text("-")
    path = tmp_path / "c.yaml"
    path.write_text(
        f"""\
logLevel: debug
webserver:
  port: ${{PROBE_PORT}}
registries:
  - hostnamePattern: &host "${{REGISTRY_HOST}}"
    secret: {{type: Opaque, username: "${{REGISTRY_USER}}", token: "${{REGISTRY_TOKEN}}"}}
  - hostnamePattern: *host
    secret: {{type: Opaque, username: {USERNAME}, token: {TOKEN}}}
  - hostnamePattern: ghcr.io
    secret: {{type: ImagePullSecret, mountPath: /etc/secrets/ghcr}}
tls:
  customCaCertificates:
    enabled: true
    secrets: [{{name: ca, mountPath: "${{CA_DIR}}/ca.crt"}}]
"""
    )
    environ = {
        "PROBE_PORT": "9191",
        "REGISTRY_HOST": HOST_FROM_ENV,
        "REGISTRY_USER": "env-user-Canary",
        "REGISTRY_TOKEN": "env-token-Canary",
        "CA_DIR": str(ca.parent),
    }
    loaded = read_config(str(path), environ)
    assert loaded.config.tls.ca_certificate_paths == [str(ca)]
    view = effective_config(
        loaded, webhook=WebhookConfig(port=9443, tls_cert_file="/t.crt", tls_key_file="/t.key")
    )
    text = orjson.dumps(view).decode()
    assert "Canary" not in text
    assert "9191" not in text
    assert view["webserver"] == {"port": "${PROBE_PORT}"}
    first, second, third = view["registries"]
    assert first == {
        "hostnamePattern": "${REGISTRY_HOST}",
        "secret": {
            "type": "Opaque",
            "name": None,
            "mountPath": None,
            "key": None,
            "username": REDACTED,
            "token": REDACTED,
        },
    }
    assert second["hostnamePattern"] == FROM_ENVIRONMENT  # the alias of an environment value
    assert (second["secret"]["username"], second["secret"]["token"]) == (REDACTED, REDACTED)
    assert third["secret"] == {
        "type": "ImagePullSecret",
        "name": None,
        "mountPath": "/etc/secrets/ghcr",
        "key": None,
        "username": None,
        "token": None,
    }
    assert view["tls"]["caCertificatePaths"] == [FROM_ENVIRONMENT]  # merged from customCaCertificates
    assert view["tls"]["customCaCertificates"]["secrets"][0]["mountPath"] == "${CA_DIR}/ca.crt"
    # Everything else is shown as in effect, by the file's key names, the command line's webhook too.
    assert view["logLevel"] == "debug"
    assert view["cronSchedule"] == "*/45 * * * * *"
    assert view["webhook"]["port"] == 9443
    assert view["webhook"]["tlsCertFile"] == "/t.crt"
    assert view["reconciler"]["maxPatchesPerSecond"] == 5.0
    assert view["digestCacheTtlSeconds"] == 10.0


def test_defaults_without_a_file() -> None:
    view = effective_config(read_config(None, {}))
    assert view["registries"] == []
    assert view["webhook"]["imagePullPolicy"] == "mutate"
    assert view["leaderElection"]["enabled"] is False
