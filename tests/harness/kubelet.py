"""A simulated node for the local control plane, which has no kubelet.

It does what a kubelet pulling with `imagePullPolicy: Always` would leave behind in the API: pods
are bound to one node and reported Running and Ready, with `containerStatuses[].imageID` set to the
digest each tag had at its registry when the pod started; pods being deleted are removed. It keeps
the node's Lease fresh so kube-controller-manager never marks the node unreachable.

Registry lookups here are independent of the product's client on purpose (HEAD with the same
Accept list as containerd), so tests compare two implementations.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from autorollout.kube.connection import load_connection

NODE_NAME = "sim-node"
_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
_LEASE_RENEW_SECONDS = 10.0

ImageResolver = Callable[[str], str | None]
"""Image reference as in the pod spec -> `sha256:...` the tag points to now, or None."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def head_digest(image: str, *, scheme: str = "http", verify: Any = True) -> str | None:
    """Digest of `host[:port]/repo:tag` at a loopback registry, anonymously; None when not found."""
    name, _, tag = image.rpartition(":")
    if "/" in tag or not name:
        name, tag = image, "latest"
    host, _, repository = name.partition("/")
    response = httpx.head(
        f"{scheme}://{host}/v2/{repository}/manifests/{tag}",
        headers={"Accept": _ACCEPT},
        verify=verify,
        trust_env=False,
        timeout=5,
    )
    return response.headers.get("Docker-Content-Digest") if response.status_code == 200 else None


def image_id(image: str, digest: str) -> str:
    """`repository@digest` as containerd reports it in `containerStatuses[].imageID`."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return f"{name}@{digest}"


class SimulatedKubelet:
    """Runs in a background thread until stopped; only pods of `namespaces` are handled."""

    def __init__(
        self,
        kubeconfig: Path,
        namespaces: Iterable[str] | None = None,
        *,
        resolve: ImageResolver = head_digest,
        interval: float = 0.2,
    ) -> None:
        settings = load_connection(str(kubeconfig))
        headers = {"Authorization": f"Bearer {settings.token.current()}"} if settings.token else {}
        self._http = httpx.Client(
            base_url=settings.server,
            verify=settings.ssl_context,
            headers=headers,
            trust_env=False,
            timeout=10,
        )
        self.namespaces: set[str] | None = set(namespaces) if namespaces is not None else None
        self._resolve = resolve
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simulated-kubelet", daemon=True)
        self._lease_renewed = 0.0
        self.started_pods = 0
        self.errors: list[str] = []

    # lifecycle

    def start(self) -> Self:
        self._register_node()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._http.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def watch_namespace(self, namespace: str) -> None:
        if self.namespaces is not None:
            self.namespaces.add(namespace)

    # the loop

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._renew_lease()
                self._sync_pods()
            except httpx.HTTPError as exc:  # the API server may be restarting in fault tests
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(self._interval)

    def _register_node(self) -> None:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE_NAME}}
        response = self._http.post("/api/v1/nodes", json=node)
        if response.status_code not in (201, 409):
            response.raise_for_status()
        self._report_node_ready()

    def _report_node_ready(self) -> None:
        status = {
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "simulated by the kube-autorollout test harness",
                        "lastHeartbeatTime": _now(),
                        "lastTransitionTime": _now(),
                    }
                ],
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "10000"},
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "10000"},
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            }
        }
        self._http.patch(
            f"/api/v1/nodes/{NODE_NAME}/status",
            json=status,
            headers={"Content-Type": "application/merge-patch+json"},
        ).raise_for_status()

    def _renew_lease(self) -> None:
        if time.monotonic() - self._lease_renewed < _LEASE_RENEW_SECONDS:
            return
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE_NAME}"
        renew = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": NODE_NAME, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": NODE_NAME, "leaseDurationSeconds": 40, "renewTime": renew},
        }
        response = self._http.patch(
            path, json={"spec": lease["spec"]}, headers={"Content-Type": "application/merge-patch+json"}
        )
        if response.status_code == 404:
            self._http.post(path.rsplit("/", 1)[0], json=lease).raise_for_status()
        else:
            response.raise_for_status()
        self._report_node_ready()
        self._lease_renewed = time.monotonic()

    def _pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._http.get("/api/v1/pods").raise_for_status().json()["items"]
        if self.namespaces is None:
            return items
        return [p for p in items if p["metadata"]["namespace"] in self.namespaces]

    def _sync_pods(self) -> None:
        for pod in self._pods():
            meta, spec = pod["metadata"], pod["spec"]
            path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
            if meta.get("deletionTimestamp"):
                with contextlib.suppress(httpx.HTTPStatusError):
                    self._http.request("DELETE", path, json={"gracePeriodSeconds": 0}).raise_for_status()
            elif not spec.get("nodeName"):
                self._bind(path, meta["name"])
            elif spec["nodeName"] == NODE_NAME and pod.get("status", {}).get("phase") != "Running":
                self._start(path, pod)

    def _bind(self, path: str, name: str) -> None:
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME},
        }
        response = self._http.post(f"{path}/binding", json=binding)
        if response.status_code not in (201, 409) and not _torn_down(response):
            self.errors.append(f"bind {path}: {response.status_code} {response.text[:200]}")

    def _container_status(self, container: dict[str, Any], started: str) -> dict[str, Any]:
        image = container["image"]
        digest = image.split("@", 1)[1] if "@" in image else self._resolve(image)
        status: dict[str, Any] = {
            "name": container["name"],
            "image": image,
            "imageID": image_id(image, digest) if digest else "",
            "ready": True,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": started}},
        }
        if not digest:
            status.update(ready=False, started=False, state={"waiting": {"reason": "ErrImagePull"}})
        return status

    def _start(self, path: str, pod: dict[str, Any]) -> None:
        started = _now()
        spec = pod["spec"]
        statuses = [self._container_status(c, started) for c in spec.get("containers", [])]
        init_statuses = [
            {
                **self._container_status(c, started),
                "ready": True,
                "state": {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": started,
                        "finishedAt": started,
                    }
                },
            }
            for c in spec.get("initContainers", [])
        ]
        ready = "True" if all(s["ready"] for s in statuses) else "False"
        conditions = [
            {
                "type": kind,
                "status": "True" if kind in ("PodScheduled", "Initialized") else ready,
                "lastTransitionTime": started,
            }
            for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ]
        status = {
            "status": {
                "phase": "Running",
                "hostIP": "127.0.0.1",
                "podIP": "127.0.0.1",
                "startTime": started,
                "conditions": conditions,
                "containerStatuses": statuses,
                "initContainerStatuses": init_statuses,
            }
        }
        response = self._http.patch(
            f"{path}/status", json=status, headers={"Content-Type": "application/merge-patch+json"}
        )
        if response.is_success:
            self.started_pods += 1
        elif not _torn_down(response):
            self.errors.append(f"status {path}: {response.status_code} {response.text[:200]}")


def _torn_down(response: httpx.Response) -> bool:
    """The pod or its namespace went away under us: a test's teardown, not a node failure."""
    if response.status_code == 404:
        return True
    return response.status_code == 403 and "being terminated" in response.text
