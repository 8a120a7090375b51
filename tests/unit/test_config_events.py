"""The `events:` configuration: off by default, validated with one line per problem that never
quotes a secret, and shown redacted in the effective configuration."""

from __future__ import annotations

import json

import pytest

from autorollout.config import ConfigError, load_config_text
from autorollout.config.loading import _load_text
from autorollout.config.view import effective_config

pytestmark = pytest.mark.unit

SECRET = "hunter2-but-longer"


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, environ or {})
    return caught.value.problems


def test_off_by_default_and_an_upstream_file_is_unchanged() -> None:
    config = load_config_text('cronSchedule: "*/45 * * * * *"\n', {})
    assert config.events.enabled is False
    assert config.events.port == 8090
    assert config.events.sources.configured() == {}


def test_a_source_needs_a_secret_or_an_explicit_opt_out() -> None:
    text = "events:\n  enabled: true\n  sources:\n    github: {}\n"
    assert problems(text) == [
        "events.sources.github: needs secret or secretFile (or allowUnauthenticated: true) (line 4)"
    ]


def test_each_problem_is_one_line_and_no_secret_is_quoted() -> None:
    text = (
        "events:\n"
        "  enabled: true\n"
        "  port: 70000\n"
        "  tlsCertFile: /tls.crt\n"
        "  sources:\n"
        "    distribution:\n"
        f"      secret: {SECRET}\n"
        "      allowUnauthenticated: true\n"
        "    harbor:\n"
        "      secret: ${HARBOR_TOKEN}\n"
        "      secretFile: /x\n"
        "    nexus: {secret: x}\n"
    )
    found = problems(text, {"HARBOR_TOKEN": SECRET})
    assert all("\n" not in p for p in found)
    assert not any(SECRET in p for p in found)
    joined = "; ".join(found)
    assert "events.port:" in joined
    both = "set either a secret or allowUnauthenticated: true, not both"
    assert f"events.sources.distribution: {both}" in joined
    assert "events.sources.harbor: set either secret or secretFile, not both" in joined
    assert "events.sources.nexus: unknown key" in joined


def test_enabled_without_sources_and_tls_halves_are_refused() -> None:
    assert problems("events:\n  enabled: true\n") == [
        "events: enabled, but no source is configured under sources (line 1)"
    ]
    found = problems("events:\n  tlsKeyFile: /k\n  sources: {generic: {allowUnauthenticated: true}}\n")
    assert found == ["events: tlsCertFile and tlsKeyFile must be given together (line 1)"]


def test_the_effective_configuration_hides_the_secrets() -> None:
    text = f"events:\n  enabled: true\n  sources:\n    generic:\n      secret: {SECRET}\n"
    shown = json.dumps(effective_config(_load_text(text, {}, strict=False)))
    assert SECRET not in shown
    assert '"generic"' in shown
