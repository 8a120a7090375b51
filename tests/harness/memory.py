"""Idle memory of a long-running `kube-autorollout` command: VmRSS once its /readyz answered 204 and
start-up has settled (tests/integration/test_idle_memory.py, tests/e2e/test_idle_memory.py and
bench/idle.py measure it the same way)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from certs.mint import write_bundle
from tests.harness.commands import stop, wait_ready, webhook_flags
from tests.harness.registry import free_port

CLI = str(Path(sys.executable).with_name("kube-autorollout"))


def _env(home: Path) -> dict[str, str]:
    drop = ("CONFIG_FILE", "KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")
    env = {k: v for k, v in os.environ.items() if k not in drop and "proxy" not in k.lower()}
    env["HOME"] = str(home)  # no ~/.kube/config to fall back on
    return env


def vmrss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def idle_rss_kib(workdir: Path, command: str, kubeconfig: str | None, *, settle: float = 3.0) -> int:
    """VmRSS (KiB) of `command` (`run` or `webhook`, nothing in scope, no cycle due) `settle`
    seconds after its /readyz first answered 204."""
    workdir.mkdir(parents=True, exist_ok=True)
    bundle = write_bundle(workdir / "tls", ["localhost"], ["127.0.0.1"])
    probe_port = free_port()
    config = {
        "cronSchedule": "0 0 0 1 1 *",  # no cycle while measuring
        "webserver": {"port": probe_port},
        "reconciler": {"namespaces": ["empty"]},
    }
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    argv = [CLI, command, "--config", str(config_path)]
    argv += ["--kubeconfig", kubeconfig] if kubeconfig else []
    argv += webhook_flags(bundle.tls_cert, bundle.tls_key, free_port())
    log_path = workdir / f"{command}.log"
    deadline = time.monotonic() + 60
    with log_path.open("wb") as out:
        popen = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=_env(workdir), start_new_session=True
        )
    try:
        wait_ready(popen, probe_port, log_path, deadline=deadline)
        time.sleep(settle)
        return vmrss_kib(popen.pid)
    finally:
        stop(popen)
