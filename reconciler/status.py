"""The `status` table: per container of every labeled workload, what is recorded, what the registry says,
and what the next cycle will do about it — the quickest answer to "why did (not) my app roll out?".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.act import Result
from reconciler.health_pods import parse_mixed
from reconciler.pending import Pending
from reconciler.plan import ContainerState, ContainerVerdict, Rollout, WorkloadPlan
from reconciler.verdicts import lift_command

if TYPE_CHECKING:
    from reconciler.report import CycleReport

HEADERS = ("NAMESPACE", "KIND/NAME", "CONTAINER", "IMAGE", "RECORDED", "REGISTRY", "STATE")
_SHORT_HEX = 12
_NONE = "<none>"


@dataclass(frozen=True, slots=True)
class StatusRow:
    namespace: str
    kind_name: str
    container: str
    image: str
    recorded: str | None
    registry: str | None
    state: str


def short_digest(digest: str | None, *, full: bool = False) -> str:
    """`sha256:<64 hex>` -> its first 12 hex digits (docker's short form); `full` keeps it whole."""
    if digest is None:
        return _NONE
    if full:
        return digest
    _, _, hex_part = digest.partition(":")
    return (hex_part or digest)[:_SHORT_HEX]


def state_text(verdict: ContainerVerdict, skipped: str | None = None, pending: Pending | None = None) -> str:
    """`up-to-date`, `will-roll`, `unrecorded`, `waiting-for-pods (why)`, `pinned` or `error: <one line>`;
    a skip is prefixed; a moved tag the rollout policy holds back is `pending (why)`."""
    if pending is not None and verdict.state is ContainerState.WILL_ROLL:
        return f"pending ({pending.text()})"
    if verdict.state is ContainerState.ERROR:
        text = f"error: {' '.join(verdict.detail.split())}"
    elif verdict.state is ContainerState.WAITING:
        text = f"{verdict.state} ({verdict.detail})"
    elif verdict.state is ContainerState.RECORDED_ONLY:
        text = f"recorded only: {verdict.detail}"
    elif verdict.state is ContainerState.WILL_ROLL and verdict.recorded is None and verdict.running:
        text = "will-roll (pods run another digest)"
    else:
        text = str(verdict.state)
    return f"skipped, {skipped.lower()} ({text})" if skipped else text


def status_rows(plans: Sequence[WorkloadPlan]) -> list[StatusRow]:
    """One row per container, workloads sorted by namespace, kind and name."""
    rows: list[StatusRow] = []
    for plan in sorted(plans, key=lambda p: (p.workload.namespace, p.workload.kind, p.workload.name)):
        w = plan.workload
        for verdict in plan.verdicts:
            rows.append(
                StatusRow(
                    namespace=w.namespace,
                    kind_name=f"{w.kind.lower()}/{w.name}",
                    container=verdict.container.name,
                    image=verdict.container.image,
                    recorded=verdict.recorded,
                    registry=verdict.current,
                    state=state_text(verdict, plan.skipped, plan.pending),
                )
            )
    return rows


def format_table(rows: Sequence[StatusRow], *, full: bool = False) -> str:
    """A kubectl-style table (columns separated by three spaces); `full` prints whole digests."""
    cells = [HEADERS] + [
        (
            r.namespace,
            r.kind_name,
            r.container,
            r.image,
            short_digest(r.recorded, full=full),
            short_digest(r.registry, full=full),
            r.state,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]
    lines = ["   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells]
    return "\n".join(lines) + "\n"


def _where(plan: WorkloadPlan) -> str:
    w = plan.workload
    return f"{w.namespace}/{w.kind.lower()}/{w.name}"


def _line(verb: str, plan: WorkloadPlan, text: str) -> str:
    return f"{verb:<15} {_where(plan)}: {text}"


def describe_cycle(report: CycleReport) -> list[str]:
    """What a cycle did (or, dry run, would do): one line per decision, then a summary line."""
    would = "would " if report.dry_run else ""
    lines: list[str] = []
    for plan in report.plans:
        for verdict in plan.errors:
            lines.append(_line("error", plan, f"container {verdict.container.name}: {verdict.detail}"))
        if plan.skipped:
            lines.append(_line("skipped", plan, plan.skipped))
        if plan.pending is not None:
            lines.append(_line("pending", plan, plan.pending.text()))
        action = plan.action
        for verdict in plan.verdicts if action is None and not plan.skipped else ():
            if verdict.state is ContainerState.WAITING:
                text = f"container {verdict.container.name}: {verdict.detail}; nothing recorded"
                lines.append(_line("waiting", plan, f"{text}, the next cycle decides"))
        for name, value in sorted(action.platforms.items()) if action is not None else ():
            text = f"container {name}: {value or 'removed'}"
            lines.append(_line(f"{would}record platforms", plan, text))
        if isinstance(action, Rollout):
            for c in action.changes:
                text = f"container {c.container} ({c.image}): {c.old or 'unrecorded'} -> {c.new}"
                lines.append(_line(f"{would}roll out", plan, text))
        elif action is not None:
            for name, value in sorted(action.marks.items()):
                verb = "mark settling" if value is not None else "clear mark"
                lines.append(_line(f"{would}{verb}", plan, f"container {name}"))
            only = {
                v.container.name: v.detail for v in plan.verdicts if v.state is ContainerState.RECORDED_ONLY
            }
            for name, value in sorted(action.records.items()):
                why = f"recorded only: {only[name]}" if name in only else "adoption, no rollout"
                lines.append(_line(f"{would}record", plan, f"container {name}: {value} ({why})"))
    for outcome in report.outcomes:
        if outcome.result is Result.FAILED:
            lines.append(_line("failed", outcome.plan, outcome.error))
        elif outcome.result is Result.CONFLICT:
            text = "changed while planned; stopped before planning again, the next cycle decides"
            lines.append(_line("not patched", outcome.plan, text))
        elif outcome.attempts > 1:
            text = f"changed while planned; {outcome.result} after {outcome.attempts} attempts"
            lines.append(_line("re-planned", outcome.plan, text))
    if report.dry_run:
        summary = (
            f"dry run: {report.workloads} workloads, {report.unique_images} unique images; would roll out "
            f"{len(report.planned_rollouts)}, would record {len(report.planned_adoptions)}, "
            f"registry errors {len(report.registry_errors)}; nothing was changed"
        )
    else:
        summary = (
            f"cycle: {report.workloads} workloads, {report.unique_images} unique images; rolled out "
            f"{report.count(Result.ROLLED_OUT)}, recorded {report.count(Result.ADOPTED)}, "
            f"registry errors {len(report.registry_errors)}, failed patches {report.count(Result.FAILED)}"
            f" in {report.duration:.2f}s"
        )
    return [*lines, summary]


def health_lines(plans: Sequence[WorkloadPlan]) -> list[str]:
    """What the health watch has on the workloads: rollouts watched, holds (and how to lift them),
    mixed digests, one line each (docs/health.md)."""
    lines: list[str] = []
    for plan in sorted(plans, key=lambda p: (p.workload.namespace, p.workload.kind, p.workload.name)):
        w = plan.workload
        if w.watch:
            stamp, _, rolled = w.watch.partition(" ")
            lines.append(_line("watching", plan, f"rollout since {stamp}: {rolled}"))
        for container, digest in sorted((w.holds or {}).items()):
            text = f"container {container} at {digest} (lift: {lift_command(w, container)})"
            lines.append(_line("held", plan, text))
        for container, value in sorted((w.mixed or {}).items()):
            mark = parse_mixed(value)
            text = f"{mark.pods} of {mark.ready} ready pods run {mark.digest}" if mark else value
            lines.append(_line("mixed digests", plan, f"container {container}: {text}"))
    return lines
