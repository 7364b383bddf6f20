"""PayPal's REST webhook signature: RSA-SHA256 over the transmission, with a certificate.

PayPal signs ``<transmission id>|<transmission time>|<webhook id>|<crc32 of the body>``
(the CRC32 as an unsigned decimal) with the private key of a certificate whose
URL it names in ``PAYPAL-CERT-URL``; ``PAYPAL-AUTH-ALGO`` is ``SHA256withRSA``
and ``PAYPAL-TRANSMISSION-SIG`` the base64 signature. The webhook id is the
merchant's own setting (``webhook_id``), not a header: it pins the signature to
one subscription. Source: PayPal's SDKs, e.g. paypal/PayPal-Java-SDK
``SSLUtil.crc32`` and ``Event.validateReceivedEvent``.

What the signature pins: the transmission id, the transmission time and the
webhook id, exactly; the body only through its CRC32, which anyone can forge
(four chosen bytes give any CRC). So this check proves that PayPal sent *a*
transmission with that id and time to this webhook, not that the body is the one
PayPal sent. The profile takes the transmission id as the event's identity and
the time must be within ``timestamp_tolerance_s`` (below the dedup window), so a
second body under one transmission is never a second event (see
:mod:`relay.providers.paypal`).

This module is pure: the certificate's key reaches :func:`verify` in the key
ring (``public_keys``: pinned in the config, or resolved per request by
:mod:`relay.certificates`, which fetches and caches). What decides whether a
certificate URL may be fetched (:func:`certificate_url`) and whether fetched
bytes are PayPal's certificate (:func:`signer_key`) is here, so it is testable
without a network.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from verifiers.base import (
    Headers,
    SignedRequest,
    Verified,
    check_tolerance,
    check_tolerance_option,
    decode_base64,
    encode_signature,
    require_header,
    sign_rsa,
    text_key,
    verify_rsa,
)
from verifiers.errors import (
    MalformedSignature,
    MalformedTimestamp,
    SignatureMismatch,
    UntrustedCertificate,
)
from verifiers.keys import KeyRing, UnusableKey, private_key_of, public_keys_of

name = "paypal"
checks_authorization = False

TRANSMISSION_ID = "paypal-transmission-id"
TRANSMISSION_TIME = "paypal-transmission-time"
TRANSMISSION_SIG = "paypal-transmission-sig"
CERT_URL = "paypal-cert-url"
AUTH_ALGO = "paypal-auth-algo"

ALGORITHM = "SHA256withRSA"
"""The one ``PAYPAL-AUTH-ALGO`` PayPal sends (SHA1withRSA, which its SDKs also map, is refused)."""

CERT_PATH = "/v1/notifications/certs/"
"""Where PayPal serves its webhook certificates on its API hosts
(``https://api.paypal.com/v1/notifications/certs/CERT-...``, PayPal-Python-SDK's test)."""

LIVE_HOST = "api.paypal.com"
SANDBOX_HOST = "api.sandbox.paypal.com"
CERT_NAMES = "messageverificationcerts.paypal.com messageverificationcerts.sandbox.paypal.com"
"""The names PayPal's signing certificates carry (subject CN and SAN; the Java SDK's
``SSLUtil.validateCertificateChain`` checks ``CN=messageverificationcerts...paypal.com``)."""

_MAX_FIELD = 128  # a transmission id is a UUID, a time 20 characters
_MAX_URL = 512
_CERT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*")
"""One path segment, no dot segments: what follows :data:`CERT_PATH`."""


@dataclass(frozen=True, slots=True)
class Params:
    webhook_id: str = ""
    """The id of the merchant's webhook subscription, as PayPal shows it: required."""
    timestamp_tolerance_s: float = 300.0
    """How far the signed transmission time may be from the arrival, both ways."""
    cert_hosts: str = f"{LIVE_HOST} {SANDBOX_HOST}"
    """Hosts (``host`` or ``host:port``, space-separated) a certificate URL may name."""
    cert_names: str = CERT_NAMES
    """DNS names (space-separated), one of which the certificate's SAN must carry."""
    ca_bundle: str = ""
    """A PEM file of trust anchors for the certificate's chain and the fetch's TLS;
    empty: the system trust store."""
    fetch_timeout_s: float = 3.0
    max_certificate_bytes: int = 32 * 1024
    confirm_with_api: bool = False
    """Also ask PayPal's ``verify-webhook-signature`` API (``client_id`` and the secret)."""
    api_base: str = "https://api-m.paypal.com"
    client_id: str = ""

    def __post_init__(self) -> None:
        check_tolerance_option(self)
        if not _printable(self.webhook_id) or "|" in self.webhook_id:
            raise ValueError("webhook_id must be the subscription's id, printable ASCII, no '|'")
        if not self.hosts():
            raise ValueError("cert_hosts must name at least one host")
        if not self.names():
            raise ValueError("cert_names must name at least one DNS name")
        if self.fetch_timeout_s <= 0 or self.max_certificate_bytes <= 0:
            raise ValueError("fetch_timeout_s and max_certificate_bytes must be above zero")
        if not self.api_base.startswith("https://"):
            raise ValueError("api_base must be an https:// URL")
        if self.confirm_with_api and not self.client_id:
            raise ValueError("confirm_with_api needs client_id (and the client secret in secrets)")

    def hosts(self) -> frozenset[str]:
        return frozenset(self.cert_hosts.lower().replace(",", " ").split())

    def names(self) -> tuple[str, ...]:
        return tuple(self.cert_names.lower().replace(",", " ").split())


@dataclass(frozen=True, slots=True)
class Transmission:
    """The signed headers of one request, read and checked (not yet the signature)."""

    id: str
    time_text: str
    time: float
    signature: bytes
    cert_url: str


def read(headers: Headers, params: Params, now: float) -> Transmission:
    """The transmission's headers, each checked, cheapest first; the time within tolerance.

    Everything a request must get right before a certificate is looked up, so that
    an unsigned request costs no fetch: only the certificate URL is left unchecked
    (:func:`certificate_url` checks it where it is used).
    """
    algorithm = require_header(headers, AUTH_ALGO)
    if algorithm != ALGORITHM:
        raise MalformedSignature(f"the PAYPAL-AUTH-ALGO header must be {ALGORITHM}")
    transmission_id = _field(headers, TRANSMISSION_ID, "the PAYPAL-TRANSMISSION-ID header")
    time_text = _field(headers, TRANSMISSION_TIME, "the PAYPAL-TRANSMISSION-TIME header")
    time = _parse_time(time_text)
    check_tolerance(time, now, params.timestamp_tolerance_s, "the PAYPAL-TRANSMISSION-TIME")
    signature = decode_base64(
        require_header(headers, TRANSMISSION_SIG), "the PAYPAL-TRANSMISSION-SIG header"
    )
    # An RSA signature is as long as its modulus: 2048 to 4096-bit keys.
    if len(signature) not in (256, 384, 512):
        raise MalformedSignature("the PAYPAL-TRANSMISSION-SIG header is not an RSA signature")
    cert_url = require_header(headers, CERT_URL)
    return Transmission(transmission_id, time_text, time, signature, cert_url)


def signed_message(transmission: Transmission, webhook_id: str, body: bytes) -> bytes:
    crc = zlib.crc32(body)  # unsigned in Python 3, as PayPal writes it
    return f"{transmission.id}|{transmission.time_text}|{webhook_id}|{crc}".encode("ascii")


def verify(body: bytes, headers: Headers, params: Params, keys: KeyRing, now: float) -> Verified:
    if not params.webhook_id:
        raise UnusableKey("the paypal scheme signs the webhook id: set webhook_id")
    transmission = read(headers, params, now)
    public_keys = public_keys_of(keys, rsa.RSAPublicKey, name)
    if not public_keys:
        raise UntrustedCertificate("no PayPal certificate was resolved for this request")
    what = "the PAYPAL-TRANSMISSION-SIG header"
    message = signed_message(transmission, params.webhook_id, body)
    index = verify_rsa(public_keys, transmission.signature, message, what)
    if index is None:
        raise SignatureMismatch(f"{what} does not match the transmission and this webhook id")
    return Verified(key_index=index, timestamp=transmission.time)


def sign(body: bytes, params: Params, keys: KeyRing, now: float) -> SignedRequest:
    """A transmission as PayPal sends it (tests, ``relay send``): its id is a UUID made
    from the body, so the same body sent twice is one transmission."""
    if not params.webhook_id:
        raise UnusableKey("the paypal scheme signs the webhook id: set webhook_id")
    transmission_id = str(uuid.UUID(bytes=hashlib.sha256(body).digest()[:16], version=4))
    time_text = datetime.fromtimestamp(int(now), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    host = sorted(params.hosts())[0]
    transmission = Transmission(transmission_id, time_text, now, b"", "")
    raw = sign_rsa(
        private_key_of(keys, rsa.RSAPrivateKey, name),
        signed_message(transmission, params.webhook_id, body),
    )
    return SignedRequest(
        body=body,
        headers={
            TRANSMISSION_ID: transmission_id,
            TRANSMISSION_TIME: time_text,
            TRANSMISSION_SIG: encode_signature(raw, "base64"),
            CERT_URL: f"https://{host}{CERT_PATH}CERT-relay-{transmission_id[:8]}",
            AUTH_ALGO: ALGORITHM,
        },
    )


def required_keys(params: Params) -> frozenset[str]:
    """The client secret where PayPal's API confirms; the certificate is fetched or pinned."""
    return frozenset({"secrets"}) if params.confirm_with_api else frozenset()


def certificate_url(headers: Headers, params: Params) -> str:
    """``PAYPAL-CERT-URL`` when Relay may fetch it, else :class:`UntrustedCertificate`.

    Only ``https://`` on an allow-listed host (exact, ``host:port`` where a port is
    named), under :data:`CERT_PATH`, with no user info, query, fragment, escapes or
    IP-literal host: the URL is the sender's word, and anything else could point
    Relay at a host of the sender's choosing.
    """
    url = require_header(headers, CERT_URL)
    refused = UntrustedCertificate("the PAYPAL-CERT-URL is not a PayPal certificate URL")
    if len(url) > _MAX_URL or not _printable(url) or any(c in url for c in "%\\ @?#"):
        raise refused
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise refused from None
    host = parts.hostname or ""
    if parts.scheme != "https" or parts.username is not None or not host:
        raise refused
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise refused
    netloc = host if port is None else f"{host}:{port}"
    if netloc not in params.hosts() or parts.netloc.lower() != netloc:
        raise refused
    if not parts.path.startswith(CERT_PATH) or not _CERT_NAME.fullmatch(
        parts.path.removeprefix(CERT_PATH)
    ):
        raise refused
    return url


def load_chain(pem: bytes) -> list[x509.Certificate]:
    """The certificates of a PEM text, signer first; :class:`UntrustedCertificate` if none."""
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise UntrustedCertificate("the PAYPAL-CERT-URL does not serve a PEM certificate") from None
    return chain


def signer_key(
    chain: Sequence[x509.Certificate],
    anchors: Store,
    params: Params,
    at: float,
) -> rsa.RSAPublicKey:
    """The signing key of ``chain`` once it is PayPal's at ``at`` (the transmission time).

    The first certificate must chain to ``anchors`` through the others, be valid at
    ``at`` (so an old transmission verifies with the certificate it was signed with,
    and an expired certificate signs nothing new) and carry one of ``cert_names`` as a
    SAN DNS name; its key must be RSA.
    """
    if not chain:
        raise UntrustedCertificate("the PAYPAL-CERT-URL does not serve a PEM certificate")
    leaf, *intermediates = chain
    when = datetime.fromtimestamp(at, UTC)
    if not leaf.not_valid_before_utc <= when <= leaf.not_valid_after_utc:
        raise UntrustedCertificate("the PayPal certificate is not valid at the transmission time")
    builder = PolicyBuilder().store(anchors).time(when)
    for dns_name in params.names():
        verifier = builder.build_server_verifier(x509.DNSName(dns_name))
        try:
            verifier.verify(leaf, intermediates)
        except VerificationError:
            continue
        key = leaf.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise UntrustedCertificate("the PayPal certificate's key is not an RSA key")
        return key
    raise UntrustedCertificate(
        "the certificate does not chain to a trusted root as one of cert_names at the "
        "transmission time"
    )


def valid_at(chain: Sequence[x509.Certificate], at: float) -> bool:
    """Whether every certificate of a chain :func:`signer_key` accepted is valid at ``at``
    (a cached chain, checked again for each transmission time)."""
    when = datetime.fromtimestamp(at, UTC)
    return all(cert.not_valid_before_utc <= when <= cert.not_valid_after_utc for cert in chain)


def _field(headers: Headers, header: str, what: str) -> str:
    value = require_header(headers, header)
    if len(value) > _MAX_FIELD or not _printable(value) or "|" in value:
        # A '|' would move the boundaries of the signed string.
        raise MalformedSignature(f"{what} must be printable ASCII without '|'")
    return value


def _parse_time(text: str) -> float:
    """PayPal's ``2019-08-29T10:49:33Z`` (fractions and offsets read too)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedTimestamp("the PAYPAL-TRANSMISSION-TIME header is not ISO 8601") from None
    if parsed.tzinfo is None:
        raise MalformedTimestamp("the PAYPAL-TRANSMISSION-TIME header has no time zone")
    return parsed.timestamp()


def _printable(text: str) -> bool:
    return text.isascii() and text.isprintable()


secret_key = text_key
