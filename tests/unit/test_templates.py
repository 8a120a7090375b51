"""The one projection of a pod template's containers that the webhook and the reconciler share."""

from __future__ import annotations

from typing import Any

import pytest

from autorollout.templates import TemplateError, template_containers
from reconciler.workload import RecordError, parse_workload
from tests.unit.reconciler_objects import IMAGE, SIDECAR, workload_object
from webhook.workload import containers_of

pytestmark = pytest.mark.unit


def _plain(name: str, image: str, policy: str | None, init: bool, index: int) -> tuple[Any, ...]:
    return (name, image, policy, init, index)


def test_init_containers_first_then_containers_with_their_positions() -> None:
    pod_spec = {
        "containers": [
            {"name": "app", "image": IMAGE},
            {"name": "side", "image": SIDECAR, "imagePullPolicy": "Never"},
        ],
        "initContainers": [{"name": "setup", "image": IMAGE, "imagePullPolicy": "Always"}],
    }
    assert template_containers(pod_spec, _plain) == [
        ("setup", IMAGE, "Always", True, 0),
        ("app", IMAGE, None, False, 0),
        ("side", SIDECAR, "Never", False, 1),
    ]
    assert template_containers({"containers": [{}]}, _plain) == [("", "", None, False, 0)]


@pytest.mark.parametrize(
    ("pod_spec", "message"),
    [
        ({"containers": {}}, "containers must be a list"),
        ({"initContainers": ["x"]}, r"initContainers\[0\] must be an object"),
        ({"containers": [{"name": "a"}, {"name": 1}]}, r"containers\[1\]\.name must be a string"),
        ({"containers": [{"image": ["x"]}]}, r"containers\[0\]\.image must be a string"),
        ({"containers": [{"imagePullPolicy": True}]}, r"containers\[0\]\.imagePullPolicy must be a string"),
    ],
)
def test_a_field_of_the_wrong_type_is_named(pod_spec: dict[str, Any], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        template_containers(pod_spec, _plain)


def test_both_halves_see_the_same_containers_of_one_object() -> None:
    obj = workload_object(containers=[("app", IMAGE), ("side", SIDECAR)], init_containers=[("setup", IMAGE)])
    webhook_view = [(c.name, c.image, c.pull_policy, c.init) for c in containers_of(obj, "request.object")]
    reconciler_view = [
        (c.name, c.image, c.pull_policy, c.is_init) for c in parse_workload("Deployment", obj).containers
    ]
    assert (
        webhook_view
        == reconciler_view
        == [
            ("setup", IMAGE, "Always", True),
            ("app", IMAGE, "Always", False),
            ("side", SIDECAR, "Always", False),
        ]
    )


def test_the_reconciler_ignores_a_workload_whose_template_it_cannot_read() -> None:
    obj = workload_object()
    obj["spec"]["template"]["spec"]["containers"] = "app"
    with pytest.raises(
        RecordError, match=r"^Deployment ns/app: spec\.template\.spec\.containers must be a list$"
    ):
        parse_workload("Deployment", obj)
