"""certs/mint.py: the minted chain is accepted by real TLS stacks, keys stay private."""

from __future__ import annotations

import ipaddress
import os
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store

from certs.mint import CertificateError, mint_ca, mint_serving_cert, write_bundle, write_private

pytestmark = pytest.mark.unit


def _handshake(bundle_dir: Path, server_hostname: str) -> None:
    """Run a full TLS handshake in memory: server with tls.crt/tls.key, client trusting ca.crt only."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(bundle_dir / "tls.crt", bundle_dir / "tls.key")
    client_ctx = ssl.create_default_context(cafile=str(bundle_dir / "ca.crt"))
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side in (("client", client), ("server", server)):
            if done[name]:
                continue
            try:
                side.do_handshake()
                done[name] = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not complete")


def test_ca_is_a_ca() -> None:
    cert_pem, key_pem = mint_ca("test CA")
    cert = x509.load_pem_x509_certificate(cert_pem)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca is True
    assert constraints.critical
    assert cert.subject == cert.issuer
    assert b"PRIVATE KEY" in key_pem
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 364 <= lifetime.days <= 366


def test_serving_cert_has_sans_eku_and_verifies_against_ca() -> None:
    ca_pem, ca_key = mint_ca("test CA")
    cert_pem, _ = mint_serving_cert(ca_pem, ca_key, ["webhook.ns.svc", "localhost"], ["127.0.0.1", "::1"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["webhook.ns.svc", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False

    ca = x509.load_pem_x509_certificate(ca_pem)
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(x509.DNSName("webhook.ns.svc"))
    chain = verifier.verify(cert, [])
    assert chain[-1] == ca


def test_serving_cert_rejected_by_other_ca() -> None:
    ca_pem, ca_key = mint_ca("test CA")
    other_pem, _ = mint_ca("other CA")
    cert_pem, _ = mint_serving_cert(ca_pem, ca_key, ["localhost"])
    verifier = (
        PolicyBuilder()
        .store(Store([x509.load_pem_x509_certificate(other_pem)]))
        .build_server_verifier(x509.DNSName("localhost"))
    )
    with pytest.raises(x509.verification.VerificationError):
        verifier.verify(x509.load_pem_x509_certificate(cert_pem), [])


def test_write_bundle_files_and_modes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = write_bundle(out, ["localhost"], ["127.0.0.1"])
    assert {p.name for p in out.iterdir()} == {"ca.crt", "tls.crt", "tls.key"}
    assert stat.S_IMODE(paths.tls_key.stat().st_mode) == 0o600
    _handshake(out, "localhost")
    _handshake(out, "127.0.0.1")


def test_write_bundle_tightens_existing_key_file(tmp_path: Path) -> None:
    key = tmp_path / "tls.key"
    key.write_text("old")
    key.chmod(0o644)
    write_bundle(tmp_path, ["localhost"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"old" not in key.read_bytes()


def test_handshake_fails_for_name_not_in_cert(tmp_path: Path) -> None:
    write_bundle(tmp_path, ["localhost"], ["127.0.0.1"])
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(tmp_path, "example.com")


def test_bad_inputs_are_clear_errors() -> None:
    ca_pem, ca_key = mint_ca("test CA")
    with pytest.raises(CertificateError, match="not an IP address"):
        mint_serving_cert(ca_pem, ca_key, ["localhost"], ["300.1.1.1"])
    with pytest.raises(CertificateError, match="at least one"):
        mint_serving_cert(ca_pem, ca_key, [], [])


@pytest.mark.parametrize("planted", ["tls.key", "tls.crt", "ca.crt"])
def test_a_symlink_planted_in_the_output_is_replaced_never_followed(tmp_path: Path, planted: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    victim.chmod(0o644)
    (out / planted).symlink_to(victim)
    dangling = out / ("tls.crt" if planted != "tls.crt" else "ca.crt")
    dangling.symlink_to(tmp_path / "does-not-exist")
    paths = write_bundle(out, ["localhost"])
    assert victim.read_text() == "precious"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not (tmp_path / "does-not-exist").exists()
    for path in (paths.ca_cert, paths.tls_cert, paths.tls_key):
        assert not path.is_symlink()
        assert path.is_file()
    assert stat.S_IMODE(paths.tls_key.stat().st_mode) == 0o600
    assert {p.name for p in out.iterdir()} == {"ca.crt", "tls.crt", "tls.key"}  # no temporary left
    _handshake(out, "localhost")


def test_the_key_is_0600_from_its_creation_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real_replace = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen.append(stat.S_IMODE(os.lstat(src).st_mode))  # the file as created, before it gets its name
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    old = os.umask(0)
    try:
        write_private(tmp_path / "k", b"key")
    finally:
        os.umask(old)
    assert seen == [0o600]
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_a_directory_where_a_file_goes_is_an_error_and_leaves_nothing_behind(tmp_path: Path) -> None:
    (tmp_path / "tls.key").mkdir()
    with pytest.raises(IsADirectoryError):
        write_bundle(tmp_path, ["localhost"])
    assert [p.name for p in tmp_path.iterdir()] == ["tls.key"]


def test_bad_dns_names_are_certificate_errors_before_anything_is_written(tmp_path: Path) -> None:
    for name in ("", "a b", "*", "x" * 300, "a\nb"):
        with pytest.raises(CertificateError):
            write_bundle(tmp_path / "out", [name])
    assert not (tmp_path / "out").exists()


def test_long_and_international_names_go_into_the_san_the_cn_stays_short(tmp_path: Path) -> None:
    long_name = ".".join(["a" * 60, "b" * 60])
    paths = write_bundle(tmp_path, [long_name, "bücher.example"])
    cert = x509.load_pem_x509_certificate(paths.tls_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [long_name, "xn--bcher-kva.example"]
    common_name = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    assert common_name == "kube-autorollout webhook"
    _handshake(tmp_path, "xn--bcher-kva.example")
