"""Key material: secrets with a redacted ``repr`` and public/private key loading.

A provider instance may hold several secrets or public keys at once (rotation):
verifiers try each and accept if any matches. Nothing in this module ever puts
key material into a message or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass, field
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from verifiers.errors import VerificationError

PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

_Key = TypeVar("_Key")

# Standard Webhooks' prefixes for an asymmetric (v1a) key pair.
_PUBLIC_PREFIX = "whpk_"
_SECRET_PREFIX = "whsk_"
_ED25519_BYTES = 32


class KeyLoadError(ValueError):
    """Key material that cannot be loaded; the message names the problem, never the key."""


class UnusableKey(KeyLoadError, VerificationError):
    """The instance's key material does not fit its scheme.

    An Ed25519 key given to an RSA scheme, a Standard Webhooks secret that is
    not base64, no private key to sign with. This is a configuration error,
    not the sender's: it is a :class:`KeyLoadError` for config checks and a
    :class:`~verifiers.errors.VerificationError` with status 500 for the HTTP
    layer, so a misconfigured instance answers 500 (and the provider retries)
    instead of blaming the sender with a 401.
    """

    code = "unusable_key"
    status = 500


@dataclass(frozen=True, slots=True)
class Secret:
    """A shared secret. Its ``repr`` and ``str`` never show the value."""

    value: bytes = field(repr=False)
    _keyed: dict[str, hmac.HMAC] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """One HMAC keyed with this secret per algorithm, copied for each message."""

    @classmethod
    def of(cls, text: str | bytes) -> Secret:
        return cls(text.encode() if isinstance(text, str) else text)

    def mac(self, message: bytes, algorithm: str) -> bytes:
        """The HMAC of ``message`` under this secret, as ``hmac.digest`` gives it.

        The key is set up once per algorithm and the keyed state copied per message:
        ``hmac.digest`` looks the hash up by name and keys it on every call, which in
        the running server cost about 4 us of a webhook's verify (thread CPU time).
        """
        keyed = self._keyed.get(algorithm)
        if keyed is None:
            keyed = self._keyed[algorithm] = hmac.new(self.value, digestmod=algorithm)
        mac = keyed.copy()
        mac.update(message)
        return mac.digest()

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The active key material of one provider instance.

    ``secrets`` and ``public_keys`` verify; ``private_key`` only signs (``relay
    send``, tests, the benchmark) and is absent in production configs.
    ``authorizations`` are the ``Authorization`` header values an instance accepts
    besides its signature (HTTP Basic credentials for Adyen, see
    :func:`basic_authorization`; the token a Checkout.com merchant chooses), checked
    by the schemes that read them (:func:`verifiers.base.check_authorization`); none
    configured, none required.
    """

    secrets: tuple[Secret, ...] = ()
    public_keys: tuple[PublicKey, ...] = ()
    private_key: PrivateKey | None = field(default=None, repr=False)
    authorizations: tuple[Secret, ...] = ()

    def __repr__(self) -> str:
        return (
            f"KeyRing(secrets={len(self.secrets)}, public_keys={len(self.public_keys)}, "
            f"private_key={'yes' if self.private_key else 'no'}, "
            f"authorizations={len(self.authorizations)})"
        )


def public_keys_of(keys: KeyRing, kind: type[_Key], scheme: str) -> tuple[_Key, ...]:
    """The ring's public keys, all of ``kind``; any other key is a configuration error.

    One wrong key fails every request rather than being skipped, so a config
    mistake shows at the first webhook instead of after a key rotation.
    """
    checked: list[_Key] = []
    for index, key in enumerate(keys.public_keys):
        if not isinstance(key, kind):
            raise UnusableKey(
                f"the {scheme} scheme needs {_kind_name(kind)} public keys; "
                f"public key #{index} is an {_kind_name(type(key))} key"
            )
        checked.append(key)
    return tuple(checked)


def private_key_of(keys: KeyRing, kind: type[_Key], scheme: str) -> _Key:
    """The ring's signing key, which must be of ``kind``."""
    key = keys.private_key
    if key is None:
        raise UnusableKey(f"the {scheme} scheme signs with a private key; none is configured")
    if not isinstance(key, kind):
        raise UnusableKey(
            f"the {scheme} scheme needs an {_kind_name(kind)} private key, "
            f"not an {_kind_name(type(key))} key"
        )
    return key


def basic_authorization(username: str, password: str) -> Secret:
    """The ``Authorization`` value HTTP Basic sends for these credentials (RFC 7617, UTF-8)."""
    if ":" in username:
        raise KeyLoadError("an HTTP Basic user name cannot contain ':' (it ends the user name)")
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return Secret.of(f"Basic {token}")


def first_secret(keys: KeyRing, scheme: str) -> Secret:
    """The secret ``sign`` uses: the first one of the ring."""
    if not keys.secrets:
        raise UnusableKey(f"the {scheme} scheme signs with a secret; none is configured")
    return keys.secrets[0]


