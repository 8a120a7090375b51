"""`kube-autorollout run` as a real process: time from exec to /readyz 204, RSS idle and after a cycle."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.proc import memory_kib
from certs.mint import write_bundle
from tests.harness.commands import stop, wait_ready, webhook_flags
from tests.harness.registry import free_port

CLI = str(Path(sys.executable).with_name("kube-autorollout"))


def _cycle_lines(log_path: Path) -> list[dict[str, Any]]:
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"cycle finished' in line:
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    return found


def measure_run(
    workdir: Path,
    kubeconfig: str,
    *,
    namespace: str,
    ca_file: Path | None,
    cycles: int = 1,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Start `run` scoped to `namespace`; report time to ready, idle RSS, RSS after `cycles` cycles."""
    workdir.mkdir(parents=True, exist_ok=True)
    bundle = write_bundle(workdir / "tls", ["localhost"], ["127.0.0.1"])
    probe_port, webhook_port = free_port(), free_port()
    config = {
        "cronSchedule": "*/3 * * * * *",
        "webserver": {"port": probe_port},
        "reconciler": {"namespaces": [namespace]},
        "tls": {"caCertificatePaths": [str(ca_file)] if ca_file else []},
    }
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    argv = [
        CLI,
        "run",
        "--config",
        str(config_path),
        "--kubeconfig",
        kubeconfig,
        *webhook_flags(bundle.tls_cert, bundle.tls_key, webhook_port),
    ]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CONFIG_FILE", "KUBECONFIG") and "proxy" not in k.lower()
    }
    log_path = workdir / "run.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    result: dict[str, Any] = {}
    try:
        wait_ready(popen, probe_port, log_path, deadline=started + timeout)
        result["ready_seconds"] = time.monotonic() - started
        result["ready"] = memory_kib(popen.pid)
        while len(_cycle_lines(log_path)) < cycles:
            if time.monotonic() - started > timeout:
                raise TimeoutError("no cycle")
            time.sleep(0.2)
        time.sleep(0.5)
        result["after_cycles"] = memory_kib(popen.pid)
        result["cycle_log"] = _cycle_lines(log_path)[-1].get("duration_ms")
    finally:
        stop(popen)
    return result
