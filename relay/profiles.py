"""The profile registry: every provider Relay knows, as data.

Each provider's :class:`~relay.providers.base.Profile` (what it is is said
there); config instances name a profile and override its options; nothing else
in Relay branches on provider names.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import relay.providers.generic
import relay.providers.payin_order
import relay.providers.usdt_collect_pay
import relay.providers.usdt_invoice
import relay.providers.v2_payout
import relay.providers.wallet_topup
import relay.samples
import verifiers.ed25519_header
import verifiers.header_signature
import verifiers.hmac_header
import verifiers.sign_field
import verifiers.standard_webhooks
import verifiers.stripe
from relay.providers.base import (
    DOCUMENT_BODY_LIMIT,
    Ack,
    Profile,
    hmac_content_identity,
    signed_string_identity,
    signed_view,
)

USDT_COLLECT_PAY = Profile(
    name="usdt-collect-pay",
    document="000",
    scheme=verifiers.sign_field,
    params=verifiers.sign_field.Params(),
    normalize=relay.providers.usdt_collect_pay.normalize,
    order_id=relay.providers.usdt_collect_pay.order_id,
    samples=relay.samples.USDT_COLLECT_PAY,
    payload=signed_view,
    identity=signed_string_identity,
    flows=("payin", "payout"),
    # Uppercase SUCCESS: anything else is retried every 5 minutes, 5 times.
    ack=Ack(body=b"SUCCESS"),
    timeout_s=10,
    max_body_bytes=DOCUMENT_BODY_LIMIT,
)

WALLET_TOPUP = Profile(
    name="wallet-topup",
    document="001",
    scheme=verifiers.header_signature,
    params=verifiers.header_signature.Params(),
    normalize=relay.providers.wallet_topup.normalize,
    order_id=relay.providers.wallet_topup.order_id,
    samples=relay.samples.WALLET_TOPUP,
    ack=Ack(body=b'{"status":"1"}', content_type="application/json"),
    timeout_s=10,
    max_body_bytes=DOCUMENT_BODY_LIMIT,
)

V2_PAYOUT = Profile(
    name="v2-payout",
    document="002",
    scheme=verifiers.sign_field,
    params=verifiers.sign_field.Params(key_suffix="", nested="sorted_compact", encoding="base64"),
    normalize=relay.providers.v2_payout.normalize,
    order_id=relay.providers.v2_payout.order_id,
    samples=relay.samples.V2_PAYOUT,
    payload=signed_view,
    identity=signed_string_identity,
    ack=Ack(body=b'{"code":0,"msg":"success"}', content_type="application/json"),
    timeout_s=10,
    max_body_bytes=DOCUMENT_BODY_LIMIT,
)

USDT_INVOICE = Profile(
    name="usdt-invoice",
    document="003",
    scheme=verifiers.hmac_header,
    params=verifiers.hmac_header.Params(header="x-webhook-signature"),
    normalize=relay.providers.usdt_invoice.normalize,
    order_id=relay.providers.usdt_invoice.order_id,
    samples=relay.samples.USDT_INVOICE,
    identity=hmac_content_identity,
    ack=Ack(),
    timeout_s=30,
    kept_headers=("x-invoice-reference",),
    id_header="x-webhook-id",
    max_body_bytes=DOCUMENT_BODY_LIMIT,
)

PAYIN_ORDER = Profile(
    name="payin-order",
    document="004",
    scheme=verifiers.ed25519_header,
    params=verifiers.ed25519_header.Params(),
    normalize=relay.providers.payin_order.normalize,
    order_id=relay.providers.payin_order.order_id,
    samples=relay.samples.PAYIN_ORDER,
    ack=Ack(),
    # The provider's documented default: the ack budget is 1 s.
    timeout_s=2,
    max_body_bytes=DOCUMENT_BODY_LIMIT,
)

STANDARD_WEBHOOKS = Profile(
    name="standard-webhooks",
    document=None,
    scheme=verifiers.standard_webhooks,
    params=verifiers.standard_webhooks.Params(),
    normalize=relay.providers.generic.standard_webhooks,
    samples=relay.samples.STANDARD_WEBHOOKS,
    ack=Ack(),
    timeout_s=15,
    kept_headers=("webhook-id", "webhook-timestamp"),
)

GITHUB = Profile(
    name="github",
    document=None,
    scheme=verifiers.hmac_header,
    params=verifiers.hmac_header.Params(header="x-hub-signature-256", prefix="sha256="),
    normalize=relay.providers.generic.github,
    samples=relay.samples.GITHUB,
    identity=hmac_content_identity,
    ack=Ack(),
    timeout_s=10,
    kept_headers=("x-github-event",),
    id_header="x-github-delivery",
)

STRIPE = Profile(
    name="stripe",
    document=None,
    scheme=verifiers.stripe,
    params=verifiers.stripe.Params(),
    normalize=relay.providers.generic.stripe,
    samples=relay.samples.STRIPE,
    ack=Ack(),
    timeout_s=10,
)

# The generic profile's id header is per instance (``id_header``), none by default.
HMAC = Profile(
    name="hmac",
    document=None,
    scheme=verifiers.hmac_header,
    params=verifiers.hmac_header.Params(),
    normalize=relay.providers.generic.hmac,
    samples=relay.samples.HMAC,
    id_header="",
    identity=hmac_content_identity,
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
