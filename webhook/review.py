"""AdmissionReview (`admission.k8s.io/v1`) in and out: a slim typed request, and response bytes.

Parsing is plain dict access with type checks (no model classes): admission is a hot path.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from autorollout.errors import AutorolloutError

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"

JsonObject = dict[str, Any]


class ReviewError(AutorolloutError, ValueError):
    """The body is not a usable AdmissionReview; the message is one line, fit for a 400 answer."""


@dataclass(slots=True)  # not frozen: built per request, and a frozen init costs several times more
class AdmissionRequest:
    """The parts of `AdmissionReview.request` the webhook decides on."""

    uid: str
    group: str
    version: str
    kind: str
    operation: str
    namespace: str
    name: str
    sub_resource: str
    dry_run: bool
    object: JsonObject | None
    old_object: JsonObject | None


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _optional_str(request: JsonObject, key: str) -> str:
    value = request.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ReviewError(f"request.{key} must be a string")
    return value


def _optional_object(request: JsonObject, key: str) -> JsonObject | None:
    value = request.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise ReviewError(f"request.{key} must be an object or null")


def parse_review(body: bytes) -> AdmissionRequest:
    """Parse and check an AdmissionReview body; raises ReviewError with a one-line reason."""
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReviewError(_one_line(f"body is not valid JSON: {exc}")) from None
    if not isinstance(review, dict):
        raise ReviewError("body must be a JSON object (an AdmissionReview)")
    if review.get("apiVersion") != API_VERSION or review.get("kind") != KIND:
        raise ReviewError(f"expected apiVersion {API_VERSION} and kind {KIND}")
    request = review.get("request")
    if not isinstance(request, dict):
        raise ReviewError("request must be an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("request.uid must be a non-empty string")
    kind = request.get("kind")
    if not isinstance(kind, dict):
        raise ReviewError("request.kind must be an object")
    group, version, kind_name = kind.get("group", ""), kind.get("version"), kind.get("kind")
    if not isinstance(group, str) or not isinstance(version, str) or not isinstance(kind_name, str):
        raise ReviewError("request.kind needs string group, version and kind")
    operation = request.get("operation")
    if not isinstance(operation, str):
        raise ReviewError("request.operation must be a string")
    dry_run = request.get("dryRun", False)
    if dry_run is None:
        dry_run = False
    if not isinstance(dry_run, bool):
        raise ReviewError("request.dryRun must be a boolean")
    return AdmissionRequest(
        uid=uid,
        group=group,
        version=version,
        kind=kind_name,
        operation=operation,
        namespace=_optional_str(request, "namespace"),
        name=_optional_str(request, "name"),
        sub_resource=_optional_str(request, "subResource"),
        dry_run=dry_run,
        object=_optional_object(request, "object"),
        old_object=_optional_object(request, "oldObject"),
    )


def allowed_response(uid: str, patch: Sequence[JsonObject] = (), warnings: Sequence[str] = ()) -> bytes:
    """An allowing AdmissionReview, with a base64 JSONPatch when `patch` has operations."""
    response: JsonObject = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(patch)).decode("ascii")
    if warnings:
        response["warnings"] = list(warnings)
    return orjson.dumps({"apiVersion": API_VERSION, "kind": KIND, "response": response})


def denied_response(uid: str, message: str, warnings: Sequence[str] = ()) -> bytes:
    """A rejecting AdmissionReview; kubectl shows `message` after "denied the request:"."""
    response: JsonObject = {
        "uid": uid,
        "allowed": False,
        "status": {"status": "Failure", "code": 403, "reason": "Forbidden", "message": message},
    }
    if warnings:
        response["warnings"] = list(warnings)
    return orjson.dumps({"apiVersion": API_VERSION, "kind": KIND, "response": response})
