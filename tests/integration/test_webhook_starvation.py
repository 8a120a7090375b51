"""The real `kube-autorollout webhook` process next to silent registries (tarpits: they accept and
never answer) and the real registry: a review stuck on many silent registries never delays reviews
of a healthy registry's images, and reviews of thousands of images on a silent registry start a
bounded number of lookups and leave the process's memory where it was."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.webhook_process import WebhookProcess, start_webhook
from tests.harness.registry import LocalRegistry
from tests.harness.sockets import established_from, rss_kib
from tests.harness.tarpit import Tarpit
from tests.unit.webhook_samples import review, workload

pytestmark = pytest.mark.integration

BUDGET = 1.5
PER_REGISTRY = 8  # reconciler.registryConcurrency's default: lookups per registry at once


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookProcess]:
    process = start_webhook(tmp_path_factory.mktemp("webhook-starve"), None, budget=BUDGET, cache_ttl=0)
    try:
        yield process
    finally:
        assert process.stop() == 0


@pytest.fixture(scope="module")
def http(webhook: WebhookProcess) -> Iterator[httpx.Client]:
    context = ssl.create_default_context(cafile=str(webhook.ca_file))
    with httpx.Client(verify=context, timeout=30, trust_env=False) as client:
        yield client


def _post(http: httpx.Client, webhook: WebhookProcess, obj: dict[str, Any]) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    response = http.post(webhook.url, content=orjson.dumps(review(obj)))
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text[:200]
    answer: dict[str, Any] = response.json()["response"]
    assert answer["allowed"] is True
    return answer, elapsed


def _recorded(answer: dict[str, Any]) -> dict[str, str]:
    patch = json.loads(base64.b64decode(answer["patch"])) if answer.get("patch") else []
    found: dict[str, str] = {}
    for op in patch:
        if op["op"] == "add" and op["path"] == "/metadata/annotations":
            found.update(op["value"])
        elif op["op"] == "add" and op["path"].startswith("/metadata/annotations/"):
            found[op["path"].rsplit("/", 1)[1].replace("~1", "/")] = op["value"]
    return {k: v for k, v in found.items() if k.startswith("digest.kube-autorollout/")}


def test_silent_registries_do_not_starve_reviews_of_a_healthy_one(
    webhook: WebhookProcess, http: httpx.Client, registry_plain: LocalRegistry, unique_repo: str
) -> None:
    digests = [registry_plain.push_image(f"{unique_repo}/{i}", "v1", seed=20 + i) for i in range(3)]
    pits = [Tarpit() for _ in range(9)]
    try:
        stuck = workload(
            name="stuck",
            containers=[
                (f"c{p}-{i}", f"{pit.host}/stuck/app{i}:v1") for p, pit in enumerate(pits) for i in range(8)
            ],
        )
        outcome: dict[str, Any] = {}
        # Its own connection, so the healthy reviews below are not queued behind it on the client side.
        context = ssl.create_default_context(cafile=str(webhook.ca_file))
        with httpx.Client(verify=context, timeout=30, trust_env=False) as other:

            def send_stuck() -> None:
                outcome["answer"], outcome["elapsed"] = _post(other, webhook, stuck)

            thread = threading.Thread(target=send_stuck)
            thread.start()
            time.sleep(0.3)  # the 72 lookups are under way at the silent registries
            timings = []
            for i, digest in enumerate(digests):
                image = f"{registry_plain.host}/{unique_repo}/{i}:v1"
                answer, elapsed = _post(
                    http, webhook, workload(name=f"healthy-{i}", containers=[("app", image)])
                )
                assert _recorded(answer) == {"digest.kube-autorollout/app": f"{image}@{digest}"}, answer
                timings.append(elapsed)
            held = sum(len(pit.accepted) for pit in pits)
            thread.join(BUDGET + 10)
    finally:
        for pit in pits:
            pit.close()
    assert held == 9 * PER_REGISTRY, held  # every silent registry was holding its full share
    assert max(timings) < BUDGET, timings
    assert outcome["elapsed"] < BUDGET + 1.0, outcome
    assert len(outcome["answer"]["warnings"]) == 72
    print(
        "72 lookups held at 9 silent registries; healthy reviews meanwhile: "
        + ", ".join(f"{t * 1000:.0f} ms" for t in timings)
        + f"; the stuck review answered in {outcome['elapsed']:.2f}s"
    )


def test_many_image_reviews_on_a_silent_registry_keep_memory_bounded(
    webhook: WebhookProcess, http: httpx.Client, registry_plain: LocalRegistry, unique_repo: str
) -> None:
    pid = webhook.popen.pid
    with Tarpit() as pit:
        huge = workload(name="huge", containers=[(f"c{i}", f"{pit.host}/r{i}:v1") for i in range(15_000)])
        warm = workload(name="warm", containers=[(f"c{i}", f"{pit.host}/w{i}:v1") for i in range(200)])
        _post(http, webhook, warm)  # every code path loaded before the baseline
        before = rss_kib(pid)
        accepted_before = len(pit.accepted)
        elapsed = []
        for _ in range(3):
            answer, took = _post(http, webhook, huge)
            elapsed.append(took)
            assert _recorded(answer) == {}
            assert sum("over 100 images in one request" in w for w in answer["warnings"]) == 15_000 - 100
        time.sleep(0.5)
        after = rss_kib(pid)
        accepted = len(pit.accepted) - accepted_before
        still_open = established_from(pit.port)
        # Nobody waits for those lookups any more: nothing of them is left to try again later (the
        # client's connect timeout is 3 s).
        time.sleep(4.0)
        accepted_later = len(pit.accepted) - accepted_before
    assert max(elapsed) < BUDGET + 1.0, elapsed
    # Each review started 100 lookups, 8 of them at a time at this registry, all cancelled at its budget.
    assert accepted <= 3 * PER_REGISTRY, accepted
    assert still_open == 0, still_open
    assert accepted_later == accepted, (accepted, accepted_later)
    # Most of it is the allocator keeping what parsing 15,000 containers took (it stays flat after).
    assert after - before < 40 * 1024, (before, after)
    digest = registry_plain.push_image(unique_repo, "v1", seed=30)
    image = f"{registry_plain.host}/{unique_repo}:v1"
    answer, _ = _post(http, webhook, workload(containers=[("app", image)]))
    assert _recorded(answer) == {"digest.kube-autorollout/app": f"{image}@{digest}"}
    print(
        "3 reviews x 15,000 images on a silent registry: answered in "
        + ", ".join(f"{t:.2f}s" for t in elapsed)
        + f"; {accepted} connections reached it, {still_open} open 0.5 s later, {accepted_later - accepted} "
        f"more in the next 4 s; RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB"
    )
