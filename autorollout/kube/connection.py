"""Where the API server is and how to authenticate: in-cluster service account or a kubeconfig.

The official client's loaders do the kubeconfig parsing (contexts, client certificates, exec
plugins); requests are then made with httpx on raw JSON, which is several times faster for large
lists than the client's typed models.
"""

from __future__ import annotations

import os
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from autorollout.kube.errors import KubeConfigError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_TOKEN_REREAD_SECONDS = 60.0


@dataclass
class BearerToken:
    """A bearer token, static or re-read from a file that the kubelet rotates."""

    value: str = field(default="", repr=False)
    path: Path | None = None
    _read_at: float = 0.0

    def current(self) -> str:
        if self.path is not None and time.monotonic() - self._read_at > _TOKEN_REREAD_SECONDS:
            self.value = self.path.read_text().strip()
            self._read_at = time.monotonic()
        return self.value


@dataclass
class ConnectionSettings:
    """Everything needed to open an HTTPS connection to one API server."""

    server: str
    ssl_context: ssl.SSLContext | bool
    token: BearerToken | None
    namespace: str


def _in_cluster(sa_dir: Path) -> ConnectionSettings | None:
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    token_file = sa_dir / "token"
    if not host or not port or not token_file.exists():
        return None
    if ":" in host:
        host = f"[{host}]"
    context = ssl.create_default_context(cafile=str(sa_dir / "ca.crt"))
    namespace_file = sa_dir / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.exists() else "default"
    return ConnectionSettings(
        server=f"https://{host}:{port}",
        ssl_context=context,
        token=BearerToken(path=token_file),
        namespace=namespace,
    )


def _from_kubeconfig(path: str | None) -> ConnectionSettings:
    # Imported here: the kubernetes package is slow to import and only needed outside a cluster.
    from kubernetes import client as k8s_client  # noqa: PLC0415
    from kubernetes import config as k8s_config  # noqa: PLC0415
    from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415

    cfg = k8s_client.Configuration()
    try:
        k8s_config.load_kube_config(
            config_file=path, client_configuration=cfg, temp_file_path=tempfile.gettempdir()
        )
        _, active = k8s_config.list_kube_config_contexts(config_file=path)
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        where = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise KubeConfigError(f"cannot load kubeconfig {where}: {exc}") from None

    context: ssl.SSLContext | bool
    if cfg.verify_ssl:
        context = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else True
        if isinstance(context, ssl.SSLContext) and cfg.cert_file and cfg.key_file:
            context.load_cert_chain(cfg.cert_file, cfg.key_file)
        elif cfg.cert_file and cfg.key_file:
            context = ssl.create_default_context()
            context.load_cert_chain(cfg.cert_file, cfg.key_file)
    else:
        context = False
    authorization = (cfg.api_key or {}).get("authorization", "")
    token = BearerToken(value=authorization.removeprefix("Bearer ").strip()) if authorization else None
    namespace = ((active or {}).get("context") or {}).get("namespace") or "default"
    return ConnectionSettings(server=cfg.host, ssl_context=context, token=token, namespace=namespace)


def load_connection(
    kubeconfig: str | None = None, *, sa_dir: Path = SERVICE_ACCOUNT_DIR
) -> ConnectionSettings:
    """An explicit kubeconfig wins; else the in-cluster service account; else $KUBECONFIG/~/.kube/config."""
    if kubeconfig is None:
        settings = _in_cluster(sa_dir)
        if settings is not None:
            return settings
    return _from_kubeconfig(kubeconfig)
