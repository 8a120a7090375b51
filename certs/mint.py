"""Mint a private CA and a serving certificate for the webhook's TLS (ECDSA P-256), and write them.

Files are never written through an existing path: each is created exclusively under a fresh name in
the same directory (O_CREAT|O_EXCL|O_NOFOLLOW, its final mode from the start: 0600 for keys) and then
renamed over the name it is meant for. A file already there is replaced; a symlink planted there is
replaced by the file, and whatever it pointed to is left untouched.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from autorollout.errors import AutorolloutError
from certs.names import InvalidDnsName, dns_name

VALID_DAYS = 365
# X.520 upper bound for a commonName; longer names go in the subjectAltName only.
_MAX_COMMON_NAME = 64
# Certificates start a few minutes in the past so a peer whose clock lags slightly accepts them.
_BACKDATE = datetime.timedelta(minutes=5)


class CertificateError(AutorolloutError, ValueError):
    """Input to the minting functions is unusable (no names, bad IP, key that is not ECDSA/RSA)."""


@dataclass(frozen=True, slots=True)
class BundlePaths:
    """Where `write_bundle` put the files."""

    ca_cert: Path
    tls_cert: Path
    tls_key: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _validity(valid_days: int) -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return now - _BACKDATE, now + datetime.timedelta(days=valid_days)


def mint_ca(common_name: str, *, valid_days: int = VALID_DAYS) -> tuple[bytes, bytes]:
    """Create a self-signed CA; returns (certificate PEM, private key PEM)."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    not_before, not_after = _validity(valid_days)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def key_usage(*, ca: bool) -> x509.KeyUsage:
    """Digital signature, and for a CA certificate and CRL signing too; nothing else."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _load_ca_key(ca_key_pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError("CA key must be an ECDSA private key (as minted by mint_ca)")
    return key


def encoded_dns_names(dns_names: Sequence[str]) -> list[str]:
    """The names as they go into the certificate; raises CertificateError naming the first bad one."""
    try:
        return [dns_name(name) for name in dns_names]
    except InvalidDnsName as exc:
        raise CertificateError(str(exc)) from None


def _alt_names(dns_names: Sequence[str], ip_addresses: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in encoded_dns_names(dns_names)]
    for text in ip_addresses:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(text)))
        except ValueError as exc:
            raise CertificateError(f"not an IP address: {text!r}") from exc
    if not names:
        raise CertificateError("a serving certificate needs at least one DNS name or IP address")
    return names


def mint_serving_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = (),
    *,
    valid_days: int = VALID_DAYS,
) -> tuple[bytes, bytes]:
    """Create a TLS server certificate signed by the CA; returns (certificate PEM, private key PEM)."""
    alt_names = _alt_names(dns_names, ip_addresses)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = _load_ca_key(ca_key_pem)
    key = _new_key()
    public = key.public_key()
    first = alt_names[0]
    common_name = str(first.value)
    if len(common_name) > _MAX_COMMON_NAME:
        common_name = "kube-autorollout webhook"
    not_before, not_after = _validity(valid_days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(min(not_after, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` readable by the owner only (0600 from the start), never through a link."""
    write_file(path, data, mode=0o600)


def write_file(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace `path` with a new file holding `data`, created exclusively (mode `mode` from the start)
    in the same directory and renamed over `path`: a symlink at `path` is replaced, not followed."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have taken bits away; never adds any beyond `mode`
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_bundle(
    out_dir: str | Path, dns_names: Sequence[str], ips: Sequence[str] = (), *, ca_name: str | None = None
) -> BundlePaths:
    """Mint a CA and a serving certificate into `out_dir` as ca.crt, tls.crt and tls.key (0600)."""
    directory = Path(out_dir)
    ca_cert, ca_key = mint_ca(ca_name or "kube-autorollout CA")
    cert, key = mint_serving_cert(ca_cert, ca_key, dns_names, ips)
    directory.mkdir(parents=True, exist_ok=True)
    paths = BundlePaths(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    write_private(paths.tls_key, key)
    write_file(paths.tls_cert, cert)
    write_file(paths.ca_cert, ca_cert)
    return paths
