"""Raw client sockets against a server under test, and what the kernel says about its connections."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

_ESTABLISHED = "01"


def tls_connect(port: int, ca_file: Path, *, timeout: float = 5.0) -> ssl.SSLSocket:
    """A TLS connection to 127.0.0.1:`port`, handshake done, verified against `ca_file`."""
    context = ssl.create_default_context(cafile=str(ca_file))
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return context.wrap_socket(raw, server_hostname="127.0.0.1")
    except BaseException:
        raw.close()
        raise


def established_from(server_port: int, client_ports: set[int] | None = None) -> int:
    """Server-side ESTABLISHED IPv4 connections on `server_port` (from `client_ports`, if given)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if state != _ESTABLISHED or int(local.split(":")[1], 16) != server_port:
            continue
        if client_ports is None or int(remote.split(":")[1], 16) in client_ports:
            count += 1
    return count


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
