"""A local Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager.

No scheduler and no kubelet: pods stay Pending, but Deployments get their ReplicaSets, which is what
rollouts are about (tests/harness/node.py adds a real node that runs them). Every process runs in its
own process group, logs to the run directory and is stopped by `stop()`, by `atexit`, on SIGTERM/SIGHUP,
and (Linux) when the thread that started it dies.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import functools
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Self

import httpx
import yaml

from certs.mint import mint_ca, mint_serving_cert
from tests.harness.pki import mint_client_cert, mint_service_account_key

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-cluster-binaries.sh"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
CLUSTER_NAME = "kube-autorollout-local"

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
_LOOPBACK_NO_PROXY = "127.0.0.1,localhost,::1"
_START_ATTEMPTS = 3
_STOP_GRACE_SECONDS = 5.0

KubeVersion = tuple[int, int]


class ClusterError(Exception):
    """The local control plane could not be built, started or used."""


class ClusterStartError(ClusterError):
    """A component did not become ready; the message carries the tail of its log."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; unlike CalledProcessError, its message includes kubectl's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {(self.stderr or '').strip()}"


# --- versions (pure) -----------------------------------------------------------------------------

_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)(?:\.\d+)?")


def parse_kube_version(text: str) -> KubeVersion:
    """(major, minor) from a version string such as "v1.32.4-dispatcher" or "Kubernetes v1.37.2"."""
    match = _VERSION_RE.search(text)
    if match is None:
        raise ValueError(f"no Kubernetes version in {text!r}")
    return int(match.group(1)), int(match.group(2))


def within_kubectl_skew(client: KubeVersion, server: KubeVersion) -> bool:
    """kubectl is supported within one minor version (older or newer) of the API server."""
    return client[0] == server[0] and abs(client[1] - server[1]) <= 1


@dataclass(frozen=True)
class KubectlCandidate:
    """A kubectl binary and its client version (None when it could not be determined)."""

    path: Path
    version: KubeVersion | None


def choose_kubectl(server: KubeVersion, machine: KubectlCandidate | None, built: Path) -> Path:
    """The machine's kubectl when it is within the supported skew of `server`, else the built one."""
    if machine is not None and machine.version is not None and within_kubectl_skew(machine.version, server):
        return machine.path
    return built


# --- binaries ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterBinaries:
    """The directories holding etcd, kube-apiserver, kube-controller-manager, kubectl and helm."""

    path_dirs: tuple[Path, ...]

    def find(self, name: str) -> Path:
        """The path of binary `name` in the first directory that has it."""
        for directory in self.path_dirs:
            candidate = directory / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
        raise ClusterError(f"{name} not found in {':'.join(map(str, self.path_dirs))}")


def requested_kube_version() -> str | None:
    """The release KUBE_VERSION asks for, as Kubernetes spells it ("1.35.4" -> "v1.35.4"); None when unset."""
    requested = os.environ.get("KUBE_VERSION", "").strip()
    return f"v{requested.removeprefix('v')}" if requested else None


