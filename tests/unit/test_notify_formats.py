"""What each sink posts: the generic webhook's fields, Slack's text + blocks (escaped, within its
limits), Teams' Adaptive Card envelope; and each sink's filter."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from autorollout.notify import Notice, NoticeOutcome
from autorollout.notify.delivery import SinkDelivery, SinkSettings, url_secrets
from autorollout.notify.formats import FORMATTERS, slack_body, summary, teams_body, webhook_body

pytestmark = pytest.mark.unit

AT = datetime(2026, 12, 1, 13, 0, 5, tzinfo=UTC)
OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64


def rolled_out(**changes: object) -> Notice:
    fields: dict[str, object] = {
        "outcome": NoticeOutcome.ROLLED_OUT,
        "kind": "Deployment",
        "namespace": "shop",
        "name": "web",
        "at": AT,
        "container": "app",
        "image": "registry.local:5000/shop/web:latest",
        "old_digest": OLD,
        "new_digest": NEW,
        "detail": f"container app: {OLD} -> {NEW} (registry.local:5000/shop/web:latest)",
    }
    fields.update(changes)
    return Notice(**fields)  # type: ignore[arg-type]


def test_the_generic_webhook_carries_every_field() -> None:
    body = webhook_body(rolled_out())
    assert body == {
        "schemaVersion": 1,
        "source": "kube-autorollout",
        "outcome": "rolledOut",
        "kind": "Deployment",
        "namespace": "shop",
        "name": "web",
        "container": "app",
        "image": "registry.local:5000/shop/web:latest",
        "oldDigest": OLD,
        "newDigest": NEW,
        "detail": f"container app: {OLD} -> {NEW} (registry.local:5000/shop/web:latest)",
        "at": "2026-12-01T13:00:05Z",
        "summary": f"Rollout triggered: Deployment shop/web: container app: {OLD} -> {NEW} "
        "(registry.local:5000/shop/web:latest)",
    }


def test_slack_has_fallback_text_and_blocks_with_the_workload_digests_and_result() -> None:
    body = slack_body(rolled_out())
    assert body["text"].startswith("Rollout triggered: Deployment shop/web")
    header, section, detail = body["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Rollout triggered: Deployment shop/web"},
    }
    fields = [f["text"] for f in section["fields"]]
    assert fields == [
        "*Workload*\nDeployment shop/web",
        "*Container*\napp",
        "*Image*\nregistry.local:5000/shop/web:latest",
        f"*Old digest*\n{OLD}",
        f"*New digest*\n{NEW}",
        "*Result*\nrolledOut",
        "*At*\n2026-12-01T13:00:05Z",
    ]
    assert all(f["type"] == "mrkdwn" for f in section["fields"])
    assert detail["text"]["type"] == "mrkdwn"


def test_slack_escapes_markup_and_keeps_within_its_limits() -> None:
    notice = rolled_out(name="web", detail="<!channel> & " + "x" * 5000)
    body = slack_body(notice)
    text = json.dumps(body)
    assert "<!channel>" not in text
    assert "&lt;!channel&gt; &amp;" in body["text"]
    assert len(body["blocks"][0]["text"]["text"]) <= 150
    assert all(len(f["text"]) <= 2000 for f in body["blocks"][1]["fields"])
    assert len(body["blocks"][2]["text"]["text"]) <= 3000


def test_a_registry_error_without_a_new_digest_leaves_that_fact_out() -> None:
    notice = rolled_out(outcome=NoticeOutcome.REGISTRY_ERROR, new_digest=None, detail="HTTP 401")
    labels = [f["text"].split("\n")[0] for f in slack_body(notice)["blocks"][1]["fields"]]
    assert "*New digest*" not in labels
    assert webhook_body(notice)["newDigest"] is None
    assert summary(notice) == "Registry lookup failed: Deployment shop/web: HTTP 401"


def test_teams_posts_one_adaptive_card_in_a_message_envelope() -> None:
    body = teams_body(rolled_out(outcome=NoticeOutcome.FAILED, detail="ProgressDeadlineExceeded"))
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["version"] == "1.4"
    heading, facts, detail = card["body"]
    assert heading["text"] == "Rollout failed: Deployment shop/web"
    assert heading["color"] == "Attention"
    assert {"title": "New digest", "value": NEW} in facts["facts"]
    assert {"title": "Result", "value": "failed"} in facts["facts"]
    assert detail["text"] == "ProgressDeadlineExceeded"
    assert "@type" not in json.dumps(body)  # not the retired connector's MessageCard


@pytest.mark.parametrize("outcome", list(NoticeOutcome))
def test_every_outcome_formats_for_every_sink(outcome: NoticeOutcome) -> None:
    for format_body in FORMATTERS.values():
        json.dumps(format_body(rolled_out(outcome=outcome)))


def test_a_sink_queues_only_the_outcomes_of_its_filter() -> None:
    asyncio.run(_queues_only_the_outcomes_of_its_filter())


async def _queues_only_the_outcomes_of_its_filter() -> None:
    settings = SinkSettings(
        name="oncall",
        type="slack",
        url="http://127.0.0.1:9/hooks/T0/B0/secretpart",
        outcomes=frozenset({NoticeOutcome.FAILED, NoticeOutcome.HELD}),
        queue_size=2,
    )
    async with httpx.AsyncClient() as client:
        sink = SinkDelivery(settings, client)
        for outcome in NoticeOutcome:
            sink.submit(rolled_out(outcome=outcome))
        assert sink.queued == 2
        sink.submit(rolled_out(outcome=NoticeOutcome.FAILED))  # queue full: dropped, never waits
        assert sink.queued == 2


def test_the_url_forms_redacted_include_path_and_query() -> None:
    forms = url_secrets(
        "https://example.invalid/workflows/abc/triggers/manual/paths/invoke?sig=s3cr3tsig1234"
    )
    assert "/workflows/abc/triggers/manual/paths/invoke" in forms
    assert "sig=s3cr3tsig1234" in forms
    assert "/" not in forms


def test_an_error_text_quoting_the_url_is_redacted() -> None:
    url = "https://example.invalid/services/T0/B0/SeCrEtPaRt99?sig=AnotherSecret77"
    request = httpx.Request("POST", url)
    error = httpx.HTTPStatusError(
        f"Server error '500' for url '{url}'", request=request, response=httpx.Response(500, request=request)
    )
    settings = SinkSettings(name="s", type="webhook", url=url, outcomes=frozenset(NoticeOutcome))

    async def redacted() -> str:
        async with httpx.AsyncClient() as client:
            return SinkDelivery(settings, client)._redacted(f"{error}; path {request.url.raw_path.decode()}")

    text = asyncio.run(redacted())
    assert "SeCrEtPaRt99" not in text
    assert "AnotherSecret77" not in text
    assert "[redacted]" in text


def test_the_time_is_given_in_utc_whatever_zone_the_notice_has() -> None:
    berlin = timezone(timedelta(hours=1))
    notice = rolled_out(at=datetime(2026, 12, 1, 14, 0, 5, tzinfo=berlin))
    assert webhook_body(notice)["at"] == "2026-12-01T13:00:05Z"
