"""The certificates registry connections trust: the system store plus `tls.caCertificatePaths`."""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence

from autorollout.registry.errors import RegistryConfigError

__all__ = ["build_ssl_context"]


def build_ssl_context(ca_paths: Sequence[str]) -> ssl.SSLContext:
    """The system trust store plus each CA file of `tls.caCertificatePaths` (a directory: every
    file in it, as Kubernetes mounts a Secret or ConfigMap)."""
    context = ssl.create_default_context()
    for path in ca_paths:
        if os.path.isdir(path):
            files = sorted(
                os.path.join(path, name)
                for name in os.listdir(path)
                if not name.startswith(".") and os.path.isfile(os.path.join(path, name))
            )
            if not files:
                raise RegistryConfigError(
                    f"CA certificate directory {path} (tls.caCertificatePaths) is empty"
                )
        elif os.path.isfile(path):
            files = [path]
        else:
            raise RegistryConfigError(f"CA certificate file {path} (tls.caCertificatePaths) does not exist")
        for file in files:
            try:
                context.load_verify_locations(cafile=file)
            except (ssl.SSLError, OSError) as exc:
                raise RegistryConfigError(
                    f"CA certificate file {file} (tls.caCertificatePaths) is not a readable PEM "
                    f"certificate: {exc}"
                ) from exc
    return context
