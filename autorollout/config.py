"""The configuration file: upstream kube-autorollout's keys unchanged, plus our additions with safe
defaults. Loaded once at start-up into typed, validated pydantic models.

Loading (`load_config`): the YAML is parsed first, then `${VAR}` in any scalar value is replaced from
the environment (so a token's characters can never change the YAML's structure, and `$${VAR}` stays
a literal `${VAR}`); the result is validated. Every problem found is reported at once in
`ConfigError.problems`, one "key.path: what is wrong (line N)" line each; values are never echoed
there, so a token cannot leak through an error message.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "CONFIG_FILE_ENV",
    "Config",
    "ConfigError",
    "CronSpec",
    "CustomCaCertificates",
    "FeatureFlags",
    "LeaderElectionConfig",
    "ReconcilerConfig",
    "RegistryConfig",
    "RegistrySecret",
    "SecretType",
    "TlsConfig",
    "WebhookConfig",
    "WebserverConfig",
    "load_config",
    "load_config_text",
    "parse_cron",
]

CONFIG_FILE_ENV = "CONFIG_FILE"
DEFAULT_CRON_SCHEDULE = "*/45 * * * * *"

SecretType = Literal["ImagePullSecret", "Opaque", "None"]
SECRET_TYPES: tuple[SecretType, ...] = ("ImagePullSecret", "Opaque", "None")
ImagePullPolicyMode = Literal["mutate", "warn", "deny"]
LogLevel = Literal["trace", "debug", "info", "warn", "error"]


class ConfigError(Exception):
    """The configuration cannot be used; `problems` holds one "key.path: what is wrong" line each."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration: " + "; ".join(self.problems))


# --- cron ---------------------------------------------------------------------------------------

_CRON_CHECK_START = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A validated cron schedule.

    `expression` is as written; `croniter_expression` has croniter's field order (for 6 fields the
    seconds move from first, upstream's order, to last, croniter's); `has_seconds` says whether the
    schedule has second resolution.
    """

    expression: str
    croniter_expression: str
    has_seconds: bool

    def next_after(self, moment: datetime) -> datetime:
        """The first time strictly after `moment` the schedule fires (same tzinfo as `moment`)."""
        result: datetime = croniter(self.croniter_expression, moment).get_next(datetime)
        return result


def parse_cron(expression: str) -> CronSpec:
    """Validate a cron expression: 6 fields with seconds first (upstream), 5 fields, or an @macro.

    Raises ValueError with a one-line reason.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError("cron expression is empty")
    fields = expression.split()
    if len(fields) == 6:
        normalized, has_seconds = " ".join([*fields[1:], fields[0]]), True
    elif len(fields) == 5 or (len(fields) == 1 and fields[0].startswith("@")):
        normalized, has_seconds = " ".join(fields), False
    else:
        raise ValueError(
            f"cron expression {expression!r} has {len(fields)} fields; expected 6 (second minute hour "
            "day-of-month month day-of-week, as upstream) or 5 (minute hour day-of-month month day-of-week)"
        )
    try:
        croniter(normalized, _CRON_CHECK_START).get_next(float)
    except (ValueError, KeyError, IndexError, TypeError, OverflowError) as exc:
        raise ValueError(f"invalid cron expression {expression!r}: {_croniter_reason(exc)}") from None
    return CronSpec(expression=expression, croniter_expression=normalized, has_seconds=has_seconds)


def _croniter_reason(exc: Exception) -> str:
    text = str(exc)
    if "failed to find next date" in text:
        return "it never fires (no date matches)"
    # croniter prefixes its messages with "[<expression>] is not acceptable"; keep only the reason,
    # whose field numbers would refer to croniter's order rather than the user's.
    text = re.sub(r"^\[.*?\]\s*", "", text)
    text = re.sub(r"\bin field \d+\s*", "", text)
    text = text.removeprefix("is not acceptable").strip(" ,")
    return text or "not a valid schedule"


# --- models -------------------------------------------------------------------------------------


