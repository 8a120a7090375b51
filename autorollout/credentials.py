"""Registry credentials: dockerconfigjson parsing, and choosing the credentials for a registry host
from a workload's imagePullSecrets and the config's `registries` entries.

Secret material (passwords, tokens, `auth` strings) never appears in a repr, a message or a log line.
Every value is normalised the same way whatever its source (surrounding whitespace stripped: a Secret
made with `kubectl create secret --from-file` ends in a newline), and each credential says where it
came from (`source`), so an error can name the secret and key without showing the value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autorollout.config import Config, ConfigError, RegistrySecret
from autorollout.patterns import host_matches
from autorollout.references import DOCKER_HUB, DOCKER_HUB_HOSTS

__all__ = [
    "DOCKERCONFIG_FILENAMES",
    "CredentialStore",
    "CredentialsError",
    "RegistryCredentials",
    "normalize_registry_host",
    "normalize_secret",
    "parse_dockerconfigjson",
]

#: File names looked for, in order, in an ImagePullSecret's mountPath directory.
DOCKERCONFIG_FILENAMES = (".dockerconfigjson", "config.json", ".dockercfg")


class CredentialsError(ConfigError):
    """Credentials could not be read; `problems` says where and why, never what the secret is."""

    def __init__(self, problems: Iterable[str]) -> None:
        super().__init__(problems)
        self.args = ("credentials cannot be used: " + "; ".join(self.problems),)


def normalize_secret(value: str | None) -> str | None:
    """A credential value as meant: surrounding whitespace stripped; None when nothing is left."""
    if value is None:
        return None
    return value.strip() or None


@dataclass(frozen=True)
class RegistryCredentials:
    """Credentials for one registry: `token` is sent as a Bearer token as it is (Opaque secrets);
    `username`+`password` are used for Basic auth and the registry's token flow. Values are
    normalised on creation; `source` names where they came from (for messages, not compared)."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name in ("username", "password", "token"):
            object.__setattr__(self, name, normalize_secret(getattr(self, name)))

    @property
    def empty(self) -> bool:
        return self.username is None and self.password is None and self.token is None

    def fingerprint(self) -> str:
        """A short digest identifying these credentials (for cache keys); reveals nothing of them."""
        # Computed once per instance: it is part of every digest-cache key (the admission hot path).
        cached: str | None = self.__dict__.get("_fingerprint")
        if cached is None:
            material = json.dumps([self.username, self.password, self.token]).encode()
            cached = hashlib.sha256(material).hexdigest()[:16]
            object.__setattr__(self, "_fingerprint", cached)
        return cached


def normalize_registry_host(key: str) -> str:
    """A dockerconfigjson `auths` key as a registry host: scheme and path dropped, lowercase,
    Docker Hub's names ("https://index.docker.io/v1/", "registry-1.docker.io") as "docker.io"."""
    host = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://", "", key.strip()).split("/", 1)[0].lower()
    return DOCKER_HUB if host in DOCKER_HUB_HOSTS else host


def parse_dockerconfigjson(data: bytes | str, *, source: str = "") -> dict[str, RegistryCredentials]:
    """Parse a `.dockerconfigjson` (or legacy `.dockercfg`) into credentials by registry host.

    Entries give `auth` (base64 "user:password"; wins, as in the kubelet) or `username`/`password`,
    or a `registrytoken` (Bearer). `source` (e.g. the secret's name) prefixes each entry's `source`.
    Raises CredentialsError; its messages never contain the secret.
    """
    try:
        document = json.loads(data)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise CredentialsError([f"not valid JSON: {exc.msg} ({where})"]) from None
    except UnicodeDecodeError:
        raise CredentialsError(["not valid JSON (not UTF-8 text)"]) from None
    except RecursionError:
        raise CredentialsError(["not valid JSON (nested too deeply)"]) from None
    if not isinstance(document, dict):
        raise CredentialsError(["not a JSON object"])
    if "auths" in document:
        auths = document["auths"]
        if not isinstance(auths, dict):
            raise CredentialsError(['"auths" is not a JSON object'])
        prefix = "auths"
    else:  # legacy .dockercfg: hosts at the top level; other config.json settings are skipped
        auths = {key: value for key, value in document.items() if isinstance(value, dict)}
        prefix = ""

    problems: list[str] = []
    result: dict[str, RegistryCredentials] = {}
    for key, entry in auths.items():
        where = f"{prefix}[{json.dumps(key)}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: not a JSON object")
            continue
        host = normalize_registry_host(key)
        try:
            credentials = _entry_credentials(entry, f"{source} {where}".strip())
        except ValueError as exc:
            problems.append(f"{where}.{exc}")
            continue
        if host and credentials is not None:
            result.setdefault(host, credentials)
    if problems:
        raise CredentialsError(problems)
    return result


