"""The configuration file: one module each for the cron schedule (`cron`), the models (`models`),
reading the file (`file`), its YAML with `${VAR}` substitution (`document`), unknown keys (`keys`),
loading (`loading`) and the effective configuration as the start-up log shows it (`view`)."""

from autorollout.config.cron import CronSpec, parse_cron
from autorollout.config.file import MAX_CONFIG_BYTES, ConfigError
from autorollout.config.loading import (
    CONFIG_FILE_ENV,
    STRICT_CONFIG_ENV,
    LoadedConfig,
    load_config,
    load_config_text,
    read_config,
)
from autorollout.config.models import (
    SECRET_KEYS,
    Config,
    CustomCaCertificates,
    FeatureFlags,
    LeaderElectionConfig,
    ReconcilerConfig,
    RegistryConfig,
    RegistrySecret,
    SecretType,
    TlsConfig,
    WebhookConfig,
    WebserverConfig,
)

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
