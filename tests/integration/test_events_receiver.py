"""The event receiver over real sockets (its own uvicorn, the hardened limits): each source's sample
payloads with valid and tampered credentials, replays, wrong tokens, oversized and fuzzed bodies.
Never a 500; only authenticated, well-formed events reach the coalescer; memory stays bounded."""

from __future__ import annotations

import asyncio
import json
import resource
import secrets
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autorollout.cli.events import event_sources
from autorollout.config import load_config_text
from autorollout.events.auth import github_signature
from autorollout.events.coalesce import EventCoalescer, PendingImage
from autorollout.events.receiver import RECENT_IMAGES, EventReceiver, RecentEvents, build_receiver_app
from certs.mint import mint_ca, mint_serving_cert, write_private
from tests.harness.registry import free_port

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data" / "events"
TOKEN = secrets.token_urlsafe(18)
HMAC_KEY = secrets.token_urlsafe(18)
MAX_BODY = 64 * 1024
MAX_PENDING = 200
SAMPLES = {
    "distribution": (
        "distribution.json",
        {"content-type": "application/vnd.docker.distribution.events.v1+json"},
    ),
    "dockerhub": ("dockerhub.json", {}),
    "github": ("github-package.json", {"x-github-event": "package"}),
    "harbor": ("harbor.json", {}),
    "quay": ("quay.json", {}),
    "artifactory": ("artifactory.json", {}),
    "acr": ("acr.json", {}),
    "cloudevents": ("harbor-cloudevent.json", {"content-type": "application/cloudevents+json"}),
    "generic": ("generic.json", {}),
}


@dataclass
class Receiver:
    url: str
    rounds: list[list[str]] = field(default_factory=list)
    unavailable: str | None = None
    recent: RecentEvents = field(default_factory=RecentEvents)

    def images(self) -> set[str]:
        return {image for batch in self.rounds for image in batch}


def _config() -> str:
    sources = {name: {"secret": TOKEN, "requestsPerSecond": 1000, "burst": 1000} for name in SAMPLES}
    sources["github"] = {"secret": HMAC_KEY, "requestsPerSecond": 1000, "burst": 1000}
    sources["generic"] = {"secret": TOKEN, "requestsPerSecond": 1, "burst": 3}  # the rate test's source
    return json.dumps({"events": {"enabled": True, "maxBodyBytes": MAX_BODY, "sources": sources}})


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    config = load_config_text(_config())
    port = free_port()
    state = Receiver(url=f"http://127.0.0.1:{port}")
    stop = asyncio.Event()
    servers: list[EventReceiver] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def dispatch(batch: Sequence[PendingImage]) -> None:
        state.rounds.append(sorted(str(p.image) for p in batch))

    async def main() -> None:
        coalescer = EventCoalescer(dispatch, window=0.01, max_pending=MAX_PENDING)
        app = build_receiver_app(
            event_sources(config),
            coalescer,
            lambda: state.unavailable,
            max_body_bytes=MAX_BODY,
            recent=state.recent,
        )
        server = EventReceiver(app, host="127.0.0.1", port=port)
        servers.append(server)
        loops.append(asyncio.get_running_loop())
        await asyncio.gather(server.serve(), coalescer.run(stop))

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{state.url}/events/recent", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    try:
        yield state
    finally:
        servers[0].shutdown()
        loops[0].call_soon_threadsafe(stop.set)
        thread.join(timeout=10)


