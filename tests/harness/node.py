"""A real node for the local control plane: kubelet + containerd + runc, pods on a bridge of its own.

The kubelet is built with the control plane (scripts/install-cluster-binaries.sh); containerd 1.6,
runc and the CNI plugins are Debian's (scripts/install-system-deps.sh). Everything runs as root (a
kubelet mounts volumes, creates network namespaces and cgroups) under /var/lib/kar-node/N, logs in a
temporary directory. N is the first free slot (tests/harness/nodecleanup.py), so several sessions can
each run a node: pods get addresses of 10.250.N.0/24 on bridge kar-brN, whose host address 10.250.N.1
is the node's IP (`host_address`); traffic goes nowhere but loopback and that bridge:
- pods reach the API server at the `kubernetes` Service (10.0.0.1:443) through one iptables DNAT rule
  to its loopback port (there is no kube-proxy);
- the API server reaches webhook pods at their endpoints (it runs with --enable-aggregator-routing);
- a registry pods must reach (the product's own lookups) listens on the host address
  (`start_registry(..., address=node.host_address)`); containerd pulls from loopback registries too.
There is no kube-scheduler: the node binds the pending pods of the namespaces it is handed
(`watch_namespace`), so the simulated node of the benchmarks can share the control plane.

Cleanup (tests/harness/nodecleanup.py) runs at stop, from a reaper process if the test runner is
SIGKILLed, and before every start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx
import yaml

from autorollout.kube.connection import load_connection
from tests.harness import nodecleanup as cleanup
from tests.harness import nodeconfig
from tests.harness.cluster import KUBERNETES_SERVICE_IP, LocalCluster, ManagedProcess, free_ports
from tests.harness.podimages import PAUSE_REPOSITORY, PAUSE_TAG, push_pause_image
from tests.harness.registry import LocalRegistry, start_registry

CONTAINERD = "/usr/bin/containerd"
_BIND_INTERVAL = 0.2


class NodeError(Exception):
    """The real node could not be started or used."""


class LocalNode:
    """One real node of `cluster`. Its own plain-HTTP registry on the host address (`.registry`)
    serves the pause image, and tests may push theirs there."""

    def __init__(self, cluster: LocalCluster, *, startup_timeout: float = 120.0) -> None:
        self.cluster = cluster
        self.registry: LocalRegistry | None = None
        self.startup_timeout = startup_timeout
        self.log_dir = Path(tempfile.mkdtemp(prefix="kar-node-logs-"))
        self.timings: dict[str, float] = {}
        self.processes: list[ManagedProcess] = []
        self.namespaces: set[str] = set()
        self._lock: IO[str] | None = None
        self.slot = cleanup.NodeSlot(0)  # the one taken at start
        self._reaper: subprocess.Popen[bytes] | None = None
        self._http: httpx.Client | None = None
        self._stop = threading.Event()
        self._binder = threading.Thread(target=self._bind_loop, name="node-binder", daemon=True)
        self.bind_errors: list[str] = []

    # lifecycle

    def start(self) -> Self:
        """Clean up what an earlier node left, then start containerd and the kubelet; returns once
        the Node is Ready."""
        started = time.monotonic()
        self._take_slot()
        try:
            cleanup.clean_node(self.slot)
            self.timings["cleanup"] = time.monotonic() - started
            self._prepare_root()
            self._start_reaper()
            self._create_bridge()
            self.registry = start_registry("plain", self.log_dir / "registry", address=self.slot.host_address)
            self.trust_registry(self.registry)
            pusher = self.registry.pusher()
            try:
                push_pause_image(pusher)
            finally:
                pusher.close()
            self._start_containerd()
            self._start_kubelet()
            self._http = self._api_client()
            self._wait_ready()
            if self._reaper is not None and self._reaper.poll() is not None:
                raise NodeError(
                    f"the node's reaper exited: {(self.log_dir / 'reaper.log').read_text()[-1000:]}"
                )
        except BaseException:
            self.stop(keep_logs=True)
            raise
        self._binder.start()
        self.timings["total"] = time.monotonic() - started
        return self

    def stop(self, *, keep_logs: bool = False) -> None:
        """Stop everything and remove what the node created (idempotent)."""
        self._stop.set()
        if self._binder.is_alive():
            self._binder.join(timeout=5)
        for proc in reversed(self.processes):
            proc.terminate(3.0)
            proc.close()
        self.processes.clear()
        if self.registry is not None:
            self.registry.stop()
        if self._lock is not None:
            cleanup.clean_node(self.slot)
            if self._http is not None:
                self._http.delete(f"/api/v1/nodes/{self.name}")
            if self._reaper is not None:
                self._reaper.kill()
                self._reaper.wait()
            self._lock.close()
            self._lock = None
        if self._http is not None:
            self._http.close()
            self._http = None
        if keep_logs:
            print(f"real node: logs kept in {self.log_dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(keep_logs=exc_type is not None)

    # use

    @property
    def name(self) -> str:
        """The Node's name."""
        return self.slot.node_name

    @property
    def host_address(self) -> str:
        """The bridge's host address, which is also the node's IP (pods reach the host there)."""
        return self.slot.host_address

    def watch_namespace(self, namespace: str) -> None:
        """Bind the pods of `namespace` to this node from now on."""
        self.namespaces.add(namespace)

    def trust_registry(self, registry: LocalRegistry) -> None:
        """Let containerd pull from `registry`: plain HTTP, or TLS with its test CA."""
        host_dir = self.slot.root / "certs.d" / registry.host
        host_dir.mkdir(parents=True, exist_ok=True)
        ca = f'  ca = "{registry.ca_file}"\n' if registry.ca_file else ""
        (host_dir / "hosts.toml").write_text(
            f'server = "{registry.url}"\n[host."{registry.url}"]\n  capabilities = ["pull", "resolve"]\n{ca}'
        )

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The end of the log of component `name` ("containerd" or "kubelet")."""
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # set-up

    def _take_slot(self) -> None:
        """The first free slot (bridge, subnet, root); waits while all are taken."""
        deadline = time.monotonic() + self.startup_timeout
        while True:
            for index in range(cleanup.SLOTS):
                lock = cleanup.try_lock(cleanup.NodeSlot(index))
                if lock is not None:
                    self._lock, self.slot = lock, cleanup.NodeSlot(index)
                    return
            if time.monotonic() > deadline:
                raise NodeError(
                    f"all {cleanup.SLOTS} real-node slots are taken (locks in {cleanup.LOCK_DIR})"
                )
            time.sleep(0.5)

    def _prepare_root(self) -> None:
        for directory in ("pids", "certs.d", "cni/net.d", "cni/ipam", "kubelet", "runc"):
            (self.slot.root / directory).mkdir(parents=True, exist_ok=True)
        owner = cleanup.process_identity(os.getpid())
        assert owner is not None
        self.slot.owner_file.write_text(owner)

    def _start_reaper(self) -> None:
        owner = self.slot.owner_file.read_text()
        argv = [sys.executable, "-m", "tests.harness.nodecleanup", f"--slot={self.slot.index}"]
        with (self.log_dir / "reaper.log").open("ab") as log:
            # Not a ManagedProcess: it must outlive its owner (no parent-death signal) to clean up.
            self._reaper = subprocess.Popen(
                [*argv, f"--reap-after={os.getpid()}", f"--owner={owner}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=Path(__file__).resolve().parents[2],
            )

    def _create_bridge(self) -> None:
        subnet = self.slot.subnet
        nat = ["iptables", "-w", "5", "-t", "nat"]
        commands = [
            ["ip", "link", "add", self.slot.bridge, "type", "bridge"],
            ["ip", "addr", "add", f"{self.slot.host_address}/{subnet.prefixlen}", "dev", self.slot.bridge],
            ["ip", "link", "set", self.slot.bridge, "up"],
            [*nat, "-N", self.slot.nat_chain],
            [
                *nat,
                "-A",
                self.slot.nat_chain,
                "-d",
                f"{KUBERNETES_SERVICE_IP}/32",
                *self._dnat_to_apiserver(),
            ],
            [*nat, "-I", "PREROUTING", "-i", self.slot.bridge, "-j", self.slot.nat_chain],
        ]
        for argv in commands:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            if result.returncode != 0:
                raise NodeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
        # A DNAT to 127.0.0.1 is only routed for packets that arrive on an interface allowing it.
        Path(f"/proc/sys/net/ipv4/conf/{self.slot.bridge}/route_localnet").write_text("1\n")
        conflist = self.slot.root / "cni" / "net.d" / "10-kar-node.conflist"
        conflist.write_text(json.dumps(nodeconfig.cni_config(self.slot), indent=2))

    def _dnat_to_apiserver(self) -> list[str]:
        address = self.cluster.server.removeprefix("https://")
        return ["-p", "tcp", "--dport", "443", "-j", "DNAT", f"--to-destination={address}"]

    def _start_containerd(self) -> None:
        assert self.registry is not None
        root = self.slot.root
        config_path = root / "containerd.toml"
        sandbox_image = f"{self.registry.host}/{PAUSE_REPOSITORY}:{PAUSE_TAG}"
        config_path.write_text(nodeconfig.containerd_config(self.slot, sandbox_image))
        proc = self._launch("containerd", [CONTAINERD, "--config", str(config_path)])
        self._wait("containerd socket", self.slot.containerd_socket.exists, proc)

    def _start_kubelet(self) -> None:
        root = self.slot.root
        kubeconfig = self.cluster.client_kubeconfig(
            root / "kubelet.kubeconfig", f"system:node:{self.name}", ["system:nodes"]
        )
        port, healthz = free_ports(2)
        (root / "resolv.conf").write_text("")
        config_path = root / "kubelet.yaml"
        config = nodeconfig.kubelet_config(self.slot, port, healthz, self.cluster.ca_file)
        config_path.write_text(yaml.safe_dump(config))
        kubelet = self.cluster.binaries.find("kubelet")
        proc = self._launch(
            "kubelet",
            [
                str(kubelet),
                f"--config={config_path}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={root / 'kubelet'}",
                f"--cert-dir={root / 'kubelet' / 'pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.slot.host_address}",
                "--v=1",
            ],
        )
        self._wait(
            "kubelet healthz",
            lambda: httpx.get(f"http://127.0.0.1:{healthz}/healthz", timeout=2, trust_env=False).is_success,
            proc,
        )

    def _launch(self, name: str, argv: list[str]) -> ManagedProcess:
        started = time.monotonic()
        proc = ManagedProcess(name, argv, self.log_dir / f"{name}.log", self.cluster.env)
        self.processes.append(proc)
        (self.slot.pids_dir / name).write_text(str(proc.pid))
        self.timings[f"{name}-launch"] = time.monotonic() - started
        return proc

    def _api_client(self) -> httpx.Client:
        settings = load_connection(str(self.cluster.kubeconfig))
        return httpx.Client(
            base_url=settings.server, verify=settings.ssl_context, trust_env=False, timeout=10
        )

    def _wait_ready(self) -> None:
        started = time.monotonic()
        kubelet = self.processes[-1]

        def ready() -> bool:
            assert self._http is not None
            response = self._http.get(f"/api/v1/nodes/{self.name}")
            if response.status_code != 200:
                return False
            conditions = response.json().get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        self._wait("Node Ready", ready, kubelet)
        self.timings["node-ready"] = time.monotonic() - started

    def _wait(self, what: str, check: Any, proc: ManagedProcess) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if not proc.alive():
                raise NodeError(
                    f"{proc.name} exited with code {proc.popen.returncode} while waiting for {what};"
                    f" log {proc.log_path}:\n{proc.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError, OSError):
                if check():
                    return
            if time.monotonic() > deadline:
                raise NodeError(
                    f"{what} not ready after {self.startup_timeout:.0f}s;"
                    f" log {proc.log_path}:\n{proc.log_tail()}"
                )
            time.sleep(0.2)

    # binding (the node's own scheduler)

    def _bind_loop(self) -> None:
        while not self._stop.wait(_BIND_INTERVAL):
            for namespace in list(self.namespaces):
                with contextlib.suppress(httpx.HTTPError):
                    self._bind_pending(namespace)

    def _bind_pending(self, namespace: str) -> None:
        assert self._http is not None
        response = self._http.get(
            f"/api/v1/namespaces/{namespace}/pods", params={"fieldSelector": "spec.nodeName="}
        )
        if response.status_code != 200:
            return
        for pod in response.json().get("items", []):
            meta = pod["metadata"]
            if meta.get("deletionTimestamp") or not may_run_on(pod, self.name):
                continue
            binding = {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": meta["name"], "namespace": namespace},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.name},
            }
            result = self._http.post(
                f"/api/v1/namespaces/{namespace}/pods/{meta['name']}/binding", json=binding
            )
            if result.status_code not in (201, 409):
                self.bind_errors.append(f"{namespace}/{meta['name']}: HTTP {result.status_code}")


def may_run_on(pod: dict[str, Any], node_name: str) -> bool:
    """False for a pod pinned to another node by name (a DaemonSet's pod for another node)."""
    affinity = pod["spec"].get("affinity", {}).get("nodeAffinity", {})
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution", {})
    for term in required.get("nodeSelectorTerms", []):
        for field in term.get("matchFields", []):
            if field.get("key") == "metadata.name" and field.get("operator") == "In":
                return node_name in field.get("values", [])
    return True
