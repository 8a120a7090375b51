"""Azure Container Registry webhooks: one distribution-style event per request (`action: push`,
`target.repository`, `target.tag`, `request.host` = "<name>.azurecr.io"); `chart_push`,
`delete` and `quarantine` move no image tag."""

from __future__ import annotations

from autorollout.events.distribution import push_event
from autorollout.events.model import Headers, ImageEvent, obj


def parse(payload: object, headers: Headers) -> list[ImageEvent]:
    """The tag an ACR `push` event names (none for other actions or a push by digest)."""
    event = push_event(obj(payload, "payload"), "payload")
    return [] if event is None else [event]
