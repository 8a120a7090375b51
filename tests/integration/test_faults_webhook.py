"""The real `kube-autorollout webhook` process (TLS, no control plane) under registry faults and
hostile input: admission answers within its lookup budget whatever the registry does; raw bytes,
truncated and deeply nested JSON, wrong types, huge bodies and unicode never get a 500 nor kill the
process, and its memory stays bounded; a missing mounted secret file is reported, not crashed on."""

from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.webhook_process import WebhookProcess, start_webhook
from tests.harness.faultproxy import FaultProxy
from tests.harness.registry import LocalRegistry
from tests.unit.webhook_samples import review, workload

pytestmark = pytest.mark.integration

BUDGET = 1.0
MISSING_MOUNT = "/nonexistent/kar-secret-mount"


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookProcess]:
    extra = {
        "registries": [
            {
                "hostnamePattern": "private.example",
                "secret": {"type": "ImagePullSecret", "name": "pull", "mountPath": MISSING_MOUNT},
            }
        ]
    }
    process = start_webhook(
        tmp_path_factory.mktemp("webhook-faults"), None, budget=BUDGET, cache_ttl=0, extra_config=extra
    )
    try:
        yield process
    finally:
        assert process.stop() == 0


@pytest.fixture(scope="module")
def http(webhook: WebhookProcess) -> Iterator[httpx.Client]:
    context = ssl.create_default_context(cafile=str(webhook.ca_file))
    with httpx.Client(verify=context, timeout=10, trust_env=False) as client:
        yield client


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_missing_mounted_secret_is_reported_and_the_webhook_serves(webhook: WebhookProcess) -> None:
    assert webhook.popen.poll() is None
    lines = [json.loads(x) for x in webhook.log_text().splitlines() if x.startswith("{")]
    [problem] = [x for x in lines if x.get("msg") == "registry credentials not available"]
    assert MISSING_MOUNT in json.dumps(problem)
    assert "Traceback" not in webhook.log_text()


@pytest.mark.parametrize(
    ("fault", "options"),
    [
        ("slow", {"delay": 5.0}),
        ("status", {"status": 503}),
        ("status", {"status": 429, "retry_after": "1"}),
        ("reset", {}),
    ],
    ids=["slow", "503", "429", "reset"],
)
def test_admission_answers_within_the_budget_whatever_the_registry_does(
    webhook: WebhookProcess,
    http: httpx.Client,
    registry_plain: LocalRegistry,
    unique_repo: str,
    fault: str,
    options: dict[str, Any],
) -> None:
    registry_plain.push_image(unique_repo, "v1", seed=1)
    with FaultProxy(registry_plain.url, fault, **options) as proxy:
        obj = workload(containers=[("app", f"{proxy.host}/{unique_repo}:v1")])
        started = time.monotonic()
        response = http.post(webhook.url, content=orjson.dumps(review(obj)))
        elapsed = time.monotonic() - started
        attempts = len(proxy.requests)
    assert response.status_code == 200
    answer = response.json()["response"]
    assert answer["allowed"] is True
    assert elapsed < BUDGET + 1.0, elapsed
    assert any("digest" in w or "registry" in w or "resolve" in w for w in answer.get("warnings", [])), answer
    patch = json.loads(base64.b64decode(answer["patch"])) if answer.get("patch") else []
    assert not any("digest.kube-autorollout" in op.get("path", "") for op in patch), patch
    assert 1 <= attempts <= 3
    print(f"{fault}: answered in {elapsed:.2f}s after {attempts} registry request(s)")


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


HOSTILE: list[bytes] = [
    b"",
    b"{",
    b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "x", "obj',
    b"\x00\xff\xfe" * 1000,
    b"null",
    b"[]",
    b'"review"',
    b'{"request": []}',
    b'{"request": {"uid": 5, "object": "x"}}',
    b'{"request": {"uid": "u", "kind": {"kind": 7}, "object": {"metadata": []}}}',
    _deep(100_000),
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    orjson.dumps(
        review(workload(name="\u202e\U0001f4a5名前", containers=[("\u00e9", "\u00e9\u0000:latest")]))
    ),
    orjson.dumps(review(workload(containers=[("app", "x" * 100_000)]))),
    orjson.dumps(review(workload(containers=[(f"c{i}", f"img{i}@sha256:{'a' * 64}") for i in range(2000)]))),
    b"{" + b" " * (8 * 1024 * 1024) + b"}",  # beyond the body limit
]


def test_hostile_bodies_never_get_a_500_and_memory_stays_bounded(
    webhook: WebhookProcess, http: httpx.Client
) -> None:
    for body in HOSTILE[:3]:  # warm up allocations before the baseline
        http.post(webhook.url, content=body)
    before = _rss_kib(webhook.popen.pid)
    statuses: dict[int, int] = {}
    for _ in range(5):
        for body in HOSTILE:
            status = http.post(webhook.url, content=body).status_code
            statuses[status] = statuses.get(status, 0) + 1
            assert status < 500, (status, body[:80])
    after = _rss_kib(webhook.popen.pid)
    assert webhook.popen.poll() is None
    assert after - before < 40 * 1024, (before, after)
    # Still answering reviews afterwards.
    ok = http.post(webhook.url, content=orjson.dumps(review(workload(labels={}))))
    assert ok.status_code == 200
    print(f"statuses {statuses}; RSS {before // 1024} MiB -> {after // 1024} MiB")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.one_of(
        st.binary(max_size=2048),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(-(2**63), 2**63 - 1)
            | st.floats(allow_nan=False)
            | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
            ),
            max_leaves=20,
        ).map(lambda doc: orjson.dumps({"apiVersion": "admission.k8s.io/v1", "request": doc})),
        st.integers(min_value=1, max_value=4000).map(
            lambda cut: orjson.dumps(review(workload()))[: cut % len(orjson.dumps(review(workload())))]
        ),
    )
)
def test_generated_bodies_never_get_a_500(webhook: WebhookProcess, http: httpx.Client, raw: bytes) -> None:
    status = http.post(webhook.url, content=raw).status_code
    assert status in (200, 400, 413, 415), status