def _kind_name(kind: type) -> str:
    if issubclass(kind, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "RSA"
    if issubclass(kind, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "Ed25519"
    return "unsupported"


def load_public_key(text: str) -> PublicKey:
    """Load a public key as providers hand them out.

    Accepted: PEM (``-----BEGIN PUBLIC KEY-----`` or ``RSA PUBLIC KEY``, or a
    ``CERTIFICATE``, whose key is taken as is: a pinned certificate, PayPal's); the
    bare base64 DER body of such a PEM without its header lines (as document
    000's provider distributes its platform key); a raw 32-byte Ed25519 key as
    64 hex characters (as document 004's provider publishes its keys); a
    Standard Webhooks ``whpk_<base64>`` key, the base64 of the 32 raw bytes of
    an Ed25519 public key.
    """
    stripped = text.strip()
    if stripped.startswith(_PUBLIC_PREFIX):
        return _whpk(stripped.removeprefix(_PUBLIC_PREFIX))
    if stripped.startswith(_SECRET_PREFIX):
        raise KeyLoadError(
            "a whsk_ key is a Standard Webhooks secret key, not a public key: "
            "give its whpk_ public key here"
        )
    if stripped.startswith("-----BEGIN CERTIFICATE-----"):
        try:
            certified = x509.load_pem_x509_certificate(stripped.encode()).public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise KeyLoadError("the PEM certificate cannot be parsed") from exc
        return _checked_public(certified)
    if stripped.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(stripped.encode())
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise KeyLoadError("the PEM public key cannot be parsed") from exc
        return _checked_public(key)
    compact = "".join(stripped.split())
    if len(compact) == 64:
        try:
            return ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(compact))
        except ValueError:
            pass  # not hex: may still be base64 DER below
    try:
        der = base64.b64decode(compact, validate=True)
        key = serialization.load_der_public_key(der)
    except (binascii.Error, ValueError, UnsupportedAlgorithm) as exc:
        raise KeyLoadError(
            "the public key is neither PEM, base64 DER nor 32-byte hex Ed25519"
        ) from exc
    return _checked_public(key)


def load_private_key(text: str) -> PrivateKey:
    """Load a signing key: PEM (PKCS#8 or PKCS#1), bare base64 DER, a 32-byte hex Ed25519
    seed, or a Standard Webhooks ``whsk_<base64>`` key.

    A ``whsk_`` key is the base64 of the 32-byte Ed25519 seed, as the reference
    Go library (``libraries/go/webhook_asymmetric.go``, the one reference
    library with ``v1a``) reads and its tests write it. The 64-byte form some
    Ed25519 libraries print (seed, then public key) is accepted too, provided
    its public half is the seed's public key.
    """
    stripped = text.strip()
    if stripped.startswith(_SECRET_PREFIX):
        return _whsk(stripped.removeprefix(_SECRET_PREFIX))
    if stripped.startswith(_PUBLIC_PREFIX):
        raise KeyLoadError(
            "a whpk_ key is a Standard Webhooks public key: signing needs its whsk_ secret key"
        )
    if stripped.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(stripped.encode(), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyLoadError("the PEM private key cannot be parsed") from exc
        return _checked_private(key)
    compact = "".join(stripped.split())
    if len(compact) == 64:
        try:
            return ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(compact))
        except ValueError:
            pass
    try:
        key = serialization.load_der_private_key(base64.b64decode(compact, validate=True), None)
    except (binascii.Error, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyLoadError(
            "the private key is neither PEM, base64 DER nor 32-byte hex Ed25519"
        ) from exc
    return _checked_private(key)


def _whpk(encoded: str) -> ed25519.Ed25519PublicKey:
    raw = _prefixed_base64(encoded, "the whpk_ public key")
    if len(raw) != _ED25519_BYTES:
        raise KeyLoadError(
            f"the whpk_ public key holds {len(raw)} bytes; an Ed25519 public key is 32"
        )
    try:
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise KeyLoadError("the whpk_ public key is not an Ed25519 public key") from exc


def _whsk(encoded: str) -> ed25519.Ed25519PrivateKey:
    raw = _prefixed_base64(encoded, "the whsk_ secret key")
    if len(raw) not in (_ED25519_BYTES, 2 * _ED25519_BYTES):
        raise KeyLoadError(
            f"the whsk_ secret key holds {len(raw)} bytes; an Ed25519 seed is 32 "
            "(or 64: the seed, then its public key)"
        )
    key = ed25519.Ed25519PrivateKey.from_private_bytes(raw[:_ED25519_BYTES])
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    if len(raw) > _ED25519_BYTES and not hmac.compare_digest(raw[_ED25519_BYTES:], public):
        raise KeyLoadError(
            "the whsk_ secret key holds 64 bytes but its last 32 are not the public key "
            "of its first 32"
        )
    return key


def _prefixed_base64(encoded: str, what: str) -> bytes:
    """Standard base64, padding optional, as the Standard Webhooks libraries write it."""
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII text
        raise KeyLoadError(f"{what} is not base64 after its prefix") from exc


def _checked_public(key: object) -> PublicKey:
    if isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return key
    raise KeyLoadError(f"unsupported public key type {type(key).__name__}: RSA or Ed25519 expected")


def _checked_private(key: object) -> PrivateKey:
    if isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        return key
    raise KeyLoadError(
        f"unsupported private key type {type(key).__name__}: RSA or Ed25519 expected"
    )


def public_pem(key: PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def private_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
