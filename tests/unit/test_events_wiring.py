"""Building the receiver's sources from the configuration: secrets from the config or a file (newline
stripped), an unreadable file named by path only, and a warning for each unauthenticated source."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from autorollout.cli.events import event_sources
from autorollout.config import load_config_text
from autorollout.errors import UsageError

pytestmark = pytest.mark.unit


def test_secrets_from_the_file_and_the_config_and_a_warning_for_the_unauthenticated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "token").write_text("from-a-file\n")
    config = load_config_text(
        "events:\n  enabled: true\n  sources:\n"
        f"    distribution: {{secretFile: {tmp_path / 'token'}}}\n"
        "    github: {secret: hmac-key}\n"
        "    generic: {allowUnauthenticated: true}\n"
        "    quay: {secret: q, header: X-Quay-Token}\n",
        {},
    )
    with caplog.at_level(logging.WARNING, logger="kube_autorollout.events"):
        sources = event_sources(config)
    assert sources["distribution"].auth.secret == b"from-a-file"
    assert sources["github"].auth.secret == b"hmac-key"
    assert sources["github"].auth.header == "x-hub-signature-256"
    assert sources["generic"].auth.secret is None
    assert (sources["quay"].auth.header, sources["quay"].auth.query_token) == ("x-quay-token", False)
    [warning] = [
        r for r in caplog.records if r.getMessage() == "event source accepts unauthenticated requests"
    ]
    assert warning.__dict__["fields"] == {
        "source": "generic",
        "key": "events.sources.generic.allowUnauthenticated",
    }


def test_an_unreadable_or_empty_secret_file_is_a_usage_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    config = load_config_text(
        f"events:\n  enabled: true\n  sources:\n    harbor: {{secretFile: {missing}}}\n", {}
    )
    with pytest.raises(UsageError, match=f"events.sources.harbor.secretFile: cannot read {missing}"):
        event_sources(config)
    (tmp_path / "empty").write_text("\n")
    config = load_config_text(
        f"events:\n  enabled: true\n  sources:\n    harbor: {{secretFile: {tmp_path / 'empty'}}}\n", {}
    )
    with pytest.raises(UsageError, match="is empty"):
        event_sources(config)
