"""The webhook and the rollout policy annotations: unwatched containers get no digest annotation,
invalid policy annotations are warned about at apply time (and the apply still goes through)."""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest

from tests.unit.webhook_samples import DIGEST_A, DIGEST_B, body, review, workload
from webhook.mutation import decide, plan_admission
from webhook.policy import PullPolicyMode
from webhook.review import parse_review

pytestmark = pytest.mark.unit

APP = "reg.example:5000/team/app:latest"
SIDE = "reg.example:5000/team/side:main"
SETUP = "reg.example:5000/team/setup:v1"


def three(annotations: dict[str, str]) -> dict[str, Any]:
    return workload(
        containers=[("app", APP), ("side", SIDE)], init=[("setup", SETUP)], annotations=annotations
    )


def test_unwatched_containers_are_not_looked_up_and_get_no_digest_annotation() -> None:
    obj = three(
        {
            "policy.kube-autorollout/exclude-containers": "side, setup",
            "digest.kube-autorollout/side": f"{SIDE}@{DIGEST_B}",  # recorded before it was excluded
        }
    )
    plan = plan_admission(parse_review(body(review(obj))))
    assert plan is not None
    assert [c.name for c in plan.lookups] == ["app"]
    decision = decide(plan, PullPolicyMode.WARN, {"app": DIGEST_A})
    annotations = jsonpatch.apply_patch(obj, decision.operations)["metadata"]["annotations"]
    assert annotations["digest.kube-autorollout/app"] == f"{APP}@{DIGEST_A}"
    assert "digest.kube-autorollout/side" not in annotations
    assert "digest.kube-autorollout/setup" not in annotations
    assert decision.warnings == []


def test_an_include_list_watches_only_the_named_init_container() -> None:
    plan = plan_admission(parse_review(body(review(three({"policy.kube-autorollout/containers": "setup"})))))
    assert plan is not None
    assert [c.name for c in plan.lookups] == ["setup"]


def test_invalid_policy_annotations_are_warned_about_naming_the_annotation_and_the_apply_goes_through() -> (
    None
):
    obj = three(
        {
            "policy.kube-autorollout/settle": "a while",
            "policy.kube-autorollout/windows": "0 2 * * * 2h Atlantis/Capital",
            "policy.kube-autorollout/containers": "App_1",
        }
    )
    plan = plan_admission(parse_review(body(review(obj))))
    assert plan is not None
    assert len(plan.lookups) == 3  # the invalid include list falls back to every container
    decision = decide(plan, PullPolicyMode.WARN, {"app": DIGEST_A, "side": DIGEST_B, "setup": DIGEST_B})
    assert decision.denial is None
    assert decision.operations
    assert sorted(decision.warnings) == [
        "kube-autorollout: policy.kube-autorollout/containers: not a comma-separated list of container names",
        "kube-autorollout: policy.kube-autorollout/settle: not a duration (e.g. 90s, 10m, 1h30m)",
        "kube-autorollout: policy.kube-autorollout/windows: timezone is not an IANA zone name "
        "(e.g. Europe/Berlin)",
    ]
    assert all(len(w) < 120 for w in decision.warnings)
