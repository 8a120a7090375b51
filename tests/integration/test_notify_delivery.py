"""Notification delivery against a real loopback HTTP receiver: delivered, retried with backoff and
`Retry-After`, dropped and counted when it answers 500, hangs or trickles; `submit` never waits;
the sink's secret URL never in a log line, an error or a metric label."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest

from autorollout.cli.notifications import open_notifications
from autorollout.config import load_config_text
from autorollout.notify import Notice, NoticeOutcome
from autorollout.notify.delivery import SinkDelivery, SinkSettings
from autorollout.notify.dispatch import NoticeDispatcher
from autorollout.notify.formats import SinkType
from tests.harness.notifyreceiver import NotifyReceiver
from tests.harness.tarpit import Tarpit

pytestmark = pytest.mark.integration

SECRET_PATH = "/services/T0AAAAAAA/B0BBBBBBB/SeCrEtPaRtOfThEuRl42"
OLD = "sha256:" + "1" * 64
NEW = "sha256:" + "2" * 64


def notice(outcome: NoticeOutcome = NoticeOutcome.ROLLED_OUT, name: str = "web") -> Notice:
    return Notice(
        outcome,
        "Deployment",
        "shop",
        name,
        datetime.now(UTC),
        container="app",
        image="127.0.0.1:5000/shop/web:latest",
        old_digest=OLD,
        new_digest=NEW,
        detail=f"container app: {OLD} -> {NEW} (127.0.0.1:5000/shop/web:latest)",
    )


def count(sink: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "kube_autorollout_notifications_total", {"sink": sink, "outcome": outcome}
    )
    return value or 0.0


def settings(name: str, url: str, type_: SinkType = "webhook", **changes: object) -> SinkSettings:
    fields: dict[str, object] = {
        "name": name,
        "type": type_,
        "url": url,
        "outcomes": frozenset(NoticeOutcome),
        "timeout": 2.0,
        "max_attempts": 3,
        "backoff": 0.05,
        "max_backoff": 5.0,
        "queue_size": 100,
    }
    fields.update(changes)
    return SinkSettings(**fields)  # type: ignore[arg-type]


@pytest.fixture
def receiver() -> Iterator[NotifyReceiver]:
    with NotifyReceiver() as r:
        yield r


@pytest.fixture
def quiet_clients() -> Iterator[None]:
    """The product's own logging policy (autorollout.logs.configure_logging): client chatter off."""
    saved = {n: logging.getLogger(n).level for n in ("httpx", "httpcore")}
    for name in saved:
        logging.getLogger(name).setLevel(logging.WARNING)
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


async def deliver(*sinks: SinkSettings, notices: list[Notice], drain: float = 10.0) -> NoticeDispatcher:
    async with httpx.AsyncClient() as client:
        dispatcher = NoticeDispatcher([SinkDelivery(s, client) for s in sinks])
        dispatcher.start()
        for n in notices:
            dispatcher.submit(n)
        await dispatcher.close(drain)
    return dispatcher


def test_a_notice_arrives_with_its_fields_and_is_counted(receiver: NotifyReceiver) -> None:
    asyncio.run(deliver(settings("int-ok", receiver.url(SECRET_PATH)), notices=[notice()]))
    (got,) = receiver.wait_for(1)
    assert got.path == SECRET_PATH
    assert got.headers["Content-Type"] == "application/json"
    body = got.json()
    assert {
        k: body[k] for k in ("outcome", "kind", "namespace", "name", "container", "oldDigest", "newDigest")
    } == {
        "outcome": "rolledOut",
        "kind": "Deployment",
        "namespace": "shop",
        "name": "web",
        "container": "app",
        "oldDigest": OLD,
        "newDigest": NEW,
    }
    assert body["image"] == "127.0.0.1:5000/shop/web:latest"
    assert count("int-ok", "delivered") == 1
    assert count("int-ok", "dropped") == 0


def test_slack_and_teams_bodies_arrive_at_their_receivers(receiver: NotifyReceiver) -> None:
    asyncio.run(
        deliver(
            settings("int-slack", receiver.url("/slack"), "slack"),
            settings("int-teams", receiver.url("/teams"), "teams"),
            notices=[notice(NoticeOutcome.FAILED)],
        )
    )
    by_path = {r.path: r.json() for r in receiver.wait_for(2)}
    assert by_path["/slack"]["blocks"][0]["text"]["text"] == "Rollout failed: Deployment shop/web"
    assert by_path["/teams"]["attachments"][0]["content"]["type"] == "AdaptiveCard"


