"""What each sink posts for a notice: pure functions from a `Notice` to a JSON body.

- `webhook`: the notice's fields as a flat JSON object (a stable, documented schema, version 1).
- `slack`: an incoming-webhook message, `text` (the notification and fallback line) plus Block Kit
  `blocks` (a header and a section of fields).
- `teams`: a Workflows webhook message, the envelope with one Adaptive Card attachment (not the
  retired Office 365 connector's MessageCard).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Literal

from autorollout.notify.model import Notice, NoticeOutcome

SinkType = Literal["webhook", "slack", "teams"]
SINK_TYPES: Final[tuple[SinkType, ...]] = ("webhook", "slack", "teams")
SCHEMA_VERSION: Final = 1

_TITLES: Final[dict[NoticeOutcome, str]] = {
    NoticeOutcome.ROLLED_OUT: "Rollout triggered",
    NoticeOutcome.SUCCEEDED: "Rollout succeeded",
    NoticeOutcome.FAILED: "Rollout failed",
    NoticeOutcome.HELD: "Workload held",
    NoticeOutcome.REGISTRY_ERROR: "Registry lookup failed",
}
_SLACK_EMOJI: Final[dict[NoticeOutcome, str]] = {
    NoticeOutcome.ROLLED_OUT: ":arrows_counterclockwise:",
    NoticeOutcome.SUCCEEDED: ":white_check_mark:",
    NoticeOutcome.FAILED: ":x:",
    NoticeOutcome.HELD: ":no_entry:",
    NoticeOutcome.REGISTRY_ERROR: ":warning:",
}
_TEAMS_COLOR: Final[dict[NoticeOutcome, str]] = {
    NoticeOutcome.ROLLED_OUT: "Accent",
    NoticeOutcome.SUCCEEDED: "Good",
    NoticeOutcome.FAILED: "Attention",
    NoticeOutcome.HELD: "Attention",
    NoticeOutcome.REGISTRY_ERROR: "Warning",
}
# Slack's limits: a header's plain text 150 characters, a section field 2000, a section text 3000.
_SLACK_HEADER_MAX: Final = 150
_SLACK_FIELD_MAX: Final = 2000
_SLACK_TEXT_MAX: Final = 3000
_DETAIL_MAX: Final = 1000


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def title(notice: Notice) -> str:
    """`Rollout triggered: Deployment shop/web`."""
    return f"{_TITLES[notice.outcome]}: {notice.kind} {notice.namespace}/{notice.name}"


def facts(notice: Notice) -> list[tuple[str, str]]:
    """The labelled values every chat message shows, those present only."""
    rows = [
        ("Workload", f"{notice.kind} {notice.namespace}/{notice.name}"),
        ("Container", notice.container),
        ("Image", notice.image),
        ("Old digest", notice.old_digest),
        ("New digest", notice.new_digest),
        ("Result", notice.outcome.value),
        ("At", _stamp(notice.at)),
    ]
    return [(label, value) for label, value in rows if value]


def summary(notice: Notice) -> str:
    """One plain line: the title, then the detail (what chat clients show in a notification)."""
    detail = _cut(notice.detail, _DETAIL_MAX)
    return f"{title(notice)}: {detail}" if detail else title(notice)


def webhook_body(notice: Notice) -> dict[str, Any]:
    """The generic JSON webhook's body (docs/notifications.md lists its fields)."""
    return {
        "schemaVersion": SCHEMA_VERSION,
        "source": "kube-autorollout",
        "outcome": notice.outcome.value,
        "kind": notice.kind,
        "namespace": notice.namespace,
        "name": notice.name,
        "container": notice.container,
        "image": notice.image,
        "oldDigest": notice.old_digest,
        "newDigest": notice.new_digest,
        "detail": _cut(notice.detail, _DETAIL_MAX),
        "at": _stamp(notice.at),
        "summary": summary(notice),
    }


def _slack_escape(text: str) -> str:
    # Slack reads &, < and > as markup (`<!channel>` would ping everyone).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(notice: Notice) -> dict[str, Any]:
    """A Slack incoming-webhook message: fallback `text` and Block Kit `blocks`."""
    fields = [
        {"type": "mrkdwn", "text": _cut(f"*{label}*\n{_slack_escape(value)}", _SLACK_FIELD_MAX)}
        for label, value in facts(notice)
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(title(notice), _SLACK_HEADER_MAX)},
        },
        {"type": "section", "fields": fields[:10]},  # a section takes at most 10 fields
    ]
    if notice.detail:
        text = f"{_SLACK_EMOJI[notice.outcome]} {_slack_escape(_cut(notice.detail, _DETAIL_MAX))}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, _SLACK_TEXT_MAX)}})
    return {"text": _slack_escape(summary(notice)), "blocks": blocks}


def teams_body(notice: Notice) -> dict[str, Any]:
    """A Teams Workflows webhook message: one Adaptive Card (1.4) in a `message` envelope."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": title(notice),
            "weight": "Bolder",
            "size": "Medium",
            "color": _TEAMS_COLOR[notice.outcome],
            "wrap": True,
        },
        {"type": "FactSet", "facts": [{"title": label, "value": value} for label, value in facts(notice)]},
    ]
    if notice.detail:
        body.append({"type": "TextBlock", "text": _cut(notice.detail, _DETAIL_MAX), "wrap": True})
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "msteams": {"width": "Full"},
                    "body": body,
                },
            }
        ],
    }


FORMATTERS: Final[dict[SinkType, Callable[[Notice], dict[str, Any]]]] = {
    "webhook": webhook_body,
    "slack": slack_body,
    "teams": teams_body,
}
