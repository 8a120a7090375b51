"""imagePullPolicy modes over containers and init containers."""

from __future__ import annotations

import jsonpatch
import pytest

from tests.unit.webhook_samples import DIGEST_A, workload
from webhook.messages import MAX_WARNING
from webhook.policy import PullPolicyMode, effective_pull_policy, enforce, offenders
from webhook.workload import containers_of

pytestmark = pytest.mark.unit

MIXED = workload(
    containers=[
        ("app", "reg.example/app:1.2", "IfNotPresent"),
        ("side", "reg.example/side:latest", "Always"),
    ],
    init=[("setup", "reg.example/setup:main", "Never")],
)


def test_offenders_are_every_container_not_pulling_always() -> None:
    found = [(c.label, policy) for c, policy in offenders(containers_of(MIXED, "object"))]
    assert found == [('init container "setup"', "Never"), ('container "app"', "IfNotPresent")]


def test_digest_pinned_images_are_exempt() -> None:
    obj = workload(containers=[("app", f"reg.example/app@{DIGEST_A}", "IfNotPresent")])
    assert offenders(containers_of(obj, "object")) == []


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("reg.example/app", "Always"),
        ("reg.example/app:latest", "Always"),
        ("reg.example/app:1", "IfNotPresent"),
    ],
)
def test_missing_policy_follows_the_kubernetes_default(image: str, expected: str) -> None:
    (container,) = containers_of(workload(containers=[("app", image, None)]), "object")
    assert effective_pull_policy(container) == expected


def test_mutate_sets_always_and_warns_per_container() -> None:
    outcome = enforce(containers_of(MIXED, "object"), PullPolicyMode.MUTATE)
    assert outcome.denial is None
    patched = jsonpatch.apply_patch(MIXED, outcome.operations)
    pod = patched["spec"]["template"]["spec"]
    assert [c["imagePullPolicy"] for c in pod["initContainers"] + pod["containers"]] == ["Always"] * 3
    assert outcome.warnings == [
        'kube-autorollout: init container "setup" (reg.example/setup:main): '
        "imagePullPolicy Never set to Always",
        'kube-autorollout: container "app" (reg.example/app:1.2): imagePullPolicy IfNotPresent set to Always',
    ]


def test_mutate_adds_a_missing_policy() -> None:
    obj = workload(containers=[("app", "reg.example/app:2", None)])
    outcome = enforce(containers_of(obj, "object"), PullPolicyMode.MUTATE)
    assert outcome.operations == [
        {"op": "add", "path": "/spec/template/spec/containers/0/imagePullPolicy", "value": "Always"}
    ]


def test_warn_only_warns() -> None:
    outcome = enforce(containers_of(MIXED, "object"), PullPolicyMode.WARN)
    assert outcome.operations == []
    assert outcome.denial is None
    assert len(outcome.warnings) == 2
    assert all(w.endswith(", not Always") and len(w) <= MAX_WARNING for w in outcome.warnings)


def test_deny_names_every_offending_container() -> None:
    outcome = enforce(containers_of(MIXED, "object"), PullPolicyMode.DENY)
    assert outcome.operations == []
    assert outcome.denial is not None
    assert 'init container "setup" (Never)' in outcome.denial
    assert 'container "app" (IfNotPresent)' in outcome.denial
    assert "side" not in outcome.denial


@pytest.mark.parametrize("mode", list(PullPolicyMode))
def test_compliant_workloads_pass_every_mode(mode: PullPolicyMode) -> None:
    outcome = enforce(containers_of(workload(), "object"), mode)
    assert (outcome.operations, outcome.warnings, outcome.denial) == ([], [], None)
