"""Notifications end to end: `kube-autorollout reconcile` as a real process against the local control
plane and a real registry posts to a real loopback receiver: a rollout's rolledOut notice carries the
workload, container, image and both digests; a registry error is notified; a receiver that hangs never
holds the cycle, and the sink's secret URL appears in no output."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.reconciler_helpers import (
    REPO_ROOT,
    _cli_argv,
    apply,
    cli_env,
    events,
    wait_replicasets,
    workload,
    write_config,
)
from tests.harness.cluster import LocalCluster
from tests.harness.notifyreceiver import NotifyReceiver
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e

SECRET = "T0E2E/B0E2E/e2eSecretPartOfTheHookUrl"


def reconcile_once(
    cluster: LocalCluster, config: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        _cli_argv(cluster, config, ("reconcile", "--once"), None),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env=cli_env(**env),
        check=False,
    )
    return result, time.monotonic() - started


def sinks(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"drainSeconds": 3, "sinks": list(entries)}


def test_a_rollout_sends_one_rolled_out_notice_per_sink_with_its_fields(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=31)
    apply(cluster, workload("Deployment", "web", namespace, [("app", image)], recorded={"app": v1}))
    wait_replicasets(cluster, namespace, "web", 1)
    v2 = registry.push_image(unique_repo, "latest", seed=32)
    with NotifyReceiver() as receiver:
        url_file = tmp_path / "slack-url"
        url_file.write_text(receiver.url(f"/slack/{SECRET}") + "\n")  # as a mounted Secret
        config = write_config(
            tmp_path / "config.yaml",
            [namespace],
            notifications=sinks(
                {"name": "e2e-hook", "type": "webhook", "urlEnv": "KAR_E2E_HOOK_URL"},
                {"name": "e2e-slack", "type": "slack", "urlFile": str(url_file), "outcomes": ["rolledOut"]},
                {
                    "name": "e2e-failures",
                    "type": "teams",
                    "urlEnv": "KAR_E2E_HOOK_URL",
                    "outcomes": ["failed"],
                },
            ),
        )
        hook_url = receiver.url(f"/hook/{SECRET}")

        first, _ = reconcile_once(cluster, config, KAR_E2E_HOOK_URL=hook_url)

        assert first.returncode == 0, first.stderr
        wait_replicasets(cluster, namespace, "web", 2)
        got = {r.path: r.json() for r in receiver.wait_for(2)}
        assert sorted(got) == [f"/hook/{SECRET}", f"/slack/{SECRET}"]  # the failures-only sink got nothing
        hook = got[f"/hook/{SECRET}"]
        assert {k: hook[k] for k in ("outcome", "kind", "namespace", "name", "container", "image")} == {
            "outcome": "rolledOut",
            "kind": "Deployment",
            "namespace": namespace,
            "name": "web",
            "container": "app",
            "image": image,
        }
        assert (hook["oldDigest"], hook["newDigest"]) == (v1, v2)
        [event] = events(cluster, namespace, "RolloutTriggered")
        assert hook["detail"] == event["message"]  # the same decision, the same words
        slack = got[f"/slack/{SECRET}"]
        assert slack["text"].startswith(f"Rollout triggered: Deployment {namespace}/web")
        assert f"*New digest*\n{v2}" in [f["text"] for f in slack["blocks"][1]["fields"]]

        second, _ = reconcile_once(cluster, config, KAR_E2E_HOOK_URL=hook_url)

        assert second.returncode == 0, second.stderr
        time.sleep(0.5)
        assert receiver.count == 2  # no move, no rollout, no notice
    for output in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert SECRET not in output


def test_a_registry_error_is_notified_and_a_hanging_receiver_never_holds_the_cycle(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    missing = f"{registry.host}/{unique_repo}-missing:latest"  # never pushed: the lookup fails (404)
    apply(cluster, workload("Deployment", "broken", namespace, [("app", missing)]))
    with NotifyReceiver() as receiver, NotifyReceiver("hang") as hanging:
        config = write_config(
            tmp_path / "config.yaml",
            [namespace],
            notifications=sinks(
                {"name": "e2e-ok", "type": "webhook", "urlEnv": "KAR_E2E_OK_URL"},
                {
                    "name": "e2e-hang",
                    "type": "webhook",
                    "urlEnv": "KAR_E2E_HANG_URL",
                    "timeoutSeconds": 20,  # without the drain deadline: 4 x 20 s and more
                    "maxAttempts": 4,
                },
            ),
        )

        result, elapsed = reconcile_once(
            cluster,
            config,
            KAR_E2E_OK_URL=receiver.url(f"/ok/{SECRET}"),
            KAR_E2E_HANG_URL=hanging.url(f"/hang/{SECRET}"),
        )

        assert result.returncode == 1  # the cycle failed: an image did not resolve
        (got,) = receiver.wait_for(1)
        body = got.json()
        assert (body["outcome"], body["name"], body["container"], body["image"]) == (
            "registryError",
            "broken",
            "app",
            missing,
        )
        assert "no rollout until it resolves" in body["detail"]
        [event] = events(cluster, namespace, "RegistryLookupFailed")
        assert body["detail"] == event["message"]
        assert hanging.count >= 1
    # The hanging sink's delivery is cut at the 3 s drain: 80 s of attempts were not waited for.
    assert elapsed < 40, elapsed  # start-up and the cycle itself take 5-15 s on a loaded machine
    assert "notifications left undelivered" in result.stderr
    assert "e2e-hang" in result.stderr
    assert SECRET not in result.stdout + result.stderr
