"""AdmissionReviewer end to end in-process: lookups, credentials, budget, pull secrets, answers.

The resolver is either a recording stand-in implementing the webhook's DigestSource protocol, or
the real DigestResolver pointed at loopback ports that refuse or never answer.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import jsonpatch
import orjson
import pytest

import webhook.policy
from autorollout.credentials import CredentialStore, RegistryCredentials
from autorollout.registry.client import RegistryClient
from autorollout.registry.errors import NotFoundError, RegistryError
from autorollout.registry.manifests import ManifestDigest
from autorollout.registry.resolver import DigestResolver, Lookup
from tests.unit.webhook_samples import DIGEST_A, DIGEST_B, body, changed, review, workload
from webhook.admission import INTERNAL_ERROR_WARNING, AdmissionReviewer
from webhook.policy import PullPolicyMode
from webhook.review import ReviewError
from webhook.workload import Container

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

APP = "reg.example:5000/team/app:latest"
SIDE = "reg.example:5000/team/side:main"
SECRET_CREDS = RegistryCredentials(username="from-secret", password="s3cret")
CONFIG_CREDS = RegistryCredentials(username="from-config", password="c0nfig")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RecordingResolver:
    """Answers from a table keyed by image (str of the reference); records every call."""

    def __init__(self, table: Mapping[str, str | RegistryError], delay: float = 0.0) -> None:
        self.table = table
        self.delay = delay
        self.calls: list[tuple[list[Lookup], float | None]] = []

    async def resolve_many(
        self,
        lookups: Iterable[Lookup],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the protocol's budget
        platforms: bool = False,
    ) -> dict[Lookup, ManifestDigest | RegistryError]:
        wanted = list(lookups)
        self.calls.append((wanted, timeout))
        if self.delay:
            await asyncio.sleep(self.delay)
        answers: dict[Lookup, ManifestDigest | RegistryError] = {}
        for lookup in wanted:
            found = self.table.get(str(lookup.reference), NotFoundError("no such tag"))
            answers[lookup] = (
                ManifestDigest(found, "application/vnd.oci.image.index.v1+json")
                if isinstance(found, str)
                else found
            )
        return answers


class StaticPullSecrets:
    def __init__(self, found: list[dict[str, RegistryCredentials]], delay: float = 0.0) -> None:
        self.found = found
        self.delay = delay
        self.reads: list[tuple[str, tuple[str, ...]]] = []

    async def read(self, namespace: str, names: Sequence[str]) -> list[dict[str, RegistryCredentials]]:
        self.reads.append((namespace, tuple(names)))
        await asyncio.sleep(self.delay)
        return self.found


class BrokenPullSecrets:
    async def read(self, namespace: str, names: Sequence[str]) -> list[dict[str, RegistryCredentials]]:
        raise ConnectionError("API server gone")


def answer(raw: bytes) -> dict[str, Any]:
    response: dict[str, Any] = orjson.loads(raw)["response"]
    return response


def applied(obj: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    if "patch" not in response:
        return obj
    assert response["patchType"] == "JSONPatch"
    result: dict[str, Any] = jsonpatch.apply_patch(obj, orjson.loads(base64.b64decode(response["patch"])))
    return result


TABLE = {
    "reg.example:5000/team/app:latest": DIGEST_A,
    "reg.example:5000/team/side:main": DIGEST_B,
}


async def test_create_records_each_digest_in_one_resolver_call() -> None:
    resolver = RecordingResolver(TABLE)
    reviewer = AdmissionReviewer(resolver, CredentialStore())
    obj = workload(containers=[("app", APP), ("side", SIDE), ("app2", APP)])
    response = answer(await reviewer.review(body(review(obj, uid="abc"))))
    assert response["uid"] == "abc"
    assert response["allowed"] is True
    assert "warnings" not in response
    assert applied(obj, response)["metadata"]["annotations"] == {
        "digest.kube-autorollout/app": f"{APP}@{DIGEST_A}",
        "digest.kube-autorollout/side": f"{SIDE}@{DIGEST_B}",
        "digest.kube-autorollout/app2": f"{APP}@{DIGEST_A}",
    }
    ((lookups, timeout),) = resolver.calls
    assert sorted({str(lookup.reference) for lookup in lookups}) == sorted(TABLE)
    assert timeout is not None
    assert 0 < timeout <= 2.0


async def test_unlabeled_and_unchanged_requests_cost_no_lookup() -> None:
    resolver = RecordingResolver(TABLE)
    reviewer = AdmissionReviewer(resolver, CredentialStore())
    unlabeled = workload(labels={})
    assert answer(await reviewer.review(body(review(unlabeled)))) == {
        "uid": "0b7f4c3e-1d2a-4f5e-9c8b-7a6d5e4f3c2b",
        "allowed": True,
    }
    scaled = changed(workload())
    scaled["spec"]["replicas"] = 3
    assert "patch" not in answer(
        await reviewer.review(body(review(scaled, operation="UPDATE", old=workload())))
    )
    assert resolver.calls == []


async def test_reconciler_patch_costs_no_lookup() -> None:
    resolver = RecordingResolver(TABLE)
    reviewer = AdmissionReviewer(resolver, CredentialStore())
    old = workload(annotations={"digest.kube-autorollout/app": f"{APP}@{DIGEST_B}"})
    new = changed(old)
    new["metadata"]["annotations"]["digest.kube-autorollout/app"] = f"{APP}@{DIGEST_A}"
    new["spec"]["template"]["metadata"]["annotations"] = {
        "kube-autorollout/restartedAt": "2025-05-05T05:05:05Z"
    }
    response = answer(await reviewer.review(body(review(new, operation="UPDATE", old=old))))
    assert response == {"uid": response["uid"], "allowed": True}
    assert resolver.calls == []


async def test_deny_mode_rejects_without_lookups() -> None:
    resolver = RecordingResolver(TABLE)
    reviewer = AdmissionReviewer(resolver, CredentialStore(), mode=PullPolicyMode.DENY)
    obj = workload(containers=[("app", APP, "IfNotPresent")], init=[("init", SIDE, "Never")])
    response = answer(await reviewer.review(body(review(obj))))
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert 'init container "init" (Never)' in response["status"]["message"]
    assert 'container "app" (IfNotPresent)' in response["status"]["message"]
    assert resolver.calls == []


@pytest.mark.parametrize("mode", list(PullPolicyMode))
async def test_the_pull_policy_is_checked_once_per_review(
    mode: PullPolicyMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    real = webhook.policy.effective_pull_policy

    def counting(container: Container) -> str:
        checked.append(container.name)
        return real(container)

    monkeypatch.setattr(webhook.policy, "effective_pull_policy", counting)
    reviewer = AdmissionReviewer(RecordingResolver(TABLE), CredentialStore(), mode=mode)
    obj = workload(containers=[("app", APP, "IfNotPresent")], init=[("init", SIDE, "Always")])
    response = answer(await reviewer.review(body(review(obj))))
    assert response["allowed"] is (mode is not PullPolicyMode.DENY)
    assert sorted(checked) == ["app", "init"]


async def test_dry_run_gets_the_same_answer() -> None:
    reviewer = AdmissionReviewer(RecordingResolver(TABLE), CredentialStore())
    obj = workload(containers=[("app", APP, "IfNotPresent")])
    wet = answer(await reviewer.review(body(review(obj))))
    dry = answer(await reviewer.review(body(review(obj, dry_run=True))))
    assert dry == wet


async def test_pull_secret_credentials_come_before_configured_ones() -> None:
    resolver = RecordingResolver(TABLE)
    secrets = StaticPullSecrets([{"reg.example:5000": SECRET_CREDS}])
    store = CredentialStore([("reg.example:*", CONFIG_CREDS)])
    reviewer = AdmissionReviewer(resolver, store, pull_secrets=secrets)
    obj = workload(containers=[("app", APP)], pull_secrets=["regcred", "other"])
    secrets.found.append({"other.example": CONFIG_CREDS})
    response = answer(await reviewer.review(body(review(obj))))
    assert "warnings" not in response
    assert secrets.reads == [("team", ("regcred", "other"))]
    ((lookups, _),) = resolver.calls
    assert [lookup.credentials for lookup in lookups] == [SECRET_CREDS]


async def test_configured_credentials_without_pull_secrets_need_no_api() -> None:
    resolver = RecordingResolver(TABLE)
    reviewer = AdmissionReviewer(
        resolver, CredentialStore([("reg.example:*", CONFIG_CREDS)]), pull_secrets=None
    )
    response = answer(await reviewer.review(body(review(workload()))))
    assert "warnings" not in response
    assert [lookup.credentials for lookup in resolver.calls[0][0]] == [CONFIG_CREDS]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (None, "imagePullSecrets not read (no Kubernetes API)"),
        (BrokenPullSecrets(), "imagePullSecrets not read; using configured credentials"),
        (StaticPullSecrets([]), "1 of 1 imagePullSecrets unreadable or empty"),
        (StaticPullSecrets([{"x": SECRET_CREDS}], delay=5.0), "imagePullSecrets not read in time"),
    ],
)
async def test_unreadable_pull_secrets_warn_and_continue(source: Any, expected: str) -> None:
    resolver = RecordingResolver(TABLE)
    reviewer = AdmissionReviewer(resolver, CredentialStore(), pull_secrets=source, lookup_budget=0.4)
    obj = workload(pull_secrets=["regcred"])
    started = time.monotonic()
    response = answer(await reviewer.review(body(review(obj))))
    assert time.monotonic() - started < 0.4
    assert any(expected in text for text in response["warnings"])
    assert applied(obj, response)["metadata"]["annotations"] == {
        "digest.kube-autorollout/app": f"{APP}@{DIGEST_A}"
    }


async def test_lookup_failure_admits_with_a_warning() -> None:
    reviewer = AdmissionReviewer(RecordingResolver({}), CredentialStore())
    obj = workload()
    response = answer(await reviewer.review(body(review(obj))))
    assert response["allowed"] is True
    assert "patch" not in response
    assert response["warnings"] == [
        f'kube-autorollout: container "app" ({APP}): digest not recorded (tag not found)'
    ]


async def test_malformed_review_raises_review_error() -> None:
    reviewer = AdmissionReviewer(RecordingResolver(TABLE), CredentialStore())
    with pytest.raises(ReviewError):
        await reviewer.review(b"{}")
    broken = workload()
    broken["spec"]["template"]["spec"]["containers"] = "app"
    with pytest.raises(ReviewError, match="containers must be a list"):
        await reviewer.review(body(review(broken)))


async def test_a_bug_in_a_collaborator_admits_unchanged_with_a_warning() -> None:
    class Exploding:
        async def resolve_many(self, lookups: Iterable[Lookup], **_: Any) -> dict[Lookup, Any]:
            raise RuntimeError("bug")

    reviewer = AdmissionReviewer(Exploding(), CredentialStore())
    response = answer(await reviewer.review(body(review(workload()))))
    assert response["allowed"] is True
    assert response["warnings"] == [INTERNAL_ERROR_WARNING]


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A loopback port that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()


async def test_a_silent_registry_costs_the_budget_and_no_more(silent_port: int) -> None:
    client = RegistryClient()
    resolver = DigestResolver(client, cache_ttl=10, per_registry_limit=4)
    reviewer = AdmissionReviewer(resolver, CredentialStore(), lookup_budget=0.3)
    image = f"127.0.0.1:{silent_port}/team/app:latest"
    obj = workload(containers=[("app", image), ("side", image)])
    try:
        started = time.monotonic()
        response = answer(await reviewer.review(body(review(obj))))
        elapsed = time.monotonic() - started
    finally:
        await resolver.aclose()
        await client.aclose()
    assert 0.25 <= elapsed < 0.6
    assert response["allowed"] is True
    assert "patch" not in response
    assert response["warnings"] == [
        f'kube-autorollout: container "{name}" ({image}): digest not recorded (timed out, 0.3s budget)'
        for name in ("app", "side")
    ]


def closed_port() -> int:
    """A loopback port that was just free: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_refusing_registry_is_reported_unreachable() -> None:
    client = RegistryClient()
    resolver = DigestResolver(client, cache_ttl=10, per_registry_limit=4)
    reviewer = AdmissionReviewer(resolver, CredentialStore(), lookup_budget=1.5)
    image = f"127.0.0.1:{closed_port()}/team/app:latest"
    try:
        response = answer(await reviewer.review(body(review(workload(containers=[("app", image)])))))
    finally:
        await resolver.aclose()
        await client.aclose()
    assert response["warnings"] == [
        f'kube-autorollout: container "app" ({image}): digest not recorded (registry unreachable)'
    ]


async def test_one_review_starts_at_most_max_images_lookups() -> None:
    resolver = RecordingResolver(TABLE)
    reviewer = AdmissionReviewer(resolver, CredentialStore(), max_images=2)
    # Five containers over four images: the first two images are looked up, repeats of them too.
    images = [APP, SIDE, APP, "reg.example:5000/team/c:v1", "reg.example:5000/team/d:v1"]
    obj = workload(containers=[(f"c{i}", image) for i, image in enumerate(images)])
    response = answer(await reviewer.review(body(review(obj))))
    assert response["allowed"] is True
    ((lookups, _),) = resolver.calls
    assert sorted(str(lookup.reference) for lookup in lookups) == sorted(TABLE)
    assert applied(obj, response)["metadata"]["annotations"] == {
        "digest.kube-autorollout/c0": f"{APP}@{DIGEST_A}",
        "digest.kube-autorollout/c1": f"{SIDE}@{DIGEST_B}",
        "digest.kube-autorollout/c2": f"{APP}@{DIGEST_A}",
    }
    over = [w for w in response["warnings"] if "over 2 images in one request, not looked up" in w]
    assert len(over) == 2, response["warnings"]
