"""Render bench/results/*.json as the tables of docs/benchmarks.md (between the BEGIN/END markers of
each table) and the cycle-time plot docs/img/reconcile-cycle.png.

Usage: python -m bench.report
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.idle import DEPENDENCIES
from bench.push_events import push_table as push_events_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "img" / "reconcile-cycle.png"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def ms(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def mib(kib: float) -> str:
    return f"{kib / 1024:,.0f} MiB"


def _api(requests: dict[str, float]) -> str:
    shown = {k: v for k, v in requests.items() if k != "GET watch"}
    return ", ".join(f"{v:g} {k}" for k, v in sorted(shown.items())) or "0"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def machine_table(facts: dict[str, Any]) -> str:
    rows = [
        [k, str(facts[k])] for k in ("nproc", "cpu", "memory", "kernel", "python", "kubernetes") if k in facts
    ]
    rows.append(["1-min load at start", str(facts.get("load_at_start", "?"))])
    return table(["", ""], rows)


def reconcile_tables(data: dict[str, Any]) -> dict[str, str]:
    floors = data.get("floors", {})
    head, patch = floors.get("registry_head_seconds", 0.0), floors.get("api_patch_seconds", 0.0)
    rows = []
    for s in data["scales"]:
        first, moved = s["first"], s["moved"]
        steady = s["steady"] + s["steady_after"]
        rows.append(
            [
                f"{s['workloads']:,}",
                str(s["unique_images"]),
                ms(first["cache_fill_seconds"]) + f" + {ms(first['cycle_seconds'])}",
                ms(s["steady_median_seconds"]),
                f"{statistics.median(c['registry_requests'] for c in steady):g}",
                _api(steady[-1]["api_requests"]),
                f"{ms(moved['cycle_seconds'])} ({moved['outcomes'].get('rolled-out', 0)} rollouts)",
                f"{moved['registry_requests']}",
                _api(moved["api_requests"]),
                mib(s["peak_rss_kib"]),
                ms(s["unique_images"] * head),
                ms(moved["outcomes"].get("rolled-out", 0) * patch),
            ]
        )
    scale = table(
        [
            "workloads",
            "unique images",
            "first cycle (cache fill + cycle)",
            "steady cycle (median)",
            "registry req./steady cycle",
            "API req./steady cycle",
            "cycle with 5% tags moved",
            "registry req.",
            "API req.",
            "peak RSS (reconciler)",
            "floor: HEADs in series",
            "floor: PATCHes in series",
        ],
        rows,
    )
    unique_rows = []
    for s in sorted(
        data.get("unique", []) + [x for x in data["scales"] if x["workloads"] == 1000],
        key=lambda x: x["unique_images"],
    ):
        steady = s["steady"] + s["steady_after"]
        unique_rows.append(
            [
                f"{s['workloads']:,}",
                str(s["unique_images"]),
                ms(s["steady_median_seconds"]),
                f"{statistics.median(c['registry_requests'] for c in steady):g}",
                mib(s["peak_rss_kib"]),
                ms(s["unique_images"] * head),
            ]
        )
    unique = table(
        [
            "workloads",
            "unique images",
            "steady cycle (median)",
            "registry req./cycle",
            "peak RSS",
            "floor: HEADs in series",
        ],
        unique_rows,
    )
    run_rows = [
        [
            f"{r['workloads']:,}",
            ms(r["ready_seconds"]),
            mib(r["ready"]["VmRSS"]),
            mib(r["after_cycles"]["VmHWM"]),
        ]
        for r in data.get("run", [])
    ]
    run = table(
        ["workloads in scope", "exec to /readyz 204", "RSS when ready", "peak RSS after a cycle"], run_rows
    )
    floors_table = table(
        ["floor", "median"],
        [
            ["one HEAD to the local TLS registry (kept-alive connection)", ms(head)],
            ["one JSON PATCH to the API server", ms(patch)],
        ],
    )
    return {
        "reconcile": scale,
        "unique": unique,
        "run": run,
        "reconcile-floors": floors_table,
        "machine": machine_table(data["machine"]),
    }


def upstream_table(data: dict[str, Any]) -> str:
    ours, theirs = data["ours"], data["upstream"]
    idle = data.get("apiserver_idle_per_cycle", {})

    def api(r: dict[str, Any]) -> str:
        net = {
            k: max(0.0, round(v - idle.get(k, 0), 1)) for k, v in r["apiserver_requests_per_cycle"].items()
        }
        return _api({k: v for k, v in net.items() if v >= 1})

    def ratio(
        key: str, fmt: Callable[[float], str], getter: Callable[[dict[str, Any]], float] | None = None
    ) -> list[str]:
        get = getter or (lambda r: r[key])
        a, b = get(ours), get(theirs)
        return [fmt(a), fmt(b), f"{b / a:.1f}x" if a else "-"]

    rows = [
        ["one full cycle (median)", *ratio("cycle_median_seconds", ms)],
        ["registry requests per cycle", *ratio("registry_requests_per_cycle", lambda v: f"{v:g}")],
        ["API requests per cycle (net of idle)", api(ours), api(theirs), ""],
        ["peak RSS", *ratio("rss", mib, lambda r: r["rss_kib"]["VmHWM"])],
        ["schedule tick to all new ReplicaSets", *ratio("tick_to_all_rollouts_seconds", ms)],
    ]
    per_run = data.get("cycle_ratio_per_run")
    if per_run:
        rows.insert(
            1,
            [
                "cycle, upstream / ours per run (range)",
                "",
                "",
                f"{statistics.median(per_run):.1f}x ({min(per_run):.1f}-{max(per_run):.1f},"
                f" {len(per_run)} runs)",
            ],
        )
        loads = ", ".join(f"{x:g}" for x in ours.get("loads", []) + theirs.get("loads", []))
        rows.append(["1-min load at each run's start (ours, then upstream)", loads, "", ""])
    return table(
        [
            f"{data['workloads']} Deployments x 1 pod, {data['images']} images",
            "ours (`run`)",
            f"upstream {data['upstream_version']}",
            "upstream / ours",
        ],
        rows,
    )


def admission_table(data: dict[str, Any]) -> str:
    def med(target: str, mode: str, key: str) -> float:
        return statistics.median(r[key] for r in data["runs"] if r["target"] == target and r["mode"] == mode)

    bare = med("bare", "max", "rps")
    duration = data.get("duration", 10)
    rows = []
    targets = {r["target"] for r in data["runs"]}
    labels = (
        ("bare", "bare uvicorn, raw ASGI, fixed answer (ceiling)"),
        ("starlette", "bare uvicorn + Starlette route, fixed answer"),
        ("warm", "webhook, warm cache"),
        ("cold", "webhook, cold (TTL 0: every image resolved)"),
    )

    def run_ratios(target: str) -> list[float]:
        """Per repeat, the target's rate over the ceiling's in the same repeat (interleaved runs)."""
        by_repeat = {
            r.get("repeat"): r["rps"] for r in data["runs"] if r["target"] == "bare" and r["mode"] == "max"
        }
        return [
            r["rps"] / by_repeat[r.get("repeat")]
            for r in data["runs"]
            if r["target"] == target and r["mode"] == "max" and by_repeat.get(r.get("repeat"))
        ]

    for target, label in labels:
        if target not in targets:
            continue
        rps = med(target, "max", "rps")
        ratios = run_ratios(target)
        share = f"{rps / bare:.0%}"
        if len(ratios) > 1 and target != "bare":
            share += f" (runs {min(ratios):.0%}-{max(ratios):.0%})"
        rows.append(
            [
                label,
                f"{rps:,.0f}",
                ms(med(target, "max", "p50")),
                ms(med(target, "max", "p99")),
                share,
                f"{med(target, 'max', 'registry_requests') / (rps * duration):.2f}",
                f"{med(target, 'paced', 'rps'):,.0f}",
                ms(med(target, "paced", "p50")),
                ms(med(target, "paced", "p99")),
            ]
        )
    return table(
        [
            "target",
            "req/s (16 conn.)",
            "p50",
            "p99",
            "of raw ceiling",
            "registry req./review",
            "req/s (paced)",
            "p50",
            "p99",
        ],
        rows,
    )


def plot(data: dict[str, Any]) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    scales = data["scales"]
    x = [s["workloads"] for s in scales]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    ax.plot(x, [s["steady_median_seconds"] for s in scales], "o-", label="steady cycle")
    ax.plot(
        x,
        [s["first"]["cache_fill_seconds"] + s["first"]["cycle_seconds"] for s in scales],
        "s-",
        label="first cycle (LIST + cycle)",
    )
    ax.plot(x, [s["moved"]["cycle_seconds"] for s in scales], "^-", label="cycle with 5% of tags moved")
    head = data["floors"]["registry_head_seconds"]
    ax.plot(x, [s["unique_images"] * head for s in scales], "k:", label="floor: unique images x one HEAD")
    ax.set_xscale("log")
    ax.set_xlabel("labeled Deployments (200 unique images)")
    ax.set_ylabel("seconds")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT)


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
    if not pattern.search(text):
        return text
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


IDLE_ROWS = (
    ("run", "`run` (webhook, reconciler, probes), kubeconfig given"),
    ("webhook", "`webhook`, kubeconfig given"),
    ("webhook_no_kubeconfig", "`webhook`, no kubeconfig at all"),
)


def idle_tables(after: dict[str, Any], before: dict[str, Any] | None) -> dict[str, str]:
    """Idle VmRSS per command (before/after when a `idle-before` result is kept) and the share of
    each big dependency (growth of a fresh interpreter's VmRSS as it is imported)."""

    def tenth(kib: float) -> str:
        return f"{kib / 1024:,.1f} MiB"

    def median(data: dict[str, Any], key: str) -> str:
        return tenth(statistics.median(data[key]["vmrss_kib"]))

    header = ["idle VmRSS, median of 3", *(["before"] if before else []), "now"]
    rows = [
        [label, *([median(before, key)] if before else []), median(after, key)] for key, label in IDLE_ROWS
    ]
    shares = after["dependencies_kib"]
    dependencies = [["the interpreter alone", tenth(shares["python"])]] + [
        [f"`import {name}`", tenth(shares[name])] for name in DEPENDENCIES if name in shares
    ]
    return {
        "idle": table(header, rows),
        "idle-dependencies": table(["imported (one after the other)", "VmRSS added"], dependencies),
    }


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f} s"


