"""The `notifications:` configuration: no sinks by default, the URL never in the file, one line
per problem naming the key."""

from __future__ import annotations

import os

import pytest

from autorollout.cli.notifications import sink_settings
from autorollout.config import ConfigError, load_config_text
from autorollout.errors import UsageError
from autorollout.notify import NoticeOutcome

pytestmark = pytest.mark.unit

SECRET_URL = "https://hooks.slack.com/services/T000/B000/Shhh-SecretPart-123"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, {})
    return caught.value.problems


def test_no_sinks_by_default() -> None:
    config = load_config_text('cronSchedule: "*/45 * * * * *"\n', {})
    assert config.notifications.sinks == []
    assert config.notifications.drain_seconds == 5.0


def test_a_sink_with_defaults_takes_every_outcome() -> None:
    config = load_config_text(
        "notifications:\n  sinks:\n    - {name: team, type: slack, urlEnv: SLACK_URL}\n", {}
    )
    (sink,) = config.notifications.sinks
    assert sink.outcomes == list(NoticeOutcome)
    assert (sink.timeout_seconds, sink.max_attempts, sink.queue_size) == (10.0, 4, 1000)


def test_each_problem_is_one_line_naming_the_key() -> None:
    text = (
        "notifications:\n"
        "  drainSeconds: -1\n"
        "  sinks:\n"
        "    - {name: Team, type: slack, urlEnv: SLACK_URL}\n"
        "    - {name: b, type: discord, urlFile: /x}\n"
        "    - {name: c, type: teams}\n"
        "    - {name: d, type: webhook, urlEnv: 'A-B', outcomes: [rolledOut, exploded]}\n"
        "    - {name: e, type: webhook, urlEnv: E, timeoutSeconds: 0}\n"
    )
    found = problems(text)
    assert all("\n" not in p for p in found)
    assert any(p.startswith("notifications.drainSeconds:") for p in found)
    assert any(p.startswith("notifications.sinks[0].name: not a sink name") for p in found)
    assert any(p.startswith("notifications.sinks[1].type:") and "slack" in p for p in found)
    assert any(p.startswith("notifications.sinks[2]: needs exactly one of urlEnv or urlFile") for p in found)
    assert any(p.startswith("notifications.sinks[3].urlEnv: not an environment variable name") for p in found)
    assert any(p.startswith("notifications.sinks[3].outcomes[1]:") for p in found)
    assert any(p.startswith("notifications.sinks[4].timeoutSeconds:") for p in found)


def test_duplicate_names_and_crossed_backoff_are_refused() -> None:
    text = (
        "notifications:\n  sinks:\n"
        "    - {name: a, type: slack, urlEnv: A}\n"
        "    - {name: a, type: teams, urlEnv: B, backoffSeconds: 9, maxBackoffSeconds: 3}\n"
    )
    found = problems(text)
    assert any("backoffSeconds must not be longer than maxBackoffSeconds" in p for p in found)


def test_unique_names() -> None:
    text = (
        "notifications:\n  sinks:\n"
        "    - {name: a, type: slack, urlEnv: A}\n"
        "    - {name: a, type: teams, urlEnv: B}\n"
    )
    assert any("sink names must be unique: a given more than once" in p for p in problems(text))


def test_a_url_in_the_file_is_not_taken_and_not_quoted() -> None:
    text = f"notifications:\n  sinks:\n    - name: a\n      type: slack\n      url: {SECRET_URL}\n"
    found = problems(text)
    assert any("notifications.sinks[0]: needs exactly one of urlEnv or urlFile" in p for p in found)
    assert not any("Shhh" in p for p in found)


def test_the_url_is_read_from_the_environment_or_a_file_and_never_quoted(
    tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url_file = os.path.join(tmp_path, "url")
    with open(url_file, "w") as f:
        f.write(SECRET_URL + "\n")  # a mounted Secret's trailing newline
    monkeypatch.setenv("SLACK_URL", SECRET_URL)
    config = load_config_text(
        "notifications:\n  sinks:\n"
        "    - {name: env, type: slack, urlEnv: SLACK_URL}\n"
        f"    - {{name: file, type: teams, urlFile: {url_file}}}\n",
        {},
    )
    assert [s.url for s in sink_settings(config)] == [SECRET_URL, SECRET_URL]

    monkeypatch.setenv("SLACK_URL", "ftp://Shhh-SecretPart-123")
    with pytest.raises(UsageError) as caught:
        sink_settings(config)
    assert str(caught.value) == (
        "notifications.sinks[0].urlEnv: environment variable SLACK_URL "
        "does not hold an http:// or https:// URL"
    )
    monkeypatch.delenv("SLACK_URL")
    with pytest.raises(
        UsageError,
        match=r"^notifications.sinks\[0\].urlEnv: environment variable SLACK_URL is not set or empty$",
    ):
        sink_settings(config)
    monkeypatch.setenv("SLACK_URL", SECRET_URL)
    os.remove(url_file)
    with pytest.raises(UsageError) as caught:
        sink_settings(config)
    assert str(caught.value).startswith(f"notifications.sinks[1].urlFile: {url_file}: cannot read it:")
