"""Where the API server is and how to authenticate: in-cluster service account or a kubeconfig.

The official client's loaders do the kubeconfig parsing (contexts, client certificates, exec
plugins); requests are then made with httpx on raw JSON, which is several times faster for large
lists than the client's typed models.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

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


def _kubeconfig_file(path: str | None) -> Path | None:
    if path:
        return Path(path)
    env = os.environ.get("KUBECONFIG", "")
    if os.pathsep in env:
        return None  # several files to merge: the official loader does that
    return Path(env) if env else Path.home() / ".kube" / "config"


def _data_or_file(entry: dict[str, object], key: str, base: Path) -> tuple[bytes | None, Path | None]:
    data, file = entry.get(f"{key}-data"), entry.get(key)
    if isinstance(data, str):
        return base64.b64decode(data), None
    if isinstance(file, str):
        return None, base / file
    return None, None


def _load_client_cert(context: ssl.SSLContext, cert: bytes | Path, key: bytes | Path) -> None:
    if isinstance(cert, Path) and isinstance(key, Path):
        context.load_cert_chain(cert, key)
        return
    # ssl loads key material from files only: a private directory, removed right after.
    with tempfile.TemporaryDirectory(prefix="kar-kubeconfig-") as tmp:
        files = []
        for name, value in (("tls.crt", cert), ("tls.key", key)):
            target = Path(tmp) / name
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(value if isinstance(value, bytes) else value.read_bytes())
            files.append(target)
        context.load_cert_chain(files[0], files[1])


def _simple_kubeconfig(path: str | None) -> ConnectionSettings | None:
    """The common kubeconfig (CA, client certificate or token, one file) read without the official
    client, whose import alone costs about 50 MB of RSS; None for anything else (exec plugins,
    auth providers, merged files), which the official loader handles."""
    file = _kubeconfig_file(path)
    if file is None or not file.is_file():
        return None
    try:
        doc = yaml.safe_load(file.read_text())
        by_name = {
            kind: {e["name"]: e.get(kind[:-1]) or {} for e in doc.get(kind) or []}
            for kind in ("clusters", "users", "contexts")
        }
        active = by_name["contexts"][doc["current-context"]]
        cluster = by_name["clusters"][active["cluster"]]
        user = by_name["users"][active["user"]] if active.get("user") else {}
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, OSError):
        return None
    known = {
        "token",
        "tokenFile",
        *(f"{k}{s}" for k in ("client-certificate", "client-key") for s in ("", "-data")),
    }
    if not isinstance(cluster, dict) or not isinstance(user, dict):
        return None
    server = cluster.get("server")
    if not isinstance(server, str) or set(user) - known:
        return None
    base = file.parent
    try:
        context: ssl.SSLContext | bool
        if cluster.get("insecure-skip-tls-verify"):
            context = False
        else:
            ca_data, ca_file = _data_or_file(cluster, "certificate-authority", base)
            context = ssl.create_default_context(
                cafile=str(ca_file) if ca_file else None, cadata=ca_data.decode() if ca_data else None
            )
            cert_data, cert_file = _data_or_file(user, "client-certificate", base)
            key_data, key_file = _data_or_file(user, "client-key", base)
            cert, key = cert_data or cert_file, key_data or key_file
            if cert is not None and key is not None:
                _load_client_cert(context, cert, key)
        token: BearerToken | None = None
        if isinstance(user.get("token"), str):
            token = BearerToken(value=user["token"])
        elif isinstance(user.get("tokenFile"), str):
            token = BearerToken(path=base / user["tokenFile"])
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise KubeConfigError(f"cannot load kubeconfig {file}: {exc}") from None
    namespace = str(active.get("namespace") or "default")
    return ConnectionSettings(
        server=server.rstrip("/"), ssl_context=context, token=token, namespace=namespace
    )


def _from_kubeconfig(path: str | None) -> ConnectionSettings:
    simple = _simple_kubeconfig(path)
    if simple is not None:
        return simple
    where = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
    file = _kubeconfig_file(path)
    if file is not None and not file.exists():
        # What the official loader says, without importing it (~35 MiB) only to fail.
        raise KubeConfigError(
            f"cannot load kubeconfig {where}: Invalid kube-config file. No configuration found."
        )
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
