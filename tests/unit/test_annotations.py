"""The contract's label and annotation keys, and the recorded-digest and restartedAt values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from autorollout import annotations as ann

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "0123456789abcdef" * 4


def test_contract_keys() -> None:
    assert ann.ENABLED_LABEL == "kube-autorollout/enabled"
    assert ann.ENABLED_SELECTOR == "kube-autorollout/enabled=true"
    assert ann.DIGEST_PREFIX == "digest.kube-autorollout/"
    assert ann.RESTARTED_AT == "kube-autorollout/restartedAt"
    assert ann.KUBECTL_RESTARTED_AT == "kubectl.kubernetes.io/restartedAt"
    assert ann.digest_annotation_key("app") == "digest.kube-autorollout/app"
    assert ann.restarted_at_key(kubectl=False) == "kube-autorollout/restartedAt"
    assert ann.restarted_at_key(kubectl=True) == "kubectl.kubernetes.io/restartedAt"


def test_is_enabled_needs_the_exact_value_true() -> None:
    assert ann.is_enabled({"kube-autorollout/enabled": "true"})
    assert not ann.is_enabled({"kube-autorollout/enabled": "True"})
    assert not ann.is_enabled({"kube-autorollout/enabled": "false"})
    assert not ann.is_enabled({})
    assert not ann.is_enabled(None)


@pytest.mark.parametrize(
    "image",
    ["nginx", "nginx:1.27", "ghcr.io/org/app:main", "[::1]:5000/x:tag", f"pinned@{DIGEST}"],
)
def test_recorded_value_round_trips_the_image_as_written(image: str) -> None:
    value = ann.format_recorded(image, DIGEST)
    assert value == f"{image}@{DIGEST}"
    assert ann.parse_recorded(value) == (image, DIGEST)


def test_format_recorded_rejects_a_non_digest() -> None:
    with pytest.raises(ValueError, match="not a digest"):
        ann.format_recorded("nginx", "latest")


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "nginx",
        "nginx@",
        f"@{DIGEST}",
        "nginx@sha256:xyz",
        "nginx@sha256:ABCDEF0123456789ABCDEF0123456789",
        "nginx@latest",
    ],
)
def test_parse_recorded_returns_none_for_values_that_are_not_ours(value: str | None) -> None:
    assert ann.parse_recorded(value) is None


def test_restarted_at_is_rfc3339_utc_with_microseconds() -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert ann.format_restarted_at(moment) == "2025-01-02T01:04:05.123456Z"
    parsed = datetime.fromisoformat(ann.format_restarted_at())
    assert parsed.tzinfo is not None
    assert abs(parsed - datetime.now(UTC)) < timedelta(minutes=1)