def test_500s_are_retried_with_backoff_until_delivered(receiver: NotifyReceiver) -> None:
    receiver.script.extend(["error", "error"])
    asyncio.run(
        deliver(settings("int-retry", receiver.url(), backoff=0.2, max_backoff=5.0), notices=[notice()])
    )
    got = receiver.wait_for(3)
    assert [r.answered for r in got] == ["error", "error", "ok"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
    assert gaps[0] >= 0.1 - 0.01
    assert gaps[1] >= 0.2 - 0.01
    assert count("int-retry", "retried") == 2
    assert count("int-retry", "delivered") == 1


def test_429_waits_out_retry_after(receiver: NotifyReceiver) -> None:
    receiver.retry_after = "1"
    receiver.script.append("throttle")
    asyncio.run(deliver(settings("int-429", receiver.url(), backoff=0.01), notices=[notice()]))
    first, second = receiver.wait_for(2)
    assert first.answered == "throttle"
    assert second.answered == "ok"
    assert second.at - first.at >= 1.0 - 0.01
    assert count("int-429", "retried") == 1
    assert count("int-429", "delivered") == 1


def test_retry_after_beyond_the_cap_drops_at_once(receiver: NotifyReceiver) -> None:
    receiver.mode = "throttle"
    receiver.retry_after = "3600"
    asyncio.run(deliver(settings("int-429-long", receiver.url(), max_backoff=30.0), notices=[notice()]))
    assert receiver.count == 1
    assert count("int-429-long", "dropped") == 1


def test_a_receiver_that_keeps_failing_gets_max_attempts_then_the_notice_is_dropped(
    receiver: NotifyReceiver,
) -> None:
    receiver.mode = "error"
    asyncio.run(deliver(settings("int-500", receiver.url(), max_attempts=3), notices=[notice()]))
    assert receiver.count == 3
    assert (count("int-500", "retried"), count("int-500", "dropped"), count("int-500", "delivered")) == (
        2,
        1,
        0,
    )


@pytest.mark.parametrize("mode", ["hang", "slow"])
def test_a_hanging_or_trickling_receiver_is_cut_at_the_deadline(receiver: NotifyReceiver, mode: str) -> None:
    receiver.mode = mode  # type: ignore[assignment]
    receiver.trickle_interval = 0.1  # the whole answer would take ~6 s
    sink = f"int-{mode}"
    started = time.monotonic()
    asyncio.run(
        deliver(settings(sink, receiver.url(), timeout=0.5, max_attempts=2, backoff=0.05), notices=[notice()])
    )
    elapsed = time.monotonic() - started
    assert receiver.count == 2
    assert elapsed < 2 * 0.5 + 0.05 + 1.0  # two deadlines, one backoff, slack for a loaded machine
    assert count(sink, "dropped") == 1
    assert count(sink, "delivered") == 0


def test_submit_never_waits_and_a_full_queue_drops_and_counts(receiver: NotifyReceiver) -> None:
    receiver.mode = "hang"

    async def scenario() -> float:
        async with httpx.AsyncClient() as client:
            dispatcher = NoticeDispatcher(
                [SinkDelivery(settings("int-full", receiver.url(), timeout=30.0, queue_size=5), client)]
            )
            dispatcher.start()
            dispatcher.submit(notice(name="first"))
            await asyncio.sleep(0.2)  # the first one is being sent (and hangs)
            started = time.monotonic()
            for i in range(1000):
                dispatcher.submit(notice(name=f"w{i}"))
            took = time.monotonic() - started
            await dispatcher.close(0.2)
            return took

    took = asyncio.run(scenario())
    assert took < 0.5  # 1000 submits while the receiver hangs: no waiting on it
    # 995 dropped as the queue was full, then at shutdown the 5 queued and the one in flight
    assert count("int-full", "dropped") == 995 + 5 + 1
    assert receiver.count == 1


def test_the_filter_decides_what_is_sent(receiver: NotifyReceiver) -> None:
    only_failures = settings("int-filter", receiver.url(), outcomes=frozenset({NoticeOutcome.FAILED}))
    asyncio.run(deliver(only_failures, notices=[notice(o) for o in NoticeOutcome]))
    (got,) = receiver.wait_for(1)
    assert got.json()["outcome"] == "failed"


def test_the_url_is_in_no_log_line_error_or_metric_whatever_fails(
    receiver: NotifyReceiver, caplog: pytest.LogCaptureFixture, quiet_clients: None
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = SECRET_PATH.rsplit("/", 1)[1]
    with Tarpit() as tarpit:
        closed = Tarpit()
        closed.close()  # a port nothing listens on: connection refused
        urls = {
            "int-secret-500": receiver.url(SECRET_PATH),
            "int-secret-hang": f"http://{tarpit.host}{SECRET_PATH}?sig={secret}",
            "int-secret-refused": f"http://{closed.host}{SECRET_PATH}",
            "int-secret-dns": f"http://no-such-host.invalid{SECRET_PATH}",
        }
        receiver.mode = "error"
        asyncio.run(
            deliver(
                *(settings(name, url, timeout=0.5, max_attempts=2) for name, url in urls.items()),
                notices=[notice()],
            )
        )
    text = "\n".join(
        f"{r.name} {r.getMessage()} {getattr(r, 'fields', '')} {r.exc_text or ''}" for r in caplog.records
    )
    assert "notification dropped" in text
    assert secret not in text
    assert secret not in generate_latest(REGISTRY).decode()
    for name in urls:
        assert count(name, "dropped") == 1


def test_the_config_builds_sinks_that_deliver(
    receiver: NotifyReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_TEST_URL", receiver.url(SECRET_PATH))
    config = load_config_text(
        "notifications:\n  drainSeconds: 5\n  sinks:\n"
        "    - {name: int-config, type: webhook, urlEnv: NOTIFY_TEST_URL, outcomes: [registryError]}\n",
        {},
    )

    async def scenario() -> None:
        async with open_notifications(config) as notices:
            notices.submit(notice(NoticeOutcome.ROLLED_OUT))
            notices.submit(notice(NoticeOutcome.REGISTRY_ERROR))
        # leaving the block drained the queue

    asyncio.run(scenario())
    (got,) = receiver.wait_for(1)
    assert got.json()["outcome"] == "registryError"
    assert count("int-config", "delivered") == 1
