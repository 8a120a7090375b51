"""The configuration's models: upstream kube-autorollout's keys unchanged, plus our additions with
safe defaults, as typed, validated pydantic models (YAML keys camelCase, Python names snake_case)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from autorollout.config.cron import CronSpec, parse_cron
from autorollout.policy.durations import parse_duration
from autorollout.policy.errors import PolicyError

DEFAULT_CRON_SCHEDULE = "*/45 * * * * *"

SecretType = Literal["ImagePullSecret", "Opaque", "None"]
SECRET_TYPES: tuple[SecretType, ...] = ("ImagePullSecret", "Opaque", "None")
ImagePullPolicyMode = Literal["mutate", "warn", "deny"]
LogLevel = Literal["trace", "debug", "info", "warn", "error"]
CompareMode = Literal["index", "platform"]
# Keys of `registries[].secret` whose values are credentials: never shown, in errors or logs.
SECRET_KEYS = frozenset({"token", "username"})


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


def infer_secret_type(secret: Mapping[str, Any]) -> str | None:
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
            inferred = infer_secret_type(data)
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


def _duration_seconds(value: Any) -> Any:
    """`90s`, `10m`, `1h30m` or a number of seconds, as the annotations take them."""
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except PolicyError as exc:
            raise ValueError(str(exc)) from None
    return value


class RolloutPolicyConfig(_Section):
    """Defaults of the per-workload rollout policy annotations, and the cap on rollouts in flight."""

    settle_seconds: Annotated[int, Field(ge=0)] = 0
    cooldown_seconds: Annotated[int, Field(ge=0)] = 0
    windows: list[NonBlankStr] = Field(default_factory=list)
    max_rollouts_in_flight: Annotated[int, Field(ge=0)] = 0
    progress_deadline_seconds: Annotated[int, Field(gt=0)] = 600
    # What a moved tag is compared by (docs/rollout-policy.md#platform-comparison).
    compare: CompareMode = "index"

    @field_validator("compare", mode="before")
    @classmethod
    def _lowercase_compare(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    # A digest whose rollout failed on one workload holds every workload (docs/health.md).
    hold_other_workloads: bool = False

    @field_validator("settle_seconds", "cooldown_seconds", "progress_deadline_seconds", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return _duration_seconds(value)

    @field_validator("windows")
    @classmethod
    def _valid_windows(cls, value: list[str]) -> list[str]:
        # Late: autorollout.policy.windows itself imports autorollout.config's cron parser.
        from autorollout.policy.windows import parse_window  # noqa: PLC0415

        for i, window in enumerate(value):
            try:
                parse_window(window)
            except PolicyError as exc:
                raise ValueError(f"windows[{i}]: {exc}") from None
        return value


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
    events: EventsConfig = Field(default_factory=lambda: EventsConfig())  # noqa: PLW0108 (defined below)
    rollout_policy: RolloutPolicyConfig = Field(default_factory=RolloutPolicyConfig)
    notifications: NotificationsConfig = Field(default_factory=lambda: NotificationsConfig())  # noqa: PLW0108
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


# The events section's models build on the sections above (a module of their own: one job each).
from autorollout.config.events import EventsConfig  # noqa: E402
from autorollout.config.notifications import NotificationsConfig  # noqa: E402

Config.model_rebuild()