def push_table(data: dict[str, Any]) -> str:
    ours, upstream = data["ours"], data["upstream"]
    rows = [
        [
            "median of every push",
            f"{ours['median_seconds']:.2f} s",
            f"{upstream['median_seconds']:.2f} s",
            f"{upstream['median_seconds'] / ours['median_seconds']:.2f}x",
        ],
        [
            "max of every push",
            f"{ours['max_seconds']:.2f} s",
            f"{upstream['max_seconds']:.2f} s",
            f"{upstream['max_seconds'] / ours['max_seconds']:.2f}x",
        ],
        [
            "from the first tick after the push, median",
            f"{ours['after_tick_median_seconds']:.2f} s",
            f"{upstream['after_tick_median_seconds']:.2f} s",
            f"{upstream['after_tick_median_seconds'] / ours['after_tick_median_seconds']:.2f}x",
        ],
        ["per-run medians (range)", _spread(ours["run_medians"]), _spread(upstream["run_medians"]), ""],
        ["per-run maxima (range)", _spread(ours["run_maxima"]), _spread(upstream["run_maxima"]), ""],
        ["pushes (runs x pushes)", str(ours["pushes"]), str(upstream["pushes"]), ""],
        [
            "1-min load at each run's start",
            ", ".join(f"{x:g}" for x in ours["loads"]),
            ", ".join(f"{x:g}" for x in upstream["loads"]),
            "",
        ],
    ]
    header = [
        f"push -> new ReplicaSet, cron every {data['cron_seconds']} s",
        "ours (`run`)",
        f"upstream {data['upstream_version']}",
        "upstream / ours",
    ]
    return table(header, rows)


