"""A tiny OCI push client for tests: blobs (monolithic POST + PUT), image manifests and indexes.

Independent of the product's registry client on purpose, so the tests check one implementation
against another. Authenticates with Basic credentials or the registry token flow.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import re
import ssl
import tarfile
from collections.abc import Generator, Mapping, Sequence

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DEFAULT_PLATFORMS = ("linux/amd64", "linux/arm64")
_REPO_RE = re.compile(r"^/v2/(.+?)/(?:blobs|manifests)/")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _PushAuth(httpx.Auth):
    """Basic up front, or the token flow with pull+push scope (tokens cached per scope)."""

    requires_response_body = True

    def __init__(self, username: str | None, password: str | None) -> None:
        self._username = username
        self._password = password
        self._basic: str | None = None
        if username is not None and password is not None:
            self._basic = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self._tokens: dict[str, str] = {}
        self._bearer_realm: tuple[str, str] | None = None
        self.token_fetches = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        match = _REPO_RE.match(request.url.path)
        scope = f"repository:{match.group(1)}:pull,push" if match else ""
        if scope in self._tokens:
            request.headers["Authorization"] = f"Bearer {self._tokens[scope]}"
        elif self._basic is not None and self._bearer_realm is None:
            request.headers["Authorization"] = self._basic
        response = yield request
        if response.status_code != 401:
            return
        challenge = response.headers.get("WWW-Authenticate", "")
        if not challenge.lower().startswith("bearer"):
            return
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        self._bearer_realm = (params["realm"], params.get("service", ""))
        headers = {"Authorization": self._basic} if self._basic else {}
        token_response = yield httpx.Request(
            "GET",
            params["realm"],
            params={"service": params.get("service", ""), "scope": scope},
            headers=headers,
        )
        if token_response.status_code != 200:
            return
        self.token_fetches += 1
        self._tokens[scope] = token_response.json()["token"]
        request.headers["Authorization"] = f"Bearer {self._tokens[scope]}"
        yield request


class OciPusher:
    """Push blobs, manifests and indexes to one registry (`base_url` like "http://127.0.0.1:5000")."""

    def __init__(
        self,
        base_url: str,
        *,
        verify: ssl.SSLContext | bool = True,
        username: str | None = None,
        password: str | None = None,
        user_agent: str = "oci-test-pusher",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = _PushAuth(username, password)
        self._http = httpx.Client(
            base_url=self.base_url,
            verify=verify,
            auth=self.auth,
            timeout=10.0,
            headers={"User-Agent": user_agent},
        )

    def close(self) -> None:
        self._http.close()

    def push_blob(self, repository: str, data: bytes) -> str:
        digest = sha256_digest(data)
        start = self._http.post(f"/v2/{repository}/blobs/uploads/")
        if start.status_code != 202:
            raise RuntimeError(
                f"starting upload to {repository}: HTTP {start.status_code} {start.text[:200]}"
            )
        location = httpx.URL(self.base_url).join(start.headers["Location"])
        finish = self._http.put(
            location.copy_merge_params({"digest": digest}),
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if finish.status_code != 201:
            raise RuntimeError(
                f"finishing upload to {repository}: HTTP {finish.status_code} {finish.text[:200]}"
            )
        return digest

    def push_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest under a tag or digest; returns its digest (checked against the registry's)."""
        response = self._http.put(
            f"/v2/{repository}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
        )
        if response.status_code != 201:
            raise RuntimeError(
                f"pushing manifest {repository}:{reference}: "
                f"HTTP {response.status_code} {response.text[:300]}"
            )
        digest = sha256_digest(body)
        if response.headers.get("Docker-Content-Digest") != digest:
            raise RuntimeError(
                f"registry computed {response.headers.get('Docker-Content-Digest')}, expected {digest}"
            )
        return digest

    def push_image(
        self, repository: str, tag: str | None, *, seed: int | None = None, platform: str = "linux/amd64"
    ) -> str:
        """Push a random one-layer image (config + layer + OCI manifest); returns the manifest digest.
        `tag` None pushes by digest only (for index entries)."""
        rng = random.Random(seed)
        content = rng.randbytes(64)
        layer = _tar_with_file("payload.bin", content)
        return self.push_layers(
            repository, tag, [layer], {"Labels": {"seed": content.hex()[:16]}}, platform=platform
        )

    def push_layers(
        self,
        repository: str,
        tag: str | None,
        layers: Sequence[bytes],
        image_config: dict[str, object],
        *,
        platform: str = "linux/amd64",
    ) -> str:
        """Push an image of uncompressed tar `layers` and runtime `image_config` (Entrypoint, Cmd,
        Env, ...); returns the manifest digest. `tag` None pushes by digest only."""
        os_name, arch, *variant = platform.split("/")
        config: dict[str, object] = {
            "architecture": arch,
            "os": os_name,
            "created": "2024-01-01T00:00:00Z",
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer) for layer in layers]},
            "config": image_config,
        }
        if variant:
            config["variant"] = variant[0]
        config_bytes = json.dumps(config, sort_keys=True).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": self.push_blob(repository, config_bytes),
                "size": len(config_bytes),
            },
            "layers": [
                {"mediaType": OCI_LAYER, "digest": self.push_blob(repository, layer), "size": len(layer)}
                for layer in layers
            ],
        }
        body = json.dumps(manifest, sort_keys=True).encode()
        return self.push_manifest(repository, tag or sha256_digest(body), body, OCI_MANIFEST)

    def push_index(
        self,
        repository: str,
        tag: str,
        platforms: Sequence[str] = DEFAULT_PLATFORMS,
        *,
        seed: int | None = None,
    ) -> tuple[str, dict[str, str]]:
        """Push one image per platform and an OCI index over them under `tag`;
        returns (index digest, {platform: manifest digest})."""
        rng = random.Random(seed)
        by_platform = {
            platform: self.push_image(repository, None, seed=rng.randrange(2**62), platform=platform)
            for platform in platforms
        }
        return self.push_index_over(repository, tag, by_platform), by_platform

    def push_index_over(self, repository: str, tag: str, by_platform: Mapping[str, str]) -> str:
        """Push an OCI index under `tag` over manifests already pushed ({platform: digest});
        returns the index digest."""
        entries = []
        for platform, digest in by_platform.items():
            manifest = self._http.get(
                f"/v2/{repository}/manifests/{digest}", headers={"Accept": OCI_MANIFEST}
            )
            manifest.raise_for_status()
            os_name, arch, *variant = platform.split("/")
            entry_platform = {"os": os_name, "architecture": arch} | (
                {"variant": variant[0]} if variant else {}
            )
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": len(manifest.content),
                    "platform": entry_platform,
                }
            )
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        body = json.dumps(index, sort_keys=True).encode()
        return self.push_manifest(repository, tag, body, OCI_INDEX)

    def delete_manifest(self, repository: str, digest: str) -> None:
        response = self._http.delete(f"/v2/{repository}/manifests/{digest}")
        if response.status_code != 202:
            raise RuntimeError(f"deleting {repository}@{digest}: HTTP {response.status_code}")


def _tar_with_file(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()
