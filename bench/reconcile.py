"""Reconcile cycle at scale: 100, 1,000, 10,000 labeled Deployments over 200 unique images, 5% of the
used tags moved. Per scale: cache fill and first cycle, steady-state cycles, the cycle with the moved
tags (patches), registry requests per cycle (registry access log), API requests (the client's counter),
peak RSS of the reconciler process; and `kube-autorollout run` at the same scale (ready time, RSS).

With `--policy-variant N`: only the rollout policy's cost, N Deployments without policy annotations
and N with them (settle, cooldown, windows, exclude-containers), one reconciler each, steady cycles
measured interleaved (plain, policy, plain, ...) in one run.

Usage: python -m bench.reconcile [--scales 100,1000,10000] [--unique 20,1000] [--repeat 3] [--moved 0.05]
       python -m bench.reconcile --policy-variant 10000 [--repeat 7] --out reconcile-policy
500 rollouts in one cycle:
  python -m bench.reconcile --scales 500 --images 1 --moved 1 --unique '' --out rollouts
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.env import BenchEnv, bench_env, log, save
from bench.fleet import Image, move_tags, moved_workloads, push_images
from bench.runproc import measure_run

TTL = 1.0  # digest cache TTL: cycles TTL apart ask the registry every time, as 45 s cron cycles do


class Worker:
    """bench/reconcile_worker.py as a child process."""

    def __init__(self, env: BenchEnv, namespace: str, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "logLevel": "info",
            "reconciler": {"namespaces": [namespace], "maxPatchesPerSecond": 2000},
            "digestCacheTtlSeconds": TTL,
            "tls": {"caCertificatePaths": [str(env.registry.ca_file)]},
        }
        path = workdir / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        self.env = env
        self.stderr = (workdir / "worker.log").open("wb")
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.reconcile_worker",
                "--config",
                str(path),
                "--kubeconfig",
                env.kubeconfig,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        self.first = self._read()
        self.first["wall_from_exec"] = time.monotonic() - self.started

    def _read(self) -> dict[str, Any]:
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited {self.popen.wait()}")
        result: dict[str, Any] = json.loads(line)
        return result

    def send(self, command: str) -> dict[str, Any]:
        assert self.popen.stdin is not None
        self.popen.stdin.write(command + "\n")
        self.popen.stdin.flush()
        return self._read()

    def cycle(self) -> dict[str, Any]:
        """One cycle TTL after the last, with the registry requests it caused."""
        time.sleep(TTL + 0.1)
        before = self.env.our_registry_requests()
        result = self.send("cycle")
        result["registry_requests"] = self.env.our_registry_requests() - before
        return result

    def close(self) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.close()
        self.popen.wait(timeout=30)
        self.stderr.close()


def measure_scale(
    env: BenchEnv,
    namespace: str,
    images: list[Image],
    count: int,
    repeat: int,
    seed: int,
    moved_share: float = 0.05,
) -> tuple[dict[str, Any], list[Image]]:
    """Cycles of a reconciler over `count` workloads; returns the results and the images after moving."""
    before = env.our_registry_requests()
    worker = Worker(env, namespace, env.workdir / f"worker-{namespace}-{count}")
    first = worker.first
    first["registry_requests"] = env.our_registry_requests() - before
    steady = [worker.cycle() for _ in range(repeat)]
    used = images[: min(count, len(images))]
    n_moved = max(1, round(moved_share * len(used)))
    moved = move_tags(env.registry, used[:n_moved], seed=seed)
    rolled = worker.cycle()
    expected = moved_workloads(count, images, moved)
    for image in moved:
        worker.send(f"wait-recorded {image.digest} {expected // n_moved}")
    after = [worker.cycle() for _ in range(repeat)]
    worker.close()
    new_images = [*moved, *images[n_moved:]]
    result = {
        "workloads": count,
        "unique_images": first["unique_images"],
        "moved_tags": n_moved,
        "expected_rollouts": expected,
        "first": first,
        "steady": steady,
        "moved": rolled,
        "steady_after": after,
        "steady_median_seconds": statistics.median(c["cycle_seconds"] for c in steady + after),
        "peak_rss_kib": max(c["VmHWM"] for c in [first, *steady, rolled, *after]),
    }
    log(
        f"{namespace} {count}: first {first['cache_fill_seconds']:.2f}+{first['cycle_seconds']:.2f}s,"
        f" steady {result['steady_median_seconds'] * 1000:.0f} ms,"
        f" moved {rolled['cycle_seconds']:.2f}s ({rolled['outcomes']}),"
        f" registry {rolled['registry_requests']},"
        f" peak RSS {result['peak_rss_kib'] / 1024:.0f} MiB"
    )
    return result, new_images


# Every control on every workload; none holds anything in a steady state (no tag moved).
POLICY_ANNOTATIONS = {
    "policy.kube-autorollout/settle": "10m",
    "policy.kube-autorollout/cooldown": "1h",
    "policy.kube-autorollout/windows": "0 2 * * 1-5 2h Europe/Berlin; 0 12 * * 6 30m UTC",
    "policy.kube-autorollout/exclude-containers": "sidecar",
}


def measure_policy_variant(env: BenchEnv, images: list[Image], count: int, repeat: int) -> dict[str, Any]:
    """Steady cycles at `count` workloads without and with policy annotations, interleaved."""
    for ns, extra in (("plain", None), ("policy", POLICY_ANNOTATIONS)):
        log(f"creating {count} Deployments in {ns}")
        # A loaded machine's controller-manager may take long to observe 2 x 10,000 Deployments.
        seconds = env.fleet(ns, images, 0, count, extra_annotations=extra, settle_timeout=3600)
        log(f"created {count} in {seconds:.1f}s")
    workers = {ns: Worker(env, ns, env.workdir / f"worker-{ns}-{count}") for ns in ("plain", "policy")}
    cycles: dict[str, list[dict[str, Any]]] = {"plain": [], "policy": []}
    for _ in range(repeat):
        for ns, worker in workers.items():
            cycles[ns].append(worker.cycle())
    for worker in workers.values():
        worker.close()
    medians = {ns: statistics.median(c["cycle_seconds"] for c in found) for ns, found in cycles.items()}
    result = {
        "workloads": count,
        "annotations": POLICY_ANNOTATIONS,
        "cycles": cycles,
        "steady_median_seconds": medians,
        "ratio": medians["policy"] / medians["plain"],
        "first": {ns: w.first for ns, w in workers.items()},
    }
    log(
        f"policy variant at {count}: plain {medians['plain'] * 1000:.0f} ms, policy "
        f"{medians['policy'] * 1000:.0f} ms, ratio {result['ratio']:.3f}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", default="100,1000,10000")
    parser.add_argument("--unique", default="20,1000", help="unique-image counts at 1,000 workloads")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--moved", type=float, default=0.05, help="share of the used tags moved")
    parser.add_argument("--out", default="reconcile")
    parser.add_argument("--policy-variant", type=int, default=0, help="workloads; only the policy's cost")
    args = parser.parse_args()
    if args.policy_variant:
        with bench_env() as env:
            log(f"pushing {args.images} images")
            images = push_images(env.registry, "bench/app", args.images, seed=1)
            found = measure_policy_variant(env, images, args.policy_variant, args.repeat)
            save(args.out, {"machine": env.facts, "policy_variant": found})
        return
    scales = [int(s) for s in args.scales.split(",") if s]
    uniques = [int(s) for s in args.unique.split(",") if s]
    results: dict[str, Any] = {"scales": [], "unique": [], "run": []}
    with bench_env() as env:
        results["machine"] = env.facts
        log(f"pushing {args.images} images")
        images = push_images(env.registry, "bench/app", args.images, seed=1)
        created = 0
        for i, count in enumerate(scales):
            log(f"creating Deployments {created}..{count}")
            seconds = env.fleet("scale", images, created, count)
            log(f"created {count - created} in {seconds:.1f}s")
            created = count
            if i == 0:
                results["floors"] = {
                    "registry_head_seconds": env.head_floor(images[0]),
                    "api_patch_seconds": env.patch_floor("scale", "w-00000"),
                }
                log(f"floors: {results['floors']}")
            scale, images = measure_scale(
                env, "scale", images, count, args.repeat, seed=10 + i, moved_share=args.moved
            )
            scale["create_seconds"] = seconds
            results["scales"].append(scale)
            run = measure_run(
                env.workdir / f"run-{count}", env.kubeconfig, namespace="scale", ca_file=env.registry.ca_file
            )
            run["workloads"] = count
            results["run"].append(run)
            log(f"run at {count}: ready {run['ready_seconds']:.2f}s, RSS after a cycle {run['after_cycles']}")
        for u in uniques:
            ns = f"unique-{u}"
            log(f"unique images {u}: pushing and creating 1000 Deployments")
            extra = push_images(env.registry, f"bench/u{u}", u, seed=100 + u)
            env.fleet(ns, extra, 0, 1000)
            scale, _ = measure_scale(env, ns, extra, 1000, args.repeat, seed=200 + u)
            results["unique"].append(scale)
    save(args.out, results)


if __name__ == "__main__":
    main()
