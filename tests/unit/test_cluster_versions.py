"""The kubectl version-skew rule of the local control plane harness."""

from pathlib import Path

import pytest

from tests.fixtures.cluster import namespace_name
from tests.harness.cluster import (
    KubectlCandidate,
    choose_kubectl,
    parse_kube_version,
    requested_kube_version,
    within_kubectl_skew,
)

pytestmark = pytest.mark.unit

MACHINE = Path("/usr/bin/kubectl")
BUILT = Path("/cache/kubernetes-v1.37.2/kubectl")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v1.32.4-dispatcher", (1, 32)),
        ("v1.37.2", (1, 37)),
        ("Kubernetes v1.31.14", (1, 31)),
        ("1.30", (1, 30)),
        ("v1.33.0-rc.1+k3s1", (1, 33)),
    ],
)
def test_parse_kube_version(text: str, expected: tuple[int, int]) -> None:
    assert parse_kube_version(text) == expected


def test_parse_kube_version_rejects_text_without_version() -> None:
    with pytest.raises(ValueError, match="no Kubernetes version"):
        parse_kube_version("Kubernetes devel")


@pytest.mark.parametrize(
    ("client", "server", "supported"),
    [
        ((1, 37), (1, 37), True),
        ((1, 36), (1, 37), True),
        ((1, 38), (1, 37), True),
        ((1, 35), (1, 37), False),
        ((1, 39), (1, 37), False),
        ((1, 32), (1, 37), False),
        ((1, 32), (1, 31), True),
        ((2, 37), (1, 37), False),
    ],
)
def test_within_kubectl_skew(client: tuple[int, int], server: tuple[int, int], supported: bool) -> None:
    assert within_kubectl_skew(client, server) is supported


def test_machine_kubectl_within_one_minor_is_used() -> None:
    assert choose_kubectl((1, 31), KubectlCandidate(MACHINE, (1, 32)), BUILT) == MACHINE
    assert choose_kubectl((1, 33), KubectlCandidate(MACHINE, (1, 32)), BUILT) == MACHINE


def test_machine_kubectl_too_old_or_too_new_falls_back_to_built() -> None:
    assert choose_kubectl((1, 37), KubectlCandidate(MACHINE, (1, 32)), BUILT) == BUILT
    assert choose_kubectl((1, 30), KubectlCandidate(MACHINE, (1, 32)), BUILT) == BUILT


def test_missing_or_unversioned_machine_kubectl_falls_back_to_built() -> None:
    assert choose_kubectl((1, 37), None, BUILT) == BUILT
    assert choose_kubectl((1, 37), KubectlCandidate(MACHINE, None), BUILT) == BUILT


def test_namespace_names_are_unique_dns_labels() -> None:
    names = {namespace_name("test_rollout[Deployment-apps/v1]") for _ in range(20)}
    assert len(names) == 20
    for name in names:
        assert len(name) <= 63
        assert name.startswith("test-rollout-deployment-apps-v1-")
        assert name.replace("-", "").isalnum()
        assert name == name.lower()
    assert namespace_name("x" * 200).startswith("x" * 40 + "-")
    assert namespace_name("___").startswith("test-")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("v1.35.4", "v1.35.4"), ("1.35.4", "v1.35.4"), (" 1.34.4 ", "v1.34.4"), ("", None)],
)
def test_requested_kube_version_is_spelled_as_kubernetes_does(
    value: str, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBE_VERSION", value)
    assert requested_kube_version() == expected


def test_requested_kube_version_is_none_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBE_VERSION", raising=False)
    assert requested_kube_version() is None
