"""The webhook and the rollout policy annotations, through the real API server and kubectl:
`kubectl apply` prints a warning per invalid policy annotation (and the apply goes through), and an
unwatched container gets no digest annotation."""

from __future__ import annotations

import secrets

import pytest

from tests.e2e.webhook_process import (
    WebhookProcess,
    apply,
    digests_of,
    get,
    registered,
    warnings_in,
    workload,
)
from tests.harness.cluster import LocalCluster
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e


def test_kubectl_apply_prints_policy_warnings_and_unwatched_containers_get_no_digest(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, webhook: WebhookProcess
) -> None:
    repo = f"p{secrets.token_hex(2)}"
    app_digest = registry.push_image(f"{repo}/app", "latest", seed=11)
    registry.push_image(f"{repo}/side", "main", seed=12)
    registry.push_image(f"{repo}/probe", "latest", seed=13)
    app, side = f"{registry.host}/{repo}/app:latest", f"{registry.host}/{repo}/side:main"
    manifest = workload("Deployment", "web", namespace, [("app", app), ("side", side)])
    manifest["metadata"]["annotations"] = {
        "policy.kube-autorollout/exclude-containers": "side",
        "policy.kube-autorollout/compare": "arm-only",
        "policy.kube-autorollout/settle": "a moment",
        "policy.kube-autorollout/windows": "0 2 * * * 2h Europe/Nowhere",
    }
    with registered(cluster, webhook, [namespace], f"{registry.host}/{repo}/probe:latest"):
        result = apply(cluster, manifest)
    assert warnings_in(result.stderr) == [
        "kube-autorollout: policy.kube-autorollout/compare: expected index or platform",
        "kube-autorollout: policy.kube-autorollout/settle: not a duration (e.g. 90s, 10m, 1h30m)",
        "kube-autorollout: policy.kube-autorollout/windows: timezone is not an IANA zone name "
        "(e.g. Europe/Berlin)",
    ]
    assert "a moment" not in result.stderr
    assert "arm-only" not in result.stderr
    assert digests_of(get(cluster, "Deployment", namespace, "web")) == {"app": f"{app}@{app_digest}"}
