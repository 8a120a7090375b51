"""`POST /mutate` through an in-process HTTP client on the real app: status codes, and fuzzing for
"never a 500"."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import ASGIApp

from autorollout.credentials import CredentialStore
from autorollout.registry.errors import RegistryError
from autorollout.registry.manifests import ManifestDigest
from autorollout.registry.resolver import Lookup
from tests.unit.webhook_samples import DIGEST_A, body, review, workload
from webhook.admission import INTERNAL_ERROR_WARNING, AdmissionReviewer
from webhook.app import build_app

pytestmark = pytest.mark.unit

LIMIT = 64 * 1024


class EveryTagResolver:
    """Every image resolves to DIGEST_A (the DigestSource protocol, without a registry)."""

    async def resolve_many(
        self,
        lookups: Iterable[Lookup],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the protocol's budget
        platforms: bool = False,
    ) -> dict[Lookup, ManifestDigest | RegistryError]:
        return {
            lookup: ManifestDigest(DIGEST_A, "application/vnd.oci.image.index.v1+json") for lookup in lookups
        }


class AppClient:
    """A blocking facade over httpx's ASGI transport: requests go through the real ASGI app (no
    sockets); an exception escaping the app would come back as a 500."""

    def __init__(self, app: ASGIApp) -> None:
        self._runner = asyncio.Runner()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self._client = httpx.AsyncClient(transport=transport, base_url="https://webhook.test")

    def post(self, path: str, content: bytes | AsyncIterator[bytes]) -> httpx.Response:
        return self._runner.run(self._client.post(path, content=content))

    def get(self, path: str) -> httpx.Response:
        return self._runner.run(self._client.get(path))

    def close(self) -> None:
        self._runner.run(self._client.aclose())
        self._runner.close()


@pytest.fixture(scope="module")
def client() -> Iterator[AppClient]:
    app = build_app(AdmissionReviewer(EveryTagResolver(), CredentialStore()), max_body_bytes=LIMIT)
    test_client = AppClient(app)
    yield test_client
    test_client.close()


def test_review_is_answered_with_json(client: AppClient) -> None:
    response = client.post("/mutate", content=body(review(workload(), uid="u-9")))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["response"]["uid"] == "u-9"
    assert answer["response"]["patchType"] == "JSONPatch"


def test_malformed_body_is_a_400_with_one_line(client: AppClient) -> None:
    response = client.post("/mutate", content=b"{nope")
    assert response.status_code == 400
    assert response.text.startswith("bad AdmissionReview: body is not valid JSON")
    assert response.text.count("\n") == 1


def test_oversize_body_is_a_413(client: AppClient) -> None:
    response = client.post("/mutate", content=b" " * (LIMIT + 1))
    assert response.status_code == 413


def test_oversize_streamed_body_is_a_413(client: AppClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(LIMIT // 1024 + 2):
            yield b" " * 1024

    response = client.post("/mutate", content=chunks())
    assert response.status_code == 413


def test_only_post_mutate(client: AppClient) -> None:
    assert client.get("/mutate").status_code == 405
    assert client.post("/other", content=b"{}").status_code == 404


def test_reviewer_is_exposed_on_app_state() -> None:
    reviewer = AdmissionReviewer(EveryTagResolver(), CredentialStore())
    assert build_app(reviewer).state.reviewer is reviewer


def check_answer(client: AppClient, raw: bytes) -> None:
    response = client.post("/mutate", content=raw)
    assert response.status_code in (200, 400, 413), response.text
    if response.status_code == 200:
        answer = response.json()
        assert answer["apiVersion"] == "admission.k8s.io/v1"
        assert isinstance(answer["response"]["uid"], str)
        assert INTERNAL_ERROR_WARNING not in answer["response"].get("warnings", [])
        assert all(len(w) < 120 and w.isprintable() for w in answer["response"].get("warnings", []))
    else:
        assert response.text.count("\n") == 1


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)

# Where a fuzzed value is put into an otherwise valid review.
FUZZ_PATHS = [
    ("request",),
    ("request", "uid"),
    ("request", "kind"),
    ("request", "kind", "kind"),
    ("request", "operation"),
    ("request", "dryRun"),
    ("request", "subResource"),
    ("request", "object"),
    ("request", "oldObject"),
    ("request", "object", "metadata"),
    ("request", "object", "metadata", "labels"),
    ("request", "object", "metadata", "annotations"),
    ("request", "object", "metadata", "annotations", "digest.kube-autorollout/app"),
    ("request", "object", "spec"),
    ("request", "object", "spec", "template"),
    ("request", "object", "spec", "template", "metadata"),
    ("request", "object", "spec", "template", "spec"),
    ("request", "object", "spec", "template", "spec", "containers"),
    ("request", "object", "spec", "template", "spec", "containers", 0),
    ("request", "object", "spec", "template", "spec", "containers", 0, "name"),
    ("request", "object", "spec", "template", "spec", "containers", 0, "image"),
    ("request", "object", "spec", "template", "spec", "containers", 0, "imagePullPolicy"),
    ("request", "object", "spec", "template", "spec", "initContainers"),
    ("request", "object", "spec", "template", "spec", "imagePullSecrets"),
    ("request", "oldObject", "spec", "template"),
]

BASE_OBJECT = workload(init=[("setup", "reg.example:5000/team/setup:v1", "IfNotPresent")])


def put(document: Any, path: tuple[str | int, ...], value: Any) -> None:
    target = document
    for step in path[:-1]:
        if isinstance(target, dict) and isinstance(step, str):
            target = target.setdefault(step, {})
        elif isinstance(target, list) and isinstance(step, int) and step < len(target):
            target = target[step]
        else:
            return
    last = path[-1]
    if (isinstance(target, dict) and isinstance(last, str)) or (
        isinstance(target, list) and isinstance(last, int) and last < len(target)
    ):
        target[last] = value


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    operation=st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT"]),
    edits=st.lists(st.tuples(st.sampled_from(FUZZ_PATHS), json_values), max_size=3),
)
def test_fuzzed_reviews_never_get_a_500(
    client: AppClient, operation: str, edits: list[tuple[tuple[str | int, ...], Any]]
) -> None:
    old = copy.deepcopy(BASE_OBJECT)
    old["spec"]["template"]["spec"]["containers"][0]["image"] = "reg.example:5000/team/app:old"
    document = review(copy.deepcopy(BASE_OBJECT), operation=operation, old=old)
    for path, value in edits:
        put(document, path, value)
    check_answer(client, orjson.dumps(document))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=json_values)
def test_random_json_never_gets_a_500(client: AppClient, document: Any) -> None:
    check_answer(client, orjson.dumps(document))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=2048))
def test_random_bytes_never_get_a_500(client: AppClient, raw: bytes) -> None:
    check_answer(client, raw)
