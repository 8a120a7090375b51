"""Admission under load: wrk (a separate process) POSTs AdmissionReviews of labeled Deployments with
1-3 containers to the real `kube-autorollout webhook` process over TLS, with a warm digest cache and
with cold lookups (cache TTL 0: every request resolves its images at the local TLS registry), and,
in the same run, to a bare uvicorn endpoint returning a fixed AdmissionReview: the ceiling (raw ASGI,
and mounted in a Starlette route as the webhook's endpoint is).

Usage: python -m bench.admission [--duration 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.env import log, save
from bench.fleet import push_images
from bench.proc import load_average, machine
from certs.mint import write_bundle
from tests.harness.commands import webhook_flags
from tests.harness.registry import free_port, start_registry

CLI = str(Path(sys.executable).with_name("kube-autorollout"))
LUA = Path(__file__).with_name("admission.lua")
WRK = "/usr/bin/wrk"
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def review(name: str, images: list[str]) -> dict[str, Any]:
    """A CREATE AdmissionReview of a labeled Deployment running `images`."""
    containers = [
        {
            "name": f"c{i}",
            "image": image,
            "imagePullPolicy": "Always",
            "ports": [{"containerPort": 8080 + i, "protocol": "TCP"}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
            "env": [{"name": f"SETTING_{k}", "value": f"value-{k}"} for k in range(6)],
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        }
        for i, image in enumerate(images)
    ]
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "team",
            "labels": {"kube-autorollout/enabled": "true", "app": name, "tier": "backend"},
            "annotations": {"owner": "team-a", "description": "benchmark workload " * 4},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": {"app": name, "tier": "backend"}},
                "spec": {
                    "containers": containers,
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "schedulerName": "default-scheduler",
                    "securityContext": {},
                },
            },
        },
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": name,
            "namespace": "team",
            "operation": "CREATE",
            "userInfo": {
                "username": "kubernetes-admin",
                "groups": ["system:masters", "system:authenticated"],
            },
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions", "fieldManager": "kubectl"},
        },
    }


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(url: str, bodies: Path, *, duration: int, connections: int, delay_ms: int = 0) -> dict[str, Any]:
    """One wrk run: requests/s, p50/p90/p99 latency (s), non-2xx count."""
    env = {**os.environ, "KAR_BODIES": str(bodies), "KAR_DELAY_MS": str(delay_ms)}
    out = subprocess.run(
        [WRK, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(LUA), url],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    result: dict[str, Any] = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "90", "99"):
        result[f"p{pct}"] = _seconds(re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    result["non_2xx"] = int(bad.group(1)) if bad else 0
    result["socket_errors"] = errors.group(1) if errors else ""
    return result


class Server:
    def __init__(self, argv: list[str], port: int, ca: Path, log_path: Path) -> None:
        self.port = port
        with log_path.open("wb") as out:
            self.popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        context = ssl.create_default_context(cafile=str(ca))
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(self.url, content=b"{}", verify=context, timeout=2, trust_env=False)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline or self.popen.poll() is not None:
                    raise RuntimeError(f"{argv[:3]} did not start: {log_path.read_text()[-2000:]}") from None
                time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/mutate"

    def stop(self) -> None:
        os.killpg(self.popen.pid, signal.SIGTERM)
        self.popen.wait(timeout=20)


def start_webhook(workdir: Path, bundle: Any, registry_ca: Path, ttl: float) -> Server:
    config = {
        "logLevel": "info",
        "digestCacheTtlSeconds": ttl,
        "webserver": {"port": 0},
        "tls": {"caCertificatePaths": [str(registry_ca)]},
        "webhook": {"imagePullPolicy": "mutate"},
    }
    path = workdir / f"webhook-{ttl}.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [
        CLI,
        "webhook",
        "--config",
        str(path),
        *webhook_flags(bundle.tls_cert, bundle.tls_key, port),
    ]
    return Server(argv, port, bundle.ca_cert, workdir / f"webhook-{ttl}.log")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--out", default="admission")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kar-admission-"))
    registry = start_registry("tls", workdir / "registry")
    assert registry.ca_file is not None
    results: dict[str, Any] = {"machine": machine(), "load_at_start": load_average(), "runs": []}
    results["duration"] = args.duration
    try:
        images = [i.reference for i in push_images(registry, "bench/adm", 30, seed=3)]
        bodies = workdir / "bodies.jsonl"
        with bodies.open("w") as out:
            for n in range(300):
                chosen = [images[(n * 7 + k) % len(images)] for k in range(1 + n % 3)]
                out.write(json.dumps(review(f"web-{n}", chosen), separators=(",", ":")) + "\n")
        sizes = [len(line) for line in bodies.read_text().splitlines()]
        results["body_bytes_median"] = statistics.median(sizes)
        bundle = write_bundle(workdir / "tls", ["localhost"], ["127.0.0.1"])
        context = ssl.create_default_context(cafile=str(bundle.ca_cert))
        warm = start_webhook(workdir, bundle, registry.ca_file, 3600.0)
        cold = start_webhook(workdir, bundle, registry.ca_file, 0.0)
        # The ceiling answers with what our webhook answers to the first body.
        first = bodies.read_text().splitlines()[0]
        answer = httpx.post(warm.url, content=first, verify=context, trust_env=False).content
        assert b'"patch"' in answer, answer[:300]
        (workdir / "fixed.json").write_bytes(answer)
        results["response_bytes"] = len(answer)

        def ceiling(kind: str) -> Server:
            port = free_port()
            argv = [sys.executable, "-m", "bench.bare_endpoint", str(port), str(bundle.tls_cert)]
            argv += [str(bundle.tls_key), str(workdir / "fixed.json"), kind]
            return Server(argv, port, bundle.ca_cert, workdir / f"bare-{kind}.log")

        bare = ceiling("raw")
        bare_starlette = ceiling("starlette")
        for server in (bare, bare_starlette, warm, cold):
            status = httpx.post(server.url, content=first, verify=context, trust_env=False).status_code
            assert status == 200, f"{server.url} answered {status}"
        # warm the cache: every body once
        with httpx.Client(verify=context, trust_env=False) as client:
            for line in bodies.read_text().splitlines():
                client.post(warm.url, content=line)
        floor = registry_head_floor(registry, images[0])
        results["floors"] = {"registry_head_seconds": floor}
        try:
            for r in range(args.repeat):
                for name, server in (
                    ("bare", bare),
                    ("starlette", bare_starlette),
                    ("warm", warm),
                    ("cold", cold),
                ):
                    before = registry.request_count(user_agent_substring="kube-autorollout/")
                    run = wrk(server.url, bodies, duration=args.duration, connections=args.connections)
                    run.update(target=name, mode="max", repeat=r)
                    run["registry_requests"] = (
                        registry.request_count(user_agent_substring="kube-autorollout/") - before
                    )
                    run["load"] = load_average()
                    results["runs"].append(run)
                    log(f"{name} max: {run}")
                    paced = wrk(server.url, bodies, duration=args.duration, connections=4, delay_ms=3)
                    paced.update(target=name, mode="paced", repeat=r, load=load_average())
                    results["runs"].append(paced)
                    log(f"{name} paced: {paced}")
        finally:
            bare.stop()
            bare_starlette.stop()
            warm.stop()
            cold.stop()
    finally:
        registry.stop()
    save(args.out, results)


def registry_head_floor(registry: Any, image: str, n: int = 200) -> float:
    host_repo, tag = image.rsplit(":", 1)
    repository = host_repo.split("/", 1)[1]
    url = f"{registry.url}/v2/{repository}/manifests/{tag}"
    with httpx.Client(verify=registry.verify, trust_env=False) as client:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            client.head(url, headers={"User-Agent": "kar-test-harness"})
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


if __name__ == "__main__":
    main()
