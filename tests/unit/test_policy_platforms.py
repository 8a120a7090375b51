"""Platform comparison (`compare: platform`), pure: node platforms, the platform record, the comparison,
and what a cycle's plan becomes (record only, or a rollout as in index mode)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from autorollout.annotations import format_platforms, format_recorded, parse_platforms
from autorollout.config import ConfigError, load_config_text
from autorollout.policy.model import Compare, PolicyDefaults, parse_policy
from autorollout.policy.platforms import NodePlatform, compare_platforms, node_manifests, node_platform
from autorollout.registry.manifests import OCI_INDEX, ManifestDigest, PlatformManifest
from reconciler.gate import apply_policy
from reconciler.nodes import NodePlatforms
from reconciler.observe import Observation
from reconciler.patch import adoption_patch, rollout_patch
from reconciler.plan import Adoption, ContainerState, Rollout, plan_workload
from reconciler.platforms import compare_plan, compare_plans, in_platform_mode
from reconciler.report import CycleReport
from reconciler.status import describe_cycle, state_text
from reconciler.workload import Workload, parse_workload
from tests.unit.reconciler_objects import D1, D2, D3, IMAGE, SIDECAR, manifest, workload_object

pytestmark = pytest.mark.unit

AMD_1 = "sha256:" + "a1" * 32
AMD_2 = "sha256:" + "a2" * 32
ARM_1 = "sha256:" + "b1" * 32
ARM_2 = "sha256:" + "b2" * 32
AMD64 = NodePlatform("linux", "amd64")
ARM64 = NodePlatform("linux", "arm64")
PLATFORMS_KEY = "platforms.kube-autorollout/app"


def entry(platform: str, digest: str) -> PlatformManifest:
    os_name, arch, *variant = platform.split("/")
    return PlatformManifest(digest, "application/vnd.oci.image.manifest.v1+json", os_name, arch, *variant)


def index(digest: str, **by_platform: str) -> ManifestDigest:
    entries = tuple(entry(p.replace("_", "/"), d) for p, d in by_platform.items())
    return ManifestDigest(digest, OCI_INDEX, tuple(e.digest for e in entries), entries)


def workload(*, record: str | None = None, **policy: str) -> Workload:
    annotations = {"digest.kube-autorollout/app": format_recorded(IMAGE, D1), **policy}
    if record is not None:
        annotations[PLATFORMS_KEY] = record
    return parse_workload("Deployment", workload_object(annotations=annotations))


def node(**fields: Any) -> dict[str, Any]:
    return {"metadata": {"name": "n1", "labels": fields.pop("labels", {})}, "status": fields}


# -- nodes ------------------------------------------------------------------------------------------


def test_a_node_platform_comes_from_node_info_else_from_the_kubelet_labels() -> None:
    info = {"operatingSystem": "linux", "architecture": "ARM64"}
    assert node_platform(node(nodeInfo=info)) == ARM64
    labels = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    assert node_platform(node(labels=labels)) == AMD64
    assert node_platform(node(nodeInfo={"operatingSystem": "", "architecture": ""})) is None
    assert node_platform({"metadata": {"name": "bare"}}) is None
    assert str(ARM64) == "linux/arm64"


def test_the_node_watch_keeps_platforms_per_node_and_forgets_deleted_nodes() -> None:
    watch = NodePlatforms(None, follow=False)  # type: ignore[arg-type] # events only, no request
    amd = {"metadata": {"name": "a", "resourceVersion": "7"}, "status": {"nodeInfo": {}}}
    amd["metadata"]["labels"] = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    arm = {
        "metadata": {"name": "b"},
        "status": {"nodeInfo": {"operatingSystem": "linux", "architecture": "arm64"}},
    }
    watch.apply_event("ADDED", amd)
    watch.apply_event("ADDED", arm)
    watch.apply_event("BOOKMARK", {"metadata": {"resourceVersion": "9"}})
    assert watch.describe() == "linux/amd64 (1 node), linux/arm64 (1 node)"
    watch.apply_event("DELETED", arm)
    assert watch.describe() == "linux/amd64 (1 node)"


# -- the record and the comparison ------------------------------------------------------------------


def test_the_platform_record_names_its_index_and_round_trips() -> None:
    value = format_platforms(D1, {"linux/arm64": ARM_1, "linux/amd64": AMD_1})
    assert value == f"{D1} linux/amd64={AMD_1},linux/arm64={ARM_1}"
    assert parse_platforms(value) == (D1, {"linux/amd64": AMD_1, "linux/arm64": ARM_1})
    assert parse_platforms(format_platforms(D1, {})) == (D1, {})
    for bad in (None, "", "sha256:short linux/amd64=x", f"{D1} linux/amd64", f"{D1} Linux/AMD64={AMD_1}"):
        assert parse_platforms(bad) is None, bad


def test_every_variant_of_a_node_platform_is_compared_and_other_platforms_are_not() -> None:
    entries = (
        entry("linux/arm/v6", ARM_1),
        entry("linux/arm/v7", ARM_2),
        entry("linux/amd64", AMD_1),
        entry("unknown/unknown", D3),  # an attestation manifest
    )
    assert node_manifests(entries, {NodePlatform("linux", "arm")}) == {
        "linux/arm/v6": ARM_1,
        "linux/arm/v7": ARM_2,
    }
    assert node_manifests(entries, {AMD64}) == {"linux/amd64": AMD_1}
    assert node_manifests(entries, {ARM64}) == {}


def test_a_move_is_unchanged_only_when_the_nodes_platform_manifests_are_exactly_the_recorded_ones() -> None:
    record = (D1, {"linux/amd64": AMD_1, "linux/arm64": ARM_1})
    arm_moved = (entry("linux/amd64", AMD_1), entry("linux/arm64", ARM_2))
    amd_moved = (entry("linux/amd64", AMD_2), entry("linux/arm64", ARM_1))
    assert compare_platforms(record, D1, arm_moved, {AMD64}).unchanged
    assert compare_platforms(record, D1, arm_moved, {AMD64}).text() == "platforms linux/amd64 unchanged"
    assert not compare_platforms(record, D1, arm_moved, {AMD64, ARM64}).unchanged
    assert not compare_platforms(record, D1, amd_moved, {AMD64}).unchanged
    # Unknown is a change: no record, a record of another index, a node platform the record lacks.
    assert not compare_platforms(None, D1, arm_moved, {AMD64}).unchanged
    assert not compare_platforms(record, D2, arm_moved, {AMD64}).unchanged
    assert not compare_platforms((D1, {"linux/arm64": ARM_1}), D1, arm_moved, {AMD64}).unchanged
    # A node platform the index dropped is a change too; one the index never had is no comparison.
    assert not compare_platforms(record, D1, (entry("linux/arm64", ARM_1),), {AMD64, ARM64}).unchanged
    assert not compare_platforms(record, D1, arm_moved, {NodePlatform("windows", "amd64")}).unchanged


# -- the annotation and the default -----------------------------------------------------------------


def test_the_compare_annotation_parses_and_an_invalid_value_falls_back_to_the_default() -> None:
    assert parse_policy((("policy.kube-autorollout/compare", "Platform"),)).compare is Compare.PLATFORM
    invalid = parse_policy((("policy.kube-autorollout/compare", "arch"),))
    assert invalid.compare is None
    assert [str(p) for p in invalid.problems] == [
        "annotation policy.kube-autorollout/compare: expected index or platform"
    ]
    assert invalid.compares(PolicyDefaults(compare=Compare.PLATFORM)) is Compare.PLATFORM
    assert invalid.compares(PolicyDefaults()) is Compare.INDEX


def test_the_global_default_is_validated_with_one_line_naming_the_key() -> None:
    assert load_config_text("rolloutPolicy: {compare: Platform}\n", {}).rollout_policy.compare == "platform"
    assert load_config_text("{}\n", {}).rollout_policy.compare == "index"
    with pytest.raises(ConfigError) as info:
        load_config_text("rolloutPolicy: {compare: arch}\n", {})
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("rolloutPolicy.compare: "), info.value.problems
    assert "'index' or 'platform'" in info.value.problems[0]


def test_platform_mode_is_the_annotation_else_the_default() -> None:
    plain, platform, index_ = (
        workload(),
        workload(**{"policy.kube-autorollout/compare": "platform"}),
        workload(**{"policy.kube-autorollout/compare": "index"}),
    )
    assert in_platform_mode([plain, platform, index_], PolicyDefaults()) == [platform]
    assert in_platform_mode([plain, platform, index_], PolicyDefaults(compare=Compare.PLATFORM)) == [
        plain,
        platform,
    ]


# -- the plan ---------------------------------------------------------------------------------------


def test_an_index_move_that_leaves_the_node_platform_unchanged_is_recorded_without_a_rollout() -> None:
    w = workload(record=format_platforms(D1, {"linux/amd64": AMD_1}))
    moved = index(D2, linux_amd64=AMD_1, linux_arm64=ARM_2)
    plan = compare_plan(plan_workload(w, {"app": moved}), {"app": moved}, {AMD64})
    assert isinstance(plan.action, Adoption)
    assert plan.action.records == {"app": format_recorded(IMAGE, D2)}  # still the index digest
    assert plan.action.platforms == {"app": format_platforms(D2, {"linux/amd64": AMD_1})}
    (verdict,) = plan.verdicts
    assert verdict.state is ContainerState.RECORDED_ONLY
    assert state_text(verdict) == "recorded only: platforms linux/amd64 unchanged"
    ops = adoption_patch(w, plan.action.records, platforms=plan.action.platforms)
    assert {
        "op": "add",
        "path": "/metadata/annotations/platforms.kube-autorollout~1app",
        "value": f"{D2} linux/amd64={AMD_1}",
    } in ops
    assert not any(op["path"].startswith("/spec/template") for op in ops)
    lines = describe_cycle(CycleReport(dry_run=True, workloads=1, plans=[plan]))
    assert any("recorded only: platforms linux/amd64 unchanged" in line for line in lines), lines
    # The rollout policy lets a record-only write pass: nothing waits for a window that rolls nothing.
    gated = apply_policy([plan], PolicyDefaults(settle_seconds=600), now=datetime.now(UTC))
    assert gated.plans[0].pending is None
    assert isinstance(gated.plans[0].action, Adoption)


def test_a_move_of_a_node_platform_rolls_out_and_records_its_manifests() -> None:
    w = workload(record=format_platforms(D1, {"linux/amd64": AMD_1}))
    moved = index(D2, linux_amd64=AMD_2, linux_arm64=ARM_1)
    plan = compare_plan(plan_workload(w, {"app": moved}), {"app": moved}, {AMD64})
    assert isinstance(plan.action, Rollout)
    assert [c.new for c in plan.action.changes] == [D2]
    assert plan.action.platforms == {"app": format_platforms(D2, {"linux/amd64": AMD_2})}
    ops = rollout_patch(
        w,
        plan.action.records,
        restarted_key="kube-autorollout/restartedAt",
        restarted_at="t",
        platforms=plan.action.platforms,
    )
    assert {
        "op": "add",
        "path": "/metadata/annotations/platforms.kube-autorollout~1app",
        "value": f"{D2} linux/amd64={AMD_2}",
    } in ops


def test_without_a_record_a_move_rolls_out_and_an_up_to_date_index_gets_its_baseline() -> None:
    moved = index(D2, linux_amd64=AMD_1)
    plan = compare_plan(plan_workload(workload(), {"app": moved}), {"app": moved}, {AMD64})
    assert isinstance(plan.action, Rollout)
    same = index(D1, linux_amd64=AMD_1, linux_arm64=ARM_1)
    baseline = compare_plan(plan_workload(workload(), {"app": same}), {"app": same}, {AMD64})
    assert isinstance(baseline.action, Adoption)
    assert baseline.action.records == {}
    assert baseline.action.platforms == {"app": format_platforms(D1, {"linux/amd64": AMD_1})}
    # With the baseline written, the steady state writes nothing.
    recorded = workload(record=format_platforms(D1, {"linux/amd64": AMD_1}))
    steady = plan_workload(recorded, {"app": same})
    assert compare_plan(steady, {"app": same}, {AMD64}) is steady


def test_without_node_information_platform_mode_plans_as_index_mode() -> None:
    w = workload(
        record=format_platforms(D1, {"linux/amd64": AMD_1}), **{"policy.kube-autorollout/compare": "platform"}
    )
    moved = index(D2, linux_amd64=AMD_1, linux_arm64=ARM_2)
    plans = [plan_workload(w, {"app": moved})]
    observation = Observation(workloads=[w], resolutions={w.key: {"app": moved}})
    assert compare_plans(plans, observation, PolicyDefaults()) == plans  # nodes None: not read
    observation.nodes = frozenset({AMD64})
    (compared,) = compare_plans(plans, observation, PolicyDefaults())
    assert isinstance(compared.action, Adoption)
    # An index-mode workload is left alone even with node information.
    plain = workload(record=format_platforms(D1, {"linux/amd64": AMD_1}))
    plain_plans = [plan_workload(plain, {"app": moved})]
    observation = Observation(
        workloads=[plain], resolutions={plain.key: {"app": moved}}, nodes=frozenset({AMD64})
    )
    assert compare_plans(plain_plans, observation, PolicyDefaults()) == plain_plans


def test_one_container_recorded_only_and_another_moved_roll_out_together_with_both_records() -> None:
    annotations = {
        "digest.kube-autorollout/app": format_recorded(IMAGE, D1),
        "digest.kube-autorollout/side": format_recorded(SIDECAR, D1),
        PLATFORMS_KEY: format_platforms(D1, {"linux/amd64": AMD_1}),
    }
    obj = workload_object(annotations=annotations, containers=[("app", IMAGE), ("side", SIDECAR)])
    w = parse_workload("Deployment", obj)
    app = index(D2, linux_amd64=AMD_1, linux_arm64=ARM_2)  # only arm64 moved
    side = manifest(D3)  # not an index: compared by its digest
    plan = compare_plan(plan_workload(w, {"app": app, "side": side}), {"app": app, "side": side}, {AMD64})
    assert isinstance(plan.action, Rollout)
    assert [c.container for c in plan.action.changes] == ["side"]
    assert plan.action.records == {"app": format_recorded(IMAGE, D2), "side": format_recorded(SIDECAR, D3)}
    assert plan.action.platforms == {"app": format_platforms(D2, {"linux/amd64": AMD_1})}
    assert [v.state for v in plan.verdicts] == [ContainerState.RECORDED_ONLY, ContainerState.WILL_ROLL]


def test_a_record_only_write_records_no_container_that_waits_for_pods() -> None:
    annotations = {
        "digest.kube-autorollout/app": format_recorded(IMAGE, D1),
        PLATFORMS_KEY: format_platforms(D1, {"linux/amd64": AMD_1}),
    }
    obj = workload_object(annotations=annotations, containers=[("app", IMAGE), ("side", SIDECAR)])
    w = parse_workload("Deployment", obj)
    app = index(D2, linux_amd64=AMD_1, linux_arm64=ARM_2)
    side = manifest(D3)
    planned = plan_workload(w, {"app": app, "side": side})  # no pods read: side waits for pods
    assert isinstance(planned.action, Rollout)  # a rollout would record side at what it pulls
    plan = compare_plan(planned, {"app": app, "side": side}, {AMD64})
    assert isinstance(plan.action, Adoption)
    assert plan.action.records == {"app": format_recorded(IMAGE, D2)}  # without a restart: only app


def test_an_unwatched_containers_platform_record_goes_with_its_digest_record() -> None:
    annotations = {
        "digest.kube-autorollout/app": format_recorded(IMAGE, D1),
        "digest.kube-autorollout/side": format_recorded(SIDECAR, D1),
        PLATFORMS_KEY: format_platforms(D1, {"linux/amd64": AMD_1}),
        "platforms.kube-autorollout/side": format_platforms(D1, {"linux/amd64": AMD_1}),
        "policy.kube-autorollout/exclude-containers": "side",
    }
    obj = workload_object(annotations=annotations, containers=[("app", IMAGE), ("side", SIDECAR)])
    w = parse_workload("Deployment", obj)
    same = index(D1, linux_amd64=AMD_1)
    # As digest records do, it goes with the workload's next patch (there is none in a steady state).
    steady = plan_workload(w, {"app": same})
    assert compare_plan(steady, {"app": same}, {AMD64}) is steady
    moved = index(D2, linux_amd64=AMD_1)
    plan = compare_plan(plan_workload(w, {"app": moved}), {"app": moved}, {AMD64})
    assert isinstance(plan.action, Adoption)
    assert plan.action.stale == ("side",)
    assert plan.action.platforms == {"app": format_platforms(D2, {"linux/amd64": AMD_1}), "side": None}
    ops = adoption_patch(w, plan.action.records, stale=plan.action.stale, platforms=plan.action.platforms)
    assert {"op": "remove", "path": "/metadata/annotations/platforms.kube-autorollout~1side"} in ops
    assert {"op": "remove", "path": "/metadata/annotations/digest.kube-autorollout~1side"} in ops


def test_an_index_without_a_node_platform_is_recorded_as_read_and_its_moves_roll_out() -> None:
    arm_only = index(D1, linux_arm64=ARM_1)
    baseline = compare_plan(plan_workload(workload(), {"app": arm_only}), {"app": arm_only}, {AMD64})
    assert isinstance(baseline.action, Adoption)
    assert baseline.action.platforms == {"app": D1}  # read, nothing for these nodes: no GET next cycle
    moved = index(D2, linux_arm64=ARM_2)
    plan = compare_plan(plan_workload(workload(record=D1), {"app": moved}), {"app": moved}, {AMD64})
    assert isinstance(plan.action, Rollout)  # nothing to compare: as in index mode
