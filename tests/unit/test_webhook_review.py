"""AdmissionReview parsing and response building."""

from __future__ import annotations

import base64

import orjson
import pytest

from tests.unit.webhook_samples import body, review, workload
from webhook.review import ReviewError, allowed_response, denied_response, parse_review

pytestmark = pytest.mark.unit


def test_parses_the_fields_the_webhook_decides_on() -> None:
    obj = workload("StatefulSet")
    request = parse_review(body(review(obj, operation="UPDATE", old=obj, dry_run=True)))
    assert request.uid == "0b7f4c3e-1d2a-4f5e-9c8b-7a6d5e4f3c2b"
    assert (request.group, request.version, request.kind) == ("apps", "v1", "StatefulSet")
    assert request.operation == "UPDATE"
    assert (request.namespace, request.name, request.sub_resource) == ("team", "web", "")
    assert request.dry_run is True
    assert request.object == obj
    assert request.old_object == obj


def test_core_group_and_missing_optional_fields() -> None:
    document = review(None, group="", kind="Pod", operation="DELETE")
    del document["request"]["dryRun"]
    del document["request"]["namespace"]
    request = parse_review(body(document))
    assert request.group == ""
    assert request.dry_run is False
    assert request.namespace == ""
    assert request.object is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not valid JSON"),
        (b"{not json", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (
            b'{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}',
            "expected apiVersion",
        ),
        (b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}', "request must be an object"),
        (
            b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":""}}',
            "request.uid",
        ),
        (
            b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":"x"}}',
            "request.kind must be an object",
        ),
    ],
)
def test_malformed_bodies_name_the_problem_on_one_line(raw: bytes, reason: str) -> None:
    with pytest.raises(ReviewError) as caught:
        parse_review(raw)
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("operation", 3, "request.operation"),
        ("dryRun", "yes", "request.dryRun"),
        ("namespace", ["x"], "request.namespace"),
        ("object", [1], "request.object must be an object or null"),
        ("oldObject", "x", "request.oldObject"),
    ],
)
def test_wrong_field_types_are_review_errors(field: str, value: object, reason: str) -> None:
    document = review(workload())
    document["request"][field] = value
    with pytest.raises(ReviewError, match=reason):
        parse_review(body(document))


def test_allowed_response_carries_uid_base64_patch_and_warnings() -> None:
    patch = [{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}]
    answer = orjson.loads(allowed_response("u-1", patch, ["kube-autorollout: w"]))
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "u-1"
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert orjson.loads(base64.b64decode(response["patch"])) == patch
    assert response["warnings"] == ["kube-autorollout: w"]


def test_allowed_response_without_patch_has_no_patch_fields() -> None:
    response = orjson.loads(allowed_response("u-2"))["response"]
    assert response == {"uid": "u-2", "allowed": True}


def test_denied_response_is_a_403_status_with_the_message() -> None:
    response = orjson.loads(denied_response("u-3", "no"))["response"]
    assert response["allowed"] is False
    assert response["status"] == {"status": "Failure", "code": 403, "reason": "Forbidden", "message": "no"}
    assert "patch" not in response
