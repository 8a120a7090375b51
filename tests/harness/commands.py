"""Command lines of `kube-autorollout` as the tests and benchmarks start it, written once."""

from __future__ import annotations

from pathlib import Path

__all__ = ["webhook_flags"]


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
