"""RFC 6902 operations on annotations, pure: the one place both halves build the patches they send.

The webhook records digests on an object in admission; the reconciler records them and restarts the
pod template. Both write annotation maps that may not exist yet (a JSON patch `add` needs the parent).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JsonPatch = list[dict[str, Any]]


def escape_pointer(token: str) -> str:
    """One JSON pointer reference token (RFC 6901): `~` -> `~0`, `/` -> `~1`."""
    return token.replace("~", "~0").replace("/", "~1")


def annotation_operations(
    annotations: Mapping[str, Any] | None,
    changes: Mapping[str, str | None],
    *,
    has_metadata: bool = True,
    metadata: str = "/metadata",
) -> JsonPatch:
    """Operations setting (str) or removing (None) annotations, skipping those already so.

    `annotations` is the map as it is (None: absent) under the metadata object at pointer `metadata`,
    which `has_metadata` says exists.
    """
    if annotations is None:
        added = {key: value for key, value in changes.items() if value is not None}
        if not added:
            return []
        if not has_metadata:
            return [{"op": "add", "path": metadata, "value": {"annotations": added}}]
        return [{"op": "add", "path": f"{metadata}/annotations", "value": added}]
    operations: JsonPatch = []
    for key, value in changes.items():
        path = f"{metadata}/annotations/{escape_pointer(key)}"
        if value is None:
            if key in annotations:
                operations.append({"op": "remove", "path": path})
        elif annotations.get(key) != value:
            operations.append({"op": "add", "path": path, "value": value})
    return operations
