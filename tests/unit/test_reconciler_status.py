"""The `status` table and the `reconcile --once` report lines."""

from __future__ import annotations

import pytest

from autorollout.registry.errors import UnauthorizedError
from reconciler.act import Outcome, Result
from reconciler.plan import plan_workload
from reconciler.pods import PodReport
from reconciler.report import CycleReport
from reconciler.status import describe_cycle, format_table, short_digest, status_rows
from reconciler.workload import parse_workload
from tests.unit.reconciler_objects import D1, D2, IMAGE, SIDECAR, manifest, workload_object

pytestmark = pytest.mark.unit


def plans():  # type: ignore[no-untyped-def]
    moved = parse_workload(
        "Deployment",
        workload_object(
            name="web",
            containers=[("app", IMAGE), ("side", SIDECAR)],
            annotations={"digest.kube-autorollout/app": f"{IMAGE}@{D1}"},
        ),
    )
    broken = parse_workload(
        "StatefulSet",
        workload_object(
            kind="StatefulSet", name="db", annotations={"digest.kube-autorollout/app": f"{IMAGE}@{D1}"}
        ),
    )
    error = UnauthorizedError("401 from registry\n(check credentials)", reference=IMAGE)
    return [
        plan_workload(moved, {"app": manifest(D2), "side": manifest(D1)}, PodReport(1, 1, {"side": D1})),
        plan_workload(broken, {"app": error}),
    ]


def test_short_digest() -> None:
    assert short_digest(D1) == "1" * 12
    assert short_digest(D1, full=True) == D1
    assert short_digest(None) == "<none>"


def test_table_rows_and_states() -> None:
    table = format_table(status_rows(plans()))
    lines = table.splitlines()
    assert lines[0].split() == [
        "NAMESPACE",
        "KIND/NAME",
        "CONTAINER",
        "IMAGE",
        "RECORDED",
        "REGISTRY",
        "STATE",
    ]
    assert lines[1].split() == ["ns", "deployment/web", "app", IMAGE, "1" * 12, "2" * 12, "will-roll"]
    assert lines[2].split() == ["ns", "deployment/web", "side", SIDECAR, "<none>", "1" * 12, "unrecorded"]
    row = lines[3]
    assert row.split()[:6] == ["ns", "statefulset/db", "app", IMAGE, "1" * 12, "<none>"]
    assert "error: UnauthorizedError:" in row
    assert "(check credentials)" in row  # the error is kept on one line
    assert len(lines) == 4
    # Columns line up under their headers.
    at = lines[0].index("IMAGE")
    assert [line[at:].split()[0] for line in lines[1:]] == [IMAGE, SIDECAR, IMAGE]
    at = lines[0].index("STATE")
    assert [line[at:].split()[0] for line in lines[1:]] == ["will-roll", "unrecorded", "error:"]


def test_wide_table_prints_whole_digests() -> None:
    table = format_table(status_rows(plans()), full=True)
    assert D1 in table
    assert D2 in table


def test_paused_rows_say_so() -> None:
    paused = parse_workload(
        "Deployment",
        workload_object(paused=True, annotations={"digest.kube-autorollout/app": f"{IMAGE}@{D1}"}),
    )
    rows = status_rows([plan_workload(paused, {"app": manifest(D2)})])
    assert rows[0].state == "skipped, deployment is paused (will-roll)"


def test_waiting_for_pods_is_a_state_and_a_report_line() -> None:
    fresh = parse_workload("Deployment", workload_object(name="fresh"))
    plan = plan_workload(fresh, {"app": manifest(D2)}, PodReport(pods=2, ready=0))
    [row] = status_rows([plan])
    assert row.state == "waiting-for-pods (2 pod(s), none Ready)"
    assert row.registry == D2
    lines = describe_cycle(CycleReport(dry_run=False, workloads=1, unique_images=1, plans=[plan]))
    assert lines[0] == (
        f"{'waiting':<15} ns/deployment/fresh: container app: 2 pod(s), none Ready; "
        "nothing recorded, the next cycle decides"
    )
    assert "recorded 0" in lines[-1]


def test_dry_run_report_lines() -> None:
    report = CycleReport(
        dry_run=True, workloads=2, unique_images=2, plans=plans(), registry_errors={IMAGE: "x"}
    )
    lines = describe_cycle(report)
    assert lines[0] == f"would roll out  ns/deployment/web: container app ({IMAGE}): {D1} -> {D2}"
    assert any(
        line.startswith(f"{'error':<15} ns/statefulset/db: container app: UnauthorizedError: 401")
        for line in lines
    )
    assert lines[-1].startswith("dry run: 2 workloads, 2 unique images; would roll out 1, would record 0")
    assert lines[-1].endswith("nothing was changed")


def test_cycle_report_counts_outcomes_and_failure() -> None:
    ps = plans()
    report = CycleReport(
        dry_run=False,
        plans=ps,
        outcomes=[Outcome(ps[0], Result.ROLLED_OUT, attempts=2)],
    )
    assert report.count(Result.ROLLED_OUT) == 1
    assert not report.failed
    lines = describe_cycle(report)
    assert any(line.startswith(f"{'re-planned':<15} ns/deployment/web") for line in lines)
    assert "rolled out 1" in lines[-1]
    report.registry_errors[IMAGE] = "UnauthorizedError"
    assert report.failed


def test_a_conflict_left_by_a_stop_is_a_report_line_and_no_failure() -> None:
    ps = plans()
    report = CycleReport(dry_run=False, plans=ps, outcomes=[Outcome(ps[0], Result.CONFLICT, attempts=1)])
    assert not report.failed
    lines = describe_cycle(report)
    assert (
        f"{'not patched':<15} ns/deployment/web: changed while planned; stopped before planning again"
        in (lines[-2])
    )
