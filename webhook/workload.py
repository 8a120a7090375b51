"""A read-only view of the workload objects the webhook touches: containers and pod template.

Objects arrive as plain dicts; this module checks the few fields it reads and reports a wrong type
as a ReviewError naming the field, so a malformed review gets a one-line 400.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from autorollout.annotations import DIGEST_PREFIX, ENABLED_LABEL, KUBECTL_RESTARTED_AT, RESTARTED_AT
from autorollout.references import ImageReference, InvalidReferenceError, parse_image_reference
from autorollout.templates import TemplateError, template_containers
from webhook.review import AdmissionRequest, JsonObject, ReviewError

WORKLOAD_KINDS: Final = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
_RESTART_KEYS: Final = (RESTARTED_AT, KUBECTL_RESTARTED_AT)


@dataclass(slots=True)  # not frozen: built on every admission, and frozen init costs 3x
class Container:
    """One container or init container of a pod template, with its position in the object."""

    name: str
    image: str
    pull_policy: str | None
    init: bool
    index: int
    reference: ImageReference | None
    """None when `image` is not a valid reference."""

    @property
    def path(self) -> str:
        """JSON pointer of the container in the workload object."""
        field = "initContainers" if self.init else "containers"
        return f"/spec/template/spec/{field}/{self.index}"

    @property
    def label(self) -> str:
        """How warnings name it: `container "web"` or `init container "setup"`."""
        return f'{"init container" if self.init else "container"} "{self.name}"'


class TemplateChange(Enum):
    """How an UPDATE changed the pod template."""

    NONE = "none"
    RESTART_ONLY = "restart-only"  # only a restartedAt annotation: a rollout restart
    OTHER = "other"


def _member(obj: JsonObject, key: str, where: str) -> JsonObject:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ReviewError(f"{where}.{key} must be an object")
    return value


def _string(obj: JsonObject, key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ReviewError(f"{where}.{key} must be a string")


def is_eligible(request: AdmissionRequest) -> bool:
    """An apps/v1 workload, created or updated (not a subresource), labeled to opt in."""
    if request.group != "apps" or request.version != "v1" or request.kind not in WORKLOAD_KINDS:
        return False
    if request.operation not in ("CREATE", "UPDATE") or request.sub_resource or request.object is None:
        return False
    labels = _member(
        _member(request.object, "metadata", "request.object"), "labels", "request.object.metadata"
    )
    return labels.get(ENABLED_LABEL) == "true"


def annotations_of(obj: JsonObject, where: str) -> JsonObject | None:
    """`metadata.annotations`, or None when the object has none."""
    annotations = _member(obj, "metadata", where).get("annotations")
    if annotations is None or isinstance(annotations, dict):
        return annotations
    raise ReviewError(f"{where}.metadata.annotations must be an object")


def digest_annotations(annotations: JsonObject | None) -> dict[str, Any]:
    """The `digest.kube-autorollout/*` entries of an annotations mapping."""
    if not annotations:
        return {}
    return {key: value for key, value in annotations.items() if key.startswith(DIGEST_PREFIX)}


def pod_template(obj: JsonObject, where: str) -> JsonObject:
    return _member(_member(obj, "spec", where), "template", f"{where}.spec")


def pull_secret_names(obj: JsonObject, where: str) -> tuple[str, ...]:
    """Names in the pod template's `imagePullSecrets`, in order."""
    pod_where = f"{where}.spec.template.spec"
    pod_spec = _member(pod_template(obj, where), "spec", f"{where}.spec.template")
    entries = pod_spec.get("imagePullSecrets")
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise ReviewError(f"{pod_where}.imagePullSecrets must be a list")
    names = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ReviewError(f"{pod_where}.imagePullSecrets[{i}] must be an object")
        name = _string(entry, "name", f"{pod_where}.imagePullSecrets[{i}]")
        if name:
            names.append(name)
    return tuple(names)


@functools.lru_cache(maxsize=4096)
def _parse_reference(image: str) -> ImageReference | None:
    # Cached: the same few images arrive again and again, and parsing is the costliest step.
    try:
        return parse_image_reference(image)
    except InvalidReferenceError:
        return None


def _container(name: str, image: str, pull_policy: str | None, init: bool, index: int) -> Container:
    return Container(name, image, pull_policy, init, index, _parse_reference(image) if image else None)


def containers_of(obj: JsonObject, where: str) -> tuple[Container, ...]:
    """Init containers first, then containers, in spec order."""
    pod_spec = _member(pod_template(obj, where), "spec", f"{where}.spec.template")
    try:
        return tuple(template_containers(pod_spec, _container))
    except TemplateError as exc:
        raise ReviewError(f"{where}.spec.template.spec.{exc}") from None


def _without_restart(template: JsonObject) -> JsonObject:
    metadata = template.get("metadata")
    if not isinstance(metadata, dict):
        return template
    annotations = metadata.get("annotations")
    if not isinstance(annotations, dict) or not any(key in annotations for key in _RESTART_KEYS):
        return template
    kept = {key: value for key, value in annotations.items() if key not in _RESTART_KEYS}
    stripped_metadata = {key: value for key, value in metadata.items() if key != "annotations"}
    if kept:
        stripped_metadata["annotations"] = kept
    return {**template, "metadata": stripped_metadata}


def template_change(old: JsonObject, new: JsonObject) -> TemplateChange:
    """Compare the pod templates of the old and new object of an UPDATE."""
    old_template = pod_template(old, "request.oldObject")
    new_template = pod_template(new, "request.object")
    if old_template == new_template:
        return TemplateChange.NONE
    if _without_restart(old_template) == _without_restart(new_template):
        return TemplateChange.RESTART_ONLY
    return TemplateChange.OTHER
