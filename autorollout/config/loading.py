"""Loading the configuration file into the models (`autorollout.config.models`), once at start-up.

Loading (`read_config`, `load_config`): a regular file of at most 1 MiB (symlinks followed) is read;
the YAML is parsed first, then `${VAR}` in any scalar value is replaced from the environment (so a
token's characters can never change the YAML's structure, and `$${VAR}` stays a literal `${VAR}`);
keys the models do not know are set aside as warnings (problems in strict mode); the rest is
validated. Every problem found is reported at once in `ConfigError.problems`, one "key.path: what is
wrong (line N)" line each. Problems never quote a value: only a file path written in the file itself
is named (one that came from `${VAR}` is not), so a token cannot leak through an error message.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from autorollout.config.document import Loc, YamlDocument, format_path, scrub_values, with_line
from autorollout.config.file import ConfigError, read_config_file
from autorollout.config.keys import split_unknown_keys, suggestion
from autorollout.config.models import SECRET_KEYS, SECRET_TYPES, Config, infer_secret_type

CONFIG_FILE_ENV = "CONFIG_FILE"
STRICT_CONFIG_ENV = "KUBE_AUTOROLLOUT_STRICT_CONFIG"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
log = logging.getLogger("kube_autorollout.config")


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated configuration and what loading it found.

    `warnings`: one "key.path: unknown key ... (line N)" line per key the models do not know (fatal
    in strict mode instead). `from_environment`: key path -> the value as written (`${VAR}`), for
    every value taken from the environment, which is never shown anywhere.
    """

    config: Config
    source: str | None = None
    warnings: tuple[str, ...] = ()
    from_environment: Mapping[Loc, str] = field(default_factory=dict)
    environment_values: tuple[str, ...] = ()


