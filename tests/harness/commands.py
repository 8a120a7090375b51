"""Command lines of `kube-autorollout` as the tests and benchmarks start it, written once."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import httpx

__all__ = ["stop", "wait_ready", "webhook_flags"]


def webhook_flags(
    cert: Path | str, key: Path | str, port: int | str, *, host: str = "127.0.0.1"
) -> list[str]:
    """The flags `webhook` and `run` serve HTTPS with: certificate, key, listen address and port."""
    return [
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        "--webhook-host",
        host,
        "--webhook-port",
        str(port),
    ]


def wait_ready(popen: subprocess.Popen[bytes], probe_port: int, log_path: Path, *, deadline: float) -> None:
    """Until the process's /readyz answers 204; raises if it exits first or `deadline` passes."""
    with httpx.Client(trust_env=False, timeout=1) as http:
        while True:
            if popen.poll() is not None:
                raise RuntimeError(f"exited {popen.returncode}: {log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if http.get(f"http://127.0.0.1:{probe_port}/readyz").status_code == 204:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready: {log_path.read_text()[-2000:]}")
            time.sleep(0.01)


def stop(popen: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    popen.send_signal(signal.SIGTERM)
    try:
        popen.wait(timeout=15)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()
