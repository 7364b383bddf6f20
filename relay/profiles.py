"""The profile registry: every provider Relay knows, as data.

A :class:`Profile` says how one kind of sender signs (a ``verifiers`` scheme
module and its default ``Params``), how its payload becomes a canonical event
(a ``schemas`` normalizer), what it expects back (:class:`Ack`), how long it
waits, and which headers are worth keeping. Config instances name a profile
and override its options; nothing else in Relay branches on provider names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType, ModuleType
from typing import Any

import schemas.generic
import schemas.payin_order
import schemas.usdt_collect_pay
import schemas.usdt_invoice
import schemas.v2_payout
import schemas.wallet_topup
import verifiers.ed25519_header
import verifiers.header_signature
import verifiers.hmac_header
import verifiers.sign_field
import verifiers.standard_webhooks
import verifiers.stripe
from schemas.event import Normalizer


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer a provider counts as "received"."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    document: str | None
    scheme: ModuleType
    params: Any
    normalize: Normalizer
    ack: Ack
    timeout_s: float
    kept_headers: tuple[str, ...] = ()
    """Headers handed to the normalizer (id headers) and kept in dead letters."""
    content_types: tuple[str, ...] = ("application/json",)
    """Accepted ``Content-Type`` media types; anything else is a 415."""


USDT_COLLECT_PAY = Profile(
    name="usdt-collect-pay",
    document="000",
    scheme=verifiers.sign_field,
    params=verifiers.sign_field.Params(),
    normalize=schemas.usdt_collect_pay.normalize,
    # Uppercase SUCCESS: anything else is retried every 5 minutes, 5 times.
    ack=Ack(body=b"SUCCESS"),
    timeout_s=10,
)

WALLET_TOPUP = Profile(
    name="wallet-topup",
    document="001",
    scheme=verifiers.header_signature,
    params=verifiers.header_signature.Params(),
    normalize=schemas.wallet_topup.normalize,
    ack=Ack(body=b'{"status":"1"}', content_type="application/json"),
    timeout_s=10,
)

V2_PAYOUT = Profile(
    name="v2-payout",
    document="002",
    scheme=verifiers.sign_field,
    params=verifiers.sign_field.Params(key_suffix="", nested="sorted_compact", encoding="base64"),
    normalize=schemas.v2_payout.normalize,
    ack=Ack(body=b'{"code":0,"msg":"success"}', content_type="application/json"),
    timeout_s=10,
)

USDT_INVOICE = Profile(
    name="usdt-invoice",
    document="003",
    scheme=verifiers.hmac_header,
    params=verifiers.hmac_header.Params(header="x-webhook-signature"),
    normalize=schemas.usdt_invoice.normalize,
    ack=Ack(),
    timeout_s=30,
    kept_headers=("x-webhook-id", "x-invoice-reference"),
)

PAYIN_ORDER = Profile(
    name="payin-order",
    document="004",
    scheme=verifiers.ed25519_header,
    params=verifiers.ed25519_header.Params(),
    normalize=schemas.payin_order.normalize,
    ack=Ack(),
    # The provider's documented default: the ack budget is 1 s.
    timeout_s=2,
)

STANDARD_WEBHOOKS = Profile(
    name="standard-webhooks",
    document=None,
    scheme=verifiers.standard_webhooks,
    params=verifiers.standard_webhooks.Params(),
    normalize=schemas.generic.standard_webhooks,
    ack=Ack(),
    timeout_s=15,
    kept_headers=("webhook-id", "webhook-timestamp"),
)

GITHUB = Profile(
    name="github",
    document=None,
    scheme=verifiers.hmac_header,
    params=verifiers.hmac_header.Params(header="x-hub-signature-256", prefix="sha256="),
    normalize=schemas.generic.github,
    ack=Ack(),
    timeout_s=10,
    kept_headers=("x-github-delivery", "x-github-event"),
)

STRIPE = Profile(
    name="stripe",
    document=None,
    scheme=verifiers.stripe,
    params=verifiers.stripe.Params(),
    normalize=schemas.generic.stripe,
    ack=Ack(),
    timeout_s=10,
)

# The generic profile's id header is per instance (``id_header``): the pipeline keeps it too.
HMAC = Profile(
    name="hmac",
    document=None,
    scheme=verifiers.hmac_header,
    params=verifiers.hmac_header.Params(),
    normalize=schemas.generic.hmac,
    ack=Ack(),
    timeout_s=10,
)

PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        profile.name: profile
        for profile in (
            USDT_COLLECT_PAY,
            WALLET_TOPUP,
            V2_PAYOUT,
            USDT_INVOICE,
            PAYIN_ORDER,
            STANDARD_WEBHOOKS,
            GITHUB,
            STRIPE,
            HMAC,
        )
    }
)
