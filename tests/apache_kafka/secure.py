"""Secure listeners for the test broker: certificates made at test time, SASL users.

:func:`make_pki` writes a throwaway certificate authority, the broker's
certificate (valid for the IP address 127.0.0.1 only, so connecting as
``localhost`` is a hostname mismatch), a client certificate for mutual TLS, and
a second, unrelated authority whose trust is wrong on purpose.
:func:`secure_properties` turns them into broker settings for two more
listeners next to the plaintext one:

- ``SASL_SSL``: TLS, then SASL PLAIN (users in the JAAS line), SCRAM-SHA-256 and
  SCRAM-SHA-512 (users created through the admin API, :func:`upsert_scram_user`)
  or OAUTHBEARER (Kafka's unsecured-JWS validator: any unsigned token with a
  ``sub`` claim, enough to test a token-provider hook end to end);
- ``SASL_PLAINTEXT``: SASL PLAIN without TLS, and no other mechanism;
- ``MTLS`` (security protocol SSL): TLS with a client certificate required.

Everything is standard library and ``cryptography``, which Relay depends on.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PLAIN_USERS = {"relay-plain": "plain-password-1"}
"""Users of the PLAIN mechanism, fixed in the broker's JAAS line."""

_SCRAM_MECHANISMS = {"SCRAM-SHA-256": (1, "sha256"), "SCRAM-SHA-512": (2, "sha512")}
_SCRAM_ITERATIONS = 4096  # the least Kafka accepts


@dataclass(frozen=True)
class Pki:
    """Where the test-time certificates are (PEM files)."""

    ca_file: Path
    server_certificate: Path
    server_key: Path
    client_certificate: Path
    client_key: Path
    untrusted_ca_file: Path
    """An authority that signed nothing the broker presents."""


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _authority("Relay test CA")
    _, untrusted = _authority("Someone else's CA")
    server_key = _key()
    server = _leaf(
        ca_key,
        ca,
        server_key,
        "kafka",
        x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        ExtendedKeyUsageOID.SERVER_AUTH,
    )
    client_key = _key()
    client = _leaf(
        ca_key,
        ca,
        client_key,
        "relay",
        x509.SubjectAlternativeName([x509.DNSName("relay.test")]),
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    pki = Pki(
        ca_file=directory / "ca.pem",
        server_certificate=directory / "kafka.pem",
        server_key=directory / "kafka-key.pem",
        client_certificate=directory / "relay.pem",
        client_key=directory / "relay-key.pem",
        untrusted_ca_file=directory / "untrusted-ca.pem",
    )
    _write(pki.ca_file, _pem(ca))
    _write(pki.untrusted_ca_file, _pem(untrusted))
    _write(pki.server_certificate, _pem(server))
    _write(pki.server_key, _pem_key(server_key))
    _write(pki.client_certificate, _pem(client))
    _write(pki.client_key, _pem_key(client_key))
    return pki


SECURE_LISTENERS = {"SASL_SSL": "SASL_SSL", "SASL_PLAINTEXT": "SASL_PLAINTEXT", "MTLS": "SSL"}
"""The secure listeners' names and their security protocols."""


def secure_properties(pki: Pki) -> dict[str, str]:
    """Broker settings for the listeners in :data:`SECURE_LISTENERS` (the launcher adds
    their addresses)."""
    plain_users = " ".join(f'user_{name}="{password}"' for name, password in PLAIN_USERS.items())
    sasl = "listener.name.sasl_ssl"
    return {
        f"{sasl}.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER",
        f"{sasl}.plain.sasl.jaas.config": (
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
        ),
        f"{sasl}.scram-sha-256.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        f"{sasl}.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        f"{sasl}.oauthbearer.sasl.jaas.config": (
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
        ),
        # PLAIN only: a client asking this listener for SCRAM is told it is not enabled.
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
        ),
        # PEM inline: no Java keystore to build, no store password.
        "ssl.keystore.type": "PEM",
        "ssl.keystore.certificate.chain": pki.server_certificate.read_text(),
        "ssl.keystore.key": pki.server_key.read_text(),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.certificates": pki.ca_file.read_text(),
        "listener.name.mtls.ssl.client.auth": "required",
    }


# -- AlterUserScramCredentials (KIP-554), the admin API call that creates SCRAM users ---------


SCRAM_ALTER_API = (51, 0)
"""AlterUserScramCredentials v0: (api key, version); a flexible version."""


def scram_upsertion(mechanism: str, user: str, password: str) -> bytes:
    """The body of an AlterUserScramCredentials v0 request that sets one user's password.

    The client salts and hashes (RFC 5802 ``Hi``); the broker stores what it is given.
    """
    code, digest = _SCRAM_MECHANISMS[mechanism]
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac(digest, password.encode(), salt, _SCRAM_ITERATIONS)
    body = _uvarint(1)  # deletions: empty compact array
    body += _uvarint(2)  # upsertions: one
    body += _compact(user.encode()) + struct.pack(">bi", code, _SCRAM_ITERATIONS)
    body += _compact(salt) + _compact(salted) + _uvarint(0)  # tagged fields
    return body + _uvarint(0)


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _compact(data: bytes) -> bytes:
    return _uvarint(len(data) + 1) + data


# -- certificates -------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _authority(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    name: str,
    names: x509.SubjectAlternativeName,
    usage: x509.ObjectIdentifier,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(names, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    # PKCS#8: the only private-key form Kafka's PEM key store reads.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