def planning_table(data: dict[str, Any]) -> str:
    def row(label: str, prefix: str) -> list[str]:
        low, high = data[f"{prefix}range_seconds"]
        return [
            label,
            f"{data[f'{prefix}median_seconds'] * 1000:,.0f} ms ({low * 1000:,.0f}-{high * 1000:,.0f})",
            f"{data[f'{prefix}per_workload_us']:.1f} µs",
            f"{data['load']:g}",
        ]

    scale = f"{data['workloads']:,} workloads, {data['images']} images"
    rows = [row(f"{scale}, steady (the cycle's plan memo)", "")]
    if "unmemoized_median_seconds" in data:
        rows.append(row(f"{scale}, every record new to the memo", "unmemoized_"))
    return table(["in process, CPU", "one planning pass (range)", "per workload", "1-min load"], rows)


def policy_variant_table(data: dict[str, Any]) -> str:
    """The steady cycle at N workloads with and without policies, and against the HEAD floor."""
    found = data["policy_variant"]
    cycles, medians = found["cycles"], found["steady_median_seconds"]

    def spread(ns: str) -> str:
        values = [c["cycle_seconds"] for c in cycles[ns]]
        return f"{ms(min(values))}-{ms(max(values))}"

    ratios = found["pair_ratios"]
    heads = found["heads_in_series_seconds"]
    n = found["workloads"]
    rows = [
        [f"steady cycle, median of {len(cycles['plain'])}", ms(medians["plain"]), ms(medians["policy"])],
        ["steady cycles, min-max", spread("plain"), spread("policy")],
        [
            "with / without, median of the interleaved pairs (range)",
            "",
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})",
        ],
        [
            f"floor: {found['unique_images']} HEADs in series ({ms(heads / found['unique_images'])} each)",
            ms(heads),
            ms(heads),
        ],
        [
            "steady cycle / HEAD floor",
            f"{medians['plain'] / heads:.2f}x",
            f"{medians['policy'] / heads:.2f}x",
        ],
        [
            "registry / API requests per steady cycle",
            *(
                f"{statistics.median(c['registry_requests'] for c in cycles[ns]):g} / "
                f"{_api(cycles[ns][0]['api_requests'])}"
                for ns in ("plain", "policy")
            ),
        ],
        [
            "CPU of the reconciler per steady cycle (median)",
            *(ms(statistics.median(c["cpu_seconds"]["reconciler"] for c in cycles[ns])) for ns in cycles),
        ],
        ["1-min load at the first and the last cycle", *(f"{a:g}, {b:g}" for a, b in [found["loads"]] * 2)],
    ]
    return table(["", f"{n:,} without policy", f"{n:,} with policy on every workload"], rows)


