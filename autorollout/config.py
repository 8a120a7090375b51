"""The configuration file: upstream kube-autorollout's keys unchanged, plus our additions with safe
defaults. Loaded once at start-up into typed, validated pydantic models.

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
from typing import Annotated, Any, Literal

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

from autorollout.config_file import MAX_CONFIG_BYTES, ConfigError, read_config_file
from autorollout.config_keys import split_unknown_keys, suggestion
from autorollout.config_yaml import Loc, YamlDocument, format_path, scrub_values, with_line
from autorollout.cron import CronSpec, parse_cron

__all__ = [
    "CONFIG_FILE_ENV",
    "MAX_CONFIG_BYTES",
    "SECRET_KEYS",
    "STRICT_CONFIG_ENV",
    "Config",
    "ConfigError",
    "CronSpec",
    "CustomCaCertificates",
    "FeatureFlags",
    "LeaderElectionConfig",
    "LoadedConfig",
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
    "read_config",
]

CONFIG_FILE_ENV = "CONFIG_FILE"
DEFAULT_CRON_SCHEDULE = "*/45 * * * * *"

SecretType = Literal["ImagePullSecret", "Opaque", "None"]
SECRET_TYPES: tuple[SecretType, ...] = ("ImagePullSecret", "Opaque", "None")
ImagePullPolicyMode = Literal["mutate", "warn", "deny"]
LogLevel = Literal["trace", "debug", "info", "warn", "error"]
# Keys of `registries[].secret` whose values are credentials: never shown, in errors or logs.
SECRET_KEYS = frozenset({"token", "username"})


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
        raise ValueError("not a namespace name (lowercase letters, digits and '-', at most 63)")
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
            raise ValueError("unknown secret type; expected ImagePullSecret, Opaque or None")
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
    # Every registry lookup (token fetch and retries included) ends within it, however slow the peer.
    lookup_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)

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
