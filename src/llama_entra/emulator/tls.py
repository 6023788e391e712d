"""Certificates for the emulator: a private CA, its HTTPS server certificate, client certificates.

Everything is written once into the state directory and reused on the next start, so clients
that already trust ``ca.pem`` keep working. Keys never leave the state directory (mode 0600).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

__all__ = ["ServerCertificates", "ensure_client_certificate", "ensure_server_certificates"]

_VALIDITY = dt.timedelta(days=825)


@dataclass(frozen=True, slots=True)
class ServerCertificates:
    """Paths of the CA certificate (for clients) and the server's certificate and key."""

    ca_path: Path
    cert_path: Path
    key_path: Path


def ensure_server_certificates(state_dir: Path) -> ServerCertificates:
    """Create (or reuse) the CA and a server certificate for localhost and 127.0.0.1."""
    state_dir.mkdir(parents=True, exist_ok=True)
    found = ServerCertificates(
        state_dir / "ca.pem", state_dir / "server.pem", state_dir / "server-key.pem"
    )
    if all(path.exists() for path in (found.ca_path, found.cert_path, found.key_path)):
        return found
    ca_key = _new_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llama-entra emulator CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = _new_key()
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    names = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    server_cert = (
        _builder(server_name, ca_name, server_key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(found.key_path, _key_pem(server_key), private=True)
    _write(found.cert_path, server_cert.public_bytes(serialization.Encoding.PEM))
    _write(found.ca_path, ca_cert.public_bytes(serialization.Encoding.PEM))
    return found


def ensure_client_certificate(path: Path, common_name: str) -> x509.Certificate:
    """Create (or reuse) a self-signed client certificate with its key, both in one PEM file.

    That PEM is what ``credential: certificate`` reads; the emulator keeps the certificate to
    verify the client's signed assertions.
    """
    if not path.exists():
        key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = _builder(name, name, key).sign(key, hashes.SHA256())
        _write(path, _key_pem(key) + cert.public_bytes(serialization.Encoding.PEM), private=True)
    return x509.load_pem_x509_certificate(path.read_bytes())


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write atomically; private files are created 0600 from the start."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)