def admission_profile_table(data: dict[str, Any]) -> str:
    variants = data["variants"]
    names = {
        "bare": "uvicorn's HttpToolsProtocol + fixed-answer ASGI app (the ceiling's code)",
        "bare+limits": "the webhook's LimitedHttpToolsProtocol + the same fixed answer",
        "webhook": "LimitedHttpToolsProtocol + the webhook's app, warm cache",
        "review": "`AdmissionReviewer.review(body)` alone (no HTTP)",
    }
    rows = [
        [names[k], f"{v['cpu_us_per_request']:.0f} µs ({v['range_us'][0]:.0f}-{v['range_us'][1]:.0f})"]
        for k, v in variants.items()
    ]
    return table(["in process, one warm review, no TLS", "CPU per request (range)"], rows)


def rollouts_table(
    data: dict[str, Any], before: dict[str, Any] | None, concurrent: dict[str, Any] | None = None
) -> str:
    rows = []
    for label, found in (
        ("before (one after another)", before),
        ("concurrent, previous round", concurrent),
        ("now", data),
    ):
        if found is None:
            continue
        rows += _rollout_rounds(label, found) if "rollouts" in found else _rollout_rows(label, found)
    header = [
        "acting",
        "workloads",
        "rollouts",
        "cycle that rolls them out",
        "floor: one PATCH",
        "floor: PATCHes in series",
        "cycle / floor in series",
        "the rollouts' writes in series (template PATCH + Event each)",
        "cycle / those",
        "API requests",
        "1-min load at start",
    ]
    return table(header, rows)


def _rollout_rounds(label: str, data: dict[str, Any]) -> list[list[str]]:
    found = data["rollouts"]
    rows = []
    for i, r in enumerate(found["rounds"]):
        moved, floor = r["moved"], r["patch_floor_seconds"]
        n = moved["outcomes"].get("rolled-out", 0)
        rows.append(
            [
                f"{label}, round {i + 1}" + (" (under cProfile)" if r.get("profiled") else ""),
                f"{found['workloads']:,}",
                f"{n:,}",
                ms(moved["cycle_seconds"]),
                ms(floor),
                ms(n * floor),
                f"{r['ratio']:.2f}x" if r["ratio"] else "-",
                ms(r["rollout_work_in_series_seconds"]),
                f"{moved['cycle_seconds'] / r['rollout_work_in_series_seconds']:.2f}x",
                _api(moved["api_requests"]),
                f"{r['load']:g}",
            ]
        )
    counted = [r for r in found["rounds"] if r["ratio"] and not r.get("profiled")]
    ratios = [r["ratio"] for r in counted]
    works = [r["moved"]["cycle_seconds"] / r["rollout_work_in_series_seconds"] for r in counted]
    if len(ratios) > 1:
        rows.append(
            [
                f"{label}, median of {len(ratios)}",
                *([""] * 5),
                f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})",
                "",
                f"{statistics.median(works):.2f}x ({min(works):.2f}-{max(works):.2f})",
                "",
                "",
            ]
        )
    return rows