def install_binaries(kube_version: str | None = None) -> ClusterBinaries:
    """Run scripts/install-cluster-binaries.sh (builds nothing when cached) and return its directories."""
    env = dict(os.environ)
    if kube_version:
        env["KUBE_VERSION"] = kube_version
    # Progress goes to stderr; the last stdout line lists the binary directories.
    result = subprocess.run(
        [str(INSTALL_SCRIPT)], stdout=subprocess.PIPE, stderr=None, text=True, env=env, check=False
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise ClusterError(f"{INSTALL_SCRIPT} failed with exit code {result.returncode}")
    return ClusterBinaries(tuple(Path(d) for d in lines[-1].split(":") if d))


def binary_version(binary: Path, *args: str) -> str:
    """The output of `<binary> <args>` (a version command), stripped."""
    result = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise ClusterError(f"{binary} {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def machine_kubectl(excluded_dirs: Sequence[Path]) -> KubectlCandidate | None:
    """The kubectl found on PATH outside `excluded_dirs`, with its client version."""
    excluded = {d.resolve() for d in excluded_dirs}
    search = [
        d for d in os.environ.get("PATH", "").split(os.pathsep) if d and Path(d).resolve() not in excluded
    ]
    found = shutil.which("kubectl", path=os.pathsep.join(search))
    if found is None:
        return None
    try:
        output = binary_version(Path(found), "version", "--client", "-o", "json")
        version: KubeVersion | None = parse_kube_version(
            yaml.safe_load(output)["clientVersion"]["gitVersion"]
        )
    except (ClusterError, ValueError, KeyError, TypeError, yaml.YAMLError, subprocess.TimeoutExpired):
        version = None
    return KubectlCandidate(Path(found), version)


# --- processes -----------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago (the OS picks them)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def child_environment(path_dirs: Sequence[Path]) -> dict[str, str]:
    """os.environ without proxy settings (the API server must reach webhooks on loopback directly)."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARIABLES}
    env["NO_PROXY"] = env["no_proxy"] = _LOOPBACK_NO_PROXY
    env["PATH"] = os.pathsep.join([*map(str, path_dirs), env.get("PATH", "")])
    return env


_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if pytest is SIGKILLed, the kernel kills the child too.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class _ProcessExitedError(ClusterError):
    pass


class ManagedProcess:
    """One control-plane process in its own process group, logging to a file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        self._log.write(f"=== {' '.join(argv)}\n".encode())
        self._log.flush()
        self.popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl call, no locks taken
        )

    @property
    def pid(self) -> int:
        """Process id, which is also the process-group id."""
        return self.popen.pid

    def alive(self) -> bool:
        """True until the process has exited."""
        return self.popen.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        """The last `lines` lines of the process log."""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def signal_group(self, sig: signal.Signals) -> None:
        """Send `sig` to the whole process group (ignored once it is gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def terminate(self, grace: float) -> None:
        """SIGTERM the group, SIGKILL it after `grace` seconds, and reap the process."""
        self.signal_group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(grace)
        self.kill()

    def kill(self) -> None:
        """SIGKILL whatever is left in the group and reap the process."""
        self.signal_group(signal.SIGKILL)
        self.popen.wait()

    def close(self) -> None:
        """Close the log file handle."""
        self._log.close()


# --- the control plane ---------------------------------------------------------------------------


@dataclass
class _Pki:
    ca_file: Path
    serving_cert: Path
    serving_key: Path
    sa_private: Path
    sa_public: Path
    admin: tuple[bytes, bytes]
    controller_manager: tuple[bytes, bytes]
    ca_pem: bytes


class LocalCluster:
    """etcd + kube-apiserver + kube-controller-manager on free loopback ports, in a temporary run dir."""

    def __init__(self, binaries: ClusterBinaries | None = None, *, startup_timeout: float = 90.0) -> None:
        self.binaries = binaries if binaries is not None else install_binaries()
        self.startup_timeout = startup_timeout
        self.run_dir = Path(tempfile.mkdtemp(prefix="kar-cluster-"))
        self.bin_dir = self.run_dir / "bin"
        self.kubeconfig = self.run_dir / "admin.kubeconfig"
        self.server = ""
        self.ca_file = self.run_dir / "pki" / "ca.crt"
        self.kubectl_path = self.bin_dir / "kubectl"
        self.server_version: KubeVersion = (0, 0)
        self.timings: dict[str, float] = {}
        self.processes: list[ManagedProcess] = []
        self.env: dict[str, str] = {}
        self._http: httpx.Client | None = None
        self._ca: tuple[bytes, bytes] = (b"", b"")
        self._stopped = False

    # lifecycle

    def start(self) -> Self:
        """Start all components and wait until a Deployment would be reconciled; returns self."""
        _register(self)
        started = time.monotonic()
        try:
            self._link_binaries()
            pki = self._write_pki()
            etcd_url = self._start_etcd()
            self._start_apiserver(pki, etcd_url)
            self._start_controller_manager(pki)
            self._wait_for(
                "default ServiceAccount",
                lambda: self.api_get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
                self.processes[-1],
            )
        except KeyboardInterrupt:
            self.stop()
            raise
        except BaseException:
            self.stop(keep_run_dir=True)
            raise
        self.timings["total"] = time.monotonic() - started
        return self

    def stop(self, *, keep_run_dir: bool = False) -> None:
        """Stop the components in reverse start order (etcd last): SIGTERM, then SIGKILL; idempotent."""
        if self._stopped:
            return
        try:
            for proc in reversed(self.processes):
                proc.terminate(_STOP_GRACE_SECONDS)
        except KeyboardInterrupt:
            # Ctrl-C while stopping: no more grace, but nothing may survive.
            for proc in self.processes:
                proc.kill()
            self._release(keep_run_dir)
            raise
        self._release(keep_run_dir)

    def _release(self, keep_run_dir: bool) -> None:
        self._stopped = True
        _unregister(self)
        for proc in self.processes:
            proc.close()
        if self._http is not None:
            self._http.close()
        if keep_run_dir:
            print(f"local control plane: logs kept in {self.run_dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(keep_run_dir=exc_type is not None)

    def restart_apiserver(self, *, down_seconds: float = 0.0) -> float:
        """SIGKILL kube-apiserver, wait `down_seconds`, start it again with the same flags and port;
        returns the seconds it was not answering."""
        index, old = next((i, p) for i, p in enumerate(self.processes) if p.name == "kube-apiserver")
        started = time.monotonic()
        old.kill()
        old.close()
        time.sleep(down_seconds)
        proc = ManagedProcess(old.name, [str(a) for a in old.popen.args], old.log_path, self.env)  # type: ignore[union-attr]
        self.processes[index] = proc
        http = self._http
        assert http is not None
        self._wait_for(
            "kube-apiserver after restart", lambda: http.get(f"{self.server}/readyz").is_success, proc
        )
        return time.monotonic() - started

    @property
    def pids(self) -> list[int]:
        """Process ids of the running components (each also a process-group id)."""
        return [p.pid for p in self.processes]

    # use

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the chosen kubectl as admin (or as `kubeconfig`); raises KubectlError on failure if `check`."""
        argv = [
            str(self.kubectl_path),
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            f"--cache-dir={self.run_dir / 'kubectl-cache'}",
            *args,
        ]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def service_account_kubeconfig(self, namespace: str, name: str, *, duration: str = "1h") -> Path:
        """A kubeconfig (mode 0600, in the run dir) that acts as ServiceAccount `namespace/name`."""
        token = self.kubectl(
            "create", "token", name, "-n", namespace, f"--duration={duration}"
        ).stdout.strip()
        path = self.run_dir / f"sa-{namespace}-{name}.kubeconfig"
        user = f"system:serviceaccount:{namespace}:{name}"
        _write_private(
            path, _kubeconfig(self.server, self.ca_file.read_bytes(), user, token=token, namespace=namespace)
        )
        return path

    def client_kubeconfig(self, path: Path, user: str, groups: Sequence[str] = ()) -> Path:
        """Write a kubeconfig (mode 0600) with a client certificate for `user` in `groups`; returns `path`."""
        cert, key = mint_client_cert(*self._ca, user, groups)
        _write_private(path, _kubeconfig(self.server, self._ca[0], user, cert, key))
        return path

    def api_get(self, path: str) -> dict[str, Any] | None:
        """GET `path` from the API server as admin: the JSON body, or None for 404."""
        if self._http is None:
            raise ClusterError("the API server is not started")
        response = self._http.get(self.server + path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    # components

    def _link_binaries(self) -> None:
        """One bin dir with every binary, kubectl being the one matching the server's version."""
        self.bin_dir.mkdir()
        for name in ("etcd", "kube-apiserver", "kube-controller-manager", "helm"):
            (self.bin_dir / name).symlink_to(self.binaries.find(name))
        apiserver = self.binaries.find("kube-apiserver")
        self.server_version = parse_kube_version(binary_version(apiserver, "--version"))
        machine = machine_kubectl([*self.binaries.path_dirs, self.bin_dir])
        self.kubectl_path.symlink_to(
            choose_kubectl(self.server_version, machine, self.binaries.find("kubectl"))
        )
        self.env = child_environment([self.bin_dir])
        self.env["KUBECONFIG"] = str(self.kubeconfig)

    def _write_pki(self) -> _Pki:
        pki_dir = self.run_dir / "pki"
        pki_dir.mkdir(mode=0o700)
        ca_cert, ca_key = (_pem(x) for x in mint_ca(f"{CLUSTER_NAME}-ca"))
        serving_cert, serving_key = (
            _pem(x)
            for x in mint_serving_cert(
                ca_cert,
                ca_key,
                [
                    "localhost",
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local",
                ],
                ["127.0.0.1", KUBERNETES_SERVICE_IP],
            )
        )
        self._ca = (ca_cert, ca_key)
        sa_private, sa_public = mint_service_account_key()
        files = {
            "ca.crt": ca_cert,
            "apiserver.crt": serving_cert,
            "apiserver.key": serving_key,
            "sa.key": sa_private,
            "sa.pub": sa_public,
        }
        for name, content in files.items():
            _write_private(pki_dir / name, content)
        return _Pki(
            ca_file=pki_dir / "ca.crt",
            serving_cert=pki_dir / "apiserver.crt",
            serving_key=pki_dir / "apiserver.key",
            sa_private=pki_dir / "sa.key",
            sa_public=pki_dir / "sa.pub",
            admin=mint_client_cert(ca_cert, ca_key, "kube-autorollout-admin", ["system:masters"]),
            controller_manager=mint_client_cert(ca_cert, ca_key, "system:kube-controller-manager"),
            ca_pem=ca_cert,
        )

    def _start_etcd(self) -> str:
        etcd = self.bin_dir / "etcd"
        fsync = ["--unsafe-no-fsync=true"] if "unsafe-no-fsync" in _help_text(etcd) else []

        def argv(ports: list[int]) -> list[str]:
            client, peer = (f"http://127.0.0.1:{p}" for p in ports)
            return [
                str(etcd),
                "--name=kar",
                f"--data-dir={self.run_dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=kar={peer}",
                "--log-level=warn",
                *fsync,
            ]

        def ready(ports: list[int]) -> bool:
            response = httpx.get(f"http://127.0.0.1:{ports[0]}/health", timeout=2, trust_env=False)
            return response.status_code == 200 and response.json().get("health") == "true"

        ports = self._launch("etcd", argv, 2, ready)
        return f"http://127.0.0.1:{ports[0]}"

    def _start_apiserver(self, pki: _Pki, etcd_url: str) -> None:
        admin_cert, admin_key = self.run_dir / "pki" / "admin.crt", self.run_dir / "pki" / "admin.key"
        _write_private(admin_cert, pki.admin[0])
        _write_private(admin_key, pki.admin[1])
        context = ssl.create_default_context(cafile=str(pki.ca_file))
        context.load_cert_chain(admin_cert, admin_key)
        self._http = httpx.Client(verify=context, timeout=5, trust_env=False)

        def argv(ports: list[int]) -> list[str]:
            return [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # A loopback advertise address is not a valid endpoint of the `kubernetes` Service;
                # nothing here runs in a pod, so the Service needs no endpoints.
                "--endpoint-reconciler-type=none",
                f"--secure-port={ports[0]}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_file}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki.sa_public}",
                f"--service-account-signing-key-file={pki.sa_private}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--authorization-mode=Node,RBAC",
                # Webhook Services are called at their endpoints (pod IPs on the real node's bridge):
                # there is no kube-proxy to route a ClusterIP.
                "--enable-aggregator-routing=true",
                # The real node's kubelet trusts client certificates of the cluster CA (logs, exec).
                f"--kubelet-client-certificate={admin_cert}",
                f"--kubelet-client-key={admin_key}",
                # By its IP on the bridge: a node's host name would be looked up in DNS.
                "--kubelet-preferred-address-types=InternalIP",
                "--allow-privileged=true",
                "--profiling=false",
            ]

        def ready(ports: list[int]) -> bool:
            response = self._http.get(f"https://127.0.0.1:{ports[0]}/readyz")  # type: ignore[union-attr]
            return response.status_code == 200

        (port,) = self._launch("kube-apiserver", argv, 1, ready)
        self.server = f"https://127.0.0.1:{port}"
        _write_private(self.kubeconfig, _kubeconfig(self.server, pki.ca_pem, "admin", *pki.admin))

    def _start_controller_manager(self, pki: _Pki) -> None:
        kubeconfig = self.run_dir / "controller-manager.kubeconfig"
        _write_private(
            kubeconfig,
            _kubeconfig(self.server, pki.ca_pem, "system:kube-controller-manager", *pki.controller_manager),
        )

        def argv(ports: list[int]) -> list[str]:
            return [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports[0]}",
                f"--cert-dir={self.run_dir / 'controller-manager-certs'}",
                "--leader-elect=false",
                "--controllers=*",
                f"--service-account-private-key-file={pki.sa_private}",
                f"--root-ca-file={pki.ca_file}",
                "--use-service-account-credentials=true",
                f"--cluster-name={CLUSTER_NAME}",
                # The defaults (20 QPS) would make the controllers the bottleneck of benchmarks.
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--profiling=false",
            ]

        def ready(ports: list[int]) -> bool:
            # Its serving certificate is self-signed at start; /healthz needs no client identity.
            response = httpx.get(
                f"https://127.0.0.1:{ports[0]}/healthz", verify=False, timeout=2, trust_env=False
            )
            return response.status_code == 200

        self._launch("kube-controller-manager", argv, 1, ready)

    def _launch(
        self,
        name: str,
        argv: Callable[[list[int]], list[str]],
        port_count: int,
        ready: Callable[[list[int]], bool],
    ) -> list[int]:
        """Start `name` on fresh free ports, retrying when another process took a port meanwhile."""
        started = time.monotonic()
        for attempt in range(1, _START_ATTEMPTS + 1):
            ports = free_ports(port_count)
            proc = ManagedProcess(name, argv(ports), self.run_dir / f"{name}.log", self.env)
            self.processes.append(proc)
            try:
                self._wait_for(name, functools.partial(ready, ports), proc)
            except _ProcessExitedError:
                if attempt < _START_ATTEMPTS and "address already in use" in proc.log_tail().lower():
                    self.processes.remove(proc)
                    proc.close()
                    continue
                raise
            self.timings[name] = time.monotonic() - started
            return ports
        raise AssertionError("unreachable")

    def _wait_for(self, what: str, check: Callable[[], bool], proc: ManagedProcess) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if not proc.alive():
                raise _ProcessExitedError(
                    f"{proc.name} exited with code {proc.popen.returncode} while waiting for {what};"
                    f" log {proc.log_path}:\n{proc.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if check():
                    return
            if time.monotonic() > deadline:
                raise ClusterStartError(
                    f"{what} not ready after {self.startup_timeout:.0f}s;"
                    f" log {proc.log_path}:\n{proc.log_tail()}"
                )
            time.sleep(0.1)


def _pem(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _write_private(path: Path, content: bytes | str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(_pem(content))


def _help_text(binary: Path) -> str:
    result = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=30, check=False)
    return result.stdout + result.stderr


def _kubeconfig(
    server: str,
    ca_pem: bytes,
    user: str,
    cert_pem: bytes = b"",
    key_pem: bytes = b"",
    *,
    token: str = "",
    namespace: str = "default",
) -> str:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    credentials = (
        {"token": token}
        if token
        else {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}
    )

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CLUSTER_NAME, "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {"name": CLUSTER_NAME, "context": {"cluster": CLUSTER_NAME, "user": user, "namespace": namespace}}
        ],
        "current-context": CLUSTER_NAME,
    }
    return yaml.safe_dump(config, sort_keys=False)


# --- cleanup on exit -----------------------------------------------------------------------------

_live: dict[int, LocalCluster] = {}
_live_lock = threading.Lock()


def _register(cluster: LocalCluster) -> None:
    with _live_lock:
        _live[id(cluster)] = cluster
    _install_exit_hooks()


@functools.cache
def _install_exit_hooks() -> None:
    atexit.register(_stop_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _stop_all_and_die)


def _unregister(cluster: LocalCluster) -> None:
    with _live_lock:
        _live.pop(id(cluster), None)


def _stop_all() -> None:
    with _live_lock:
        clusters = list(_live.values())
    for cluster in clusters:
        cluster.stop(keep_run_dir=True)  # only reached when the owner did not stop it: keep the logs


def _stop_all_and_die(signum: int, _frame: FrameType | None) -> None:
    _stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