def _entry_credentials(entry: Mapping[str, Any], source: str) -> RegistryCredentials | None:
    for name in ("auth", "username", "password", "registrytoken"):
        if entry.get(name) is not None and not isinstance(entry[name], str):
            raise ValueError(f"{name}: not a string")
    username: str | None = entry.get("username")
    password: str | None = entry.get("password")
    auth = normalize_secret(entry.get("auth"))
    if auth is not None:
        username, password = _decode_auth(auth)
    credentials = RegistryCredentials(
        username=username, password=password, token=entry.get("registrytoken"), source=source
    )
    return None if credentials.empty else credentials


def _decode_auth(auth: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(auth + "=" * (-len(auth) % 4), validate=True).decode()
    except (binascii.Error, ValueError):
        raise ValueError("auth: not valid base64 of UTF-8 text") from None
    # `echo user:password | base64` encodes the newline too: normalised with the parts.
    username, colon, password = decoded.partition(":")
    if not colon or normalize_secret(username) is None:
        raise ValueError('auth: does not decode to "username:password"')
    return username, password


def _credentials_for_host(
    auths: Mapping[str, RegistryCredentials], registry: str
) -> RegistryCredentials | None:
    """The entry for `registry`: its exact host first, then keys written as patterns (kubelet-style)."""
    host = normalize_registry_host(registry)
    exact = auths.get(host)
    if exact is not None:
        return exact
    for key, credentials in auths.items():
        if host_matches(key, registry):
            return credentials
    return None


class _DockerConfigFile:
    """An ImagePullSecret mounted as a file; re-read when it changes (the kubelet rotates mounts)."""

    def __init__(self, where: str, mount: Path, refresh_interval: float, clock: Callable[[], float]) -> None:
        self.where = where
        self.mount = mount
        self.refresh_interval = refresh_interval
        self.clock = clock
        self.auths: dict[str, RegistryCredentials] = {}
        self.problem: str | None = None
        self._stamp: tuple[str, int, int] | None = None
        self._checked = clock()
        self._load()

    def _load(self) -> None:
        path = _dockerconfig_path(self.mount)
        if path is None:
            names = ", ".join(DOCKERCONFIG_FILENAMES)
            self.problem = f"{self.where}: no {names} found at {self.mount}"
            return
        try:
            stat = path.stat()
            stamp = (str(path), stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return
            auths = parse_dockerconfigjson(path.read_bytes(), source=f"{self.where} {path}")
        except OSError as exc:
            self.problem = f"{self.where}: cannot read {path}: {exc.strerror or type(exc).__name__}"
            return
        except CredentialsError as exc:
            self.problem = f"{self.where}: {path}: " + "; ".join(exc.problems)
            return
        self.auths, self._stamp, self.problem = auths, stamp, None

    def credentials_for(self, registry: str) -> RegistryCredentials | None:
        now = self.clock()
        if now - self._checked >= self.refresh_interval:
            self._checked = now
            self._load()
        found = _credentials_for_host(self.auths, registry)
        if found is None and len(self.auths) == 1:
            # The entry's hostnamePattern already chose this secret: a lone entry applies whatever
            # host it was written for (e.g. "artifactory.example.com" for "*.artifactory.example.com").
            found = next(iter(self.auths.values()))
        return found


_Source = RegistryCredentials | _DockerConfigFile | None


class CredentialStore:
    """Chooses credentials for a registry host: the workload's imagePullSecrets first, then the
    config's `registries` in order (first `hostnamePattern` match wins; type None: anonymous)."""

    def __init__(self, rules: Sequence[tuple[str, RegistryCredentials | None]] = ()) -> None:
        # (hostnamePattern, where the credentials come from, why they could not be read)
        self._rules: list[tuple[str, _Source, str | None]] = [(p, c, None) for p, c in rules]

    @property
    def problems(self) -> list[str]:
        """What could not be read (non-strict stores keep running without those credentials)."""
        found = [
            source.problem if isinstance(source, _DockerConfigFile) else p for _, source, p in self._rules
        ]
        return [p for p in found if p is not None]

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        environ: Mapping[str, str] | None = None,
        strict: bool = True,
        refresh_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> CredentialStore:
        """Read every configured secret now: ImagePullSecret files (`<mountPath>/.dockerconfigjson`,
        or `config.json`, or mountPath itself as the file) and Opaque tokens (from `token`, else from
        the environment variable named by `key`). Unreadable ones raise CredentialsError when
        `strict`, else are listed in `problems` and give no credentials."""
        env = os.environ if environ is None else environ
        store = cls()
        for index, entry in enumerate(config.registries):
            where = f"registries[{index}].secret"
            source, problem = _source_for(entry.secret, where, env, refresh_interval, clock)
            store._rules.append((entry.hostname_pattern, source, problem))
        if strict and store.problems:
            raise CredentialsError(store.problems)
        return store

    def lookup(
        self, registry: str, pull_secrets: Sequence[Mapping[str, RegistryCredentials]] = ()
    ) -> RegistryCredentials | None:
        """Credentials for `registry` (host[:port]), or None for anonymous access."""
        for secret in pull_secrets:
            found = _credentials_for_host(secret, registry)
            if found is not None:
                return found
        for pattern, source, _ in self._rules:
            if host_matches(pattern, registry):
                if isinstance(source, _DockerConfigFile):
                    return source.credentials_for(registry)
                return source
        return None


def _source_for(
    secret: RegistrySecret,
    where: str,
    environ: Mapping[str, str],
    refresh_interval: float,
    clock: Callable[[], float],
) -> tuple[_Source, str | None]:
    if secret.type == "ImagePullSecret":
        if not secret.mount_path:
            return None, f"{where}.mountPath: required for type ImagePullSecret"
        # A file reports its own problem through CredentialStore.problems, as it changes.
        return _DockerConfigFile(where + ".mountPath", Path(secret.mount_path), refresh_interval, clock), None
    if secret.type == "Opaque":
        token = secret.token.get_secret_value() if secret.token is not None else None
        source = f"{where}.token"
        if token is None and secret.key:
            token = environ.get(secret.key)
            source = f"{where} (Secret {secret.name or '?'}, key {secret.key}, from the environment)"
            if token is None:
                return None, (
                    f"{where}.key: environment variable {secret.key} is not set "
                    f"(the Opaque secret {secret.name or '?'} should be injected under that name)"
                )
        token = normalize_secret(token)
        if token is None:
            return None, f"{where}.token: type Opaque needs a non-empty token, or name and key"
        if normalize_secret(secret.username) is not None:
            return RegistryCredentials(username=secret.username, password=token, source=source), None
        return RegistryCredentials(token=token, source=source), None
    return None, None


def _dockerconfig_path(mount: Path) -> Path | None:
    if mount.is_file():
        return mount
    for name in DOCKERCONFIG_FILENAMES:
        candidate = mount / name
        if candidate.is_file():
            return candidate
    return None
