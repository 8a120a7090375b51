"""The root of the product's errors, and the two boundaries that have no package of their own.

Every error the product raises on purpose is an `AutorolloutError`; under it one hierarchy per
boundary: `ConfigError` (the configuration file), `UsageError` (the command line, or a configuration
a command cannot work with), `autorollout.registry.errors.RegistryError`,
`autorollout.kube.errors.KubeError`, `certs.mint.CertificateError` and `certs.cabundle.WebhookConfigError`,
and the webhook server's `webhook.tls.ServingCertificateError` and `webhook.server.WebhookServerError`.
The command line turns them into exit codes (`autorollout.cli.outcome`).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["AutorolloutError", "ConfigError", "UsageError"]


class AutorolloutError(Exception):
    """Base of every error kube-autorollout raises on purpose."""


class UsageError(AutorolloutError):
    """Bad usage or a configuration the command cannot work with (exit 2)."""


class ConfigError(AutorolloutError):
    """The configuration cannot be used; `problems` holds one "key.path: what is wrong" line each."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration: " + "; ".join(self.problems))
