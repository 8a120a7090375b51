"""JFrog Artifactory webhooks, domain `docker`, event `pushed`: `data.repo_key`, `data.image_name`,
`data.tag`, and `jpd_origin` (the platform's URL). The image is addressed by Artifactory's
repository path method, "<host>/<repo_key>/<image_name>:<tag>"; a subdomain or port setup names
its host in `events.sources.artifactory.registryHost` (then "<registryHost>/<image_name>:<tag>").
The secret token arrives in `X-JFrog-Event-Auth`.
"""

from __future__ import annotations

from autorollout.events.model import Headers, ImageEvent, host_of, image_event, obj, text

PUSHED = "pushed"


def parse(payload: object, headers: Headers, *, registry_host: str | None = None) -> list[ImageEvent]:
    """The tag a docker `pushed` event names (none for deletes, promotions, other domains)."""
    body = obj(payload, "payload")
    if body.get("domain") != "docker" or body.get("event_type") != PUSHED:
        return []
    data = obj(body.get("data"), "data")
    image = text(data.get("image_name"), "data.image_name")
    tag = text(data.get("tag"), "data.tag")
    raw_sha = data.get("sha256")
    digest = f"sha256:{raw_sha}" if isinstance(raw_sha, str) else None
    if registry_host:
        return [image_event(registry_host, image, tag, digest)]
    host = host_of(text(body.get("jpd_origin"), "jpd_origin"))
    return [image_event(host, f"{text(data.get('repo_key'), 'data.repo_key')}/{image}", tag, digest)]
