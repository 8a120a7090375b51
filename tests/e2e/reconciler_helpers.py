"""Helpers for the reconciler's e2e tests: manifests, kubectl reads, the CLI as a real process, the
reconciler in-process, and pod status as a kubelet would write it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from autorollout.cli.reconcile import open_reconciler
from autorollout.config import Config
from reconciler.reconciler import Reconciler

# One polling helper for all e2e tests (the reconciler tests import it from here too).
from tests.e2e.webhook_process import wait_for
from tests.harness.cluster import LocalCluster

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGEST_PREFIX = "digest.kube-autorollout/"
RESTARTED_AT = "kube-autorollout/restartedAt"
KUBECTL_RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def workload(
    kind: str,
    name: str,
    namespace: str,
    containers: Sequence[tuple[str, str]],
    *,
    init_containers: Sequence[tuple[str, str]] = (),
    recorded: dict[str, str] | None = None,
    labeled: bool = True,
    replicas: int = 1,
) -> dict[str, Any]:
    """A workload manifest; `recorded` (container -> digest) writes the annotations the webhook would."""
    annotations = {
        f"{DIGEST_PREFIX}{c}": f"{image}@{recorded[c]}"
        for c, image in [*containers, *init_containers]
        if recorded and c in recorded
    }

    def spec(items: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        return [{"name": n, "image": i, "imagePullPolicy": "Always"} for n, i in items]

    pod_spec: dict[str, Any] = {"containers": spec(containers)}
    if init_containers:
        pod_spec["initContainers"] = spec(init_containers)
    body: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
    }
    if kind in ("Deployment", "StatefulSet"):
        body["replicas"] = replicas
    if kind == "StatefulSet":
        body["serviceName"] = name
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"kube-autorollout/enabled": "true"} if labeled else {},
            "annotations": annotations,
        },
        "spec": body,
    }


def apply(cluster: LocalCluster, manifest: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def list_items(cluster: LocalCluster, resource: str, namespace: str, *selector: str) -> list[dict[str, Any]]:
    args = ["get", resource, "-n", namespace, "-o", "json"]
    if selector:
        args += ["-l", ",".join(selector)]
    items: list[dict[str, Any]] = json.loads(cluster.kubectl(*args).stdout)["items"]
    return items


def events(cluster: LocalCluster, namespace: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in list_items(cluster, "events", namespace) if e.get("reason") == reason]


def replicaset_count(cluster: LocalCluster, namespace: str, app: str) -> int:
    return len(list_items(cluster, "replicasets", namespace, f"app={app}"))


def wait_replicasets(cluster: LocalCluster, namespace: str, app: str, count: int) -> None:
    wait_for(
        f"{count} ReplicaSet(s) of {app}",
        lambda: replicaset_count(cluster, namespace, app) == count,
    )


def running_image_ids(cluster: LocalCluster, namespace: str, app: str) -> set[str]:
    """imageIDs of the app's live Running pods (none while any pod is pending or terminating)."""
    pods = list_items(cluster, "pods", namespace, f"app={app}")
    if not pods or any(
        p["metadata"].get("deletionTimestamp") or p["status"].get("phase") != "Running" for p in pods
    ):
        return set()
    return {s["imageID"] for p in pods for s in p["status"].get("containerStatuses") or ()}


def write_config(path: Path, namespaces: Sequence[str] | None, **extra: Any) -> Path:
    """A config file for the CLI; `namespaces=None` leaves the scope to its default."""
    # Port 0: processes of parallel tests must not fight over the probe server's port.
    config: dict[str, Any] = {"cronSchedule": "*/45 * * * * *", "webserver": {"port": 0}, **extra}
    reconciler = dict(config.pop("reconciler", {}))
    if namespaces is not None:
        reconciler["namespaces"] = list(namespaces)
    if reconciler:
        config["reconciler"] = reconciler
    path.write_text(yaml.safe_dump(config))
    return path


def namespaced_kubeconfig(cluster: LocalCluster, namespace: str, path: Path) -> Path:
    """A copy of the admin kubeconfig whose context namespace is `namespace`."""
    path.write_text(cluster.kubeconfig.read_text())
    cluster.kubectl("config", "set-context", "--current", f"--namespace={namespace}", f"--kubeconfig={path}")
    return path


def log_messages(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines a CLI process wrote so far."""
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.pop("CONFIG_FILE", None)
    env.update(extra)
    return env


def _cli_argv(
    cluster: LocalCluster, config: Path, args: tuple[str, ...], kubeconfig: Path | None
) -> list[str]:
    kubeconfig_path = kubeconfig or cluster.kubeconfig
    return [sys.executable, "-m", "autorollout.cli.main", *args, "--config", str(config),
            "--kubeconfig", str(kubeconfig_path)]  # fmt: skip


def run_cli(
    cluster: LocalCluster, config: Path, *args: str, timeout: float = 90.0, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`kube-autorollout ARGS --config CONFIG --kubeconfig ...` as a real process."""
    argv = _cli_argv(cluster, config, args, kubeconfig)
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT, env=cli_env(), check=False
    )


def start_cli(
    cluster: LocalCluster,
    config: Path,
    *args: str,
    log_path: Path,
    kubeconfig: Path | None = None,
    **env: str,
) -> subprocess.Popen[bytes]:
    """The CLI as a long-running process logging to `log_path` (stop it with SIGTERM)."""
    argv = _cli_argv(cluster, config, args, kubeconfig)
    log = log_path.open("wb")
    try:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=cli_env(**env))
    finally:
        log.close()


def config_for(namespace: str, **extra: Any) -> Config:
    """A config for an in-process Reconciler scoped to `namespace`."""
    return Config.model_validate({"reconciler": {"namespaces": [namespace]}, **extra})


def with_reconciler(
    cluster: LocalCluster,
    config: Config,
    body: Callable[[Reconciler], Awaitable[Any]],
    *,
    watch: bool = False,
) -> Any:
    """Run `body` with a started in-process Reconciler (cache filled; watches only with `watch`)."""

    async def main() -> Any:
        async with open_reconciler(config, str(cluster.kubeconfig)) as reconciler:
            await reconciler.start(watch=watch)
            return await body(reconciler)

    return asyncio.run(main())


def make_pods_run(cluster: LocalCluster, namespace: str, app: str, image_id: str) -> None:
    """Do what a kubelet would: mark the workload's pods Running and Ready with `image_id`."""
    pods = wait_for(f"pods of {app}", lambda: list_items(cluster, "pods", namespace, f"app={app}"))
    for pod in pods:
        container = pod["spec"]["containers"][0]
        status = {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": image_id,
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}},
                }
            ],
        }
        cluster.kubectl(
            "patch", "pod", pod["metadata"]["name"], "-n", namespace, "--subresource=status",
            "--type=merge", "-p", json.dumps({"status": status}),
        )  # fmt: skip
