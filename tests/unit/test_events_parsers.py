"""Each source's parser on its sample payloads (tests/data/events/): what moved, what is ignored, and
that malformed payloads are one-line MalformedEventErrors, never anything else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autorollout.config.events import SOURCE_NAMES
from autorollout.events import MalformedEventError
from autorollout.events.sources import SOURCES, parser_for

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[1] / "data" / "events"
A, B, C = (f"sha256:{x * 64}" for x in "abc")


def sample(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def moved(
    source: str, payload: object, headers: dict[str, str] | None = None, **kw: str
) -> list[tuple[str, str | None]]:
    return [(str(e.image), e.digest) for e in parser_for(source, **kw)(payload, headers or {})]


def test_every_configurable_source_has_a_parser() -> None:
    assert set(SOURCES) == set(SOURCE_NAMES)


def test_distribution_names_the_tag_pushed_not_the_platform_manifests_nor_pulls() -> None:
    assert moved("distribution", sample("distribution.json")) == [
        ("registry.example.com:5000/team/api:main", A)
    ]


def test_distribution_without_request_host_takes_the_target_url_host() -> None:
    envelope = {
        "events": [
            {
                "action": "push",
                "target": {"repository": "a/b", "tag": "t", "url": "http://r.local:5000/v2/a/b/manifests/t"},
            }
        ]
    }
    assert moved("distribution", envelope) == [("r.local:5000/a/b:t", None)]


def test_dockerhub_is_docker_io_and_official_images_are_library() -> None:
    assert moved("dockerhub", sample("dockerhub.json")) == [("docker.io/acme/web:latest", None)]
    assert moved("dockerhub", sample("dockerhub-official.json")) == [("docker.io/library/nginx:1.27", None)]


def test_github_package_and_registry_package_name_ghcr_images_in_lowercase() -> None:
    assert moved("github", sample("github-package.json"), {"x-github-event": "package"}) == [
        ("ghcr.io/acme/web-app:main", C)
    ]
    assert moved(
        "github", sample("github-registry-package.json"), {"x-github-event": "registry_package"}
    ) == [("ghcr.io/acme/worker:nightly", B)]


def test_github_ignores_pings_other_events_untagged_versions_and_other_actions() -> None:
    assert moved("github", {"zen": "hi"}, {"x-github-event": "ping"}) == []
    assert moved("github", sample("github-package.json"), {"x-github-event": "push"}) == []
    assert moved("github", sample("github-untagged.json"), {"x-github-event": "package"}) == []
    deleted = {**sample("github-package.json"), "action": "deleted"}
    assert moved("github", deleted, {"x-github-event": "package"}) == []


def test_harbor_default_and_cloudevents_formats() -> None:
    expected = [("harbor.example.com/shop/cart:stable", A)]
    assert moved("harbor", sample("harbor.json")) == expected
    headers = {"content-type": "application/cloudevents+json"}
    assert moved("cloudevents", sample("harbor-cloudevent.json"), headers) == expected
    assert moved("harbor", {**sample("harbor.json"), "type": "PULL_ARTIFACT"}) == []


def test_quay_names_every_updated_tag() -> None:
    assert moved("quay", sample("quay.json")) == [
        ("quay.io/acme/web:latest", None),
        ("quay.io/acme/web:v2", None),
    ]


def test_artifactory_by_repository_path_or_by_the_configured_host() -> None:
    assert moved("artifactory", sample("artifactory.json")) == [
        ("acme.jfrog.io/docker-local/team/api:main", C)
    ]
    assert moved("artifactory", sample("artifactory.json"), registry_host="docker.acme.example") == [
        ("docker.acme.example/team/api:main", C)
    ]
    assert moved("artifactory", {**sample("artifactory.json"), "event_type": "deleted"}) == []


def test_acr_webhook_and_event_grid_cloudevent() -> None:
    expected = [("acme.azurecr.io/payments/api:v3", B)]
    assert moved("acr", sample("acr.json")) == expected
    assert moved("acr", {**sample("acr.json"), "action": "delete"}) == []
    headers = {"content-type": "application/cloudevents+json; charset=utf-8"}
    assert moved("cloudevents", sample("acr-eventgrid-cloudevent.json"), headers) == expected


def test_cloudevents_binary_mode_and_batches() -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "com.example.image.pushed",
        "ce-id": "1",
        "ce-source": "/ci",
    }
    assert moved("cloudevents", sample("cloudevent-binary-data.json"), headers) == [
        ("ghcr.io/acme/worker:nightly", None)
    ]
    batch = [sample("harbor-cloudevent.json"), sample("acr-eventgrid-cloudevent.json")]
    assert len(moved("cloudevents", batch, {"content-type": "application/cloudevents-batch+json"})) == 2
    unrelated = {
        "specversion": "1.0",
        "type": "com.example.other",
        "id": "2",
        "source": "/x",
        "data": {"a": 1},
    }
    assert moved("cloudevents", unrelated, {"content-type": "application/cloudevents+json"}) == []


def test_generic_form_normalises_and_keeps_a_valid_digest_only() -> None:
    assert moved("generic", sample("generic.json")) == [("registry.example.com:5000/team/api:main", None)]
    assert moved("generic", {"image": "nginx:1.27", "digest": A}) == [("docker.io/library/nginx:1.27", A)]
    assert moved("generic", {"image": "nginx:1.27", "digest": "sha256:nothex"}) == [
        ("docker.io/library/nginx:1.27", None)
    ]
    assert moved("generic", {"images": ["a.example/x:1", "a.example/y:2"]}) == [
        ("a.example/x:1", None),
        ("a.example/y:2", None),
    ]


@pytest.mark.parametrize(
    ("source", "payload", "headers", "reason"),
    [
        ("distribution", {"events": "x"}, {}, "events: expected an array"),
        (
            "distribution",
            {"events": [{"action": "push", "target": {"tag": "t"}}]},
            {},
            "events[0].target.repository",
        ),
        ("dockerhub", {"push_data": {"tag": "x"}}, {}, "repository: expected an object"),
        ("github", {"action": "published"}, {}, "neither a package nor a registry_package event"),
        ("harbor", {"type": "PUSH_ARTIFACT", "event_data": {"repository": {}}}, {}, "repo_full_name"),
        (
            "quay",
            {"docker_url": "quay.io/a/b", "updated_tags": "latest"},
            {},
            "updated_tags: expected an array",
        ),
        (
            "artifactory",
            {"domain": "docker", "event_type": "pushed", "data": {"tag": "t"}},
            {},
            "data.image_name",
        ),
        ("cloudevents", {"a": 1}, {}, "ce-specversion"),
        (
            "cloudevents",
            {"specversion": "0.3", "type": "x"},
            {"content-type": "application/cloudevents+json"},
            "specversion",
        ),
        ("generic", {"image": "not a reference"}, {}, "not an image reference"),
        ("generic", {"image": "repo@sha256:" + "a" * 64}, {}, "names no tag"),
        ("generic", ["x"], {}, "payload: expected an object"),
    ],
)
def test_malformed_payloads_say_what_is_wrong_in_one_line(
    source: str, payload: object, headers: dict[str, str], reason: str
) -> None:
    with pytest.raises(MalformedEventError) as caught:
        parser_for(source)(payload, headers)
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
KEYS = st.sampled_from(
    [
        "events",
        "action",
        "target",
        "tag",
        "repository",
        "request",
        "host",
        "push_data",
        "repo_name",
        "package",
        "type",
        "event_data",
        "resources",
        "resource_url",
        "docker_url",
        "updated_tags",
        "domain",
        "event_type",
        "data",
        "image",
        "images",
        "specversion",
    ]
)
SHAPED = st.recursive(
    st.none()
    | st.text(max_size=30)
    | st.sampled_from(["push", "PUSH_ARTIFACT", "pushed", "docker", "1.0", "latest"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=40,
)


@settings(max_examples=100, deadline=None)
@given(source=st.sampled_from(sorted(SOURCES)), payload=JSON | SHAPED, ce=st.booleans())
def test_any_json_is_events_or_a_malformed_error_never_a_crash(
    source: str, payload: object, ce: bool
) -> None:
    headers = (
        {"ce-specversion": "1.0", "ce-type": "x.push", "content-type": "application/cloudevents+json"}
        if ce
        else {}
    )
    try:
        found = parser_for(source)(payload, headers)
    except MalformedEventError as exc:
        reason = str(exc)
        found = []
    else:
        reason = ""
    assert "\n" not in reason
    for event in found:
        assert event.image.tag is not None
        assert event.image.digest is None


def test_a_real_index_push_from_docker_registry_is_one_event_for_the_index() -> None:
    envelopes = sample("distribution-docker-registry-2.8-index-push.json")
    assert len(envelopes) == 3  # one per platform manifest, then the index
    found = [event for envelope in envelopes for event in parser_for("distribution")(envelope, {})]
    [event] = found
    index = envelopes[2]["events"][0]["target"]
    assert str(event.image) == f"{index['url'].split('/')[2]}/team/api:main"
    assert event.digest == index["digest"]