def rollouts_cpu_table(data: dict[str, Any]) -> str:
    """CPU seconds each process spent during each round's rolling cycle, and during the same writes
    sent in series."""
    rounds = data["rollouts"]["rounds"]
    names = list(rounds[0]["moved"]["cpu_seconds"])
    rows = []
    for i, r in enumerate(rounds):
        cycle, work = r["moved"]["cpu_seconds"], r["rollout_work_cpu_seconds"]
        cycle_label = f"round {i + 1}: the cycle" + (" (under cProfile)" if r.get("profiled") else "")
        rows.append([cycle_label, ms(r["moved"]["cycle_seconds"]), *_cpus(cycle, names)])
        rows.append(
            [
                f"round {i + 1}: its writes in series",
                ms(r["rollout_work_in_series_seconds"]),
                *_cpus(work, names),
            ]
        )
    return table(["", "wall", *(f"CPU: {k}" for k in names)], rows)


def _cpus(cpu: dict[str, float], names: list[str]) -> list[str]:
    return [f"{cpu[k]:.1f} s" if k in cpu else "-" for k in names]


def _rollout_rows(label: str, data: dict[str, Any]) -> list[list[str]]:
    floor = data["floors"]["api_patch_seconds"]
    rows = []
    for scale in data["scales"]:
        moved = scale["moved"]
        n = moved["outcomes"].get("rolled-out", 0)
        rows.append(
            [
                label,
                f"{scale['workloads']:,}",
                f"{n:,}",
                ms(moved["cycle_seconds"]),
                ms(floor),
                ms(n * floor),
                f"{moved['cycle_seconds'] / (n * floor):.2f}x" if n else "-",
                "-",
                "-",
                _api(moved["api_requests"]),
                f"{data['machine'].get('load_at_start', '?')}",
            ]
        )
    return rows


def main() -> None:
    blocks: dict[str, str] = {}
    rollouts = _load("rollouts")
    if rollouts:
        blocks["rollouts"] = rollouts_table(rollouts, _load("rollouts-before"), _load("rollouts-concurrent"))
        if "rollouts" in rollouts:
            blocks["rollouts-cpu"] = rollouts_cpu_table(rollouts)
    policy = _load("reconcile-policy")
    if policy and "pair_ratios" in policy.get("policy_variant", {}):
        blocks["reconcile-policy"] = policy_variant_table(policy)
    push = _load("push")
    if push:
        blocks["push"] = push_table(push)
    planning = _load("planning")
    if planning:
        blocks["planning"] = planning_table(planning)
    profile = _load("admission-profile")
    if profile:
        blocks["admission-profile"] = admission_profile_table(profile)
    reconcile = _load("reconcile")
    if reconcile:
        blocks.update(reconcile_tables(reconcile))
        plot(reconcile)
    for name in ("upstream", "upstream-1000"):
        upstream = _load(name)
        if upstream:
            blocks[name] = upstream_table(upstream)
    admission = _load("admission")
    if admission:
        blocks["admission"] = admission_table(admission)
        blocks["admission-floors"] = table(
            ["floor", "median"],
            [["one HEAD to the local TLS registry", ms(admission["floors"]["registry_head_seconds"])]],
        )
    startup = _load("startup")
    if startup:
        blocks["startup"] = table(
            ["`kube-autorollout run`, nothing in scope", "median of runs"],
            [
                ["exec to /readyz 204", ms(startup["ready_seconds_median"])],
                ["idle RSS (after its first cycle)", mib(startup["idle_rss_kib_median"])],
                ["runs", str(len(startup["runs"]))],
            ],
        )
    push_events = _load("push-events")
    if push_events:
        blocks["push-events"] = push_events_table(push_events)
    idle = _load("idle")
    if idle:
        blocks.update(idle_tables(idle, _load("idle-before")))
    text = DOC.read_text()
    for name, body in blocks.items():
        text = replace_block(text, name, body)
    DOC.write_text(text)
    for name, body in blocks.items():
        print(f"## {name}\n{body}\n")


if __name__ == "__main__":
    main()
