"""The webhook checks each shape of patch with jsonpatch once: a shape it accepted is not checked
again, and any other shape still is (an invalid operation is never let through by the memo)."""

from __future__ import annotations

import jsonpatch
import pytest

from webhook import mutation

pytestmark = pytest.mark.unit

ADD = {"op": "add", "path": "/metadata/annotations/digest.kube-autorollout~1app", "value": "x@sha256:1"}


def test_a_valid_shape_is_remembered_whatever_its_values() -> None:
    mutation._CHECKED_SHAPES.clear()
    mutation._check_rfc6902([ADD])
    assert len(mutation._CHECKED_SHAPES) == 1
    mutation._check_rfc6902([{**ADD, "value": "y@sha256:2"}])
    assert len(mutation._CHECKED_SHAPES) == 1


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "add", "value": "x"},  # no path
        {"op": "upsert", "path": ADD["path"], "value": "x"},  # no such op
        {"path": ADD["path"], "value": "x"},  # no op
    ],
)
def test_an_invalid_operation_is_rejected_even_next_to_a_remembered_shape(operation: dict[str, str]) -> None:
    mutation._CHECKED_SHAPES.clear()
    mutation._check_rfc6902([ADD])
    with pytest.raises(jsonpatch.InvalidJsonPatch):
        mutation._check_rfc6902([operation])
    with pytest.raises(jsonpatch.InvalidJsonPatch):
        mutation._check_rfc6902([ADD, operation])
    assert len(mutation._CHECKED_SHAPES) == 1
