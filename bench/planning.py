"""Planning cost per workload, in process: the CPU a steady cycle spends besides its registry requests.

Builds `--workloads` slim records (parsed from the same Deployments bench/fleet.py creates) over
`--images` images, fills the digest cache with their current digests, and times what a steady
`Cycle.run` does with them apart from the HEADs: the pull-policy check, observe (lookups, credential
choice, answers from the cache), plan (with the cycle's plan memo), the rollout policy's gate and the
per-plan log calls. Median of `--repeat` passes, in CPU seconds of the process; interleaved with
each, the same pass with a fresh plan memo (every record new to it, as after a resync or in the
first cycle). No cluster or registry is needed: the figure is the planning share of the
10,000-workload cycle of bench/reconcile.py. `--profile` prints a pyinstrument profile of one pass.

Usage: python -m bench.planning [--workloads 10000] [--images 200] [--repeat 7] [--profile] [--out planning]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from pyinstrument import Profiler

from autorollout.cli.wiring import credential_store, open_resolver
from autorollout.config import Config
from autorollout.policy.model import PolicyDefaults
from autorollout.registry.manifests import ManifestDigest
from autorollout.registry.resolver import Lookup
from bench.env import save
from bench.fleet import Image, deployment, image_of
from bench.proc import load_average, machine
from reconciler.gate import apply_policy
from reconciler.observe import Observer
from reconciler.plan import PlanMemo, plan_cycle
from reconciler.report import PullPolicyWarnings, log_plan
from reconciler.workload import Workload, parse_workload

REGISTRY = "127.0.0.1:5000"


def fleet(workloads: int, images: int) -> tuple[list[Workload], list[Image]]:
    pool = [
        Image(f"{REGISTRY}/bench/app-{i}:latest", f"bench/app-{i}", "latest", f"sha256:{i:064x}")
        for i in range(images)
    ]
    records = []
    for i in range(workloads):
        obj: dict[str, Any] = deployment(f"w-{i:05d}", "scale", image_of(i, pool))
        obj["metadata"].update(uid=f"uid-{i}", resourceVersion=str(1000 + i), generation=1)
        records.append(parse_workload("Deployment", obj))
    return records, pool


async def measure(workloads: int, images: int, repeat: int, profile: bool) -> dict[str, Any]:
    config = Config.model_validate({"digestCacheTtlSeconds": 3600})
    records, _ = fleet(workloads, images)
    async with open_resolver(config) as resolver:
        credentials = credential_store(config)
        observer = Observer(
            kube=None,  # type: ignore[arg-type]  # never asked: no pull secrets, no adoption
            resolver=resolver,
            credentials=credentials,
            pull_secrets=None,  # type: ignore[arg-type]
            lookup_timeout=10.0,
        )
        for w in records:
            for c in w.containers:
                ref = observer.reference(c.image)
                assert not isinstance(ref, Exception)
                key = Lookup(ref, credentials.lookup(ref.registry)).key(False)
                digest = w.recorded[c.name].split("@", 1)[1]
                resolver.cache.put(key, ManifestDigest(digest=digest, media_type=""))

        memo = PlanMemo()  # the cycle's: kept from one cycle to the next

        async def one_pass(memo: PlanMemo) -> float:
            # CPU time of this process: the machine's other load does not inflate it
            t0 = time.process_time()
            PullPolicyWarnings().check(records)
            observation = await observer.observe(records, fresh_after=None)
            plans = plan_cycle(observation.workloads, observation.resolutions, observation.pods, memo)
            gated = apply_policy(plans, PolicyDefaults(), now=datetime.now(UTC)).plans
            for plan in gated:
                log_plan(plan, dry_run=False)
            assert all(p.action is None for p in gated)
            assert observation.unique_images == images
            return time.process_time() - t0

        await one_pass(memo)  # the reference memo fills once per process, as in the first cycle
        times, fresh = [], []
        for _ in range(repeat):
            times.append(await one_pass(memo))
            fresh.append(await one_pass(PlanMemo()))
        if profile:
            with Profiler(async_mode="enabled") as profiler:
                await one_pass(memo)
            print(profiler.output_text(unicode=False, color=False, show_all=False))
    median = statistics.median(times)
    return {
        "workloads": workloads,
        "images": images,
        "passes": len(times),
        "median_seconds": median,
        "range_seconds": [min(times), max(times)],
        "per_workload_us": median / workloads * 1e6,
        "unmemoized_median_seconds": statistics.median(fresh),
        "unmemoized_range_seconds": [min(fresh), max(fresh)],
        "unmemoized_per_workload_us": statistics.median(fresh) / workloads * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workloads", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", help="also save the result as bench/results/OUT.json")
    args = parser.parse_args()
    result = asyncio.run(measure(args.workloads, args.images, args.repeat, args.profile))
    if args.out:
        save(args.out, {"machine": machine(), "load": round(load_average(), 2), **result})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
