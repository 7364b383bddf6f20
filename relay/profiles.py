"""The profile registry: every provider Relay knows, as data.

Each provider's :class:`~relay.providers.base.Profile` (what it is is said
there); config instances name a profile and override its options; nothing else
in Relay branches on provider names.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from relay.providers import (
    adyen,
    adyen_platform,
    braintree,
    checkout,
    coinbase_commerce,
    github,
    gocardless,
    hmac,
    paddle,
    payin_order,
    paypal,
    razorpay,
    square,
    standard_webhooks,
    stripe,
    usdt_collect_pay,
    usdt_invoice,
    v2_payout,
    wallet_topup,
    wise,
)
from relay.providers.base import Profile

# One line per provider: its module's PROFILE.
PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        profile.name: profile
        for profile in (
            paypal.PROFILE,
            wise.PROFILE,
            braintree.PROFILE,
            usdt_collect_pay.PROFILE,
            wallet_topup.PROFILE,
            v2_payout.PROFILE,
            usdt_invoice.PROFILE,
            payin_order.PROFILE,
            standard_webhooks.PROFILE,
            github.PROFILE,
            stripe.PROFILE,
            adyen.PROFILE,
            adyen_platform.PROFILE,
            gocardless.PROFILE,
            hmac.PROFILE,
            square.PROFILE,
            paddle.PROFILE,
            razorpay.PROFILE,
            checkout.PROFILE,
            coinbase_commerce.PROFILE,
        )
    }
)