def post(
    receiver: Receiver,
    source: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.post(
        f"{receiver.url}/events/{source}", content=body, headers=headers or {}, params=params, timeout=5
    )


def credential(source: str, body: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters as each source sends its credential."""
    if source == "github":
        return {"x-hub-signature-256": github_signature(HMAC_KEY.encode(), body)}, {}
    if source in ("dockerhub", "quay"):
        return {}, {"token": TOKEN}
    if source == "artifactory":
        return {"x-jfrog-event-auth": TOKEN}, {}
    return {"authorization": f"Bearer {TOKEN}"}, {}


def wait_rounds(receiver: Receiver, image: str) -> None:
    deadline = time.monotonic() + 5
    while image not in receiver.images():
        assert time.monotonic() < deadline, receiver.rounds
        time.sleep(0.01)


@pytest.mark.parametrize("source", [s for s in SAMPLES if s != "generic"])
def test_each_source_sample_with_its_credential_is_accepted_and_reaches_a_round(
    receiver: Receiver, source: str
) -> None:
    name, headers = SAMPLES[source]
    body = (DATA / name).read_bytes()
    auth_headers, params = credential(source, body)
    answer = post(receiver, source, body, {**headers, **auth_headers}, params=params)
    assert answer.status_code == 202, answer.text
    assert answer.text.startswith("accepted: ")
    parsed = json.loads(body)
    expected = {
        "distribution": "registry.example.com:5000/team/api:main",
        "dockerhub": "docker.io/acme/web:latest",
        "github": "ghcr.io/acme/web-app:main",
        "harbor": "harbor.example.com/shop/cart:stable",
        "quay": "quay.io/acme/web:latest",
        "artifactory": "acme.jfrog.io/docker-local/team/api:main",
        "acr": "acme.azurecr.io/payments/api:v3",
        "cloudevents": "harbor.example.com/shop/cart:stable",
    }[source]
    assert parsed  # the sample is the payload as sent
    wait_rounds(receiver, expected)


@pytest.mark.parametrize("source", [s for s in SAMPLES if s != "generic"])
def test_missing_wrong_and_tampered_credentials_are_401_and_reach_nothing(
    receiver: Receiver, source: str
) -> None:
    name, headers = SAMPLES[source]
    body = (DATA / name).read_bytes()
    time.sleep(0.1)  # rounds of earlier tests settle
    before = len(receiver.rounds)
    no_credential = post(receiver, source, body, headers)
    assert no_credential.status_code == 401
    assert no_credential.text.startswith("unauthenticated: no ")
    auth_headers, params = credential(source, body)
    if source == "github":  # a signature of another body: the payload was tampered with
        tampered = body.replace(b"main", b"evil")
        answer = post(receiver, source, tampered, {**headers, **auth_headers})
        assert answer.text == "unauthenticated: signature does not match the body\n"
    else:
        wrong = {k: v.replace(TOKEN, TOKEN[:-1]) for k, v in auth_headers.items()}
        wrong_params = {k: v[:-1] for k, v in params.items()}
        answer = post(receiver, source, body, {**headers, **wrong}, params=wrong_params)
        assert answer.text == "unauthenticated: wrong credential\n"
    assert answer.status_code == 401
    assert TOKEN not in answer.text
    assert HMAC_KEY not in answer.text
    time.sleep(0.05)
    assert len(receiver.rounds) == before


def test_a_replayed_github_delivery_is_one_image_per_round(receiver: Receiver) -> None:
    body = (DATA / "github-registry-package.json").read_bytes()
    headers = {
        "x-github-event": "registry_package",
        "x-github-delivery": "d-1",
        **credential("github", body)[0],
    }
    answers = [post(receiver, "github", body, headers).status_code for _ in range(5)]
    assert answers == [202] * 5
    wait_rounds(receiver, "ghcr.io/acme/worker:nightly")
    for batch in receiver.rounds:
        assert batch.count("ghcr.io/acme/worker:nightly") <= 1


def test_oversized_bodies_are_413_declared_or_streamed(receiver: Receiver) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    big = b'{"events": [' + b" " * MAX_BODY + b"]}"
    answer = post(receiver, "distribution", big, auth)
    assert answer.status_code == 413
    assert answer.text == f"body larger than {MAX_BODY} bytes\n"

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024

    streamed = httpx.post(f"{receiver.url}/events/distribution", content=chunks(), headers=auth, timeout=5)
    assert streamed.status_code == 413


def test_unknown_sources_methods_and_non_json_are_4xx_with_one_line(receiver: Receiver) -> None:
    assert post(receiver, "nexus", b"{}").status_code == 404
    assert httpx.get(f"{receiver.url}/events/distribution", timeout=5).status_code == 405
    auth = {"authorization": f"Bearer {TOKEN}"}
    answer = post(receiver, "distribution", b"\xff\xfe not json", auth)
    assert (answer.status_code, answer.text) == (400, "malformed distribution event: the body is not JSON\n")
    ignored = post(receiver, "distribution", b'{"events": [{"action": "pull", "target": {}}]}', auth)
    assert (ignored.status_code, ignored.text) == (202, "ignored: no tag pushed\n")


def test_a_replica_that_does_not_act_answers_503_so_the_sender_retries(receiver: Receiver) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    body = json.dumps(
        {
            "events": [
                {
                    "action": "push",
                    "target": {"repository": "x/standby", "tag": "t"},
                    "request": {"host": "r.example"},
                }
            ]
        }
    ).encode()
    receiver.unavailable = "not the leader; another replica rolls out"
    try:
        answer = post(receiver, "distribution", body, auth)
    finally:
        receiver.unavailable = None
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.text == "not accepted here now: not the leader; another replica rolls out\n"
    time.sleep(0.05)
    assert "r.example/x/standby:t" not in receiver.images()


def test_each_source_has_its_own_rate_and_credentials_are_checked_first(receiver: Receiver) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    for _ in range(20):  # forged requests do not use the sender's rate
        assert (
            post(
                receiver, "generic", b'{"image": "r.example/x:1"}', {"authorization": "Bearer nope"}
            ).status_code
            == 401
        )
    answers = [post(receiver, "generic", b'{"image": "r.example/rated:1"}', auth) for _ in range(6)]
    codes = [a.status_code for a in answers]
    assert codes[:3] == [202, 202, 202]
    assert 429 in codes[3:]
    limited = next(a for a in answers if a.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert post(receiver, "distribution", b'{"events": []}', auth).status_code == 202  # another source's rate


def test_recent_events_are_served_on_loopback(receiver: Receiver) -> None:
    body = (DATA / "acr.json").read_bytes()
    assert post(receiver, "acr", body, credential("acr", body)[0]).status_code == 202
    recent = httpx.get(f"{receiver.url}/events/recent", timeout=5).json()
    assert recent["acme.azurecr.io/payments/api:v3"]["source"] == "acr"
    assert abs(recent["acme.azurecr.io/payments/api:v3"]["at"] - time.time()) < 30


BODIES = st.one_of(
    st.binary(max_size=2048),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=40),
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=15), inner, max_size=6),
        max_leaves=40,
    ).map(lambda v: json.dumps(v).encode()),
)
HEADERS = st.dictionaries(
    st.sampled_from(["content-type", "ce-specversion", "ce-type", "x-github-event", "content-encoding"]),
    st.sampled_from(
        ["application/cloudevents+json", "application/cloudevents-batch+json", "1.0", "package", "x", "gzip"]
    ),
    max_size=4,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(source=st.sampled_from(sorted(SAMPLES)), body=BODIES, headers=HEADERS)
def test_fuzzed_authenticated_bodies_are_never_a_500(
    receiver: Receiver, source: str, body: bytes, headers: dict[str, str]
) -> None:
    if source == "generic":
        source = "acr"  # generic's small rate belongs to the rate test
    auth_headers, params = credential(source, body)
    answer = post(receiver, source, body, {**headers, **auth_headers}, params=params)
    assert answer.status_code in (202, 400), answer.text
    assert answer.text.endswith("\n")
    assert answer.text.count("\n") == 1


def test_memory_stays_bounded_under_many_distinct_forged_images(receiver: Receiver) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with httpx.Client(timeout=5) as client:
        for i in range(300):
            events = [
                {
                    "action": "push",
                    "target": {"repository": f"forged/n{i}-{j}", "tag": "t"},
                    "request": {"host": "r.example"},
                }
                for j in range(20)
            ]
            answer = client.post(f"{receiver.url}/events/distribution", json={"events": events}, headers=auth)
            assert answer.status_code in (202, 503)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert len(receiver.recent.snapshot()) == RECENT_IMAGES  # of 6,000 names, the newest 1,024
    assert max(len(batch) for batch in receiver.rounds) <= MAX_PENDING  # beyond it: 503, the sender retries
    assert grown_kib < 64 * 1024, grown_kib


def test_the_receiver_serves_https_with_its_own_certificate(tmp_path: Path) -> None:
    ca_pem, ca_key = mint_ca("events test CA")
    cert_pem, key_pem = mint_serving_cert(ca_pem, ca_key, ["localhost"], ["127.0.0.1"])
    (tmp_path / "tls.crt").write_bytes(cert_pem)
    write_private(tmp_path / "tls.key", key_pem)
    (tmp_path / "ca.crt").write_bytes(ca_pem)
    config = load_config_text(_config())
    port = free_port()
    rounds: list[str] = []
    stop = asyncio.Event()
    loops: list[asyncio.AbstractEventLoop] = []
    servers: list[EventReceiver] = []

    async def dispatch(batch: Sequence[PendingImage]) -> None:
        rounds.extend(str(p.image) for p in batch)

    async def main() -> None:
        coalescer = EventCoalescer(dispatch, window=0.01)
        app = build_receiver_app(
            event_sources(config), coalescer, lambda: None, max_body_bytes=MAX_BODY, recent=RecentEvents()
        )
        server = EventReceiver(
            app,
            host="127.0.0.1",
            port=port,
            cert_file=str(tmp_path / "tls.crt"),
            key_file=str(tmp_path / "tls.key"),
        )
        servers.append(server)
        loops.append(asyncio.get_running_loop())
        await asyncio.gather(server.serve(), coalescer.run(stop))

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{port}/events/acr"
    body = (DATA / "acr.json").read_bytes()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                answer = httpx.post(
                    url,
                    content=body,
                    headers=credential("acr", body)[0],
                    verify=ssl.create_default_context(cafile=str(tmp_path / "ca.crt")),
                    timeout=2,
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert answer.status_code == 202, answer.text
        with pytest.raises(httpx.TransportError):
            httpx.post(
                f"http://127.0.0.1:{port}/events/acr", content=body, timeout=2
            )  # plain HTTP: no answer
        while "acme.azurecr.io/payments/api:v3" not in rounds:
            assert time.monotonic() < deadline + 5
            time.sleep(0.01)
    finally:
        servers[0].shutdown()
        loops[0].call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
