"""The containers of a pod template, read once for both halves: init containers first, then
containers, in spec order, each with its position (the webhook patches by position)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

#: Builds a caller's own record from (name, image, imagePullPolicy, is_init, index).
ContainerFactory = Callable[[str, str, str | None, bool, int], T]

_FIELDS = (("initContainers", True), ("containers", False))


class TemplateError(ValueError):
    """A pod spec field of the wrong type; the message starts with its path below the pod spec."""


def _string(entry: Mapping[str, Any], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is None or isinstance(value, str):
        return value
    raise TemplateError(f"{where}.{key} must be a string")


def template_containers(pod_spec: Mapping[str, Any], make: ContainerFactory[T]) -> list[T]:
    """Every container and init container of `pod_spec`, built by `make`; absent names and images
    are "". Raises TemplateError for a field of the wrong type."""
    found: list[T] = []
    for field, init in _FIELDS:
        entries = pod_spec.get(field)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise TemplateError(f"{field} must be a list")
        for index, entry in enumerate(entries):
            where = f"{field}[{index}]"
            if not isinstance(entry, dict):
                raise TemplateError(f"{where} must be an object")
            name = _string(entry, "name", where) or ""
            image = _string(entry, "image", where) or ""
            found.append(make(name, image, _string(entry, "imagePullPolicy", where), init, index))
    return found
