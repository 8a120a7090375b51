"""Reconcile cycle at scale: 100, 1,000, 10,000 labeled Deployments over 200 unique images, 5% of the
used tags moved. Per scale: cache fill and first cycle, steady-state cycles, the cycle with the moved
tags (patches), registry requests per cycle (registry access log), API requests (the client's counter),
peak RSS of the reconciler process; and `kube-autorollout run` at the same scale (ready time, RSS).

With `--policy-variant N`: only the rollout policy's cost, N Deployments without policy annotations
and N with them (settle, cooldown, windows, exclude-containers), one reconciler each, steady cycles
measured interleaved (plain, policy, policy, plain, ...) in one run, with the HEAD floor before and
after them (the plain cycle against 200 HEADs in series is issue 18's planning goal).

With `--rollout-rounds R`: R rounds of (the PATCH floor in series; one tag moved under --scales'
first count of Deployments; the cycle that rolls them all out), the patch rate limit lifted; every
cycle also records the CPU seconds of the reconciler and of each control-plane process meanwhile;
`--profile PATH` adds one more round whose cycle runs under cProfile (the reconciler's whole thread),
written to PATH and left out of the median.

Usage: python -m bench.reconcile [--scales 100,1000,10000] [--unique 20,1000] [--repeat 3] [--moved 0.05]
       python -m bench.reconcile --policy-variant 10000 [--repeat 7] --out reconcile-policy
500 rollouts in one cycle, three rounds:
  python -m bench.reconcile --scales 500 --rollout-rounds 3 --out rollouts \
      --profile bench/results/rollouts-profile.txt
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
from bench.proc import cpu_seconds, load_average
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

    def cycle(self, command: str = "cycle") -> dict[str, Any]:
        """One cycle TTL after the last, with the registry requests it caused and the CPU seconds
        each process (the reconciler and every control-plane component) spent meanwhile."""
        time.sleep(TTL + 0.1)
        before = self.env.our_registry_requests()
        pids = {p.name: p.pid for p in self.env.cluster.processes} | {"reconciler": self.popen.pid}
        cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
        result = self.send(command)
        result["registry_requests"] = self.env.our_registry_requests() - before
        result["cpu_seconds"] = {name: round(cpu_seconds(pid) - cpu[name], 3) for name, pid in pids.items()}
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
    # The HEAD floor before and after the cycles: the steady cycle's other reference (issue 18).
    heads = [env.head_floor(images[0], n=100)]
    loads = [load_average()]
    for r in range(repeat):  # interleaved, the order alternating: plain, policy, policy, plain, ...
        for ns in ("plain", "policy") if r % 2 == 0 else ("policy", "plain"):
            cycles[ns].append(workers[ns].cycle())
    heads.append(env.head_floor(images[0], n=100))
    loads.append(load_average())
    for worker in workers.values():
        worker.close()
    medians = {ns: statistics.median(c["cycle_seconds"] for c in found) for ns, found in cycles.items()}
    pair_ratios = [
        p["cycle_seconds"] / q["cycle_seconds"]
        for p, q in zip(cycles["policy"], cycles["plain"], strict=True)
    ]
    head = statistics.median(heads)
    result = {
        "workloads": count,
        "unique_images": len(images),
        "annotations": POLICY_ANNOTATIONS,
        "cycles": cycles,
        "steady_median_seconds": medians,
        "ratio": medians["policy"] / medians["plain"],
        "pair_ratios": pair_ratios,
        "head_floor_seconds": heads,
        "heads_in_series_seconds": head * len(images),
        "plain_over_head_floor": medians["plain"] / (head * len(images)),
        "first": {ns: w.first for ns, w in workers.items()},
        "loads": [round(x, 2) for x in loads],
    }
    log(
        f"policy variant at {count}: plain {medians['plain'] * 1000:.0f} ms, policy "
        f"{medians['policy'] * 1000:.0f} ms, ratio {result['ratio']:.3f}, "
        f"plain / HEADs in series {result['plain_over_head_floor']:.2f}"
    )
    return result


def _cpu(env: BenchEnv) -> dict[str, float]:
    return {p.name: cpu_seconds(p.pid) for p in env.cluster.processes}


def measure_rollouts(env: BenchEnv, count: int, rounds: int, profile: Path | None) -> dict[str, Any]:
    """`rounds` times: the PATCH floor (in series), then one tag moved under `count` Deployments
    and the cycle that rolls them all out (the patch rate limit lifted); with `profile`, one more
    round under cProfile."""
    (image,) = push_images(env.registry, "bench/roll", 1, seed=3)
    log(f"creating {count} Deployments on one image")
    env.fleet("roll", [image], 0, count)
    worker = Worker(env, "roll", env.workdir / f"worker-roll-{count}")
    steady = worker.cycle()
    found = []
    names = [f"w-{i:05d}" for i in range(count)]
    for r in range(rounds + (profile is not None)):
        profiled = profile is not None and r == rounds  # one more round, not in the median
        load = load_average()
        floor = env.patch_floor("roll", "w-00000")
        # What the rollouts must send, in series: N template PATCHes (N new ReplicaSets) + N Events,
        # with the CPU each process spent meanwhile (the cycle's own figures are beside it).
        cpu = _cpu(env)
        work = env.rollout_floor("roll", names, r)
        work_cpu = {k: round(v - cpu[k], 3) for k, v in _cpu(env).items()}
        time.sleep(3.0)  # the watch delivers the floors' own writes before the guarded patches
        (image,) = move_tags(env.registry, [image], seed=50 + r)
        command = f"cycle-profile {profile}" if profiled else "cycle"
        rolled = worker.cycle(command)
        worker.send(f"wait-recorded {image.digest} {count}")
        rolled_out = rolled["outcomes"].get("rolled-out", 0)
        ratio = rolled["cycle_seconds"] / (rolled_out * floor) if rolled_out else None
        found.append(
            {
                "load": round(load, 2),
                "patch_floor_seconds": floor,
                "rollout_work_in_series_seconds": work,
                "rollout_work_cpu_seconds": work_cpu,
                "moved": rolled,
                "ratio": ratio,
                "profiled": profiled,
            }
        )
        log(
            f"round {r + 1}: {rolled_out} rollouts in {rolled['cycle_seconds']:.2f}s, floor"
            f" {floor * 1000:.1f} ms, in series {rolled_out * floor:.2f}s, ratio {ratio},"
            f" CPU {rolled['cpu_seconds']}; the same writes in series {work:.2f}s, CPU {work_cpu}"
        )
    worker.close()
    ratios = [f["ratio"] for f in found if f["ratio"] is not None and not f["profiled"]]
    return {
        "workloads": count,
        "steady": steady,
        "rounds": found,
        "ratio_median": statistics.median(ratios) if ratios else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", default="100,1000,10000")
    parser.add_argument("--unique", default="20,1000", help="unique-image counts at 1,000 workloads")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--moved", type=float, default=0.05, help="share of the used tags moved")
    parser.add_argument("--out", default="reconcile")
    parser.add_argument("--policy-variant", type=int, default=0, help="workloads; only the policy's cost")
    parser.add_argument("--rollout-rounds", type=int, default=0, help="rounds of --scales[0] rollouts")
    parser.add_argument("--profile", type=Path, help="with --rollout-rounds: cProfile text of the last")
    args = parser.parse_args()
    if args.rollout_rounds:
        with bench_env() as env:
            count = int(args.scales.split(",")[0])
            found = measure_rollouts(env, count, args.rollout_rounds, args.profile)
            save(args.out, {"machine": env.facts, "rollouts": found})
        return
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
