"""The profile registry: every provider Relay knows, as data.

Each provider's :class:`~relay.providers.base.Profile` (what it is is said
there); config instances name a profile and override its options; nothing else
in Relay branches on provider names.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import relay.providers.generic
import relay.samples
import verifiers.hmac_header
import verifiers.standard_webhooks
import verifiers.stripe
from relay.providers import payin_order, usdt_collect_pay, usdt_invoice, v2_payout, wallet_topup
from relay.providers.base import Ack, Profile, hmac_content_identity

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
            usdt_collect_pay.PROFILE,
            wallet_topup.PROFILE,
            v2_payout.PROFILE,
            usdt_invoice.PROFILE,
            payin_order.PROFILE,
            STANDARD_WEBHOOKS,
            GITHUB,
            STRIPE,
            HMAC,
        )
    }
)
