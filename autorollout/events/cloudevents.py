"""CloudEvents 1.0 over HTTP, structured mode (`application/cloudevents+json`, batches too) and
binary mode (`ce-*` headers, the body is `data`).

The event's `data` is read by its `type`: Harbor's CloudEvents format (`harbor.artifact.pushed`),
Azure Event Grid's `Microsoft.ContainerRegistry.ImagePushed`, a distribution envelope, or the
generic `{"image": ...}` form; other types move nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autorollout.events import distribution, generic
from autorollout.events.harbor import push_resources
from autorollout.events.model import Headers, ImageEvent, MalformedEventError, items, obj, text

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
SPEC_VERSION = "1.0"
MAX_BATCH = 100


def parse(payload: object, headers: Headers) -> list[ImageEvent]:
    """The images the CloudEvent(s) say were pushed."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == BATCH:
        batch = items(payload, "payload")
        if len(batch) > MAX_BATCH:
            raise MalformedEventError(f"batch: more than {MAX_BATCH} events")
        return [e for i, raw in enumerate(batch) for e in _structured(obj(raw, f"[{i}]"), f"[{i}]")]
    if content_type == STRUCTURED:
        return _structured(obj(payload, "payload"), "payload")
    if "ce-specversion" not in headers:
        raise MalformedEventError(f"neither {STRUCTURED} nor binary mode (ce-specversion header)")
    _check_version(headers["ce-specversion"], "ce-specversion")
    return _data(text(headers.get("ce-type"), "ce-type"), payload, "data")


def _structured(event: Mapping[str, Any], where: str) -> list[ImageEvent]:
    _check_version(event.get("specversion"), f"{where}.specversion")
    kind = text(event.get("type"), f"{where}.type")
    if "data" not in event:
        return []  # data_base64 (binary data) is never an image push
    return _data(kind, event["data"], f"{where}.data")


def _check_version(version: object, where: str) -> None:
    if version != SPEC_VERSION:
        raise MalformedEventError(f"{where}: expected {SPEC_VERSION!r}")


def _data(kind: str, data: object, where: str) -> list[ImageEvent]:
    if kind.startswith("harbor.artifact.pushed"):
        return push_resources(obj(data, where), where)
    if kind == "Microsoft.ContainerRegistry.ImagePushed":
        event = distribution.push_event({"action": "push", **obj(data, where)}, where)
        return [] if event is None else [event]
    body = data if isinstance(data, Mapping) else {}
    if "events" in body:
        return distribution.parse(body, {})
    if "image" in body or "images" in body:
        return generic.parse(body, {})
    return []
