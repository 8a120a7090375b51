"""What `reconcile`, `run` and `webhook` log at start-up, read from the real processes' logs: our
version, the effective configuration (no credential, no `${VAR}` value in it) and the API server's
version, one structured line each; the log level from RUST_LOG when the file sets none."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from autorollout import __version__
from certs.mint import write_bundle
from tests.e2e.reconciler_helpers import log_messages, start_cli, wait_for
from tests.e2e.webhook_process import start_webhook
from tests.harness.cluster import LocalCluster
from tests.harness.commands import webhook_flags
from tests.harness.registry import free_port

ENV_TOKEN = "env-token-Canary-5b1c"
ENV_USER = "env-user-Canary-5b1c"
FILE_TOKEN = "file-token-Canary-5b1c"
FILE_USER = "file-user-Canary-5b1c"
SECRETS = (ENV_TOKEN, ENV_USER, FILE_TOKEN, FILE_USER, "Canary")


def startup_config(path: Path, namespace: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "cronSchedule": "0 0 * * * *",
                "webserver": {"port": free_port()},
                "reconciler": {"namespaces": [namespace]},
                "registries": [
                    {
                        "hostnamePattern": "env.example",
                        "secret": {"type": "Opaque", "username": "${REG_USER}", "token": "${REG_TOKEN}"},
                    },
                    {
                        "hostnamePattern": "file.example",
                        "secret": {"type": "Opaque", "username": FILE_USER, "token": FILE_TOKEN},
                    },
                ],
                "newUpstreamKey": True,
            }
        )
    )
    return path


def by_message(messages: list[dict[str, Any]], text: str) -> dict[str, Any]:
    found = [m for m in messages if m.get("msg") == text]
    assert len(found) == 1, (text, messages[:10])
    return found[0]


@pytest.mark.e2e
@pytest.mark.parametrize("command", ["reconcile", "run"])
def test_start_up_lines_of_the_long_running_commands(
    cluster: LocalCluster, namespace: str, tmp_path: Path, command: str
) -> None:
    config = startup_config(tmp_path / "config.yaml", namespace)
    log_path = tmp_path / "log"
    args = [command]
    if command == "run":
        bundle = write_bundle(tmp_path / "tls", ["localhost"], ["127.0.0.1"])
        args += webhook_flags(bundle.tls_cert, bundle.tls_key, free_port())
    process = start_cli(
        cluster,
        config,
        *args,
        log_path=log_path,
        RUST_LOG="warn,kube_autorollout=debug,hyper=trace",
        REG_TOKEN=ENV_TOKEN,
        REG_USER=ENV_USER,
    )

    def api_server_line_logged() -> bool:
        assert process.poll() is None, log_path.read_text()
        return any(m.get("msg") == "Kubernetes API server" for m in log_messages(log_path))

    try:
        wait_for("the API server line", api_server_line_logged, timeout=60)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    messages = log_messages(log_path)
    text = log_path.read_text()

    unknown = [m for m in messages if m.get("level") == "warning" and "unknown key" in m["msg"]]
    assert [m["msg"] for m in unknown] == [
        "newUpstreamKey: unknown key; expected one of: cronSchedule, digestCacheTtlSeconds, events, "
        "featureFlags, leaderElection, logLevel, lookupTimeoutSeconds, notifications, "
        "reconciler, registries, rolloutPolicy, tls, webhook, "
        "webserver (line 2)"  # keys sorted
    ]
    starting = by_message(messages, "kube-autorollout starting")
    assert (starting["version"], starting["command"]) == (__version__, command)
    assert (starting["log_level"], starting["log_level_from"]) == ("debug", "RUST_LOG")
    if command == "reconcile":  # asyncio's "Using selector" line: debug level is in effect
        assert any(m["level"] == "debug" for m in messages), "RUST_LOG's level is in effect"

    configuration = by_message(messages, "configuration")["config"]
    assert configuration["logLevel"] == "debug"
    assert configuration["reconciler"]["namespaces"] == [namespace]
    env_secret, file_secret = (r["secret"] for r in configuration["registries"])
    assert (env_secret["username"], env_secret["token"]) == ("(redacted)", "(redacted)")
    assert (file_secret["username"], file_secret["token"]) == ("(redacted)", "(redacted)")
    if command == "run":
        assert configuration["webhook"]["host"] == "127.0.0.1"  # the command line's value, in effect

    api = by_message(messages, "Kubernetes API server")
    version = cluster.api_get("/version")
    assert version is not None
    assert api["git_version"] == version["gitVersion"]
    assert api["server"].startswith("127.0.0.1:")
    order = [m.get("msg") for m in messages]
    assert order.index("kube-autorollout starting") < order.index("configuration")
    assert order.index("configuration") < order.index("Kubernetes API server")

    assert not [s for s in SECRETS if s in text], "no credential in the log"
    print(f"{command}: {len(text)} characters of log, {len(messages)} lines, 0 secrets found")


@pytest.mark.integration
def test_webhook_without_a_reachable_api_server_says_so_and_serves(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}],
                "users": [{"name": "u", "user": {"token": FILE_TOKEN}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    process = start_webhook(tmp_path / "webhook", None, kubeconfig=kubeconfig)
    try:
        assert process.popen.poll() is None  # it answers /mutate (start_webhook waited for that)
    finally:
        process.stop()
    messages = log_messages(process.log_path)
    starting = by_message(messages, "kube-autorollout starting")
    assert (starting["command"], starting["log_level"], starting["log_level_from"]) == (
        "webhook",
        "debug",
        "logLevel",
    )
    configuration = by_message(messages, "configuration")["config"]
    assert configuration["webhook"]["port"] == process.port
    unknown = by_message(messages, "Kubernetes API server version unknown")
    assert unknown["level"] == "warning"
    assert "Kubernetes API server" not in [m.get("msg") for m in messages]
    assert FILE_TOKEN not in process.log_text()
