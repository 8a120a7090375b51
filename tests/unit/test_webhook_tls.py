"""Serving certificate loading and in-place reload, and the TLS server following a rotation.

The server test runs uvicorn in-process on a loopback port (no child process).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Iterable
from pathlib import Path

import httpx
import pytest

from autorollout.credentials import CredentialStore
from autorollout.registry.errors import RegistryError
from autorollout.registry.manifests import ManifestDigest
from autorollout.registry.resolver import Lookup
from certs.mint import mint_ca, mint_serving_cert
from tests.unit.webhook_samples import DIGEST_A, body, review, workload
from webhook.admission import AdmissionReviewer
from webhook.app import build_app
from webhook.server import WebhookServer, WebhookServerError
from webhook.tls import ServingCertificate, ServingCertificateError

pytestmark = pytest.mark.unit


class Pair:
    """A CA and a serving certificate for 127.0.0.1 signed by it."""

    def __init__(self) -> None:
        self.ca_cert, ca_key = mint_ca("test CA")
        self.cert, self.key = mint_serving_cert(self.ca_cert, ca_key, ["localhost"], ["127.0.0.1"])

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_cert.decode())


def install(directory: Path, cert: bytes, key: bytes) -> tuple[str, str]:
    """Replace tls.crt/tls.key as a Secret volume update does (new files renamed into place)."""
    for name, data in (("tls.crt", cert), ("tls.key", key)):
        staging = directory / f".{name}.new"
        staging.write_bytes(data)
        os.replace(staging, directory / name)
    return str(directory / "tls.crt"), str(directory / "tls.key")


def test_context_is_tls12_or_newer(tmp_path: Path) -> None:
    pair = Pair()
    certificate = ServingCertificate(*install(tmp_path, pair.cert, pair.key))
    assert certificate.context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_missing_files_and_mismatched_pairs_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ServingCertificateError, match="no such file"):
        ServingCertificate(str(tmp_path / "nope.crt"), str(tmp_path / "nope.key"))
    first, second = Pair(), Pair()
    with pytest.raises(ServingCertificateError, match="cannot load the serving certificate"):
        ServingCertificate(*install(tmp_path, first.cert, second.key))


def test_reload_only_on_change_and_never_to_a_broken_pair(tmp_path: Path) -> None:
    first, second, third = Pair(), Pair(), Pair()
    certificate = ServingCertificate(*install(tmp_path, first.cert, first.key), poll_seconds=0.01)
    live = certificate.context
    assert certificate.reload_if_changed() is False
    install(tmp_path, second.cert, second.key)
    assert certificate.reload_if_changed() is True
    assert certificate.context is live
    assert certificate.reloads == 1
    install(tmp_path, third.cert, first.key)
    assert certificate.reload_if_changed() is False
    assert certificate.last_error is not None
    assert "cannot load" in certificate.last_error
    install(tmp_path, third.cert, third.key)
    assert certificate.reload_if_changed() is True
    assert certificate.last_error is None


class EveryTagResolver:
    async def resolve_many(
        self,
        lookups: Iterable[Lookup],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the protocol's budget
        platforms: bool = False,
    ) -> dict[Lookup, ManifestDigest | RegistryError]:
        return {lookup: ManifestDigest(DIGEST_A, "") for lookup in lookups}


async def _post(client: httpx.AsyncClient, port: int) -> int:
    response = await client.post(f"https://127.0.0.1:{port}/mutate", content=body(review(workload())))
    return response.status_code


def test_rotation_keeps_open_connections_and_serves_the_new_certificate(tmp_path: Path) -> None:
    first, second = Pair(), Pair()
    certificate = ServingCertificate(*install(tmp_path, first.cert, first.key), poll_seconds=0.05)
    app = build_app(AdmissionReviewer(EveryTagResolver(), CredentialStore()))

    async def scenario() -> None:
        server = WebhookServer(app, certificate, host="127.0.0.1", port=0)
        assert server.readiness_problem() == "webhook server is not listening yet"
        serving = asyncio.create_task(server.serve())
        for _ in range(200):
            if server.ready:
                break
            await asyncio.sleep(0.01)
        assert server.ready
        async with httpx.AsyncClient(verify=first.client_context()) as old_client:
            assert await _post(old_client, server.port) == 200
            install(tmp_path, second.cert, second.key)
            for _ in range(100):
                if certificate.reloads:
                    break
                await asyncio.sleep(0.02)
            assert certificate.reloads == 1
            # The kept-alive connection was made before the rotation and still answers.
            assert await _post(old_client, server.port) == 200
        async with httpx.AsyncClient(verify=second.client_context()) as new_client:
            assert await _post(new_client, server.port) == 200
        async with httpx.AsyncClient(verify=first.client_context()) as stale_client:
            with pytest.raises(httpx.ConnectError):
                await _post(stale_client, server.port)
        server.shutdown()
        await asyncio.wait_for(serving, timeout=10)
        assert not server.ready

    asyncio.run(scenario())


def test_bind_failure_is_a_clear_error(tmp_path: Path) -> None:
    pair = Pair()
    certificate = ServingCertificate(*install(tmp_path, pair.cert, pair.key))
    app = build_app(AdmissionReviewer(EveryTagResolver(), CredentialStore()))
    first = WebhookServer(app, certificate, host="127.0.0.1", port=0)
    try:
        with pytest.raises(WebhookServerError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            WebhookServer(app, certificate, host="127.0.0.1", port=first.port)
    finally:
        first.close()
