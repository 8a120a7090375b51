"""The effective configuration as the start-up log shows it: every key with its value in effect, except
credentials and values from the environment, which are never shown.

- `registries[].secret.token` and `.username`: "(redacted)" when set;
- a value that came from `${VAR}`: the text as written in the file (`${VAR}`), and any other string
  that holds such a value (an alias, a CA path merged from `customCaCertificates`): "(from environment)".
"""

from __future__ import annotations

from typing import Any

from autorollout.config.document import Loc
from autorollout.config.loading import LoadedConfig
from autorollout.config.models import SECRET_KEYS, WebhookConfig

__all__ = ["FROM_ENVIRONMENT", "REDACTED", "effective_config"]

REDACTED = "(redacted)"
FROM_ENVIRONMENT = "(from environment)"
# Shorter values are only redacted where they stand whole: inside other strings they would match
# ordinary text ("0" in "0.0.0.0").
_MIN_CONTAINED = 4


def effective_config(loaded: LoadedConfig, *, webhook: WebhookConfig | None = None) -> dict[str, Any]:
    """The configuration in effect (with `webhook` settings from the command line, if given), as
    JSON-ready data by the file's key names, with credentials and environment values hidden."""
    config = loaded.config if webhook is None else loaded.config.model_copy(update={"webhook": webhook})
    data: dict[str, Any] = config.model_dump(mode="json", by_alias=True)
    for loc, written in loaded.from_environment.items():
        _replace(data, loc, written)
    values = [v for v in loaded.environment_values if v]
    hidden = _hide_values(data, values, set(loaded.from_environment))
    assert isinstance(hidden, dict)
    for registry in hidden.get("registries", []):
        secret = registry.get("secret") or {}
        for key in SECRET_KEYS:
            if secret.get(key) is not None:
                secret[key] = REDACTED
    return hidden


def _replace(data: Any, loc: Loc, value: str) -> None:
    """Set the leaf at `loc` to `value` when `data` has it (a merged or defaulted tree may not)."""
    for index, part in enumerate(loc):
        container = data
        if not _has(container, part):
            return
        if index == len(loc) - 1:
            container[part] = value
        else:
            data = container[part]


def _has(container: Any, part: str | int) -> bool:
    if isinstance(container, dict):
        return part in container
    return isinstance(container, list) and isinstance(part, int) and 0 <= part < len(container)


def _hide_values(data: Any, values: list[str], written: set[Loc], loc: Loc = ()) -> Any:
    if isinstance(data, dict):
        return {key: _hide_values(item, values, written, (*loc, key)) for key, item in data.items()}
    if isinstance(data, list):
        return [_hide_values(item, values, written, (*loc, i)) for i, item in enumerate(data)]
    if loc in written:
        return data  # already the text as written
    text = data if isinstance(data, str) else None if data is None else str(data)
    if text is not None and any(
        text == value or (len(value) >= _MIN_CONTAINED and value in text) for value in values
    ):
        return FROM_ENVIRONMENT
    return data
