"""The profile registry: every provider Relay knows, as data.

A :class:`Profile` says how one kind of sender signs (a ``verifiers`` scheme
module and its default ``Params``), what that signature pins (the payload the
normalizer reads and the identity of the signed content), how its payload
becomes a canonical event (a ``schemas`` normalizer), what it expects back
(:class:`Ack`), how long it waits, and which headers are worth keeping. Config
instances name a profile and override its options; nothing else in Relay
branches on provider names.

What a signature pins: a scheme that signs the exact body bytes pins the body,
so the normalizer reads the parsed body and the body's SHA-256 is the content's
identity. A ``sign``-field scheme pins only its signed string: the normalizer
reads the signed view (:func:`verifiers.sign_field.read`) and the identity
hashes the signed string, so every re-spelling that verifies under one
signature reads, deduplicates and dead-letters as one message. The HMAC
scheme's JSON.stringify fallback pins the re-serialized form.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import relay.samples
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
from relay.samples import SampleEvent
from schemas import NormalizationError, parse_payload
from schemas.event import Normalizer
from schemas.payload import check_raw
from verifiers import AmbiguousBody, MalformedBody
from verifiers.base import Scheme


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer a provider counts as "received"."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"


PayloadReader = Callable[[bytes, Any], Any]
"""``(body, params)`` to what the normalizer reads; raises ``NormalizationError``."""
IdentityReader = Callable[[bytes, Any], str]
"""``(body, params)`` to the hex SHA-256 of the content the signature pins; never raises."""
OrderReader = Callable[[Any], str | None]
"""What the normalizer reads to the order its events are keyed by, or None; never raises."""


def parsed_body(body: bytes, params: Any) -> Any:
    return parse_payload(body)


def no_order(payload: Any) -> None:
    return None


def body_identity(body: bytes, params: Any) -> str:
    return hashlib.sha256(body).hexdigest()


def signed_view(body: bytes, params: verifiers.sign_field.Params) -> Mapping[str, str]:
    try:
        members = verifiers.sign_field.read(body, params).members
    except MalformedBody as error:
        # Reached only by a message verified under other options (replay after a config
        # change): the live path refused it with the same error before this.
        reason = "ambiguous_body" if isinstance(error, AmbiguousBody) else "malformed_json"
        raise NormalizationError(reason, str(error)) from None
    # The normalizer reads the view, but the event embeds the whole body as raw: its
    # numbers and nesting must be ones a consumer's decoder reads (schemas.ranges).
    check_raw(body)
    return members


def signed_string_identity(body: bytes, params: verifiers.sign_field.Params) -> str:
    try:
        return hashlib.sha256(verifiers.sign_field.read(body, params).canonical).hexdigest()
    except MalformedBody:
        return body_identity(body, params)  # never verified as such: the body names it


def hmac_content_identity(body: bytes, params: verifiers.hmac_header.Params) -> str:
    return hashlib.sha256(verifiers.hmac_header.signed_content(body, params)).hexdigest()


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    document: str | None
    scheme: Scheme
    """A ``verifiers`` scheme module (see :class:`verifiers.base.Scheme`)."""
    params: Any
    normalize: Normalizer
    ack: Ack
    timeout_s: float
    samples: Mapping[str, SampleEvent]
    """Named sample webhooks (``relay send --event``) and what each must become."""
    kept_headers: tuple[str, ...] = ()
    """Headers handed to the normalizer and kept in dead letters (``id_header`` too)."""
    id_header: str | None = None
    """The event-id rule where the id travels in a header the signature does not cover
    (``X-Webhook-Id``, ``X-GitHub-Delivery``): the header's name, which an instance may
    change with ``id_header``; ``""`` where there is none unless the instance names one
    (generic ``hmac``). None: the id is pinned by the signature (in the body or a signed
    header), and ``id_header`` does not apply. With an id header, deduplication claims
    the signed content's identity instead of the id, so the first delivery of a signed
    body wins: a captured body posted again with fresh ids publishes nothing."""
    content_types: tuple[str, ...] = ("application/json",)
    """Accepted ``Content-Type`` media types; anything else is a 415."""
    max_body_bytes: int | None = None
    """The default body limit of an instance (its ``max_body_bytes`` option replaces it);
    None is ``[server] max_body_bytes``. The document profiles send one small JSON object
    per notification, so they get :data:`DOCUMENT_BODY_LIMIT`: anything near a megabyte
    from them is not a webhook, and refusing it early keeps unauthenticated requests cheap.
    The public schemes (GitHub, Stripe, ...) send payloads of any size up to the server's."""

    payload: PayloadReader = parsed_body
    """What the normalizer reads: only what the signature pins (module docstring)."""
    identity: IdentityReader = body_identity
    """The signed content's identity: dead letters are named by it, so that re-spellings
    of one message file one letter, and instances with an id header deduplicate on it."""
    flows: tuple[str, ...] = ()
    """The flows an instance may set with ``flow``, for a profile that serves several;
    empty where the document fixes it (the ``flow`` option is then refused)."""
    order_id: OrderReader = no_order
    """The order a payload names, as its events' record key holds it (merchant order id,
    else the provider's), read from a payload that may not normalize: ``relay find``
    and ``relay dlq`` name dead letters' orders with it. Generic webhooks have none."""


DOCUMENT_BODY_LIMIT = 64 * 1024
"""The document profiles' body limit: dozens of times their largest sample."""


USDT_COLLECT_PAY = Profile(
    name="usdt-collect-pay",
    document="000",
    scheme=verifiers.sign_field,
    params=verifiers.sign_field.Params(),
    normalize=schemas.usdt_collect_pay.normalize,
    order_id=schemas.usdt_collect_pay.order_id,
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
    normalize=schemas.wallet_topup.normalize,
    order_id=schemas.wallet_topup.order_id,
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
    normalize=schemas.v2_payout.normalize,
    order_id=schemas.v2_payout.order_id,
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
    normalize=schemas.usdt_invoice.normalize,
    order_id=schemas.usdt_invoice.order_id,
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
    normalize=schemas.payin_order.normalize,
    order_id=schemas.payin_order.order_id,
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
    normalize=schemas.generic.standard_webhooks,
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
    normalize=schemas.generic.github,
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
    normalize=schemas.generic.stripe,
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
    normalize=schemas.generic.hmac,
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