def strict_from_environment(environ: Mapping[str, str]) -> bool:
    """Whether $KUBE_AUTOROLLOUT_STRICT_CONFIG asks for strict mode; raises ConfigError if unreadable."""
    value = environ.get(STRICT_CONFIG_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError([f"{STRICT_CONFIG_ENV}: expected true or false"])


def load_config(
    path: str | None = None, environ: Mapping[str, str] | None = None, *, strict: bool | None = None
) -> Config:
    """Load and validate the config file at `path` (default: $CONFIG_FILE; neither: all defaults).

    Unknown keys are logged as warnings (fatal with `strict`; None: $KUBE_AUTOROLLOUT_STRICT_CONFIG).
    Raises ConfigError listing every problem found.
    """
    loaded = read_config(path, environ, strict=strict)
    for warning in loaded.warnings:
        log.warning(warning)
    return loaded.config


def read_config(
    path: str | None = None, environ: Mapping[str, str] | None = None, *, strict: bool | None = None
) -> LoadedConfig:
    """Like `load_config`, but the warnings are returned rather than logged, with the source."""
    env = os.environ if environ is None else environ
    if strict is None:
        strict = strict_from_environment(env)
    if path is None:
        path = env.get(CONFIG_FILE_ENV) or None
    if path is None:
        return LoadedConfig(Config())
    loaded = _load_text(read_config_file(path), env, strict=strict)
    config = loaded.config
    missing = [
        f"tls.caCertificatePaths[{i}]: file not found"
        + ("" if _from_environment(ca, loaded.environment_values) else f": {ca}")
        for i, ca in enumerate(config.tls.ca_certificate_paths)
        if not (Path(ca).is_file() or Path(ca).is_dir())  # a directory: every file in it, as mounted
    ]
    if missing:
        raise ConfigError(missing)
    return LoadedConfig(config, path, loaded.warnings, loaded.from_environment, loaded.environment_values)


def _from_environment(text: str, environment_values: Iterable[str]) -> bool:
    return any(value and value in text for value in environment_values)


def load_config_text(text: str, environ: Mapping[str, str] | None = None, *, strict: bool = False) -> Config:
    """Validate config file content (no file-system checks); raises ConfigError listing every problem.

    Unknown keys are ignored here (logged as warnings by `load_config`), or problems with `strict`.
    """
    return _load_text(text, os.environ if environ is None else environ, strict=strict).config


def _load_text(text: str, env: Mapping[str, str], *, strict: bool) -> LoadedConfig:
    document = YamlDocument.parse(text, env)
    problems = list(document.problems)
    data = document.data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(f"(top level): must be a mapping of keys to values, not {_kind(data)}")
        raise ConfigError(problems)

    known, unknown = split_unknown_keys(data, Config)
    unknown_lines = [
        with_line(format_path(loc), "unknown key" + suggestion(Config, loc), document.line_of(loc))
        for loc in unknown
    ]
    config: Config | None = None
    try:
        config = Config.model_validate(known, by_alias=True, by_name=False)
    except ValidationError as exc:
        problems.extend(_describe_errors(exc, document))
    problems.extend(_cross_field_problems(known, document))

    # A missing variable already explains any complaint about the value it left empty.
    reported = set(document.missing_variable_paths)
    problems = [p for p in problems if p in document.problems or p.split(":", 1)[0] not in reported]
    secrets = [*document.environment_values, *_secret_values(known)]
    problems = [scrub_values(p, secrets) for p in problems]
    if problems or config is None or (strict and unknown_lines):
        # Unknown keys are problems in strict mode, and listed with the others when the file stops
        # the program anyway (a misspelt key is often the cause of a missing one).
        raise ConfigError(_in_file_order([*problems, *unknown_lines]))
    return LoadedConfig(
        config,
        warnings=tuple(unknown_lines),
        from_environment=dict(document.from_environment),
        environment_values=tuple(document.environment_values),
    )


def _secret_values(data: Mapping[str, Any]) -> list[str]:
    registries = data.get("registries")
    found: list[str] = []
    for entry in registries if isinstance(registries, list) else []:
        secret = entry.get("secret") if isinstance(entry, Mapping) else None
        if isinstance(secret, Mapping):
            found.extend(str(secret[k]) for k in SECRET_KEYS if secret.get(k) is not None)
    events = data.get("events")
    sources = events.get("sources") if isinstance(events, Mapping) else None
    for source in sources.values() if isinstance(sources, Mapping) else []:
        if isinstance(source, Mapping) and source.get("secret") is not None:
            found.append(str(source["secret"]))
    return found


def _in_file_order(problems: Iterable[str]) -> list[str]:
    def line(problem: str) -> int:
        match = re.search(r"\(line (\d+)\)$|line (\d+), column", problem)
        return int(match.group(1) or match.group(2)) if match else 0

    return sorted(dict.fromkeys(problems), key=line)


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return "a single value"


def _describe_errors(exc: ValidationError, document: YamlDocument) -> list[str]:
    """One line per pydantic error, without the input (pydantic's own text names no input when
    asked to leave it out; our validators never quote it)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc: Loc = tuple(error["loc"])
        kind = error["type"]
        msg = str(error["msg"])
        if kind == "missing":
            msg = "required key is missing"
        elif kind == "extra_forbidden":
            msg = "unknown key" + suggestion(Config, loc)
        elif kind in {"value_error", "assertion_error"}:
            msg = msg.split(", ", 1)[1] if ", " in msg else msg
        if loc and loc[-1] in SECRET_KEYS:
            msg = "invalid value (expected a string)" if kind != "missing" else msg
        problems.append(with_line(format_path(loc), msg, document.line_of(loc)))
    return problems


def _cross_field_problems(data: Mapping[str, Any], document: YamlDocument) -> list[str]:
    """Checks that involve several keys of the registries; run on the raw data so they are reported
    even when other parts of the file have type errors."""
    registries = data.get("registries")
    if not isinstance(registries, list):
        return []
    problems: list[str] = []
    mounts: dict[str, int] = {}
    for index, entry in enumerate(registries):
        secret = entry.get("secret") if isinstance(entry, Mapping) else None
        if not isinstance(secret, Mapping):
            continue
        loc: Loc = ("registries", index, "secret")

        def problem(key: str, message: str, loc: Loc = loc) -> None:
            problems.append(with_line(format_path((*loc, key)), message, document.line_of((*loc, key))))

        secret_type = infer_secret_type(secret)
        if secret_type is None:
            problem("type", "required: ImagePullSecret, Opaque or None (cannot tell from the other keys)")
            continue
        normalized = next((t for t in SECRET_TYPES if t.lower() == secret_type.strip().lower()), None)
        mount = secret.get("mountPath")
        if normalized == "ImagePullSecret":
            if not isinstance(mount, str) or not mount.strip():
                problem("mountPath", "required for type ImagePullSecret (where the secret is mounted)")
            else:
                key = os.path.normpath(mount.strip())
                if key in mounts:
                    problem("mountPath", f"also used by registries[{mounts[key]}]; each must differ")
                else:
                    mounts[key] = index
        elif normalized == "Opaque":
            token = secret.get("token")
            if token is not None:
                if isinstance(token, str) and not token.strip():
                    problem("token", "is empty")
            elif not secret.get("name") or not secret.get("key"):
                missing = "key" if secret.get("name") else "token"
                problem(missing, "type Opaque needs a token, or name and key of a Kubernetes Secret")
    return problems
