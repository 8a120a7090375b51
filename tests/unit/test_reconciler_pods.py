"""What the newest ready pod runs (adoption), from raw pod objects as a kubelet reports them."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.pods import digest_of_image_id, newest_ready_pod, running_digests
from tests.unit.reconciler_objects import D1, D2, D3

pytestmark = pytest.mark.unit


def pod(
    name: str,
    created: str,
    *,
    ready: bool = True,
    phase: str = "Running",
    deleting: bool = False,
    image_ids: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    statuses = [{"name": n, "imageID": i} for n, i in (image_ids or {"app": f"host/app@{D1}"}).items()]
    return {
        "metadata": meta,
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": statuses,
            "initContainerStatuses": [{"name": "init", "imageID": f"host/init@{D3}"}],
        },
    }


@pytest.mark.parametrize(
    ("image_id", "expected"),
    [
        (f"docker-pullable://nginx@{D1}", D1),
        (f"registry.local:5000/team/app@{D1}", D1),
        (f"docker.io/library/nginx@{D2}", D2),
        (D1, None),  # Docker's local image ID, not a registry digest
        (f"docker://{D1}", None),
        ("", None),
    ],
)
def test_digest_of_image_id(image_id: str, expected: str | None) -> None:
    assert digest_of_image_id(image_id) == expected


def test_newest_ready_pod_wins() -> None:
    pods = [
        pod("old", "2025-01-01T00:00:00Z"),
        pod("new-not-ready", "2025-01-03T00:00:00Z", ready=False),
        pod("new-pending", "2025-01-03T00:00:00Z", phase="Pending"),
        pod("terminating", "2025-01-04T00:00:00Z", deleting=True),
        pod("newest-ready", "2025-01-02T00:00:00Z"),
    ]
    chosen = newest_ready_pod(pods)
    assert chosen is not None
    assert chosen["metadata"]["name"] == "newest-ready"


def test_no_ready_pod() -> None:
    assert newest_ready_pod([pod("p", "2025-01-01T00:00:00Z", ready=False)]) is None
    assert newest_ready_pod([]) is None


def test_running_digests_cover_containers_and_init_containers() -> None:
    p = pod("p", "2025-01-01T00:00:00Z", image_ids={"app": f"h/app@{D1}", "side": f"docker://{D2}"})
    assert running_digests(p) == {"app": D1, "init": D3}
