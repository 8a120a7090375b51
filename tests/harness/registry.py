"""Run Debian's `docker-registry` (CNCF distribution 2.8) on a free 127.0.0.1 port for tests.

Modes: "plain" (HTTP), "tls" (a CA minted by certs/mint.py, certificate for 127.0.0.1/localhost),
"basic" (htpasswd), "token" (bearer tokens from tests/harness/tokenserver.py), "tls-basic" (htpasswd
over TLS, as helm needs for an authenticated OCI chart repository). The registry's access
log (stdout) goes to a file, so tests count the requests it served. Every started registry is stopped
at exit even if a test run is interrupted (process group killed).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import yaml

from certs.mint import mint_ca, mint_serving_cert, write_private
from tests.harness.oci import DEFAULT_PLATFORMS, OciPusher
from tests.harness.tokenserver import ISSUER, SERVICE, TokenServer

REGISTRY_BINARY = "/usr/bin/docker-registry"
Mode = Literal["plain", "tls", "basic", "token", "tls-basic"]
#: The modes every registry-facing test runs on (`any_registry`); "tls-basic" is started on demand.
MODES: tuple[Mode, ...] = ("plain", "tls", "basic", "token")
TEST_USER = "tester"
#: User-Agent of the harness's own requests (pushes, readiness probes); not counted by default.
HARNESS_AGENT = "kar-test-harness"
_LOG_RE = re.compile(
    r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) \S+ "[^"]*" "(?P<agent>[^"]*)"'
)
_running: set[LocalRegistry] = set()
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child before exec: should pytest be SIGKILLed (no atexit), the kernel kills it too.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(frozen=True)
class AccessLogEntry:
    method: str
    path: str
    status: int
    user_agent: str


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(eq=False)
class LocalRegistry:
    """A running registry: `.host` "127.0.0.1:PORT", `.url`, `.ca_file` (tls), `.username/.password`
    (basic, token), `.token_server` (token)."""

    mode: Mode
    workdir: Path
    port: int
    ca_file: Path | None = None
    username: str | None = None
    password: str | None = None
    token_server: TokenServer | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    #: The address it listens on: loopback, or the real node's bridge address (reached by pods too).
    address: str = "127.0.0.1"

    @property
    def host(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        scheme = "https" if self.mode in ("tls", "tls-basic") else "http"
        return f"{scheme}://{self.host}"

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    @property
    def app_log(self) -> Path:
        return self.workdir / "registry.log"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else True

    def pusher(self) -> OciPusher:
        return OciPusher(
            self.url,
            verify=self.verify,
            username=self.username,
            password=self.password,
            user_agent=HARNESS_AGENT,
        )

    def push_image(
        self, repository: str, tag: str, *, platforms: Sequence[str] | None = None, seed: int | None = None
    ) -> str:
        """Push a random image under `tag`; with `platforms`, an index over one image per platform.
        Returns the digest the tag now points to."""
        if platforms:
            return self.push_index(repository, tag, platforms, seed=seed)[0]
        pusher = self.pusher()
        try:
            return pusher.push_image(repository, tag, seed=seed)
        finally:
            pusher.close()

    def push_index(
        self,
        repository: str,
        tag: str,
        platforms: Sequence[str] = DEFAULT_PLATFORMS,
        *,
        seed: int | None = None,
    ) -> tuple[str, dict[str, str]]:
        """Push a multi-platform index; returns (index digest, {platform: manifest digest})."""
        pusher = self.pusher()
        try:
            return pusher.push_index(repository, tag, platforms, seed=seed)
        finally:
            pusher.close()

    def requests(self) -> list[AccessLogEntry]:
        """Every request the registry logged so far (waits for the log to settle first)."""
        self._settle()
        entries = []
        for line in self.access_log.read_text(errors="replace").splitlines():
            match = _LOG_RE.search(line)
            if match:
                entries.append(
                    AccessLogEntry(match["method"], match["path"], int(match["status"]), match["agent"])
                )
        return entries

    def request_count(
        self,
        method: str | None = None,
        path_substring: str | None = None,
        *,
        status: int | None = None,
        user_agent_substring: str | None = None,
        include_harness: bool = False,
    ) -> int:
        """How many logged requests match all the given filters (the harness's own pushes and
        probes only with `include_harness`)."""
        return sum(
            1
            for e in self.requests()
            if (include_harness or HARNESS_AGENT not in e.user_agent)
            and (method is None or e.method == method)
            and (path_substring is None or path_substring in e.path)
            and (status is None or e.status == status)
            and (user_agent_substring is None or user_agent_substring in e.user_agent)
        )

    def _settle(self, quiet: float = 0.05, limit: float = 1.0) -> None:
        # The registry writes a log line right after answering; wait until the file stops growing.
        deadline = time.monotonic() + limit
        size = -1
        while time.monotonic() < deadline:
            current = self.access_log.stat().st_size if self.access_log.exists() else 0
            if current == size:
                return
            size = current
            time.sleep(quiet)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Kill the registry's process group and wait for it; idempotent."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        if self.token_server is not None:
            self.token_server.stop()
            self.token_server = None
        _running.discard(self)


def _registry_config(
    registry: LocalRegistry, notifications: Sequence[Mapping[str, object]] = ()
) -> dict[str, object]:
    http: dict[str, object] = {"addr": registry.host, "secret": secrets.token_hex(16)}
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(registry.workdir / "data")},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": http,
        "health": {"storagedriver": {"enabled": False}},
    }
    if notifications:
        config["notifications"] = {"endpoints": [dict(n) for n in notifications]}
    if registry.mode in ("tls", "tls-basic"):
        ca_pem, ca_key = mint_ca("test registry CA")
        cert_pem, key_pem = mint_serving_cert(
            ca_pem, ca_key, ["localhost"], sorted({"127.0.0.1", "::1", registry.address})
        )
        registry.ca_file = registry.workdir / "ca.crt"
        registry.ca_file.write_bytes(ca_pem)
        (registry.workdir / "tls.crt").write_bytes(cert_pem)
        write_private(registry.workdir / "tls.key", key_pem)
        http["tls"] = {
            "certificate": str(registry.workdir / "tls.crt"),
            "key": str(registry.workdir / "tls.key"),
        }
    if registry.mode in ("basic", "tls-basic"):
        htpasswd = registry.workdir / "htpasswd"
        line = subprocess.run(
            ["htpasswd", "-Bbn", registry.username or "", registry.password or ""],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        htpasswd.write_text(line + "\n")
        config["auth"] = {"htpasswd": {"realm": "test-registry", "path": str(htpasswd)}}
    elif registry.mode == "token":
        assert registry.token_server is not None
        config["auth"] = {
            "token": {
                "realm": registry.token_server.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(registry.token_server.root_bundle),
            }
        }
    return config


def start_registry(
    mode: Mode,
    workdir: Path,
    *,
    token_expires_in: int = 300,
    timeout: float = 15.0,
    notifications: Sequence[Mapping[str, object]] = (),
    address: str = "127.0.0.1",
) -> LocalRegistry:
    """Start a registry in `mode` with its files under `workdir` on `address` (loopback or the real
    node's bridge address); returns once /v2/ answers. `notifications` are distribution's
    `notifications.endpoints` entries (name, url, headers, ...)."""
    if mode not in (*MODES, "tls-basic"):
        raise ValueError(f"unknown registry mode {mode!r}")
    workdir.mkdir(parents=True, exist_ok=True)
    registry = LocalRegistry(mode=mode, workdir=workdir, port=free_port(), address=address)
    if mode in ("basic", "token", "tls-basic"):
        registry.username, registry.password = TEST_USER, secrets.token_urlsafe(12)
    if mode == "token":
        registry.token_server = TokenServer(
            workdir / "tokens", {TEST_USER: registry.password or ""}, expires_in=token_expires_in
        )
    config_path = workdir / "config.yml"
    config_path.write_text(yaml.safe_dump(_registry_config(registry, notifications)))
    with registry.access_log.open("ab") as stdout, registry.app_log.open("ab") as stderr:
        registry.process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config_path)],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl call, no locks taken
        )
    _running.add(registry)
    try:
        _wait_ready(registry, timeout)
    except BaseException:
        registry.stop()
        raise
    return registry


def _wait_ready(registry: LocalRegistry, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(verify=registry.verify, timeout=1.0) as client:
        while True:
            if registry.process is None or registry.process.poll() is not None:
                log_tail = registry.app_log.read_text()[-2000:]
                raise RuntimeError(f"docker-registry ({registry.mode}) exited at start: {log_tail}")
            try:
                response = client.get(f"{registry.url}/v2/", headers={"User-Agent": HARNESS_AGENT})
                if response.status_code in (200, 401):
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry ({registry.mode}) not ready after {timeout}s")
            time.sleep(0.05)


@atexit.register
def _stop_all() -> None:
    for registry in list(_running):
        registry.stop()