class _Section(BaseModel):
    # YAML keys are camelCase; Python code may construct models with snake_case field names.
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
    )


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _namespace_name(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
        raise ValueError(f"{value!r} is not a namespace name (lowercase letters, digits and '-', at most 63)")
    return value


NonBlankStr = Annotated[str, AfterValidator(_not_blank)]
NamespaceName = Annotated[str, AfterValidator(_namespace_name)]
Port = Annotated[int, Field(ge=0, le=65535)]


class WebserverConfig(_Section):
    """Plain-HTTP server for the health probes and metrics (upstream's `webserver`)."""

    port: Port = 8080


def _infer_secret_type(secret: Mapping[str, Any]) -> str | None:
    """The secret type written, or implied by the keys present when `type` is left out."""
    if "type" in secret:
        written = secret["type"]
        if written is None:
            return "None"
        return written if isinstance(written, str) else ""  # "": not a string, pydantic reports it
    if secret.get("token") is not None or secret.get("key") is not None:
        return "Opaque"
    if secret.get("mountPath") is not None:
        return "ImagePullSecret"
    if not any(secret.get(k) is not None for k in ("name", "username")):
        return "None"
    return None


class RegistrySecret(_Section):
    """How to authenticate to a registry: a mounted dockerconfigjson, a token, or anonymously.

    `type` may be left out when the other keys imply it (token or key: Opaque; mountPath:
    ImagePullSecret; nothing: None). An Opaque secret with `name`+`key` and no `token` reads the token
    from the environment variable named by `key` (what the Helm chart injects).
    """

    type: SecretType = "None"
    name: str | None = None
    mount_path: str | None = None
    key: str | None = None
    username: str | None = None
    token: SecretStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill_type(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("type") is None:
            inferred = _infer_secret_type(data)
            if inferred is not None:
                return {**data, "type": inferred}
        return data

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, value: Any) -> Any:
        if isinstance(value, str):
            for known in SECRET_TYPES:
                if value.strip().lower() == known.lower():
                    return known
            raise ValueError(f"unknown secret type {value!r}; expected ImagePullSecret, Opaque or None")
        return value


class RegistryConfig(_Section):
    """One `registries` entry: the first whose `hostnamePattern` matches an image's registry wins."""

    hostname_pattern: NonBlankStr
    secret: RegistrySecret = Field(default_factory=RegistrySecret)


class CustomCaSecret(_Section):
    """One entry of the upstream chart's `tls.customCaCertificates.secrets` (only mountPath matters here)."""

    name: str | None = None
    sub_path: str | None = None
    mount_path: NonBlankStr


class CustomCaCertificates(_Section):
    """Upstream chart values that may reach the config file verbatim; mountPaths join caCertificatePaths."""

    enabled: bool = False
    secrets: list[CustomCaSecret] = Field(default_factory=list)


class TlsConfig(_Section):
    """Extra CA certificate files trusted for registry connections, on top of the system's."""

    ca_certificate_paths: list[NonBlankStr] = Field(default_factory=list)
    custom_ca_certificates: CustomCaCertificates | None = None

    @model_validator(mode="after")
    def _merge_custom_ca(self) -> TlsConfig:
        custom = self.custom_ca_certificates
        if custom is not None and custom.enabled:
            for secret in custom.secrets:
                if secret.mount_path not in self.ca_certificate_paths:
                    self.ca_certificate_paths.append(secret.mount_path)
        return self


class FeatureFlags(_Section):
    """Upstream's feature flags."""

    enable_jfrog_artifactory_fallback: bool = False
    enable_kubectl_annotation: bool = False


class WebhookConfig(_Section):
    """The admission webhook's HTTPS server and its imagePullPolicy policy."""

    host: NonBlankStr = "0.0.0.0"  # noqa: S104 - the webhook serves the API server from inside the pod
    port: Port = 8443
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    image_pull_policy: ImagePullPolicyMode = "mutate"
    lookup_budget_seconds: float = Field(default=2.0, gt=0)
    max_images_per_review: int = Field(default=100, ge=1)

    @field_validator("image_pull_policy", mode="before")
    @classmethod
    def _lowercase_policy(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _cert_and_key(self) -> WebhookConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tlsCertFile and tlsKeyFile must be given together")
        return self


class ReconcilerConfig(_Section):
    """Which namespaces the reconciler watches and how hard it may push the API server and registries."""

    namespaces: list[NamespaceName] = Field(default_factory=list)
    all_namespaces: bool = False
    max_patches_per_second: float = Field(default=5.0, gt=0)
    resync_seconds: float = Field(default=300.0, gt=0)
    cycle_timeout_seconds: float = Field(default=60.0, gt=0)
    registry_concurrency: int = Field(default=8, ge=1)

    @model_validator(mode="after")
    def _scope(self) -> ReconcilerConfig:
        if self.all_namespaces and self.namespaces:
            raise ValueError("set either namespaces or allNamespaces: true, not both")
        return self


class LeaderElectionConfig(_Section):
    """Lease-based leader election, so only one replica's reconciler patches workloads."""

    enabled: bool = False
    lease_name: NonBlankStr = "kube-autorollout"
    lease_duration_seconds: int = Field(default=15, gt=0)
    renew_seconds: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _renew_within_lease(self) -> LeaderElectionConfig:
        if self.renew_seconds >= self.lease_duration_seconds:
            raise ValueError("renewSeconds must be shorter than leaseDurationSeconds")
        return self


class Config(_Section):
    """The whole configuration file."""

    cron_schedule: str = DEFAULT_CRON_SCHEDULE
    log_level: LogLevel = "info"
    webserver: WebserverConfig = Field(default_factory=WebserverConfig)
    registries: list[RegistryConfig] = Field(default_factory=list)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    feature_flags: FeatureFlags = Field(default_factory=FeatureFlags)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    reconciler: ReconcilerConfig = Field(default_factory=ReconcilerConfig)
    leader_election: LeaderElectionConfig = Field(default_factory=LeaderElectionConfig)
    digest_cache_ttl_seconds: float = Field(default=10.0, ge=0)

    @field_validator("cron_schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        parse_cron(value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return "warn" if value == "warning" else value
        return value

    @property
    def cron(self) -> CronSpec:
        """The validated `cronSchedule`."""
        return parse_cron(self.cron_schedule)


# --- loading ------------------------------------------------------------------------------------

_CONSTRUCTOR_FAILURES = (ValueError, TypeError, OverflowError, IndexError, KeyError, AttributeError)
_VAR_RE = re.compile(r"\$(\$?)\{([^}]+)\}")
Loc = tuple[str | int, ...]


def load_config(path: str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate the config file at `path` (default: $CONFIG_FILE; neither: all defaults).

    Raises ConfigError listing every problem found.
    """
    env = os.environ if environ is None else environ
    if path is None:
        path = env.get(CONFIG_FILE_ENV) or None
    if path is None:
        return Config()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a config file"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not a UTF-8 text file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config file: {exc.strerror or exc}"]) from None
    config = load_config_text(text, env)
    missing = [
        f"tls.caCertificatePaths[{i}]: file not found: {ca}"
        for i, ca in enumerate(config.tls.ca_certificate_paths)
        if not Path(ca).is_file()
    ]
    if missing:
        raise ConfigError(missing)
    return config


def load_config_text(text: str, environ: Mapping[str, str] | None = None) -> Config:
    """Validate config file content (no file-system checks); raises ConfigError listing every problem."""
    env = os.environ if environ is None else environ
    document = _YamlDocument.parse(text, env)
    problems = list(document.problems)
    data = document.data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(f"(top level): must be a mapping of keys to values, not {_kind(data)}")
        raise ConfigError(problems)

    config: Config | None = None
    try:
        config = Config.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as exc:
        problems.extend(_describe_errors(exc, document))
    problems.extend(_cross_field_problems(data, document))

    # A missing variable already explains any complaint about the value it left empty.
    reported = set(document.missing_variable_paths)
    problems = [p for p in problems if p in document.problems or p.split(":", 1)[0] not in reported]
    if problems or config is None:
        raise ConfigError(_in_file_order(problems))
    return config


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


def _format_path(loc: Loc) -> str:
    """("registries", 1, "secret") -> "registries[1].secret"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


class _YamlDocument:
    """Parsed YAML with `${VAR}` substituted in scalar values, and the line of every key path."""

    def __init__(self) -> None:
        self.data: Any = None
        self.problems: list[str] = []
        self.lines: dict[Loc, int] = {}
        self.missing_variable_paths: list[str] = []

    @classmethod
    def parse(cls, text: str, environ: Mapping[str, str]) -> _YamlDocument:
        doc = cls()
        try:
            loader = yaml.SafeLoader(text)
        except yaml.reader.ReaderError as exc:
            doc.problems.append(_reader_problem(exc))
            return doc
        try:
            node = loader.get_single_node()
            if node is not None:
                doc._walk(loader, node, (), environ, set())
                doc.data = loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            doc.problems.append(_yaml_problem(exc))
        except yaml.reader.ReaderError as exc:
            doc.problems.append(_reader_problem(exc))
        except yaml.YAMLError as exc:
            doc.problems.append(f"(yaml): invalid YAML: {_scrub(str(exc))}")
        except RecursionError:
            doc.problems.append("(yaml): nested too deeply")
        except _CONSTRUCTOR_FAILURES as exc:  # PyYAML's constructors on odd input, e.g. date 2024-13-01
            doc.problems.append(f"(yaml): a value cannot be read: {_scrub(str(exc))}")
        finally:
            loader.dispose()
        return doc

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest written key on `loc` (a missing key points at its parent)."""
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return None

    def _walk(
        self, loader: yaml.SafeLoader, node: yaml.Node, loc: Loc, environ: Mapping[str, str], seen: set[int]
    ) -> None:
        if id(node) in seen:  # anchors and aliases share nodes
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.tag)
                child = (*loc, key)
                line = key_node.start_mark.line + 1
                if key in keys:
                    self.problems.append(f"{_format_path(child)}: duplicate key (line {line})")
                keys.add(key)
                self.lines.setdefault(child, line)
                self._walk(loader, value_node, child, environ, seen)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = (*loc, index)
                self.lines.setdefault(child, item.start_mark.line + 1)
                self._walk(loader, item, child, environ, seen)
        elif isinstance(node, yaml.ScalarNode) and "${" in node.value:
            self._substitute(loader, node, loc, environ)

    def _substitute(
        self, loader: yaml.SafeLoader, node: yaml.ScalarNode, loc: Loc, environ: Mapping[str, str]
    ) -> None:
        line = node.start_mark.line + 1

        def replace(match: re.Match[str]) -> str:
            escaped, name = match.group(1), match.group(2)
            if escaped:
                return "${" + name + "}"
            value = environ.get(name)
            if value is None:
                path = _format_path(loc)
                self.problems.append(f"{path}: environment variable {name} is not set (line {line})")
                self.missing_variable_paths.append(path)
                return ""
            return value

        value = _VAR_RE.sub(replace, node.value)
        if value != node.value:
            node.value = value
            if node.style is None:  # a plain scalar gets its type from its new text, as if written
                node.tag = loader.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = ": ".join(part for part in (exc.context, exc.problem) if part)
    return f"(yaml): {where}invalid YAML: {_scrub(what) or 'syntax error'}"


def _reader_problem(exc: yaml.reader.ReaderError) -> str:
    return f"(yaml): character {exc.position + 1}: invalid YAML: unacceptable character #x{exc.character:04x}"


def _scrub(message: str) -> str:
    """Drop quoted fragments of the file's text (alias names, tags, values): they could be a token."""
    return re.sub(r"'(?!<)[^']{4,}'", "'...'", message.splitlines()[0] if message else message)


def _describe_errors(exc: ValidationError, document: _YamlDocument) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc: Loc = tuple(error["loc"])
        kind = error["type"]
        msg = str(error["msg"])
        if kind == "missing":
            msg = "required key is missing"
        elif kind == "extra_forbidden":
            msg = "unknown key" + _suggestion(loc)
        elif kind in {"value_error", "assertion_error"}:
            msg = msg.split(", ", 1)[1] if ", " in msg else msg
        if loc and loc[-1] == "token":
            msg = "invalid value (expected a string)" if kind != "missing" else msg
        problems.append(_with_line(_format_path(loc), msg, document.line_of(loc)))
    return problems


def _with_line(path: str, message: str, line: int | None) -> str:
    return f"{path}: {message}" + (f" (line {line})" if line is not None else "")


def _suggestion(loc: Loc) -> str:
    model = _model_at(loc[:-1])
    if model is None or not isinstance(loc[-1], str):
        return ""
    known = {(field.alias or name): name for name, field in model.model_fields.items()}
    typed = loc[-1]
    by_snake = {name: alias for alias, name in known.items()}
    if typed in by_snake:
        return f"; did you mean {by_snake[typed]}?"
    close = difflib.get_close_matches(typed, list(known), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]}?"
    return f"; expected one of: {', '.join(sorted(known))}"


def _model_at(loc: Loc) -> type[BaseModel] | None:
    current: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = next(
            (f for name, f in current.model_fields.items() if part in (name, f.alias)),
            None,
        )
        if field is None:
            return None
        current = _model_in(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside `X`, `list[X]` or `X | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _cross_field_problems(data: Mapping[str, Any], document: _YamlDocument) -> list[str]:
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
            problems.append(_with_line(_format_path((*loc, key)), message, document.line_of((*loc, key))))

        secret_type = _infer_secret_type(secret)
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
