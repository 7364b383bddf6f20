"""The provider instances the fuzz suite attacks: every profile, and the scheme options that
take other code paths (a digest ``sign`` field, HMAC in a header, a signed timestamp in a
template, Adyen's per-item signatures and HTTP Basic credentials).

The five document instances are ``deploy/dev.toml``'s, demo keys included, so the fuzzer
signs exactly as ``relay send`` does. Each instance also says where its signature and its
timestamp travel, which the mutators need to corrupt them precisely.
"""

from __future__ import annotations

import base64
import binascii
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay.config import ProviderInstance
from tests.paypal_ca import pinned_certificate

DEV_TOML = Path(__file__).resolve().parents[2] / "deploy" / "dev.toml"

STANDARD_SECRET = "whsec_" + base64.b64encode(b"fuzz-standard-webhooks-secret-32").decode()


def fuzz_providers() -> dict[str, dict[str, Any]]:
    """``[providers]`` tables: one instance per profile, plus option variants."""
    providers: dict[str, dict[str, Any]] = tomllib.loads(DEV_TOML.read_text())["providers"]
    collect = providers["collect"]
    return {
        **providers,
        "collect-md5": {
            "profile": "usdt-collect-pay",
            "algorithm": "md5",
            "secrets": collect["secrets"],
        },
        "topup-hmac": {
            "profile": "wallet-topup",
            "algorithm": "hmac-sha256",
            "encoding": "hex",
            "secrets": ["fuzz-topup-hmac-secret"],
        },
        "github": {"profile": "github", "secrets": ["fuzz-github-secret"]},
        "stripe": {"profile": "stripe", "secrets": ["whsec_fuzz_stripe_endpoint_secret"]},
        "standard": {"profile": "standard-webhooks", "secrets": [STANDARD_SECRET]},
        "generic": {
            "profile": "hmac",
            "secrets": ["fuzz-generic-secret"],
            "template": "{timestamp}.{body}",
            "timestamp_header": "x-timestamp",
            "id_header": "x-event-id",
        },
        "square": {
            "profile": "square",
            "secrets": ["fuzz-square-signature-key"],
            "notification_url": "https://relay.example/webhooks/square",
        },
        "paddle": {
            "profile": "paddle",
            "secrets": ["pdl_ntfset_01hs0t3tw21j988db1pam5xg8m_fuzzPaddleSecret"],
            # The suites sign every instance's originals before sending any: Paddle's 5 s
            # would go stale in the queue, as Stripe's 300 s does not.
            "timestamp_tolerance_s": 300,
        },
        "razorpay": {"profile": "razorpay", "secrets": ["fuzz-razorpay-webhook-secret"]},
        "checkout": {
            "profile": "checkout",
            "secrets": ["fuzz-checkout-signature-key"],
            "authorizations": ["fuzz-checkout-authorization-value"],
        },
        "coinbase": {"profile": "coinbase-commerce", "secrets": ["fuzz-coinbase-shared-secret"]},
        "adyen": {
            "profile": "adyen",
            "secrets": ["A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8F90"],
            "basic_auth_username": "fuzz",
            "basic_auth_password": "fuzz-basic-password",
        },
        "adyen-platform": {
            "profile": "adyen-platform",
            "secrets": ["0F1E2D3C4B5A69788796A5B4C3D2E1F00F1E2D3C4B5A69788796A5B4C3D2E1F0"],
        },
        "gocardless": {"profile": "gocardless", "secrets": ["fuzz-gocardless-secret"]},
        "wise": {
            "profile": "wise",
            "public_keys": providers["topup"]["public_keys"],
            "signing_key": providers["topup"]["signing_key"],
        },
        "braintree": {
            "profile": "braintree",
            # Public (it is in every bt_signature) and unlike the private key: the secret
            # tests look for any 16 characters of a secret, and the two shared a prefix.
            "public_key": "fuzzBtMerchantPublicKey",
            "secrets": ["fuzz_braintree_private_key"],
        },
        # PayPal with its certificate pinned: no fetch (tests/test_certificates.py fetches).
        "paypal": {
            "profile": "paypal",
            "webhook_id": "FUZZ4291016473214",
            "public_keys": [pinned_certificate(providers["topup"]["signing_key"])],
            "signing_key": providers["topup"]["signing_key"],
        },
    }


