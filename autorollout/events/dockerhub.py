"""Docker Hub webhooks: `{"push_data": {"tag": ...}, "repository": {"repo_name": "owner/name"}}`.

Docker Hub signs nothing and sets no custom header: the shared token travels in the URL's `token`
query parameter (see docs/registry-events.md). Names are normalised as in pod specs, so
`library/nginx` and `nginx` are the same image.
"""

from __future__ import annotations

from autorollout.events.model import Headers, ImageEvent, image_event, obj, text
from autorollout.references import DOCKER_HUB


def parse(payload: object, headers: Headers) -> list[ImageEvent]:
    """The Docker Hub tag a webhook says was pushed."""
    body = obj(payload, "payload")
    push = obj(body.get("push_data"), "push_data")
    repository = obj(body.get("repository"), "repository")
    tag = push.get("tag")
    if not tag:
        return []
    return [
        image_event(
            DOCKER_HUB, text(repository.get("repo_name"), "repository.repo_name"), text(tag, "push_data.tag")
        )
    ]