@dataclass(frozen=True)
class Slot:
    """Where a value travels: a header (``name``), the part of it after ``marker``, up to
    ``end`` when set; or, with ``in_body``, the JSON string member ``name`` of the body."""

    name: str
    marker: str = ""
    end: str = ""
    in_body: bool = False
    form: bool = False
    """With ``in_body``: the body is a form and the slot the part of field ``name``'s
    (percent-encoded) value after ``marker``, as Braintree's ``bt_signature`` digest."""


@dataclass(frozen=True)
class Signature:
    slot: Slot
    encoding: str
    """hex, HEX (upper case), base64 or base64url."""


@dataclass(frozen=True)
class Timestamp:
    slot: Slot
    unit_s: float
    """1 for UNIX seconds, 0.001 for milliseconds."""
    signed: bool


def signature_of(instance: ProviderInstance) -> Signature:
    scheme, params = instance.profile.scheme.name, instance.params
    if scheme == "sign-field":
        if params.algorithm == "rsa-sha256":
            encoding = "base64"
        elif params.algorithm != "hmac-sha256" or params.encoding == "hex":
            encoding = "HEX" if params.case == "upper" else "hex"
        else:
            encoding = "base64"
        return Signature(Slot(params.sign_field, in_body=True), encoding)
    if scheme == "hmac-header":
        return Signature(Slot(params.header, marker=params.prefix), params.encoding)
    if scheme == "header-signature":
        return Signature(Slot(params.header), params.encoding)
    if scheme == "ed25519-header":
        return Signature(Slot(params.signature_header), "hex")
    if scheme == "standard-webhooks":
        return Signature(Slot("webhook-signature", marker="v1,"), "base64")
    if scheme == "stripe":
        return Signature(Slot("stripe-signature", marker="v1="), "hex")
    if scheme == "paddle":
        return Signature(Slot("paddle-signature", marker="h1="), "hex")
    if scheme == "square":
        return Signature(Slot("x-square-hmacsha256-signature"), "base64")
    if scheme == "adyen":
        if params.form == "payload":
            return Signature(Slot(params.header), "base64")
        # Each item carries its own; the first one's stands for them (one bad item refuses all).
        return Signature(Slot("hmacSignature", in_body=True), "base64")
    if scheme == "wise":
        return Signature(Slot("x-signature-sha256"), "base64")
    if scheme == "paypal":
        return Signature(Slot("paypal-transmission-sig"), "base64")
    if scheme == "braintree":  # bt_signature=<public key>|<hex>, the '|' percent-encoded
        return Signature(Slot("bt_signature", marker="%7C", in_body=True, form=True), "hex")
    raise AssertionError(f"no signature slot for scheme {scheme}")


def timestamp_of(instance: ProviderInstance) -> Timestamp | None:
    scheme, params = instance.profile.scheme.name, instance.params
    if scheme == "ed25519-header":
        return Timestamp(Slot(params.timestamp_header), 0.001, signed=True)
    if scheme == "standard-webhooks":
        return Timestamp(Slot("webhook-timestamp"), 1, signed=True)
    if scheme == "stripe":
        return Timestamp(Slot("stripe-signature", marker="t=", end=","), 1, signed=True)
    if scheme == "paddle":
        return Timestamp(Slot("paddle-signature", marker="ts=", end=";"), 1, signed=True)
    if scheme == "hmac-header" and params.timestamp_header:
        return Timestamp(Slot(params.timestamp_header), 1, signed=True)
    if scheme == "header-signature" and params.timestamp_header:
        # Not signed, but checked when present: a stale one must still be refused.
        return Timestamp(Slot(params.timestamp_header), 1, signed=False)
    return None


def tolerance_s(instance: ProviderInstance) -> float | None:
    return getattr(instance.params, "timestamp_tolerance_s", None)


def decode(text: str, encoding: str) -> bytes:
    if encoding in ("hex", "HEX"):
        return binascii.unhexlify(text)
    standard = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(standard + "=" * (-len(standard) % 4))


def encode(raw: bytes, encoding: str, like: str) -> str:
    """``raw`` written as ``like`` is: same case, alphabet and padding."""
    if encoding == "hex":
        return raw.hex()
    if encoding == "HEX":
        return raw.hex().upper()
    text = base64.b64encode(raw).decode()
    if encoding == "base64url" or "-" in like or "_" in like:
        text = text.replace("+", "-").replace("/", "_")
    return text if like.endswith("=") else text.rstrip("=")
